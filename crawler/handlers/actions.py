"""Page actions: what a rendered page does after it loads and before its DOM is taken,
declared per request as plain data (so that a job dir or a fleet can store the request):

    meta["browser_actions"] = [
        {"wait_for": "div.quote"},           # until a selector is attached
        {"click": "button.more"},            # click the first match
        {"fill": ["input#q", "books"]},      # type into a field
        {"press": ["input#q", "Enter"]},     # a key on an element
        {"scroll": 3},                       # to the bottom, 3 times (lazy loading)
        {"wait": "networkidle"},             # or "load", "domcontentloaded", or seconds
        {"evaluate": "document.title"},      # its value goes to meta["browser_results"]
    ]

and an escape hatch: `meta["browser_page"]` names a spider method (or is an async
callable) given the live page, its return kept in `meta["browser_page_result"]`; the page
is closed afterwards whatever it does. Each action runs under `browser_timeout`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any

__all__ = ["call_page_hook", "check_actions", "run_actions"]

_KINDS: dict[str, type | tuple[type, ...]] = {
    "wait_for": str, "click": str, "fill": list, "press": list, "scroll": int,
    "wait": (str, int, float), "evaluate": str}
_LOAD_STATES = ("load", "domcontentloaded", "networkidle")
_SCROLL_PAUSE = 0.25  # seconds for lazily loaded content to arrive after each scroll


def check_actions(actions: Any) -> list[tuple[str, Any]]:
    """The actions as (name, argument) pairs; ValueError saying what is wrong."""
    if not isinstance(actions, list | tuple):
        raise ValueError(f"meta['browser_actions'] must be a list, got {type(actions).__name__}")
    checked = []
    for step in actions:
        if not isinstance(step, dict) or len(step) != 1:
            raise ValueError(f"a browser action is a one-key dict (like {{'click': 'a.more'}}), "
                             f"got {step!r}")
        (name, arg), = step.items()
        arg = arg if not isinstance(arg, tuple) else list(arg)
        arg_any: Any = arg
        kind = _KINDS.get(name)
        if kind is None:
            raise ValueError(f"unknown browser action {name!r} (known: {', '.join(_KINDS)})")
        if not isinstance(arg, kind) or isinstance(arg, bool):
            raise ValueError(f"browser action {name!r} takes a {_name(kind)}, got {arg!r}")
        if name in ("fill", "press") and (len(arg_any) != 2 or not all(
                isinstance(a, str) for a in arg_any)):
            raise ValueError(f"browser action {name!r} takes [selector, text], got {arg!r}")
        if name == "wait" and isinstance(arg, str) and arg not in _LOAD_STATES:
            raise ValueError(f"browser action 'wait' takes seconds or one of {_LOAD_STATES}")
        checked.append((name, arg))
    return checked


async def run_actions(page: Any, actions: Sequence[tuple[str, Any]], limit: float,
                      ) -> list[Any]:
    """Run `actions` on `page`, each within `limit` seconds; what `evaluate` returned."""
    results = []
    ms = limit * 1000
    for name, arg in actions:
        if name == "wait_for":
            await page.wait_for_selector(arg, state="attached", timeout=ms)
        elif name == "click":
            await page.click(arg, timeout=ms)
        elif name == "fill":
            await page.fill(arg[0], arg[1], timeout=ms)
        elif name == "press":
            await page.press(arg[0], arg[1], timeout=ms)
        elif name == "scroll":
            for _ in range(arg):
                await asyncio.wait_for(page.evaluate(
                    "window.scrollTo(0, document.body.scrollHeight)"), limit)
                await asyncio.sleep(_SCROLL_PAUSE)
        elif name == "wait":
            if isinstance(arg, str):
                await page.wait_for_load_state(arg, timeout=ms)
            else:
                await asyncio.sleep(min(float(arg), limit))
        else:  # evaluate
            results.append(await asyncio.wait_for(page.evaluate(arg), limit))
    return results


async def call_page_hook(hook: Any, page: Any, limit: float) -> Any:
    """The escape hatch: `hook(page)`, awaited within `limit` seconds."""
    result = hook(page)
    if inspect.isawaitable(result):
        result = await asyncio.wait_for(result, limit)
    return result


def _name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return str(kind.__name__)
