"""Output routing: runs callbacks and sends what they yield on (Scrapy's Scraper).

Requests go back to the scheduler (a page's links a slice at a time); items pass the
pipelines (sync ones in the plugin thread), are serialised once, and are written to every
output. A callback that holds the event loop is named; one that yields a hundred thousand
links yields the loop between slices, paced by the loop watch's probe.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from crawler.core.plugins import PluginThread
from crawler.core.state import CrawlContext
from crawler.exceptions import CloseSpider, DropItem, FrontierUnavailable, IgnoreRequest
from crawler.extensions.monitor import LoopWatch
from crawler.http import Failure, Request, Response
from crawler.http.referer import page_referer
from crawler.middlewares.spider import SpiderMiddlewareChain
from crawler.outputs.items import ItemError, is_item, to_record
from crawler.outputs.pipelines import process
from crawler.signals import Signal
from crawler.storage.base import PageItems

__all__ = ["Scraper", "iterate"]

logger = logging.getLogger(__name__)

_YIELD_EVERY = 256  # callback outputs handled before letting other tasks run
_CHECK_EVERY = 15  # (a mask) the clock is read every 16 callback outputs
_SLOW_CALLBACK = 0.25  # seconds a callback may hold the event loop before a warning
_SLOW_WARNINGS = 10  # slow callbacks named in a warning; the rest are only counted


class Scraper:
    """Usage: `await scraper.run_callback(spider.parse, response, {}, request, page)`, where
    `page` (from the storage) takes the items."""

    def __init__(self, context: CrawlContext, *, pipelines: list[Any],
                 watch: LoopWatch, thread: PluginThread,
                 middlewares: SpiderMiddlewareChain | None = None) -> None:
        self._context = context
        self._spider = context.spider
        self._stats = context.stats
        self._signals = context.signals
        self._scheduler = context.scheduler
        self._max_items = context.settings.max_items
        self._pipelines = pipelines
        self._watch = watch
        self._thread = thread
        self._middlewares = middlewares  # the spider middlewares, if any
        self._referer = context.settings.referer_enabled

    async def run_callback(self, callback: Callable[..., Any], arg: Response | Failure,
                           kwargs: dict[str, Any], request: Request, page: PageItems,
                           ) -> None:
        depth = request.depth + 1
        response = arg if isinstance(arg, Response) else None
        referer = page_referer(response.url) if response is not None and self._referer \
            else None  # what the page's links carry (the Referer policy applies when sent)
        now = time.monotonic  # the loop's clock (loop.time()), without the method call
        links: list[Request] = []  # the page's requests, queued a slice at a time
        count = 0
        watch = self._watch
        step = now()
        late = watch.late()  # past this time the stall probe is overdue; moves only when we await
        if step > late:  # a long loop round: start this in the next one
            await asyncio.sleep(0)
            step, late = now(), watch.late()
        try:
            chain = self._middlewares
            if chain is None or response is None:
                result = callback(arg, **kwargs)
                # an async generator (the usual callback) is read directly, without a wrapper
                outputs = result if inspect.isasyncgen(result) else iterate(result)
            else:
                through = await self._through(chain, callback, response, kwargs, request, page)
                if through is None:
                    return  # process_spider_input refused it: the errback ran
                outputs = through
            async for obj in outputs:
                if isinstance(obj, Request):
                    obj.depth = depth
                    if obj.referer is None:
                        obj.referer = referer
                    links.append(obj)
                else:
                    await self.handle_output(obj, depth, request, callback, page)
                count += 1
                if count & _CHECK_EVERY:  # the clock is read every few outputs, not each
                    continue
                t = now()
                if t - step > _SLOW_CALLBACK:
                    self._slow_step(callback, request, step)
                # a page with 100k links, or many pages ready at once, must not stall the loop
                if count % _YIELD_EVERY == 0 or t > late:
                    await self.queue_links(links)
                    links = []
                    await asyncio.sleep(0)
                    t, late = now(), watch.late()
                step = t
            if now() - step > _SLOW_CALLBACK:
                self._slow_step(callback, request, step)
        except asyncio.CancelledError:
            raise
        except CloseSpider as exc:
            self._context.stop(exc.reason)
        except IgnoreRequest:
            pass
        except FrontierUnavailable:  # the crawl is stopping: the page, unacknowledged, is
            self._unqueued(request)  # redone when the crawl resumes
            return
        except Exception as exc:
            if _is_validation_error(exc):
                self._invalid_item(exc, callback, request)
            else:
                self._callback_failed(callback, request)
        try:
            await self.queue_links(links)  # what came before an error is kept
        except FrontierUnavailable:
            self._unqueued(request)
        except Exception:  # a request that cannot be queued (a job's unstorable one)
            self._callback_failed(callback, request)

    async def _through(self, chain: SpiderMiddlewareChain, callback: Callable[..., Any],
                       response: Response, kwargs: dict[str, Any], request: Request,
                       page: PageItems) -> AsyncIterator[Any] | None:
        """The callback's outputs through the spider middlewares; None when one's
        process_spider_input raised and the request's errback took it."""
        if chain.checks_input:
            try:
                await chain.input(response)
            except Exception as exc:
                if request.errback is not None:
                    await self.run_callback(request.errback, Failure(
                        request, exc, "spider_input", response), {}, request, page)
                    return None
                recovered = await chain.recover(response, exc)
                if recovered is None:
                    raise
                return recovered
        result = callback(response, **kwargs)
        return chain.output(response, result if inspect.isasyncgen(result) else iterate(result))

    def _unqueued(self, request: Request) -> None:
        self._stats.counters["frontier/links_not_queued"] += 1
        logger.debug("links of %s not queued: the shared frontier is unreachable (the page "
                     "is fetched again on resume)", request.url)

    def _callback_failed(self, callback: Callable[..., Any], request: Request) -> None:
        self._stats.errors["callback"] += 1
        exc = sys.exc_info()[1]
        hint = _SCRAPY_HINT if isinstance(exc, AttributeError) and \
            _SCRAPY_ON_NODES.search(str(exc)) else ""
        logger.exception("spider error in %s for %s%s", _name(callback), request.url, hint)

    def _invalid_item(self, exc: Any, callback: Callable[..., Any], request: Request) -> None:
        """A model (pydantic) refused the values the callback built it from: the item is
        dropped with one line naming the fields, not a traceback."""
        self._stats.errors["invalid_item"] += 1
        self._stats.items_dropped += 1
        logger.warning("item dropped in %s for %s: %s", _name(callback), request.url,
                       _validation_summary(exc))

    async def queue_links(self, links: list[Request]) -> None:
        if links and self._context.running():
            if self._signals.wants(Signal.REQUEST_SCHEDULED):
                for link in links:
                    await self._signals.send(Signal.REQUEST_SCHEDULED, request=link,
                                             spider=self._spider)
            await self._scheduler.enqueue_many(links)

    def _slow_step(self, callback: Callable[..., Any], request: Request, step: float) -> None:
        """A callback step took long: name it if it held the event loop, since meanwhile every
        other request waited and timeouts fired that no server caused."""
        blocked = self._watch.blocked_since(step, time.monotonic())
        if blocked <= _SLOW_CALLBACK:
            return  # it awaited: other tasks ran meanwhile
        stats = self._stats
        stats.slow_callbacks += 1
        log = logger.warning if stats.slow_callbacks <= _SLOW_WARNINGS else logger.debug
        log("%s blocked the event loop for %.2fs on %s: run blocking work in a thread "
            "(await asyncio.to_thread(...)); other requests may time out meanwhile%s",
            _name(callback), blocked, request.url,
            "; further ones are only counted (slow_callbacks)"
            if stats.slow_callbacks == _SLOW_WARNINGS else "")

    async def handle_output(self, obj: Any, depth: int, request: Request | None,
                            source: Callable[..., Any] | str, page: PageItems) -> None:
        """One object a callback or start() yielded: a Request, an item, or a mistake."""
        if obj is None:
            return
        if isinstance(obj, Request):
            obj.depth = depth
            await self.queue_links([obj])
            return
        if not is_item(obj):
            self._stats.errors["invalid_item"] += 1
            logger.warning("%s yielded a %s, which is neither an item nor a Request%s",
                           _name(source), type(obj).__name__,
                           f" (on {request.url})" if request is not None else "")
            return
        await self._export(obj, request, page)

    async def _export(self, item: Any, request: Request | None, page: PageItems) -> None:
        stats, limit = self._stats, self._max_items
        if limit is not None and stats.items + len(page) >= limit:
            return
        try:
            item = await process(self._pipelines, item, self._spider, self._thread)
        except DropItem as exc:
            stats.items_dropped += 1
            logger.warning("dropped item%s: %s", f" from {request.url}" if request is not None
                           else "", exc)
            if self._signals.wants(Signal.ITEM_DROPPED):
                await self._signals.send(Signal.ITEM_DROPPED, item=item, request=request,
                                         exception=exc, spider=self._spider)
            return
        except Exception:
            stats.errors["pipeline"] += 1
            stats.items_dropped += 1
            logger.exception("item pipeline failed")
            return
        try:
            record = to_record(item)
        except ItemError as exc:
            stats.errors["item_serialization"] += 1
            logger.error("cannot write an item%s: %s",
                         f" from {request.url}" if request is not None else "", exc)
            return
        await page.add(record, item)  # written now, or held until the page is complete
        if limit is not None and stats.items + len(page) >= limit:
            self._context.stop("max_items")


