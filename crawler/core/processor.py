"""Response handling: one request through the downloader middlewares and the network, and
its outcome sent on: a response to its callback, a Request or a Retry back to the
scheduler, a failure to the errback.

The host's slot is released the moment the network part ends (or, for a response a
middleware supplied, such as a cache hit, when the chain ends, charging no delay), on every
path, whatever was raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from crawler.core.retry import RetryPolicy
from crawler.core.scraper import Scraper
from crawler.core.state import CrawlContext
from crawler.exceptions import (
    DownloadError,
    HttpError,
    IgnoreRequest,
    Kind,
    RequestFailed,
)
from crawler.frontier.codec import store_id
from crawler.handlers.http import SENT, Downloader
from crawler.http import Failure, Request, Response
from crawler.http.parsing import TooComplex
from crawler.middlewares import MiddlewareChain, Outcome, Retry
from crawler.recrawl.history import Change
from crawler.signals import Signal
from crawler.storage.base import PageItems, Storage

__all__ = ["Processor"]

logger = logging.getLogger(__name__)


class Processor:
    """Usage: `await processor.process(request)` in a worker, for each request it gets."""

    def __init__(self, context: CrawlContext, *, scraper: Scraper, storage: Storage,
                 downloader: Downloader, middlewares: Sequence[Any] = ()) -> None:
        self._context = context
        self._spider = context.spider
        self._stats = context.stats
        self._signals = context.signals
        self._scheduler = context.scheduler
        self._max_pages = context.settings.max_pages
        self._policy = RetryPolicy.from_settings(context.settings)
        self._parsel = context.settings.selectors == "parsel"  # what response.css() gives
        self._scraper = scraper
        self._storage = storage
        self._robots_at_fetch = storage.robots_at_fetch
        self._history = storage.keeps_history  # a job dir: each page judged (recrawl/)
        self._emit_unchanged = context.settings.emit_unchanged
        # the downloader middlewares around the fetch; again, unobserved, for robots.txt
        self.chain = MiddlewareChain(middlewares, self.received)
        self._robots_chain = MiddlewareChain(middlewares)
        self._downloader = downloader  # its handlers open at their first request

    async def process(self, request: Request) -> None:
        """Fetch `request` and hand its outcome on; its page's items go where the storage
        says (crawler/storage/) until the page is complete."""
        await self._handle(request, self._process)

    async def refused(self, request: Request, exc: Exception, kind: str) -> None:
        """robots.txt refused a queued request, or could not be read: its errback is
        called, and the request is complete."""
        async def refuse(request: Request, page: PageItems) -> bool:
            await self._refused(request, exc, kind, page)
            return False

        await self._handle(request, refuse)

    async def _handle(self, request: Request,
                      handling: Callable[[Request, PageItems], Awaitable[bool]]) -> None:
        storage = self._storage
        page = storage.page(request)
        try:
            keep = await handling(request, page)
        except asyncio.CancelledError:
            page.close()  # stopped at once: the entry (or the lease) stays for the next run
            raise
        except Exception:  # a bug of ours: the page ends as it would have
            await storage.complete(request, page, False)
            raise
        await storage.complete(request, page, keep)

    async def _process(self, request: Request, page: PageItems) -> bool:
        """True when the request goes on (a retry, a redirect) or was not handled."""
        context, scheduler = self._context, self._scheduler
        if not context.running():
            await scheduler.done(request)
            return True
        if self._robots_at_fetch:
            refusal = await scheduler.admission.robots_refusal(request)
            if refusal is not None:
                await scheduler.done(request, cached=True)  # refused: the host was not used
                await self._refused(request, *refusal, page)
                return False
        if self._history:
            await self._storage.revisit(request)  # conditional headers, from its history
        loop = asyncio.get_running_loop()
        fetched = False

        async def fetch(sent: Request) -> Response:
            """The network, for `request` as the middlewares changed it."""
            nonlocal fetched
            fetched = True
            sent_at = [loop.time()]  # moved to when its headers went out, by the handler
            token = SENT.set(sent_at)
            status: int | None = None
            try:
                response = await self._downloader.fetch(sent)
                status = response.status
                self._stats.pages += 1  # before done(): max_pages counts pages + in flight
                self._storage.fetched(request)
            except RequestFailed:
                raise
            except Exception as exc:
                logger.exception("internal error fetching %s", sent.url)
                raise DownloadError(Kind.INTERNAL, f"{type(exc).__name__}: {exc}", sent) \
                    from None
            finally:
                SENT.reset(token)
                latency = loop.time() - sent_at[0]
                self._stats.record_host(request.host, latency)
                await scheduler.done(request, latency=latency, status=status)
            await self._fetched(request, response)
            return response

        outcome: Outcome | RequestFailed
        try:
            outcome = await self.chain.download(request, fetch)
        except RequestFailed as exc:
            outcome = exc
        except IgnoreRequest as exc:
            logger.debug("ignored %s: %s", request.url, exc)
            await self._errback(request, Failure(request, exc, "ignored"), page)
            return False
        except Exception as exc:  # a middleware's bug fails the request, not the worker
            logger.exception("error in a downloader middleware for %s", request.url)
            outcome = DownloadError(Kind.INTERNAL, f"{type(exc).__name__}: {exc}", request)
        finally:
            if not fetched:  # a middleware answered (a cache hit) or failed: free the slot
                await scheduler.done(request, cached=True)
        if self._history and self._unchanged(request, outcome):
            return False  # counted; its callback is not called again
        if type(outcome) is Response:  # the usual outcome, without another coroutine
            await self._respond(outcome.request, outcome, page)
            return False
        return await self._route(request, outcome, page)

    def _unchanged(self, request: Request, outcome: Outcome | RequestFailed) -> bool:
        """Judge the page against its history; True when it is unchanged and its callback
        is not to be called (`emit_unchanged` calls it)."""
        response = outcome if isinstance(outcome, Response) else \
            getattr(outcome, "response", None) if isinstance(outcome, RequestFailed) else None
        if response is None:
            return False
        change = self._storage.judge(request, response)
        return change is Change.UNCHANGED and not self._emit_unchanged

    async def fetch_robots(self, request: Request) -> Response:
        """robots.txt through the middlewares (a cache, a proxy) but outside politeness
        and the page counts; its own loader follows redirects and retries."""
        outcome = await self._robots_chain.download(request, self._downloader.fetch)
        if not isinstance(outcome, Response):
            raise DownloadError(Kind.INTERNAL, f"a downloader middleware answered the "
                                f"robots.txt request with a {type(outcome).__name__}", request)
        return outcome

    async def _fetched(self, request: Request, response: Response) -> None:
        """Politeness and limits that follow every response from the network."""
        pause = self._policy.host_pause(response)
        if pause:
            await self._scheduler.pause_host(request, pause)
        self._check_max_pages()

    def _check_max_pages(self) -> None:
        if self._max_pages is not None and self._stats.pages >= self._max_pages:
            self._context.stop("max_pages")

    def received(self, request: Request, response: Response) -> Awaitable[None] | None:
        """Every response, from the network or a middleware, before process_response; the
        response_received signal when someone listens."""
        stats = self._stats
        if response.flags and "cached" in response.flags:  # a page the network did not count
            stats.pages += 1
            self._storage.fetched(request)
            self._check_max_pages()
        stats.status_counts[response.status] += 1
        if self._signals.wants(Signal.RESPONSE_RECEIVED):
            return self._signals.send(Signal.RESPONSE_RECEIVED, response=response,
                                      request=request, spider=self._spider)
        return None

    async def _route(self, request: Request, outcome: Outcome | RequestFailed,
                     page: PageItems) -> bool:
        """Hand a non-Response outcome on; True when the request goes on under its row."""
        if isinstance(outcome, Response):
            await self._respond(outcome.request, outcome, page)
        elif isinstance(outcome, RequestFailed):
            await self._fail(request, outcome, page, getattr(outcome, "response", None))
        elif not self._context.running():
            return True  # a retry or a redirect left for the next run
        elif isinstance(outcome, Retry):
            again = self._counted_retry(request, outcome)
            if isinstance(again, RequestFailed):
                await self._fail(request, again, page)
                return False
            await self._scheduler.retry(again, outcome.delay)
            return True
        else:  # a Request: a redirect, or a middleware's own
            queued = await self._scheduler.enqueue(outcome)
            sid = store_id(outcome)  # the redirect carries its store row on
            return queued and sid is not None and sid == store_id(request)
        return False

    def _counted_retry(self, request: Request, outcome: Retry) -> Request | RequestFailed:
        """Every Retry, whichever middleware returned it, is counted and bounded by the
        `retries` setting (a middleware that retries a captcha page forever is not): its
        request carries one more `retry_times` than the request it retries. When the
        tries are used up the request fails instead (`too_many_retries`)."""
        again = outcome.request
        tries = int(request.meta.get("retry_times", 0)) + 1
        if int(again.meta.get("retry_times", 0)) < tries:
            again.meta["retry_times"] = tries
        if again.meta["retry_times"] > self._policy.retries:
            return DownloadError(Kind.TOO_MANY_RETRIES, f"gave up retrying {request.url} "
                                 f"after {self._policy.retries} retries (the retries "
                                 "setting)", request)
        self._stats.retries += 1
        return again

    async def _respond(self, request: Request, response: Response, page: PageItems) -> None:
        if response.is_html and response.heavy():
            try:
                await response.check_complexity()
                # in a thread: Lexbor parses without the GIL, and the loop runs on
                await asyncio.to_thread(response.parse, checked=True)
            except TooComplex as exc:
                await self._fail(request, DownloadError(Kind.TOO_COMPLEX, str(exc), request),
                                 page, response)
                return
        if self._parsel:
            response.use_parsel()
        callback = request.callback or self._spider.parse
        await self._scraper.run_callback(callback, response, request.cb_kwargs, request, page)

    async def _refused(self, request: Request, exc: Exception, kind: str,
                       page: PageItems) -> None:
        if kind == Kind.ROBOTS_DISALLOWED:
            await self._errback(request, Failure(request, exc, kind), page)
        else:
            assert isinstance(exc, RequestFailed)
            await self._fail(request, exc, page)

    async def _fail(self, request: Request, exc: RequestFailed, page: PageItems,
                    response: Response | None = None) -> None:
        stats = self._stats
        stats.requests_failed += 1
        stats.errors[exc.kind] += 1
        if isinstance(exc, HttpError):  # as Scrapy says it, for every request
            logger.info("%s", exc)
        elif request.depth == 0 and not request.meta.get("redirect_urls"):
            logger.warning("start request %s failed: %s", request.url, exc)
        else:
            logger.debug("failed %s: %s", request.url, exc)
        failure = Failure(request, exc, exc.kind, response)
        if self._signals.wants(Signal.REQUEST_FAILED):
            await self._signals.send(Signal.REQUEST_FAILED, request=request, failure=failure,
                                     spider=self._spider)
        await self._errback(request, failure, page)

    async def _errback(self, request: Request, failure: Failure, page: PageItems) -> None:
        if request.errback is not None:
            await self._scraper.run_callback(request.errback, failure, {}, request, page)

