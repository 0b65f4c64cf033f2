"""The Engine: a crawl's lifecycle. Opens the storage, plugins and outputs, runs the
workers, closes everything; the parts come built (crawler/core/crawler.py).

Lifecycle (`CrawlState`): NEW -> OPENING (check the start URLs and every output, open the
pipelines, then the outputs) -> RUNNING -> STOPPING -> CLOSING (outputs flushed and closed
first, then the pipelines' close_spider and spider.closed(), each failure logged and
counted) -> CLOSED. A stop while OPENING skips the crawl; kill() cuts any user hook short.
The crawl is over when nothing is queued, in flight, seeding or idling (engine_idle
handlers may schedule more), or a limit or stop() ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from crawler.core.autoscale import Autoscaler
from crawler.core.plugins import Interrupted, PluginThread, call, describe, until
from crawler.core.processor import Processor
from crawler.core.retry import RetryPolicy
from crawler.core.robots import RobotsCache
from crawler.core.scheduler import Scheduler
from crawler.core.scraper import Scraper, iterate
from crawler.core.state import CrawlResult, CrawlState
from crawler.exceptions import (
    CloseSpider,
    FrontierUnavailable,
    JobFailed,
    Kind,
    StartupError,
)
from crawler.extensions.monitor import LoopWatch
from crawler.handlers import DownloadHandlers
from crawler.http import Request
from crawler.http.urls import AllowedDomains, parse_url
from crawler.middlewares.spider import SpiderMiddlewareChain
from crawler.outputs.outputs import Outputs
from crawler.redact import redact_handlers
from crawler.settings import Settings
from crawler.signals import Signal, Signals
from crawler.spider import Spider, start_url_list
from crawler.stats import CURRENT, Stats
from crawler.storage.base import Storage

__all__ = ["Engine"]

logger = logging.getLogger(__name__)

_SEED_BATCH = 256  # start requests queued before yielding to the workers
_UNLIMITED = 1 << 30
_CANCEL_TRIES, _CANCEL_WAIT = 3, 2.0  # re-cancel a task that swallowed it; seconds between


class Engine:
    """The lifecycle of one crawl, given its parts (built and wired by
    crawler/core/crawler.py's Crawler): open, run the workers, stop, close.

    Usage: `result = await Engine(...).run()`; `stop()`, `pause()`, `resume()` and `kill()`
    from anywhere on the loop meanwhile.
    """

    def __init__(
        self,
        *,
        spider: Spider,
        settings: Settings,
        stats: Stats,
        signals: Signals,
        storage: Storage,
        outputs: Outputs,
        scheduler: Scheduler,
        processor: Processor,
        scraper: Scraper,
        pipelines: list[Any],
        handlers: DownloadHandlers,
        spider_middlewares: SpiderMiddlewareChain | None,
        allowed: AllowedDomains,
        fingerprint: Callable[[Request], bytes],
        watch: LoopWatch,
        thread: PluginThread,
        autoscaler: Autoscaler | None = None,
    ) -> None:
        self.spider, self.settings, self.stats, self.signals = spider, settings, stats, signals
        self.storage, self.frontier, self.outputs = storage, storage.frontier, outputs
        self.scheduler, self.fingerprint = scheduler, fingerprint
        self._processor, self._scraper, self._pipelines = processor, scraper, pipelines
        self._handlers, self._spider_middlewares = handlers, spider_middlewares
        self._allowed, self._watch, self._plugin_thread = allowed, watch, thread
        self._autoscaler = autoscaler  # concurrency = "auto" (crawler/core/autoscale.py)
        self.state = CrawlState.NEW
        self._busy = 0
        self._seeding = True
        self._done = asyncio.Event()
        self._check = asyncio.Event()  # something ended: is the crawl over? (_watch_done)
        self._reseed: asyncio.Task[None] | None = None  # start() again, for a dead seeder
        self._idle: asyncio.Task[None] | None = None  # engine_idle handlers running
        self._stopping = asyncio.Event()  # stop() or kill(): cuts an opening hook short
        self._killed = asyncio.Event()  # kill(): cuts a closing hook short
        self._kill_timer: asyncio.TimerHandle | None = None
        self._problem: str | None = None  # why the crawl failed (one line), if it did

    def running(self) -> bool:
        """Whether the crawl takes new requests (not stopping or closing)."""
        return self.state is CrawlState.RUNNING

    # lifecycle ------------------------------------------------------------------------------

    async def run(self) -> CrawlResult:
        """Crawl until the frontier is empty, a limit is hit, or stop() is called. Raises
        StartupError (before any output is truncated) when the crawl cannot start."""
        if self.state is not CrawlState.NEW:
            raise RuntimeError("a Crawler runs once")
        redact_handlers()  # no credential in a log line, whoever set up the logging
        CURRENT.set(self.stats)  # this task's, and every task it starts
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.state = CrawlState.OPENING
        watch = asyncio.create_task(self._watch.run(), name="loop-watch")
        try:
            await self._open_crawl_close()
        finally:
            self._plugin_thread.close()
            await self.storage.close()
            self._watch.finish()
            watch.cancel()
            self.stats.elapsed_seconds = loop.time() - started
            self.stats.finish_reason = self.stats.finish_reason or "finished"
            self._problem = self._problem or self.frontier.failure
            self.state = CrawlState.CLOSED
        return CrawlResult(self.stats, tuple(self.outputs.failed), self._problem)

    async def _open_crawl_close(self) -> None:
        if not await self.storage.prepare():
            return  # a finished job: nothing to do (said)
        self._check_start_urls()
        # before any output is touched: an unreachable shared frontier is a startup error
        await self.storage.open()
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
        self.scheduler.stop()
        self._stopping.set()
        grace = self.settings.shutdown_timeout
        self._kill_timer = asyncio.get_running_loop().call_later(
            self.settings.timeout if grace is None else grace, self.kill)
        self.check_done()

    @property
    def paused(self) -> bool:
        return self.scheduler.paused

    def pause(self) -> None:
        """Start no new request until resume(); those in flight finish (the status page's
        pause button). The crawl does not end while paused."""
        if self.state is CrawlState.RUNNING and not self.scheduler.paused:
            logger.info("paused: %d request(s) in progress finish, nothing new starts",
                        self._busy)
            self.scheduler.pause(True)

    def resume(self) -> None:
        """Start requests again after pause()."""
        if self.scheduler.paused:
            logger.info("resumed")
            self.scheduler.pause(False)

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
            parsed = parse_url(url, self._handlers.schemes)
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
            await stack.enter_async_context(self._handlers)
            if s.obey_robots:
                self.scheduler.use_robots(RobotsCache(
                    self._processor.fetch_robots, user_agent=s.user_agent,
                    retry=RetryPolicy.from_settings(s), shared=self.storage.shared_rules))
            stats = self.stats
            self.frontier.watch(self.check_done, self.stop, pages=lambda: stats.pages,
                                items=lambda: stats.items)
            await self.storage.started()
            try:
                await self._run_tasks()
            finally:
                try:
                    await self.storage.finish(self._nothing_pending)
                except JobFailed as exc:
                    self._failed("job_failed", str(exc))

    async def _run_tasks(self) -> None:
        s = self.settings
        tasks = [asyncio.create_task(self.scheduler.run(), name="dispatcher")]
        tasks += [asyncio.create_task(self._worker(), name=f"worker-{i}")
                  for i in range(s.workers)]
        tasks.append(asyncio.create_task(self._seed(), name="seeder"))
        tasks.append(asyncio.create_task(self._watch_done(), name="done-watcher"))
        if self._autoscaler is not None:
            tasks.append(asyncio.create_task(self._autoscaler.run(), name="autoscaler"))
        tasks.append(asyncio.create_task(self.outputs.flush_periodically(), name="flusher"))
        tasks += [asyncio.create_task(work, name=name)
                  for name, work in self.storage.tasks(self.check_done)]
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
            tasks += [t for t in (self._idle, self._reseed) if t is not None]
            await self._cancel(tasks)
            self.scheduler.close()

    async def _nothing_pending(self) -> bool:
        return await self.scheduler.pending() == 0

    async def _cancel(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Cancel and wait for `tasks`; one that swallows its cancellation (a library's bug)
        is cancelled again, and after a few tries left behind, logged, rather than waited
        for forever."""
        pending = set(tasks)
        for _ in range(_CANCEL_TRIES):
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=_CANCEL_WAIT)
            if not pending:
                break
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: _task_ended logged what mattered
        if pending:
            logger.error("internal task(s) %s did not stop when cancelled: left behind",
                         ", ".join(sorted(t.get_name() for t in pending)))
            self.stats.errors[Kind.INTERNAL] += 1

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        """An internal task that dies would leave the crawl waiting forever: end it."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        if isinstance(exc, FrontierUnavailable):  # stopping already, and said
            logger.debug("%s ended: %s", task.get_name(), exc)
            self._problem = self._problem or self.frontier.failure or str(exc)
        elif isinstance(exc, JobFailed):
            self._failed("job_failed", str(exc))
        else:
            logger.debug("internal task %s failed", task.get_name(), exc_info=exc)
            self.stats.errors[Kind.INTERNAL] += 1
            self._failed("internal_error", f"internal error in {task.get_name()}: "
                         f"{describe(exc)} (-L DEBUG logs the traceback)")
        self._done.set()

    def _failed(self, reason: str, problem: str) -> None:
        """The crawl cannot go on: said once, in one line, and it exits non-zero."""
        if self._problem is None:
            self._problem = problem
            logger.error("%s: stopping the crawl", problem)
        self.stats.finish_reason = self.stats.finish_reason or reason

    def check_done(self) -> None:
        """Something ended: a stopping crawl is over when no worker is busy; a running one
        when nothing is pending either, which the done-watcher asks the frontier."""
        if self._done.is_set() or self._busy:
            return
        self.storage.idle()  # what waits for a quiet moment (a fleet's acknowledgements)
        if self.state is CrawlState.STOPPING:
            self._done.set()
        elif not self._seeding and self._idle is None:
            self._check.set()

    async def _watch_done(self) -> None:
        check = self._check
        while True:
            await check.wait()
            check.clear()
            if await self.scheduler.pending() or self._busy or self._seeding \
                    or self._idle is not None or self._done.is_set():
                continue  # (anything may have changed while the frontier answered)
            if self.state is CrawlState.RUNNING and await self.frontier.claim_seeding():
                # a shared crawl whose seeder died before start() ended: run it here
                logger.warning("the worker running start() stopped before it ended: "
                               "running start() here (its duplicates are filtered)")
                self._seeding = True
                self._reseed = asyncio.create_task(self._seed(claimed=True), name="reseeder")
                self._reseed.add_done_callback(self._task_ended)
                continue
            if self.state is CrawlState.STOPPING:
                self._done.set()
            elif self.storage.continuous:  # it does not end: wait for pages to fall due
                self._idle = asyncio.create_task(self._await_due(), name="await-due")
                self._idle.add_done_callback(self._task_ended)
            elif self.signals.wants(Signal.ENGINE_IDLE):
                self._idle = asyncio.create_task(self._idling(), name="engine-idle")
            else:
                self._done.set()

    async def _idling(self) -> None:
        """Nothing is left: ask the engine_idle handlers, who may schedule more; the crawl
        ends when they did not."""
        try:
            await self._send_hooked(Signal.ENGINE_IDLE, self._stopping, spider=self.spider)
        finally:
            self._idle = None
        if self.state is not CrawlState.RUNNING or (
                await self.scheduler.pending() == 0 and not self._busy):
            self._done.set()

    async def _await_due(self) -> None:
        """A continuous crawl with nothing left: sleep until its next pages are due and
        queue them (a stop cuts the sleep short, and the crawl ends)."""
        due = asyncio.ensure_future(self.storage.await_due())
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({due, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not due.done():
                due.cancel()
                await asyncio.gather(due, return_exceptions=True)
            self._idle = None
        if not due.cancelled():
            due.result()  # (a job that cannot be read: the task's failure ends the crawl)
            self.scheduler.wake()
        self.check_done()

    async def snapshot(self, *, hosts: int = 10) -> dict[str, Any]:
        """The crawl as the status page shows it: its state, what is queued and in flight,
        the busiest `hosts` with their live politeness, and the storage mode's part (a
        fleet's view of every worker)."""
        stats, frontier = self.stats, self.frontier
        busiest = sorted(stats.hosts.items(), key=lambda kv: -kv[1][0])[:hosts]
        live = frontier.host_states([h for h, _ in busiest])
        return {
            "spider": self.spider.name,
            "state": "paused" if self.paused else self.state.name.lower(),
            "queued": await self.scheduler.queued(), "in_flight": await frontier.in_flight(),
            "hosts": [{"host": host, "requests": int(n), "latency": round(total / n, 4),
                       "in_flight": live.get(host, (None, None))[0],
                       "delay": live.get(host, (None, None))[1]}
                      for host, (n, total) in busiest],
            **await self.storage.snapshot(),
            **self._handlers.snapshot(),
            **(self._autoscaler.snapshot() if self._autoscaler is not None else {}),
        }

    async def schedule(self, request: Request) -> bool:
        """Queue a request from outside the spider (an extension, an engine_idle handler):
        the same admission as a callback's link. False when it was not queued."""
        if self.state is not CrawlState.RUNNING:
            return False
        if self.signals.wants(Signal.REQUEST_SCHEDULED):
            await self.signals.send(Signal.REQUEST_SCHEDULED, request=request,
                                    spider=self.spider)
        return await self.scheduler.enqueue(request)

    # work -----------------------------------------------------------------------------------

    async def _seed(self, *, claimed: bool = False) -> None:
        # start() runs in another process unless this one claims it
        joined = not claimed and not await self.frontier.claim_seeding()
        if joined:
            self.stats.counters["frontier/joined"] = 1
            self._seeding = False
            self.check_done()
            return
        storage = self.storage
        resumed = storage.resumed  # start() again: only what is new
        page = storage.page(None)
        new = skipped = 0
        try:
            count = 0
            start = iterate(self.spider.start())
            if self._spider_middlewares is not None:
                start = self._spider_middlewares.start(start)
            async for obj in start:
                await self.scheduler.wait_for_room()  # backpressure: start() is read as needed
                if self.state is not CrawlState.RUNNING:
                    break
                if resumed and await self._known_before(obj):
                    skipped += 1
                    continue
                if isinstance(obj, Request):
                    self.stats.start_requests += 1
                    new += 1
                await self._scraper.handle_output(obj, 0, None, "start()", page)
                count += 1
                if count % _SEED_BATCH == 0:
                    await asyncio.sleep(0)
            else:
                storage.seeding_done()
                await self.frontier.seeding_done()
                if resumed and new:
                    logger.info("start() gave %d request(s) the job had not seen: queued "
                                "(%d seen before, skipped)", new, skipped)
        except asyncio.CancelledError:
            raise
        except CloseSpider as exc:
            self.stop(exc.reason)
        except Exception:
            logger.exception("error in %s.start()", type(self.spider).__name__)
            self.stats.errors["start"] += 1
        finally:
            page.close()
            self._seeding = False
            self.check_done()

    async def _known_before(self, obj: Any) -> bool:
        """On a job's resume: whether start() yielded this before. A request whose
        fingerprint the job has seen was (dont_filter or not); an item was written by the
        run in which start() reached its end."""
        if not isinstance(obj, Request):
            return self.storage.seeded()
        if isinstance(parse_url(obj.url, self._handlers.schemes), str):
            return False  # admission drops it, counted and said
        fingerprint = self.fingerprint(obj)
        return (await self.frontier.seen_many([fingerprint]))[0]

    async def _worker(self) -> None:
        scheduler = self.scheduler
        while True:
            request = await scheduler.get()
            self._busy += 1
            try:
                await self._processor.process(request)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours must not kill the worker
                logger.exception("internal error processing %s", request.url)
                self.stats.errors[Kind.INTERNAL] += 1
            finally:
                self._busy -= 1
            self.check_done()