# Scrapy's selector methods called on what response.css() gives by default
_SCRAPY_ON_NODES = re.compile(r"'(LexborNode|list|NoneType)' object has no attribute "
                              r"'(get|getall|extract|extract_first|attrib|re|re_first|xpath|"
                              r"jmespath)'")
_SCRAPY_HINT = (": response.css() gives selectolax nodes (fast, CSS only; .text(), "
                ".attributes); for Scrapy's .get(), .getall(), .attrib and ::text use "
                "response.sel.css(...), or set selectors = \"parsel\" to make response.css() "
                "answer as Scrapy's does")


def _is_validation_error(exc: Exception) -> bool:
    """A pydantic ValidationError (checked by shape: pydantic is the user's import)."""
    return type(exc).__name__ == "ValidationError" and callable(getattr(exc, "errors", None)) \
        and type(exc).__module__.startswith("pydantic")


def _validation_summary(exc: Any) -> str:
    """'Product: price: Input should be a valid number (got 'abc')', one per bad field."""
    try:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())) or '(model)'}: {e.get('msg')}"
                    f" (got {e.get('input')!r:.60})" for e in exc.errors()]
    except Exception:  # an unexpected shape: its own message
        return str(exc).splitlines()[0]
    return f"{getattr(exc, 'title', 'model')}: " + "; ".join(problems)


def _name(callback: Callable[..., Any] | str) -> str:
    return callback if isinstance(callback, str) else getattr(
        callback, "__qualname__", repr(callback))


async def iterate(result: Any) -> AsyncIterator[Any]:
    """Yield what a callback produced, whatever kind of callable it was."""
    if inspect.isasyncgen(result):
        async for obj in result:
            yield obj
        return
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return
    if isinstance(result, list | set | frozenset | Iterator) or (
            isinstance(result, tuple) and not hasattr(result, "_asdict")):
        for obj in result:
            yield obj
    else:  # one object: an item (a mapping, a model, a namedtuple) or a Request
        yield result
