"""Spider middlewares: an ordered chain around the callbacks (Scrapy's spider middlewares).

A middleware is any object with one or more of these methods (Scrapy's names; each may
also take Scrapy's trailing `spider` argument):

    process_spider_input(response)              -> None, or raise
    process_spider_output(response, result)     -> what the callback yields, filtered or
                                                   rewritten (an async generator; a plain
                                                   generator gets the outputs as a list)
    process_spider_exception(response, exception) -> None, or outputs in the callback's place
    process_start(start)                        -> start()'s output, filtered or rewritten
                                                   (an async generator)

`process_spider_input` runs in order before the callback; an exception there goes to the
request's errback if it has one, else to the `process_spider_exception` chain.
`process_spider_output` runs in reverse order (the middleware nearest the spider first),
as `process_start` does around start(). An exception from the callback goes to each
`process_spider_exception` in reverse order until one returns outputs, which then pass
every `process_spider_output`. An errback's outputs are not passed through the chain.

The `spider_middlewares` setting lists them as `downloader_middlewares` does ({path:
order}, or a list taken as orders 500, 501, ...); there are no built-in ones (depth,
off-site and URL-length checks are admission's, the Referer is set by the scraper).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from crawler.core.plugins import build
from crawler.http import Response

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["SpiderMiddlewareChain"]


class SpiderMiddlewareChain:
    """Usage: `chain = SpiderMiddlewareChain.from_crawler(crawler)`, then
    `await chain.input(response)`, `chain.output(response, outputs)`."""

    def __init__(self, middlewares: Sequence[Any], spider: Any = None) -> None:
        self.middlewares = list(middlewares)
        self._inputs = _hooks(self.middlewares, "process_spider_input", spider)
        self._outputs = [_output(m, spider) for m in reversed(self.middlewares)
                         if _method(m, "process_spider_output") is not None]
        self._exceptions = _hooks(self.middlewares[::-1], "process_spider_exception", spider)
        self._starts = _hooks(self.middlewares[::-1], "process_start", spider)

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> SpiderMiddlewareChain | None:
        """The crawl's chain; None when it has no middleware (callbacks run bare)."""
        from crawler.middlewares import ordered_specs

        specs = ordered_specs({}, crawler.settings.spider_middlewares)
        built = [m for m in (build(spec, crawler, "spider middleware") for spec in specs)
                 if m is not None]
        return cls(built, crawler.spider) if built else None

    @property
    def checks_input(self) -> bool:
        return bool(self._inputs)

    async def input(self, response: Response) -> None:
        """Every process_spider_input, in order; what one raises is raised."""
        for hook in self._inputs:
            result = hook(response)
            if inspect.isawaitable(result):
                await result

    def output(self, response: Response, outputs: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The callback's outputs as the chain passes them on."""
        stream: AsyncIterator[Any] = self._recovering(response, outputs) \
            if self._exceptions else outputs
        for hook in self._outputs:
            stream = hook(response, stream)
        return stream

    async def recover(self, response: Response,
                      exc: Exception) -> AsyncIterator[Any] | None:
        """The outputs a process_spider_exception gives in place of the callback's (passed
        through every process_spider_output), or None when none handles `exc`."""
        stream = await self._recovered(response, exc)
        if stream is not None:
            for output in self._outputs:
                stream = output(response, stream)
        return stream

    async def _recovering(self, response: Response,
                          outputs: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for obj in outputs:
                yield obj
        except Exception as exc:
            recovered = await self._recovered(response, exc)
            if recovered is None:
                raise
            async for obj in recovered:
                yield obj

    async def _recovered(self, response: Response,
                             exc: Exception) -> AsyncIterator[Any] | None:
        for hook in self._exceptions:
            result = hook(response, exc)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return _aiter(result)
        return None

    def start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """start()'s outputs through every process_start."""
        for hook in self._starts:
            start = _aiter(hook(start))
        return start


def _method(middleware: Any, name: str) -> Callable[..., Any] | None:
    method = getattr(middleware, name, None)
    return method if callable(method) else None


def _bind(method: Callable[..., Any], spider: Any) -> Callable[..., Any]:
    """Scrapy's signatures end with `spider`: give it, when the method takes it."""
    try:
        takes = "spider" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes = False
    return functools.partial(method, spider=spider) if takes else method


def _hooks(middlewares: Sequence[Any], name: str, spider: Any) -> list[Callable[..., Any]]:
    return [_bind(method, spider) for method in
            (_method(m, name) for m in middlewares) if method is not None]


def _output(middleware: Any, spider: Any,
            ) -> Callable[[Response, AsyncIterator[Any]], AsyncIterator[Any]]:
    """A process_spider_output as a function of an async stream, whichever kind it is
    (Scrapy's `process_spider_output_async` first, when a middleware has both)."""
    method = _method(middleware, "process_spider_output_async") or \
        _method(middleware, "process_spider_output")
    assert method is not None
    hook = _bind(method, spider)
    if inspect.isasyncgenfunction(method):
        return hook

    async def over_list(response: Response, outputs: AsyncIterator[Any]) -> AsyncIterator[Any]:
        # a plain generator takes a plain iterable: the outputs so far, as a list
        listed = [obj async for obj in outputs]
        async for obj in _aiter(hook(response, listed)):
            yield obj

    return over_list


async def _aiter(result: Any) -> AsyncIterator[Any]:
    if isinstance(result, AsyncIterable):
        async for obj in result:
            yield obj
    elif inspect.isawaitable(result):
        async for obj in _aiter(await result):
            yield obj
    elif result is not None:
        for obj in result:
            yield obj
