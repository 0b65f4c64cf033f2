"""Download handlers: what turns a request into a response, behind the middleware chain.

The handler of a request is the one its `meta["download_handler"]` names, else the one
of its URL's scheme; an http(s) page goes to the browser (crawler/handlers/browser.py)
with `meta["browser"] = True`, or for every page with `render = "browser"` (then
`meta["browser"] = False` keeps one on HTTP). The `download_handlers` setting adds
handlers or replaces or disables (None) the built-in ones, as Scrapy's DOWNLOAD_HANDLERS
does:

    custom_settings = {"download_handlers": {"s3": "myproject.handlers.S3Handler"}}

A handler has `async def fetch(request) -> Response` (raising DownloadError with a kind
when no response comes); it is built with `from_crawler(crawler)` when it defines it, at
the crawl's construction (a StartupError then names what is wrong), opened (`async
with`, when it is an async context manager) at its first request, and closed when the
crawl ends. aiohttp (crawler/handlers/http.py) handles http and https, or libcurl
(crawler/handlers/curl.py) with `http_stack = "curl"`; the SSRF guard lives beside them.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

from crawler.core.plugins import build
from crawler.exceptions import DownloadError, Kind, RequestFailed, StartupError
from crawler.handlers.http import Downloader, HttpDownloader
from crawler.http import Request, Response

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["BUILTIN", "DownloadHandlers", "Downloader", "HttpDownloader"]

_HTTP = "crawler.handlers.http.HttpDownloader"
_CURL = "crawler.handlers.curl.CurlDownloader"
BUILTIN: dict[str, Any] = {"http": _HTTP, "https": _HTTP, "aiohttp": _HTTP, "curl": _CURL,
                           "browser": "crawler.handlers.browser.BrowserHandler"}
# handlers named by meta, not by a URL's scheme
_NAMES = frozenset({"browser", "aiohttp", "curl"})


class DownloadHandlers:
    """The crawl's Downloader: each request to its handler.

    Usage:
        async with DownloadHandlers(crawler) as handlers:
            response = await handlers.fetch(request)
    """

    def __init__(self, crawler: CrawlerProtocol, *, default: Downloader | None = None) -> None:
        """`default`: the handler of http and https (a test's, or the API user's), which
        its caller opens and closes."""
        specs = {**BUILTIN, **dict(crawler.settings.download_handlers)}
        if crawler.settings.http_stack == "curl":  # the second HTTP stack for every page
            specs.update({k: _CURL for k in ("http", "https") if specs.get(k) == _HTTP})
        elif not _has_curl():
            specs.pop("curl")  # not installed, and not asked for: a request naming it fails
        if default is not None:
            specs["http"] = specs["https"] = specs["aiohttp"] = default
        self._handlers: dict[str, Downloader] = {}
        built: dict[int, Downloader] = {}  # one handler per spec: http and https share one
        for key, spec in specs.items():
            if spec is None:
                continue
            handler = built.get(id(spec))
            if handler is None:
                handler = build(spec, crawler, "download handler")
                if handler is None:  # NotConfigured: left out
                    continue
                if not callable(getattr(handler, "fetch", None)):
                    raise StartupError(f"download handler {key!r} ({type(handler).__name__}) "
                                       "has no fetch(request) method")
                built[id(spec)] = handler
            self._handlers[key] = handler
        self._open: dict[str, Downloader] = {}  # key -> its handler, once opened
        # id(handler) -> what entering it gave; the caller's `default` is open already
        self._opened: dict[int, Downloader] = {id(default): default} if default else {}
        self._opening = asyncio.Lock()
        # http(s) pages go to the browser when the crawl renders them (render = "browser")
        self._web = "browser" if crawler.settings.render == "browser" else None
        self._stack = AsyncExitStack()
        self._closed = False

    @property
    def schemes(self) -> frozenset[str]:
        """The URL schemes requests can be sent to (not the names only meta uses)."""
        return frozenset(self._handlers) - _NAMES

    async def __aenter__(self) -> DownloadHandlers:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._closed = True
        self._open.clear()
        await self._stack.aclose()

    def snapshot(self) -> dict[str, Any]:
        """The opened handlers' parts of the crawl's status (the browser's pages, memory)."""
        parts: dict[str, Any] = {}
        for handler in {id(h): h for h in self._open.values()}.values():
            snapshot = getattr(handler, "snapshot", None)
            if callable(snapshot):
                parts.update(snapshot())
        return parts

    async def fetch(self, request: Request) -> Response:
        meta = request._meta
        key = None
        rendered = self._web
        if meta:
            key = meta.get("download_handler")
            browser = meta.get("browser")
            if browser is not None:
                rendered = "browser" if browser else None
        if key is None:
            url = request.url
            key = "https" if url.startswith("https:") else "http" if url.startswith("http:") \
                else url.partition(":")[0].lower()
            if rendered is not None and key in ("http", "https"):
                key = rendered
        handler = self._open.get(key)
        if handler is None:
            handler = await self._start(key, request)
        return await handler.fetch(request)

    async def _start(self, key: str, request: Request) -> Downloader:
        """Open `key`'s handler at its first request (once, whoever asks meanwhile)."""
        handler = self._handlers.get(key)
        if handler is None:
            raise DownloadError(Kind.UNSUPPORTED_SCHEME, f"no download handler for {key!r} "
                                "(the download_handlers setting)", request)
        async with self._opening:
            if self._closed:
                raise DownloadError(Kind.INTERNAL, "the crawl's download handlers are closed",
                                    request)
            opened: Any = self._opened.get(id(handler))
            if opened is None:
                opened = handler
                if hasattr(handler, "__aenter__"):  # opened once, closed with the crawl
                    try:
                        opened = await self._stack.enter_async_context(opened)
                    except RequestFailed as exc:  # it cannot open (what it needs is missing)
                        exc.request = request
                        raise
                self._opened[id(handler)] = opened
            self._open[key] = opened
        return opened  # type: ignore[no-any-return]


def _has_curl() -> bool:
    import importlib.util

    return importlib.util.find_spec("curl_cffi") is not None
