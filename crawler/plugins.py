"""Building and calling user plugins (pipelines today): one helper for each.

`build(spec, crawler)` turns a class, an instance or a dotted "module.Class" path into an
object, calling `from_crawler(crawler)` when the class defines it (Scrapy's
`build_from_crawler`), so a plugin can read `crawler.settings`, `crawler.stats` and
`crawler.spider`. `until(awaitable, event)` awaits a user coroutine that a stop may cut
short, so a hook that never returns cannot hold the crawl.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import traceback
from collections.abc import Awaitable
from typing import Any

from crawler.exceptions import StartupError

logger = logging.getLogger(__name__)

_STILL_WAITING = 10.0  # seconds before saying which hook the crawl is waiting for


class Interrupted(Exception):
    """The event fired before the awaited user code finished; that code was cancelled."""


def load_object(path: str, what: str) -> Any:
    """The object a dotted path names ("package.module.Name")."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise StartupError(f"cannot import {what} {path!r}: {exc}") from None


def build(spec: Any, crawler: Any, what: str) -> Any:
    """An instance from a class, an instance or a dotted path; `from_crawler(crawler)` is
    used when the class defines it."""
    obj = load_object(spec, what) if isinstance(spec, str) else spec
    if not isinstance(obj, type):
        return obj
    factory = getattr(obj, "from_crawler", None)
    try:
        return factory(crawler) if callable(factory) else obj()
    except Exception as exc:
        hint = "" if callable(factory) else \
            " (a plugin that needs arguments gets them in a from_crawler(crawler) classmethod)"
        raise StartupError(f"cannot build {what} {obj.__name__}: {describe(exc)}{hint}") \
            from exc


def describe(exc: BaseException) -> str:
    """`Type: message (file:line)` of where user code raised: one line for the CLI."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


async def call(fn: Any, *args: Any, stop: asyncio.Event | None = None, what: str = "") -> Any:
    """Call a sync or async user function; an async one is abandoned if `stop` fires first
    (raising Interrupted), and one that runs long is named in a warning."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await until(result, stop, what or getattr(fn, "__qualname__", repr(fn)))
    return result


async def until(awaitable: Awaitable[Any], stop: asyncio.Event | None, what: str) -> Any:
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    waiting = {task} | ({stopper} if stopper is not None else set())
    try:
        while True:
            done, _ = await asyncio.wait(waiting, timeout=_STILL_WAITING,
                                         return_when=asyncio.FIRST_COMPLETED)
            if done:
                break
            logger.warning("still waiting for %s (a second Ctrl-C stops now)", what)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        if stopper is not None:
            stopper.cancel()
    if task in done:
        return task.result()
    task.cancel()  # not awaited: code that ignores cancellation must not hold us
    task.add_done_callback(_retrieve)
    raise Interrupted(what)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
