"""The Crawler: seeds the frontier, runs the workers, and ends the crawl cleanly.

Flow: spider.start() -> Scheduler.enqueue -> frontier -> dispatcher -> asyncio.Queue ->
worker -> Downloader.fetch -> callback -> (requests back to enqueue, items to pipelines
and exporters).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from yarl import URL

from crawler.downloader import Downloader, HttpDownloader
from crawler.exceptions import (
    CloseSpider,
    DownloadError,
    DropItem,
    HttpError,
    IgnoreRequest,
    RequestFailed,
)
from crawler.exporters import Exporter
from crawler.frontier import Frontier, MemoryFrontier
from crawler.http import Failure, Request, Response
from crawler.pipelines import call_hook, load_pipelines, process
from crawler.ratelimit import HostPolicy
from crawler.retry import RetryPolicy
from crawler.robots import RobotsCache
from crawler.scheduler import Scheduler
from crawler.settings import Settings
from crawler.spider import Spider
from crawler.stats import Stats
from crawler.urls import fingerprint as default_fingerprint

logger = logging.getLogger(__name__)

_FLUSH_INTERVAL = 1.0  # seconds between forced output flushes
_LARGE_BODY = 1 << 20  # HTML bodies above this are parsed in a thread
_TICK = 0.05  # seconds between event-loop stall probes
_YIELD_EVERY = 256  # callback outputs handled before letting other tasks run
_SEED_BATCH = 256  # start requests queued before yielding to the workers


class CrawlState(enum.Enum):
    NEW = "new"  # constructed; run() not called yet
    RUNNING = "running"  # workers are fetching
    STOPPING = "stopping"  # no new fetches; requests being processed may finish
    CLOSED = "closed"  # every output flushed and closed; stats final


@dataclass(frozen=True, slots=True)
class CrawlResult:
    """What `Crawler.run()` returns."""

    stats: Stats

    @property
    def finish_reason(self) -> str:
        return self.stats.finish_reason


class Crawler:
    """Runs one spider to completion.

    Usage:
        crawler = Crawler(MySpider(), settings=Settings(concurrency=32),
                          outputs=[make_exporter("output/my.jsonl")])
        result = await crawler.run()
    """

    def __init__(
        self,
        spider: Spider,
        *,
        settings: Settings | None = None,
        outputs: Sequence[Exporter] = (),
        frontier: Frontier | None = None,
        downloader: Downloader | None = None,
        fingerprint: Callable[[Request], bytes] = default_fingerprint,
    ) -> None:
        self.spider = spider
        self.settings = settings if settings is not None \
            else Settings().merge(type(spider).custom_settings)
        spider.settings = self.settings
        self.stats = Stats()
        self.state = CrawlState.NEW
        self._outputs = list(outputs)
        s = self.settings
        self._frontier = frontier or MemoryFrontier(HostPolicy.from_settings(s))
        self._retry = RetryPolicy.from_settings(s)
        self._downloader = downloader
        self.scheduler = Scheduler(
            self._frontier,
            stats=self.stats,
            fingerprint=fingerprint,
            allowed_domains=frozenset(d.lower().strip(".") for d in spider.allowed_domains),
            max_depth=s.max_depth,
        )
        if s.max_pages is not None:
            max_pages = s.max_pages
            frontier_ = self._frontier
            self.scheduler.can_dispatch = (
                lambda: self.stats.pages + frontier_.in_flight() < max_pages
            )
        self.scheduler.on_settled = self._check_done
        self.scheduler.on_unreachable = self._robots_unreachable
        self._pipelines: list[Any] = []
        self._handled = frozenset(spider.handle_httpstatus_list)
        self._busy = 0
        self._seeding = True
        self._done = asyncio.Event()
        self._kill_timer: asyncio.TimerHandle | None = None

    # lifecycle ------------------------------------------------------------------------------

    async def run(self) -> CrawlResult:
        """Crawl until the frontier is empty, a limit is hit, or stop() is called."""
        if self.state is not CrawlState.NEW:
            raise RuntimeError("a Crawler runs once")
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.state = CrawlState.RUNNING
        try:
            async with AsyncExitStack() as stack:
                for output in self._outputs:
                    await output.open()
                    stack.push_async_callback(output.close)
                if self._downloader is None:
                    self._downloader = await stack.enter_async_context(
                        HttpDownloader(self.settings))
                if self.settings.obey_robots:
                    self.scheduler.robots = RobotsCache(
                        self._downloader.fetch, user_agent=self.settings.user_agent,
                        retry=self._retry)
                await self._frontier.open()
                stack.push_async_callback(self._frontier.close)
                self._pipelines = load_pipelines(self.settings.item_pipelines)
                for pipeline in self._pipelines:
                    await call_hook(pipeline, "open_spider", self.spider)
                    stack.push_async_callback(call_hook, pipeline, "close_spider", self.spider)
                await self._crawl(loop)
        finally:
            self.stats.elapsed_seconds = loop.time() - started
            self.stats.finish_reason = self.stats.finish_reason or "finished"
            self.state = CrawlState.CLOSED
        try:
            result = self.spider.closed(self.stats.finish_reason)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("error in %s.closed()", type(self.spider).__name__)
        return CrawlResult(self.stats)

    def stop(self, reason: str = "shutdown") -> None:
        """Stop taking new requests; let the ones being processed finish, then close."""
        if self.state is not CrawlState.RUNNING:
            return
        logger.info("stopping (%s): finishing %d request(s) in progress", reason, self._busy)
        self.state = CrawlState.STOPPING
        self.stats.finish_reason = reason
        self.scheduler.paused = True
        grace = self.settings.shutdown_timeout
        self._kill_timer = asyncio.get_running_loop().call_later(
            self.settings.timeout if grace is None else grace, self.kill)
        self._check_done()

    def kill(self) -> None:
        """Stop at once: abandon requests in progress; outputs are still flushed and closed."""
        if self.state is CrawlState.CLOSED or self._done.is_set():
            return
        logger.warning("stopping now: abandoning %d request(s) in progress", self._busy)
        self.stats.finish_reason = self.stats.finish_reason or "killed"
        self.state = CrawlState.STOPPING
        self._done.set()

    async def _crawl(self, loop: asyncio.AbstractEventLoop) -> None:
        s = self.settings
        tasks = [asyncio.create_task(self.scheduler.run(), name="dispatcher")]
        tasks += [asyncio.create_task(self._worker(), name=f"worker-{i}")
                  for i in range(s.concurrency)]
        tasks.append(asyncio.create_task(self._seed(), name="seeder"))
        tasks.append(asyncio.create_task(self._flush_periodically(), name="flusher"))
        tasks.append(asyncio.create_task(self._watch_loop(), name="loop-watch"))
        if s.log_interval:
            tasks.append(asyncio.create_task(self._log_progress(s.log_interval), name="progress"))
        timer = loop.call_later(s.max_duration, self.stop, "max_duration") \
            if s.max_duration is not None else None
        try:
            await self._done.wait()
        finally:
            for handle in (timer, self._kill_timer):
                if handle is not None:
                    handle.cancel()
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            self.scheduler.close()
            for result in results:
                if isinstance(result, Exception):
                    logger.error("internal task failed", exc_info=result)

    def _check_done(self) -> None:
        if self._done.is_set() or self._busy:
            return
        if self.state is CrawlState.STOPPING:
            self._done.set()
        elif not self._seeding and self.scheduler.pending() == 0:
            self._done.set()

    # work -----------------------------------------------------------------------------------

    async def _seed(self) -> None:
        try:
            count = 0
            async for obj in self.spider.start():
                if self.state is not CrawlState.RUNNING:
                    break
                await self._handle_output(obj, depth=0)
                count += 1
                if count % _SEED_BATCH == 0:
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except CloseSpider as exc:
            self.stop(exc.reason)
        except Exception:
            logger.exception("error in %s.start()", type(self.spider).__name__)
            self.stats.errors["start"] += 1
        finally:
            self._seeding = False
            self._check_done()

    async def _worker(self) -> None:
        scheduler = self.scheduler
        while True:
            request = await scheduler.get()
            self._busy += 1
            try:
                if self.state is CrawlState.RUNNING:
                    await self._process(request)
                else:
                    await scheduler.done(request)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours must not kill the worker
                logger.exception("internal error processing %s", request.url)
                self.stats.errors["internal"] += 1
            finally:
                self._busy -= 1
            self._check_done()

    async def _process(self, request: Request) -> None:
        assert self._downloader is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            response = await self._downloader.fetch(request)
        except RequestFailed as exc:
            latency = loop.time() - started
            self.stats.record_host(request.host, latency)
            await self.scheduler.done(request, latency=latency)
            await self._retry_or_fail(request, exc)
            return
        latency = loop.time() - started
        status = response.status
        self.stats.pages += 1  # before done(): max_pages counts pages + in flight
        self.stats.status_counts[status] += 1
        self.stats.record_host(request.host, latency)
        await self.scheduler.done(request, latency=latency, status=status)
        pause = self._retry.host_pause(response)
        if pause:
            await self.scheduler.pause_host(request, pause)
        if self.settings.max_pages is not None and self.stats.pages >= self.settings.max_pages:
            self.stop("max_pages")
        if self._retry.retryable("", status) and not request.meta.get("dont_retry") \
                and await self._retried(request, response):
            return
        if 200 <= status < 300 or self._handles(request, status):
            if len(response.body) > _LARGE_BODY and response.is_html:
                await asyncio.to_thread(response.parse)  # Lexbor parses without the GIL
            callback = request.callback or self.spider.parse
            await self._run_callback(callback, response, request.cb_kwargs, request)
        elif 300 <= status < 400 and "Location" in response.headers \
                and not request.meta.get("dont_redirect"):
            await self._redirect(request, response)
        else:
            await self._fail(request, HttpError(response), response)

    async def _robots_unreachable(self, request: Request, kind: str) -> None:
        await self._fail(request, DownloadError(
            kind, f"robots.txt of {request.yurl.origin()} unreachable ({kind})", request))

    async def _retry_or_fail(self, request: Request, exc: RequestFailed) -> None:
        if not (self._retry.retryable(exc.kind) and await self._retried(request, None)):
            await self._fail(request, exc)

    async def _retried(self, request: Request, response: Response | None) -> bool:
        """Queue another try of `request` after its backoff; False when tries are used up."""
        wait = self._retry.delay(request, response)
        if wait is None or self.state is not CrawlState.RUNNING:
            return False
        attempt = request.meta.get("retry_times", 0) + 1
        retry = request.replace(meta={**request.meta, "retry_times": attempt})
        self.stats.retries += 1
        logger.debug("retrying %s (try %d) in %.2fs", request.url, attempt + 1, wait)
        await self.scheduler.retry(retry, asyncio.get_running_loop().time() + wait)
        return True

    def _handles(self, request: Request, status: int) -> bool:
        meta = request.meta
        return (status in self._handled or bool(meta.get("handle_httpstatus_all"))
                or status in meta.get("handle_httpstatus_list", ()))

    async def _redirect(self, request: Request, response: Response) -> None:
        times = request.meta.get("redirect_times", 0) + 1
        chain: list[str] = [*request.meta.get("redirect_urls", ()), request.url]
        if times > self.settings.max_redirects:
            await self._fail(request, DownloadError(
                "too_many_redirects", f"more than {self.settings.max_redirects} redirects",
                request))
            return
        try:
            target = str(URL(response.url).join(URL(response.headers["Location"].strip()))
                         .with_fragment(None))
        except (ValueError, TypeError):
            await self._fail(request, DownloadError(
                "invalid_url", f"bad Location header {response.headers['Location']!r}",
                request))
            return
        if target in chain:
            await self._fail(request, DownloadError(
                "redirect_loop", f"redirect loop back to {target}", request))
            return
        keep_method = response.status in (307, 308) or (
            response.status in (301, 302) and request.method in ("GET", "HEAD"))
        self.stats.redirects += 1
        redirected = request.replace(
            url=target,
            method=request.method if keep_method else "GET",
            body=request.body if keep_method else b"",
            meta={**request.meta, "redirect_times": times, "redirect_urls": chain},
        )
        if self.state is CrawlState.RUNNING:
            await self.scheduler.enqueue(redirected)

    async def _fail(self, request: Request, exc: RequestFailed,
                    response: Response | None = None) -> None:
        self.stats.requests_failed += 1
        self.stats.errors[exc.kind] += 1
        logger.debug("failed %s: %s", request.url, exc)
        if request.errback is not None:
            failure = Failure(request, exc, exc.kind, response)
            await self._run_callback(request.errback, failure, {}, request)

    async def _run_callback(self, callback: Callable[..., Any], arg: Response | Failure,
                            kwargs: dict[str, Any], request: Request) -> None:
        depth = request.depth + 1
        count = 0
        try:
            async for obj in _iterate(callback(arg, **kwargs)):
                await self._handle_output(obj, depth)
                count += 1
                if count % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a page with 100k links must not stall the loop
        except asyncio.CancelledError:
            raise
        except CloseSpider as exc:
            self.stop(exc.reason)
        except IgnoreRequest:
            pass
        except Exception:
            self.stats.errors["callback"] += 1
            logger.exception("spider error in %s for %s", getattr(callback, "__name__",
                             callback), request.url)

    async def _handle_output(self, obj: Any, depth: int) -> None:
        if obj is None:
            return
        if isinstance(obj, Request):
            if self.state is CrawlState.RUNNING:
                obj.depth = depth
                await self.scheduler.enqueue(obj)
            return
        await self._export(obj)

    async def _export(self, item: Any) -> None:
        limit = self.settings.max_items
        if limit is not None and self.stats.items >= limit:
            return
        try:
            item = await process(self._pipelines, item, self.spider)
        except DropItem as exc:
            self.stats.items_dropped += 1
            logger.debug("dropped item: %s", exc)
            return
        except Exception:
            self.stats.errors["pipeline"] += 1
            self.stats.items_dropped += 1
            logger.exception("item pipeline failed")
            return
        try:
            for output in self._outputs:
                await output.export(item)
        except ValueError as exc:
            self.stats.errors["item_serialization"] += 1
            logger.error("cannot write item: %s", exc)
            return
        self.stats.items += 1
        if limit is not None and self.stats.items >= limit:
            self.stop("max_items")

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_INTERVAL)
            for output in self._outputs:
                await output.flush()


    async def _watch_loop(self) -> None:
        """Measure how late a short sleep wakes up: the longest event-loop stall."""
        loop, stats = asyncio.get_running_loop(), self.stats
        while True:
            before = loop.time()
            await asyncio.sleep(_TICK)
            stats.max_loop_stall = max(stats.max_loop_stall, loop.time() - before - _TICK)

    async def _log_progress(self, interval: float) -> None:
        stats, loop = self.stats, asyncio.get_running_loop()
        last_pages, last_time = 0, loop.time()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            rate = (stats.pages - last_pages) / (now - last_time)
            last_pages, last_time = stats.pages, now
            logger.info(
                "%d pages (%.1f/s), %d items, %d in flight, %d queued, %d failed, %d retries",
                stats.pages, rate, stats.items, self._frontier.in_flight(),
                self.scheduler.queued(), stats.requests_failed, stats.retries)


async def _iterate(result: Any) -> AsyncIterator[Any]:
    """Yield what a callback produced, whatever kind of callable it was."""
    if inspect.isasyncgen(result):
        async for obj in result:
            yield obj
        return
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return
    if isinstance(result, dict | Request) or not hasattr(result, "__iter__") \
            or isinstance(result, str | bytes):
        yield result
        return
    for obj in result:
        yield obj
