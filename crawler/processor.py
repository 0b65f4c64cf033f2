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
from collections.abc import Awaitable
from typing import Any

from crawler.codec import store_id
from crawler.downloader import Downloader
from crawler.exceptions import (
    DownloadError,
    FrontierUnavailable,
    HttpError,
    IgnoreRequest,
    Kind,
    RequestFailed,
)
from crawler.http import Failure, Request, Response
from crawler.jobs import PAGE_RECORDS, Job
from crawler.middlewares import MiddlewareChain, Outcome, Retry
from crawler.outputs import Outputs
from crawler.pagerecords import PageRecords
from crawler.parsing import TooComplex
from crawler.redact import redact
from crawler.retry import RetryPolicy
from crawler.scraper import Scraper
from crawler.signals import Signal
from crawler.state import CrawlContext

__all__ = ["Processor"]

logger = logging.getLogger("crawler.engine")


class Processor:
    """Usage: `await processor.process(request)` in a worker, for each request it gets."""

    def __init__(self, context: CrawlContext, *, scraper: Scraper, outputs: Outputs,
                 job: Job | None = None) -> None:
        self._context = context
        self._spider = context.spider
        self._stats = context.stats
        self._signals = context.signals
        self._scheduler = context.scheduler
        self._max_pages = context.settings.max_pages
        self._policy = RetryPolicy.from_settings(context.settings)
        self._parsel = context.settings.selectors == "parsel"  # what response.css() gives
        self._scraper = scraper
        self._outputs = outputs
        self._job = job
        self.chain = MiddlewareChain([])  # the crawl's, once its middlewares are built
        self._robots_chain = self.chain
        self.downloader: Downloader | None = None  # set when the crawl opens it
        # shared frontier: pages complete, their items not yet written (ack_written())
        self._acks: list[tuple[Request, PageRecords]] = []

    def use(self, chain: MiddlewareChain) -> None:
        """Send requests through `chain` (its middlewares again, unobserved, for robots)."""
        self.chain = chain
        self._robots_chain = MiddlewareChain(chain.middlewares)

    async def process(self, request: Request) -> None:
        """Fetch `request` and hand its outcome on. With a job, the page's items reach the
        outputs when it is complete, together with its completion (crawler/jobs.py); with
        a shared frontier, when it is complete and this worker still holds its lease."""
        if self._job is None and not self._scheduler.frontier.shared:
            if not await self._process(request):
                await self._scheduler.frontier.ack(request)
        else:
            await self._completing(request, self._process(request))

    def acks_pending(self) -> bool:
        return bool(self._acks)

    async def ack_written(self) -> bool:
        """Shared frontier: write the pages completed since the last call whose leases this
        worker still holds (the others are dropped: another worker redoes them), flush the
        outputs, then acknowledge them, so that a page is acknowledged only once its items
        are in the files (a worker killed before that leaves them leased: another worker
        redoes them) and written only while its lease is this worker's. Nothing is
        acknowledged when an output failed. True when some were."""
        if not self._acks:
            return False
        pending, self._acks = self._acks, []
        try:
            held = await self._held(pending)
            for _, records in held:
                await self._write(records)
            await self._outputs.flush()
            if self._outputs.failed:
                return False
            for request, records in held:
                await self._scraped(request, records)
        finally:
            for _, records in pending:
                records.close()
        try:
            await self._scheduler.frontier.ack_many([request for request, _ in held])
        except Exception as exc:  # the frontier is gone: their leases expire, others redo them
            logger.warning("%d page(s) could not be acknowledged (%s): another worker will "
                           "fetch them again", len(held), redact(str(exc)))
            self._stats.errors["unacknowledged"] += len(held)
            return False
        return True

    async def _held(self, pending: list[tuple[Request, PageRecords]],
                    ) -> list[tuple[Request, PageRecords]]:
        """The pages whose leases this worker still holds: known without asking while its
        heartbeat is fresh, else asked (one script); a lost one's items are dropped."""
        frontier: Any = self._scheduler.frontier
        unsure = [(r, p) for r, p in pending
                  if store_id(r) is not None and not frontier.lease_fresh(r)]
        if not unsure:
            return pending
        try:
            answers = await frontier.owns([r for r, _ in unsure])
        except FrontierUnavailable:
            answers = [False] * len(unsure)  # stopping: they stay leased, and are redone
        lost = {id(r) for (r, p), held in zip(unsure, answers, strict=True) if not held}
        for request, records in unsure:
            if id(request) in lost and not self._outputs.failed:
                frontier.lease_lost(request, len(records))
        return [(r, p) for r, p in pending if id(r) not in lost]

    async def _completing(self, request: Request, handling: Awaitable[bool]) -> None:
        job = self._job
        records = job.page_records() if job is not None else PageRecords(None)
        token = PAGE_RECORDS.set(records)
        kept = False
        try:
            keep = await handling
        except asyncio.CancelledError:
            raise  # stopped at once: the row (or the lease) stays for the next run
        except Exception:  # a bug of ours: the page ends as it would without a job
            kept = await self._complete(request, records, False)
            raise
        else:
            kept = await self._complete(request, records, keep)
        finally:
            PAGE_RECORDS.reset(token)
            if not kept:
                records.close()

    async def _complete(self, request: Request, records: PageRecords, keep: bool) -> bool:
        """The page is complete: its items go to the outputs (a job: now, with its
        completion; a shared frontier: with the next acknowledgements). True when the
        records were kept for later."""
        job = self._job
        if job is None:
            if keep:
                return False  # a retry or a redirect goes on under the same lease
            self._acks.append((request, records))  # written and acknowledged together
            return True
        async with job.lock:
            await self._write(records)
            if not keep:
                await self._scheduler.frontier.ack(request)
        await self._scraped(request, records)
        return False

    async def _scraped(self, request: Request, records: PageRecords) -> None:
        if len(records) and self._signals.wants(Signal.ITEM_SCRAPED):  # now they are written
            async for _, item in records.replay():
                await self._signals.send(Signal.ITEM_SCRAPED, item=item, request=request,
                                         spider=self._spider)

    async def _write(self, records: PageRecords) -> None:
        held, write = records.in_memory(), self._outputs.write
        if held is not None:  # the common case: a few items, in memory
            for record, _ in held:
                await write(record)
        else:
            async for record, _ in records.replay():
                await write(record)
        self._stats.items += len(records)

    async def _process(self, request: Request) -> bool:
        """True when the request goes on (a retry, a redirect) or was not handled."""
        context, scheduler = self._context, self._scheduler
        if not context.running():
            await scheduler.done(request)
            return True
        if scheduler.frontier.shared and not await scheduler.admission.robots_allows(request):
            await scheduler.done(request, cached=True)  # refused: the host was not used
            return False
        loop = asyncio.get_running_loop()
        fetched = False

        async def fetch(sent: Request) -> Response:
            """The network, for `request` as the middlewares changed it."""
            nonlocal fetched
            fetched = True
            started = loop.time()
            status: int | None = None
            try:
                assert self.downloader is not None
                response = await self.downloader.fetch(sent)
                status = response.status
                self._stats.pages += 1  # before done(): max_pages counts pages + in flight
                if self._job is not None:
                    self._job.fetched(request)
            except RequestFailed:
                raise
            except Exception as exc:
                logger.exception("internal error fetching %s", sent.url)
                raise DownloadError(Kind.INTERNAL, f"{type(exc).__name__}: {exc}", sent) \
                    from None
            finally:
                latency = loop.time() - started
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
            await self._errback(request, Failure(request, exc, "ignored"))
            return False
        except Exception as exc:  # a middleware's bug fails the request, not the worker
            logger.exception("error in a downloader middleware for %s", request.url)
            outcome = DownloadError(Kind.INTERNAL, f"{type(exc).__name__}: {exc}", request)
        finally:
            if not fetched:  # a middleware answered (a cache hit) or failed: free the slot
                await scheduler.done(request, cached=True)
        if type(outcome) is Response:  # the usual outcome, without another coroutine
            await self._respond(outcome.request, outcome)
            return False
        return await self._route(request, outcome)

    async def fetch_robots(self, request: Request) -> Response:
        """robots.txt through the middlewares (a cache, a proxy) but outside politeness
        and the page counts; its own loader follows redirects and retries."""
        assert self.downloader is not None
        outcome = await self._robots_chain.download(request, self.downloader.fetch)
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
            if self._job is not None:
                self._job.fetched(request)
            self._check_max_pages()
        stats.status_counts[response.status] += 1
        if self._signals.wants(Signal.RESPONSE_RECEIVED):
            return self._signals.send(Signal.RESPONSE_RECEIVED, response=response,
                                      request=request, spider=self._spider)
        return None

    async def _route(self, request: Request, outcome: Outcome | RequestFailed) -> bool:
        """Hand a non-Response outcome on; True when the request goes on under its row."""
        if isinstance(outcome, Response):
            await self._respond(outcome.request, outcome)
        elif isinstance(outcome, RequestFailed):
            await self.fail(request, outcome, getattr(outcome, "response", None))
        elif not self._context.running():
            return True  # a retry or a redirect left for the next run
        elif isinstance(outcome, Retry):
            again = self._counted_retry(request, outcome)
            if isinstance(again, RequestFailed):
                await self.fail(request, again)
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

    async def _respond(self, request: Request, response: Response) -> None:
        if response.is_html and response.heavy():
            try:
                await response.check_complexity()
                # in a thread: Lexbor parses without the GIL, and the loop runs on
                await asyncio.to_thread(response.parse, checked=True)
            except TooComplex as exc:
                await self.fail(request, DownloadError(Kind.TOO_COMPLEX, str(exc), request),
                                response)
                return
        if self._parsel:
            response.use_parsel()
        callback = request.callback or self._spider.parse
        await self._scraper.run_callback(callback, response, request.cb_kwargs, request)

    async def refused(self, request: Request, exc: Exception, kind: str) -> None:
        """robots.txt refused the request, or could not be read: its errback is called."""
        if self._job is None and (not self._scheduler.frontier.shared
                                  or store_id(request) is not None):
            # (a shared frontier's request refused as it is processed: process() completes)
            await self._refused(request, exc, kind)
        else:
            await self._completing(request, self._refused(request, exc, kind))

    async def _refused(self, request: Request, exc: Exception, kind: str) -> bool:
        if kind == Kind.ROBOTS_DISALLOWED:
            await self._errback(request, Failure(request, exc, kind))
        else:
            assert isinstance(exc, RequestFailed)
            await self.fail(request, exc)
        return False  # done for good

    async def fail(self, request: Request, exc: RequestFailed,
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
        await self._errback(request, failure)

    async def _errback(self, request: Request, failure: Failure) -> None:
        if request.errback is not None:
            await self._scraper.run_callback(request.errback, failure, {}, request)

