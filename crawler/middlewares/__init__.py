"""Downloader middlewares: an ordered chain of small wrappers around the Downloader.

A middleware is any object with one or more of these methods, `async def` or plain (plain
ones are called on the event loop and must be quick, like Scrapy's; the built-ins are):

    process_request(request)              -> None | Response | Request | Retry
    process_response(request, response)   -> Response | Request | Retry
    process_exception(request, exception) -> None | Response | Request | Retry

`process_request` runs in order, the network fetch comes next, then `process_response` in
reverse order (the middleware nearest the network sees the response first), as in Scrapy.
A Response from `process_request` skips the fetch (a cache hit), and every
`process_response` still sees it. A RequestFailed from the fetch goes to each
`process_exception` in reverse order until one returns something other than None. A
Request that a method returns is scheduled in place of the original (through the same
admission checks as a link: off-site, robots.txt, duplicates unless `dont_filter`); a
`Retry` queues a request again after a wait without the duplicate check. Raising
RequestFailed (or IgnoreRequest) fails the request; its errback is called.

The `downloader_middlewares` setting adds middlewares, or reorders or disables (None) the
built-in ones, as Scrapy's DOWNLOADER_MIDDLEWARES does:

    custom_settings = {"downloader_middlewares": {"myproject.mw.AddToken": 500,
                                                  "crawler.middlewares.cookies.Cookies": None}}

A list is taken as orders 500, 501, ... . Middlewares are built with
`from_crawler(crawler)` when they define it; raising NotConfigured there leaves one out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from crawler.core.plugins import build, is_async
from crawler.http import Request, Response

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = [
    "BUILTIN", "Fetch", "MiddlewareChain", "Observer", "Outcome", "Retry", "build_middlewares",
    "middleware_specs", "ordered_specs",
]


@dataclass(frozen=True, slots=True)
class Retry:
    """Queue `request` again, not before `delay` seconds from now, without the duplicate
    check (what the retry middleware returns)."""

    request: Request
    delay: float = 0.0


Outcome: TypeAlias = Response | Request | Retry
Fetch: TypeAlias = Callable[[Request], Awaitable[Response]]
Observer: TypeAlias = Callable[[Request, Response], Awaitable[None] | None]

# the built-in middlewares and their orders: higher is nearer the network (Scrapy's scale)
BUILTIN: dict[str, int] = {
    "crawler.middlewares.httperror.HttpErrorMiddleware": 50,
    "crawler.middlewares.retry.RetryMiddleware": 550,
    "crawler.middlewares.redirect.RedirectMiddleware": 600,
    "crawler.middlewares.sessions.SessionMiddleware": 650,
    "crawler.middlewares.cookies.CookiesMiddleware": 700,
    "crawler.middlewares.proxy.ProxyMiddleware": 750,
    "crawler.middlewares.httpcache.HttpCacheMiddleware": 900,
}


def middleware_specs(setting: Sequence[tuple[Any, int | None]]) -> list[Any]:
    """The downloader middlewares to build, in order (ordered_specs with the built-ins)."""
    return ordered_specs(BUILTIN, setting)


def ordered_specs(builtin: dict[str, int], setting: Sequence[tuple[Any, int | None]],
                  ) -> list[Any]:
    """The plugins to build, in order: the built-ins merged with the setting's (spec,
    order) pairs, where None leaves one out."""
    orders: dict[Any, int | None] = dict(builtin)
    for spec, order in setting:
        # a built-in named by path or by class is moved or left out
        orders.pop(spec if isinstance(spec, str) else _path(spec), None)
        orders[spec] = order
    ranked = [(order, i, spec) for i, (spec, order) in enumerate(orders.items())
              if order is not None]
    return [spec for _, _, spec in sorted(ranked, key=lambda t: (t[0], t[1]))]


def build_middlewares(crawler: CrawlerProtocol) -> list[Any]:
    """The crawl's downloader middlewares, built in order (`from_crawler(crawler)` when
    they define it; NotConfigured leaves one out)."""
    specs = middleware_specs(crawler.settings.downloader_middlewares)
    built = (build(spec, crawler, "downloader middleware") for spec in specs)
    return [m for m in built if m is not None]


def _path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class MiddlewareChain:
    """The middlewares of one crawl around a fetch function.

    Usage:
        chain = MiddlewareChain(build_middlewares(crawler))
        outcome = await chain.download(request, downloader.fetch)
    """

    def __init__(self, middlewares: Sequence[Any],
                 on_response: Observer | None = None,
                 ) -> None:
        self.middlewares = list(middlewares)
        self._on_response = on_response
        # (method, is async) in the order they are called: a plain method is called
        # without a coroutine around it (the built-ins are plain: this is the hot path)
        self._requests = _hooks(self.middlewares, "process_request")
        self._responses = _hooks(self.middlewares[::-1], "process_response")
        self._exceptions = _hooks(self.middlewares[::-1], "process_exception")

    async def download(self, request: Request, fetch: Fetch) -> Outcome:
        """Run `request` through the chain and `fetch`; raises what fails the request."""
        response: Response | None = None
        for hook, awaited in self._requests:
            result = hook(request)
            if awaited:
                result = await result
            if result is None:
                continue
            if not isinstance(result, Response):
                return _checked(result, hook)
            response = result
            break
        if response is None:
            try:
                response = await fetch(request)
            except Exception as exc:
                result = await self._exception(request, exc)
                if not isinstance(result, Response):
                    return result
                response = result
        if self._on_response is not None:
            observed = self._on_response(request, response)
            if observed is not None:  # an awaitable when someone listens
                await observed
        for hook, awaited in self._responses:
            result = hook(request, response)
            if awaited:
                result = await result
            if not isinstance(result, Response):
                return _checked(result, hook)
            response = result
        return response

    async def _exception(self, request: Request, exc: Exception) -> Outcome:
        for hook, awaited in self._exceptions:
            result = hook(request, exc)
            if awaited:
                result = await result
            if result is not None:
                return _checked(result, hook)
        raise exc


def _hooks(middlewares: Sequence[Any], name: str) -> list[tuple[Callable[..., Any], bool]]:
    return [(method, is_async(method)) for method in
            (getattr(m, name, None) for m in middlewares) if method is not None]


def _checked(result: Any, hook: Callable[..., Any]) -> Outcome:
    if isinstance(result, Response | Request | Retry):
        return result
    raise TypeError(f"{getattr(hook, '__qualname__', hook)} returned a "
                    f"{type(result).__name__}; expected a Response, a Request, a Retry or None")

