"""The Crawler: opens plugins and outputs, runs the workers, and closes everything.

Lifecycle (`CrawlState`): NEW -> OPENING (check the start URLs and every output, open the
pipelines, then the outputs) -> RUNNING -> STOPPING -> CLOSING (outputs flushed and closed
first, then the pipelines' close_spider and spider.closed(), each failure logged and
counted) -> CLOSED. A stop while OPENING skips the crawl; kill() cuts any user hook short.

Flow: spider.start() -> Scheduler.enqueue -> frontier -> dispatcher -> asyncio.Queue ->
worker -> Downloader.fetch -> callback -> (requests back to enqueue, items to pipelines
and outputs).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
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
    Kind,
    RequestFailed,
    StartupError,
)
from crawler.exporters import Exporter
from crawler.extensions import load_extensions
from crawler.frontier import Frontier, MemoryFrontier
from crawler.http import Failure, Request, Response
from crawler.items import ItemError, is_item, to_record
from crawler.monitor import LoopWatch
from crawler.outputs import Outputs
from crawler.parsing import TooComplex
from crawler.pipelines import load_pipelines, process
from crawler.plugins import Interrupted, PluginThread, call, describe, until
from crawler.ratelimit import HostPolicy
from crawler.retry import RetryPolicy
from crawler.robots import RobotsCache
from crawler.scheduler import Scheduler
from crawler.settings import Settings
from crawler.signals import Signal, Signals
from crawler.spider import Spider, start_url_list
from crawler.stats import Stats
from crawler.urls import AllowedDomains, parse_url
from crawler.urls import fingerprint as default_fingerprint

__all__ = ["CrawlResult", "CrawlState", "Crawler"]

logger = logging.getLogger(__name__)

_YIELD_EVERY = 256  # callback outputs handled before letting other tasks run
_CHECK_EVERY = 15  # (a mask) the clock is read every 16 callback outputs
_SEED_BATCH = 256  # start requests queued before yielding to the workers
_SLOW_CALLBACK = 0.25  # seconds a callback may hold the event loop before a warning
_SLOW_WARNINGS = 10  # slow callbacks named in a warning; the rest are only counted


class CrawlState(enum.Enum):
    NEW = "new"  # constructed; run() not called yet
    OPENING = "opening"  # checking outputs, opening pipelines and outputs
    RUNNING = "running"  # workers are fetching
    STOPPING = "stopping"  # no new fetches; requests being processed may finish
    CLOSING = "closing"  # outputs flushed and closed; user close hooks running
    CLOSED = "closed"  # every hook called; stats final


@dataclass(frozen=True, slots=True)
class CrawlResult:
    """What `Crawler.run()` returns."""

    stats: Stats
    failed_outputs: tuple[Exporter, ...] = ()

    @property
    def finish_reason(self) -> str:
        return self.stats.finish_reason


class Crawler:
    """Runs one spider to completion. Pipelines are built here (with `from_crawler(self)`
    when they define it), so a StartupError comes before anything is opened.

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
        self.settings = settings if settings is not None else Settings.for_spider(spider)
        spider.settings = self.settings
        self.stats = Stats()
        self.state = CrawlState.NEW
        s = self.settings
        try:
            self._allowed = AllowedDomains(spider.allowed_domains)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        for warning in self._allowed.warnings:
            logger.warning("%s", warning)
        self.outputs = Outputs(outputs, self.stats, on_failure=self._output_failed)
        self._frontier = frontier or MemoryFrontier(HostPolicy.from_settings(s))
        self.frontier = self._frontier
        self.signals = Signals(self.stats)
        self._retry = RetryPolicy.from_settings(s)
        self._downloader = downloader
        self.scheduler = Scheduler(
            self._frontier,
            stats=self.stats,
            fingerprint=fingerprint,
            allowed_domains=self._allowed,
            settings=s,
        )
        if s.max_pages is not None:
            max_pages = s.max_pages
            frontier_ = self._frontier
            self.scheduler.can_dispatch = (
                lambda: self.stats.pages + frontier_.in_flight() < max_pages
            )
        self.scheduler.on_settled = self._check_done
        self.scheduler.on_refused = self._refused
        self._handled = frozenset(spider.handle_httpstatus_list)
        self._busy = 0
        self._seeding = True
        self._done = asyncio.Event()
        self._stopping = asyncio.Event()  # stop() or kill(): cuts an opening hook short
        self._killed = asyncio.Event()  # kill(): cuts a closing hook short
        self._kill_timer: asyncio.TimerHandle | None = None
        self._watch = LoopWatch(self.stats)
        self._pipelines = load_pipelines(s.item_pipelines, self)
        self.extensions = load_extensions(s.extensions, self)
        self._plugin_thread = PluginThread()  # sync plugin code runs there, off the loop

    # lifecycle ------------------------------------------------------------------------------

    async def run(self) -> CrawlResult:
        """Crawl until the frontier is empty, a limit is hit, or stop() is called. Raises
        StartupError (before any output is truncated) when the crawl cannot start."""
        if self.state is not CrawlState.NEW:
            raise RuntimeError("a Crawler runs once")
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.state = CrawlState.OPENING
        watch = asyncio.create_task(self._watch.run(), name="loop-watch")
        try:
            await self._open_crawl_close()
        finally:
            self._plugin_thread.close()
            self._watch.finish()
            watch.cancel()
            self.stats.elapsed_seconds = loop.time() - started
            self.stats.finish_reason = self.stats.finish_reason or "finished"
            self.state = CrawlState.CLOSED
        return CrawlResult(self.stats, tuple(self.outputs.failed))

    async def _open_crawl_close(self) -> None:
        self._check_start_urls()
        await self.outputs.check()
        opened: list[Any] = []
        try:
            for pipeline in self._pipelines:
                await self._open_pipeline(pipeline)
                opened.append(pipeline)
            await self.outputs.open()
        except Interrupted:
            self.state = CrawlState.CLOSING
            await self._close_pipelines(opened)
            return
        except BaseException:
            self.state = CrawlState.CLOSING
            await self._close_pipelines(opened)
            raise
        opened_sent = False
        try:
            if not self._stopping.is_set():
                opened_sent = True
                await self._send_hooked(Signal.SPIDER_OPENED, self._stopping, spider=self.spider)
            if not self._stopping.is_set():
                self.state = CrawlState.RUNNING
                await self._crawl()
        finally:
            self.state = CrawlState.CLOSING
            await self.outputs.close()  # before user hooks, which may hang
            if opened_sent:
                await self._send_hooked(Signal.SPIDER_CLOSED, self._killed, spider=self.spider,
                                        reason=self.stats.finish_reason or "finished")
            await self._close_pipelines(opened)
            await self._spider_closed()

    def stop(self, reason: str = "shutdown") -> None:
        """Stop taking new requests; let the ones being processed finish, then close."""
        if self.state is CrawlState.OPENING:
            self.stats.finish_reason = self.stats.finish_reason or reason
            self._stopping.set()
            return
        if self.state is not CrawlState.RUNNING:
            return
        logger.info("stopping (%s): finishing %d request(s) in progress", reason, self._busy)
        self.state = CrawlState.STOPPING
        self.stats.finish_reason = reason
        self.scheduler.paused = True
        self._stopping.set()
        grace = self.settings.shutdown_timeout
        self._kill_timer = asyncio.get_running_loop().call_later(
            self.settings.timeout if grace is None else grace, self.kill)
        self._check_done()

    def kill(self) -> None:
        """Stop at once: abandon requests in progress and cut user hooks short; outputs are
        still flushed and closed."""
        if self.state is CrawlState.CLOSED or self._killed.is_set():
            return
        logger.warning("stopping now: abandoning %d request(s) in progress", self._busy)
        self.stats.finish_reason = self.stats.finish_reason or "killed"
        if self.state is CrawlState.RUNNING:
            self.state = CrawlState.STOPPING
        self._stopping.set()
        self._killed.set()
        self._done.set()

    def _output_failed(self, exporter: Exporter) -> None:
        self.stop("output_failed")

    def _check_start_urls(self) -> None:
        """A spider seeded from start_urls gets its URLs checked before anything opens."""
        spider = self.spider
        if not type(spider).uses_start_urls():
            return
        urls = start_url_list(spider.start_urls)
        if not urls:
            raise StartupError(f"spider {spider.name!r} has no start URLs: set start_urls, "
                               "pass -a start_urls=URL, or define start()")
        for url in urls:
            if not isinstance(url, str):
                raise StartupError(f"start URL {url!r} is not a string")
            parsed = parse_url(url)
            if isinstance(parsed, str):
                hint = f" (did you mean http://{url}?)" if "://" not in url \
                    and not url.startswith("/") and ":" not in url else ""
                raise StartupError(f"start URL {url!r} is not an absolute http(s) URL "
                                   f"({parsed.replace('_', ' ')}){hint}")
            if self._allowed and not self._allowed.admits(parsed):
                raise StartupError(f"start URL {url!r} is outside allowed_domains "
                                   f"{list(self._allowed.entries)}")

    async def _send_hooked(self, signal: Signal, stop: asyncio.Event, **kwargs: Any) -> None:
        """Send a lifecycle signal; handlers that do not finish before `stop` are left."""
        try:
            await until(self.signals.send(signal, **kwargs), stop, f"{signal} handlers")
        except Interrupted:
            logger.warning("%s handlers did not finish: cut short by the stop", signal)

    async def _open_pipeline(self, pipeline: Any) -> None:
        hook = getattr(pipeline, "open_spider", None)
        if hook is None:
            return
        what = f"{type(pipeline).__name__}.open_spider()"
        try:
            await call(hook, self.spider, stop=self._stopping, what=what,
                       thread=self._plugin_thread)
        except (Interrupted, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise StartupError(f"item pipeline {what} failed: {describe(exc)}") from exc

    async def _close_pipelines(self, pipelines: list[Any]) -> None:
        for pipeline in pipelines:
            hook = getattr(pipeline, "close_spider", None)
            if hook is not None:
                await self._closing_hook(hook, self.spider,
                                         what=f"{type(pipeline).__name__}.close_spider()",
                                         kind="close_spider")

    async def _spider_closed(self) -> None:
        await self._closing_hook(self.spider.closed, self.stats.finish_reason or "finished",
                                 what=f"{type(self.spider).__name__}.closed()",
                                 kind="spider_closed")

    async def _closing_hook(self, hook: Callable[..., Any], arg: Any, *, what: str,
                            kind: str) -> None:
        """Run a user close hook; a failure is logged and counted, never raised."""
        try:
            await call(hook, arg, stop=self._killed, what=what, thread=self._plugin_thread)
        except Interrupted:
            logger.warning("%s did not finish: cut short by the stop", what)
            self.stats.errors[kind] += 1
        except Exception:
            logger.exception("error in %s", what)
            self.stats.errors[kind] += 1

    async def _crawl(self) -> None:
        s = self.settings
        async with AsyncExitStack() as stack:
            if self._downloader is None:
                self._downloader = await stack.enter_async_context(HttpDownloader(s))
            if s.obey_robots:
                self.scheduler.robots = RobotsCache(
                    self._downloader.fetch, user_agent=s.user_agent, retry=self._retry)
            await self._frontier.open(self.spider)
            stack.push_async_callback(self._frontier.close)
            await self._run_tasks()

    async def _run_tasks(self) -> None:
        s = self.settings
        tasks = [asyncio.create_task(self.scheduler.run(), name="dispatcher")]
        tasks += [asyncio.create_task(self._worker(), name=f"worker-{i}")
                  for i in range(s.concurrency)]
        tasks.append(asyncio.create_task(self._seed(), name="seeder"))
        tasks.append(asyncio.create_task(self.outputs.flush_periodically(), name="flusher"))
        for task in tasks:
            task.add_done_callback(self._task_ended)
        loop = asyncio.get_running_loop()
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
            await asyncio.gather(*tasks, return_exceptions=True)
            self.scheduler.close()

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        """An internal task that dies would leave the crawl waiting forever: end it."""
        if task.cancelled() or task.exception() is None:
            return
        logger.error("internal task %s failed; stopping the crawl", task.get_name(),
                     exc_info=task.exception())
        self.stats.errors[Kind.INTERNAL] += 1
        self.stats.finish_reason = self.stats.finish_reason or "internal_error"
        self._done.set()

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
            async for obj in _iterate(self.spider.start()):
                await self.scheduler.room()  # backpressure: start() is read as needed
                if self.state is not CrawlState.RUNNING:
                    break
                if isinstance(obj, Request):
                    self.stats.start_requests += 1
                await self._handle_output(obj, 0, None, "start()")
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
                await self._process(request)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours must not kill the worker
                logger.exception("internal error processing %s", request.url)
                self.stats.errors[Kind.INTERNAL] += 1
            finally:
                self._busy -= 1
            self._check_done()

    async def _process(self, request: Request) -> None:
        """Fetch `request` and handle the outcome. The host's slot is released on every
        path out of the fetch, whatever it raised."""
        assert self._downloader is not None
        if self.state is not CrawlState.RUNNING:
            await self.scheduler.done(request)
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        response: Response | None = None
        failure: RequestFailed | None = None
        try:
            response = await self._downloader.fetch(request)
            self.stats.pages += 1  # before done(): max_pages counts pages + in flight
        except RequestFailed as exc:
            failure = exc
        except Exception as exc:
            logger.exception("internal error fetching %s", request.url)
            failure = DownloadError(Kind.INTERNAL, f"{type(exc).__name__}: {exc}", request)
        finally:
            latency = loop.time() - started
            self.stats.record_host(request.host, latency)
            await self.scheduler.done(request, latency=latency,
                                      status=response.status if response is not None else None)
        if response is None:
            assert failure is not None
            await self._retry_or_fail(request, failure)
        else:
            await self._handle_response(request, response)

    async def _handle_response(self, request: Request, response: Response) -> None:
        if self.signals.wants(Signal.RESPONSE_RECEIVED):
            await self.signals.send(Signal.RESPONSE_RECEIVED, response=response,
                                    request=request, spider=self.spider)
        status = response.status
        self.stats.status_counts[status] += 1
        pause = self._retry.host_pause(response)
        if pause:
            await self.scheduler.pause_host(request, pause)
        if self.settings.max_pages is not None and self.stats.pages >= self.settings.max_pages:
            self.stop("max_pages")
        if self._retry.retryable_status(status) and not request.meta.get("dont_retry") \
                and await self._retried(request, response):
            return
        if 200 <= status < 300 or self._handles(request, status):
            if response.is_html and response.heavy():
                try:
                    await response.check_complexity()
                    # in a thread: Lexbor parses without the GIL, and the loop runs on
                    await asyncio.to_thread(response.parse, checked=True)
                except TooComplex as exc:
                    await self._fail(request, DownloadError(Kind.TOO_COMPLEX, str(exc), request),
                                     response)
                    return
            callback = request.callback or self.spider.parse
            await self._run_callback(callback, response, request.cb_kwargs, request)
        elif 300 <= status < 400 and "Location" in response.headers \
                and not request.meta.get("dont_redirect"):
            await self._redirect(request, response)
        else:
            await self._fail(request, HttpError(response), response)

    async def _refused(self, request: Request, exc: Exception, kind: str) -> None:
        """robots.txt refused the request, or could not be read: its errback is called."""
        if kind == Kind.ROBOTS_DISALLOWED:
            await self._errback(request, Failure(request, exc, kind))
        else:
            assert isinstance(exc, RequestFailed)
            await self._fail(request, exc)

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
        location = response.headers["Location"]
        if times > self.settings.max_redirects:
            await self._fail(request, DownloadError(
                Kind.TOO_MANY_REDIRECTS, f"more than {self.settings.max_redirects} redirects",
                request))
            return
        try:
            joined = URL(response.url).join(URL(location.strip())).with_fragment(None)
        except (ValueError, TypeError):
            joined = None
        parsed = parse_url(joined) if joined is not None else Kind.INVALID_URL
        if isinstance(parsed, str):  # javascript:, mailto:, a broken Location
            await self._fail(request, DownloadError(
                parsed, f"redirect to {location[:200]!r}: {parsed.replace('_', ' ')}", request))
            return
        target = str(parsed)
        if target in chain:
            await self._fail(request, DownloadError(
                Kind.REDIRECT_LOOP, f"redirect loop back to {target}", request))
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
        if request.depth == 0 and not request.meta.get("redirect_urls"):
            logger.warning("start request %s failed: %s", request.url, exc)
        else:
            logger.debug("failed %s: %s", request.url, exc)
        failure = Failure(request, exc, exc.kind, response)
        if self.signals.wants(Signal.REQUEST_FAILED):
            await self.signals.send(Signal.REQUEST_FAILED, request=request, failure=failure,
                                    spider=self.spider)
        await self._errback(request, failure)

    async def _errback(self, request: Request, failure: Failure) -> None:
        if request.errback is not None:
            await self._run_callback(request.errback, failure, {}, request)

    async def _run_callback(self, callback: Callable[..., Any], arg: Response | Failure,
                            kwargs: dict[str, Any], request: Request) -> None:
        depth = request.depth + 1
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
            result = callback(arg, **kwargs)
            # an async generator (the usual callback) is read directly, without a wrapper
            async for obj in result if inspect.isasyncgen(result) else _iterate(result):
                if isinstance(obj, Request):
                    obj.depth = depth
                    links.append(obj)
                else:
                    await self._handle_output(obj, depth, request, callback)
                count += 1
                if count & _CHECK_EVERY:  # the clock is read every few outputs, not each
                    continue
                t = now()
                if t - step > _SLOW_CALLBACK:
                    self._slow_step(callback, request, step)
                # a page with 100k links, or many pages ready at once, must not stall the loop
                if count % _YIELD_EVERY == 0 or t > late:
                    await self._queue_links(links)
                    links = []
                    await asyncio.sleep(0)
                    t, late = now(), watch.late()
                step = t
            if now() - step > _SLOW_CALLBACK:
                self._slow_step(callback, request, step)
        except asyncio.CancelledError:
            raise
        except CloseSpider as exc:
            self.stop(exc.reason)
        except IgnoreRequest:
            pass
        except Exception:
            self.stats.errors["callback"] += 1
            logger.exception("spider error in %s for %s", _name(callback), request.url)
        await self._queue_links(links)  # what came before an error is kept

    async def _queue_links(self, links: list[Request]) -> None:
        if links and self.state is CrawlState.RUNNING:
            if self.signals.wants(Signal.REQUEST_SCHEDULED):
                for link in links:
                    await self.signals.send(Signal.REQUEST_SCHEDULED, request=link,
                                            spider=self.spider)
            await self.scheduler.enqueue_many(links)

    def _slow_step(self, callback: Callable[..., Any], request: Request, step: float) -> None:
        """A callback step took long: name it if it held the event loop, since meanwhile every
        other request waited and timeouts fired that no server caused."""
        blocked = self._watch.blocked_since(step, time.monotonic())
        if blocked <= _SLOW_CALLBACK:
            return  # it awaited: other tasks ran meanwhile
        self.stats.slow_callbacks += 1
        log = logger.warning if self.stats.slow_callbacks <= _SLOW_WARNINGS else logger.debug
        log("%s blocked the event loop for %.2fs on %s: run blocking work in a thread "
            "(await asyncio.to_thread(...)); other requests may time out meanwhile%s",
            _name(callback), blocked, request.url,
            "; further ones are only counted (slow_callbacks)"
            if self.stats.slow_callbacks == _SLOW_WARNINGS else "")

    async def _handle_output(self, obj: Any, depth: int, request: Request | None,
                             source: Callable[..., Any] | str) -> None:
        if obj is None:
            return
        if isinstance(obj, Request):
            obj.depth = depth
            await self._queue_links([obj])
            return
        if not is_item(obj):
            self.stats.errors["invalid_item"] += 1
            logger.warning("%s yielded a %s, which is neither an item nor a Request%s",
                           _name(source), type(obj).__name__,
                           f" (on {request.url})" if request is not None else "")
            return
        await self._export(obj, request)

    async def _export(self, item: Any, request: Request | None) -> None:
        limit = self.settings.max_items
        if limit is not None and self.stats.items >= limit:
            return
        try:
            item = await process(self._pipelines, item, self.spider, self._plugin_thread)
        except DropItem as exc:
            self.stats.items_dropped += 1
            logger.debug("dropped item: %s", exc)
            if self.signals.wants(Signal.ITEM_DROPPED):
                await self.signals.send(Signal.ITEM_DROPPED, item=item, request=request,
                                        exception=exc, spider=self.spider)
            return
        except Exception:
            self.stats.errors["pipeline"] += 1
            self.stats.items_dropped += 1
            logger.exception("item pipeline failed")
            return
        try:
            record = to_record(item)
        except ItemError as exc:
            self.stats.errors["item_serialization"] += 1
            logger.error("cannot write an item%s: %s",
                         f" from {request.url}" if request is not None else "", exc)
            return
        await self.outputs.write(record)
        self.stats.items += 1
        if self.signals.wants(Signal.ITEM_SCRAPED):
            await self.signals.send(Signal.ITEM_SCRAPED, item=item, request=request,
                                    spider=self.spider)
        if limit is not None and self.stats.items >= limit:
            self.stop("max_items")


def _name(callback: Callable[..., Any] | str) -> str:
    return callback if isinstance(callback, str) else getattr(
        callback, "__qualname__", repr(callback))


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
    if isinstance(result, list | set | frozenset | Iterator) or (
            isinstance(result, tuple) and not hasattr(result, "_asdict")):
        for obj in result:
            yield obj
    else:  # one object: an item (a mapping, a model, a namedtuple) or a Request
        yield result
