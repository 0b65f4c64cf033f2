"""`python -m crawler shell [URL]`: an interactive console for trying selectors.

Top-level `await` works as in `python -m asyncio`; `fetch(url)` runs at once when called
bare (Scrapy's habit) and is awaitable inside an `await` statement. Ready in the
namespace: `response`, `request`, `spider`, `settings`, `fetch(url_or_request)`,
`view(response)`, `shelp()`.
IPython is used when it is installed (and stdin is a terminal).
"""

from __future__ import annotations

import ast
import asyncio
import code
import importlib
import inspect
import os
import sys
import tempfile
import types
import webbrowser
from typing import Any

from crawler.commands.probe import ProbeRequest, probe
from crawler.http import Request, Response
from crawler.settings import Settings
from crawler.spider import Spider

__all__ = ["Shell", "view"]

_BANNER = """\
crawler shell: {where}
  response   the last page fetched (response.css(), .css_text(), .sel.css('h1::text').get(),
             .xpath(), .follow())
  fetch(url) fetch a URL or Request with the spider's settings (await it, or not);
             fetch(url, browser=True) renders it in Chromium
  view(r)    open a response in a browser (or print where it was saved)
  spider, settings, request; shelp() shows this again; Ctrl-D quits
"""


class Shell:
    """The console's state: the spider (the project's, or a bare one) and settings fetches
    use, and the last response."""

    def __init__(self, spider: Spider, settings: Settings,
                 spider_args: dict[str, Any]) -> None:
        self.spider_cls = type(spider)  # each fetch builds its own, with spider_args
        self.settings = settings
        self.spider_args = spider_args
        self.loop: asyncio.AbstractEventLoop | None = None  # the plain console's
        self.namespace: dict[str, Any] = {
            "fetch": self.fetch, "view": view, "shelp": self.help, "response": None,
            "request": None, "settings": settings, "Request": Request,
            "spider": spider,
        }

    def fetch(self, target: str | Request, redirect: bool = True, browser: bool = False,
              ) -> Any:
        """Fetch a URL (or a Request's URL) and make it `response`: at once when called
        bare, as in Scrapy's shell, or awaitable where a loop runs (`await fetch(url)`);
        `browser=True` renders it in Chromium."""
        coro = self._fetch(target, redirect, browser)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a plain statement: run it here and now
            if self.loop is not None and not self.loop.is_closed():
                return self.loop.run_until_complete(coro)
            return asyncio.run(coro)
        return coro

    async def _fetch(self, target: str | Request, redirect: bool,
                     browser: bool = False) -> Response | None:
        url = target.url if isinstance(target, Request) else str(target)
        meta = {"browser": True} if browser else {}
        result = await probe(self.spider_cls, [ProbeRequest(url, redirect=redirect,
                                                             meta=meta)],
                             self.settings, spider_args=self.spider_args)
        if not result.responses:
            why = result.failures[0].exception if result.failures else "nothing came back"
            print(f"fetch failed: {url}: {why}", file=sys.stderr)
            return None
        response = result.responses[-1]
        self.namespace.update(response=response, request=response.request)
        print(f"fetched {response}", file=sys.stderr)
        return response

    def help(self) -> None:
        """Print the banner."""
        response = self.namespace.get("response")
        print(_BANNER.format(where=response or "no page yet"), file=sys.stderr)

    def interact(self, url: str | None) -> None:
        """Fetch `url` if given, then read commands until end of input."""
        loop = self.loop = asyncio.new_event_loop()
        try:
            if url:
                self.fetch(url)
            if sys.stdin.isatty() and _ipython(self.namespace, _BANNER):
                return
            self.help()
            _AsyncConsole(self.namespace, loop).interact(banner="", exitmsg="")
        finally:
            loop.close()


class _AsyncConsole(code.InteractiveConsole):
    """A console that runs top-level `await` on one event loop (as `python -m asyncio`)."""

    def __init__(self, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(namespace)
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self.loop = loop

    def runcode(self, code_object: types.CodeType) -> None:
        try:
            result = types.FunctionType(code_object, self.locals)()
            if inspect.iscoroutine(result):  # the statement awaits: run it on the loop
                self.loop.run_until_complete(result)
        except SystemExit:
            raise
        except BaseException:
            self.showtraceback()


def _ipython(namespace: dict[str, Any], banner: str) -> bool:
    try:  # optional: typed as Any whether or not it is installed
        embed: Any = importlib.import_module("IPython.terminal.embed")
    except ImportError:
        return False
    shell = embed.InteractiveShellEmbed(user_ns=namespace, banner1=banner.format(
        where=namespace.get("response") or "no page yet"))
    shell.autoawait = True
    shell()
    return True


def view(response: Response) -> str:
    """Save the page to a temporary file (an HTML page with a <base>, so that its links and
    styles resolve) and open it in a browser when this machine has a display; returns the path."""
    body = response.body
    suffix = ".html" if response.is_html else ".txt"
    if response.is_html and b"<base" not in body[:4096].lower():
        base = f'<base href="{response.url}">'.encode()
        head = body.lower().find(b"<head")
        end = body.find(b">", head) + 1 if head != -1 else 0
        body = body[:end] + base + body[end:]
    fd, path = tempfile.mkstemp(prefix="crawler-view-", suffix=suffix)
    with os.fdopen(fd, "wb") as file:
        file.write(body)
    if sys.platform in ("darwin", "win32") or os.environ.get("DISPLAY") or \
            os.environ.get("WAYLAND_DISPLAY"):
        webbrowser.open(f"file://{path}")
    print(f"saved to {path}", file=sys.stderr)
    return path
