"""The Crawler: builds a crawl's parts from its settings and wires them through their
constructors, then hands them to the Engine (crawler/core/engine.py), which runs the
lifecycle. Plugins get the Crawler (`from_crawler(crawler)`), as in Scrapy: its settings,
stats, signals and spider, and the controls of CrawlerProtocol (crawler/core/state.py).

The parts, in the order a request meets them: Scheduler (admission, frontier, dispatch)
-> Processor (downloader middlewares around the download handlers) -> Scraper (spider
middlewares around the callback; requests back to the scheduler, items through the
pipelines to the storage mode's page collector and the outputs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crawler.core.autoscale import Autoscaler
from crawler.core.engine import Engine
from crawler.core.plugins import PluginThread
from crawler.core.processor import Processor
from crawler.core.scheduler import Scheduler
from crawler.core.scraper import Scraper
from crawler.core.state import CrawlContext, CrawlResult, CrawlState
from crawler.exceptions import StartupError
from crawler.extensions import load_extensions
from crawler.extensions.monitor import LoopWatch
from crawler.frontier import Frontier
from crawler.handlers import DownloadHandlers
from crawler.handlers.http import Downloader
from crawler.http import Request
from crawler.http.urls import AllowedDomains
from crawler.http.urls import fingerprint as default_fingerprint
from crawler.middlewares import MiddlewareChain, build_middlewares
from crawler.middlewares.spider import SpiderMiddlewareChain
from crawler.outputs.outputs import Outputs
from crawler.outputs.pipelines import load_pipelines
from crawler.outputs.sinks import Sink
from crawler.recrawl.feed import ChangeFeed
from crawler.settings import Settings
from crawler.signals import Signals
from crawler.spider import Spider
from crawler.stats import Stats
from crawler.storage import build_storage
from crawler.storage.base import Storage, StorageContext

__all__ = ["CrawlResult", "CrawlState", "Crawler"]

logger = logging.getLogger(__name__)

_UNLIMITED = 1 << 30


class Crawler:
    """Runs one spider to completion. Every part (pipelines, middlewares, handlers,
    extensions) is built here, so a StartupError comes before anything is opened.

    Usage:
        crawler = Crawler(MySpider(), settings=Settings(concurrency=32),
                          outputs=[make_exporter("output/my.jsonl")])
        result = await crawler.run()

    Given the spider's class (and `spider_args`), the crawler builds it with its
    `from_crawler(crawler, **spider_args)`, as Scrapy does; given an instance, it sets
    its `crawler` attribute.
    """

    def __init__(
        self,
        spider: Spider | type[Spider],
        *,
        spider_args: Mapping[str, Any] | None = None,
        settings: Settings | None = None,
        outputs: Sequence[Sink] = (),
        frontier: Frontier | None = None,
        downloader: Downloader | None = None,
        fingerprint: Callable[[Request], bytes] = default_fingerprint,
        restart: bool = False,
    ) -> None:
        self.stats = stats = Stats()
        self.signals = signals = Signals(stats)
        if isinstance(spider, type):  # built by its from_crawler(), with this crawler
            self.settings = settings if settings is not None else Settings.for_spider(spider)
            spider = spider.from_crawler(self, **(spider_args or {}))
            if not isinstance(spider, Spider):
                raise StartupError(f"{type(spider).__name__}.from_crawler() did not return "
                                   "a spider")
        else:
            self.settings = settings if settings is not None else Settings.for_spider(spider)
        s = self.settings
        self.spider = spider
        spider.settings = s
        spider.crawler = self  # Scrapy's spider.crawler: settings, stats, signals
        try:
            allowed = AllowedDomains(spider.allowed_domains)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        for warning in allowed.warnings:
            logger.warning("%s", warning)
        self.fingerprint = fingerprint  # the duplicate filter's (and the cache's) key
        if s.changes_file is not None:  # the change feed: an output that takes no items
            outputs = [*outputs, ChangeFeed(s.changes_file)]
        self.outputs = Outputs(outputs, stats, on_failure=lambda sink: self.stop("output_failed"))
        # how the crawl's state is kept (crawler/storage/): memory, a job dir, a fleet
        self.storage: Storage = build_storage(StorageContext(
            spider, s, stats, signals, self.outputs, fingerprint, restart), frontier)
        self.frontier = self.storage.frontier
        # what fetches: by scheme (or meta["download_handler"]); `downloader` for http(s)
        handlers = DownloadHandlers(self, default=downloader)
        max_pages = s.max_pages
        scheduler: Scheduler
        watch = LoopWatch(stats)
        # concurrency = "auto": the dispatcher starts no more than the autoscaler's limit
        self.autoscaler = autoscaler = Autoscaler(
            s, busy=lambda: scheduler.in_flight, stall=watch.recent_stall,
            wake=lambda: scheduler.wake(), counters=stats.counters) \
            if s.concurrency == "auto" else None
        self.scheduler = scheduler = Scheduler(
            self.frontier, stats=stats, fingerprint=fingerprint, allowed_domains=allowed,
            settings=s, refused=self._refused, maybe_done=self._check_done,
            # max_pages: no more in flight than the pages still to fetch
            dispatch_room=lambda: min(
                _UNLIMITED if max_pages is None else max_pages - stats.pages,
                _UNLIMITED if autoscaler is None else autoscaler.limit) - scheduler.in_flight,
            robots_at_fetch=self.storage.robots_at_fetch, schemes=handlers.schemes)
        thread = PluginThread()  # sync plugin code runs there, off the loop
        pipelines = load_pipelines(s.item_pipelines, self)
        context = CrawlContext(spider, s, stats, signals, scheduler, running=self.running,
                               stop=self.stop)
        spider_middlewares = SpiderMiddlewareChain.from_crawler(self)
        scraper = Scraper(context, pipelines=pipelines, watch=watch, thread=thread,
                          middlewares=spider_middlewares)
        self._processor = Processor(context, scraper=scraper, storage=self.storage,
                                    downloader=handlers, middlewares=build_middlewares(self))
        self.extensions = load_extensions(s.extensions, self)
        self._engine = Engine(
            spider=spider, settings=s, stats=stats, signals=signals, storage=self.storage,
            outputs=self.outputs, scheduler=scheduler, processor=self._processor,
            scraper=scraper, pipelines=pipelines, handlers=handlers,
            spider_middlewares=spider_middlewares, allowed=allowed, fingerprint=fingerprint,
            watch=watch, thread=thread, autoscaler=autoscaler)

    @property
    def middlewares(self) -> MiddlewareChain:
        """The downloader middlewares, in the order requests meet them."""
        return self._processor.chain

    @property
    def state(self) -> CrawlState:
        return self._engine.state

    @property
    def paused(self) -> bool:
        return self._engine.paused

    async def run(self) -> CrawlResult:
        """Crawl until the frontier is empty, a limit is hit, or stop() is called. Raises
        StartupError (before any output is truncated) when the crawl cannot start."""
        return await self._engine.run()

    def running(self) -> bool:
        """Whether the crawl takes new requests (not stopping or closing)."""
        return self._engine.state is CrawlState.RUNNING

    def discard(self) -> None:
        """Release what building took (a status page's bound port) when the crawler will
        not run (it was built to check a command line)."""
        for extension in self.extensions:
            discard = getattr(extension, "discard", None)
            if callable(discard):
                discard()

    def stop(self, reason: str = "shutdown") -> None:
        """Stop taking new requests; let the ones being processed finish, then close."""
        self._engine.stop(reason)

    def pause(self) -> None:
        """Start no new request until resume(); those in flight finish."""
        self._engine.pause()

    def resume(self) -> None:
        """Start requests again after pause()."""
        self._engine.resume()

    def kill(self) -> None:
        """Stop at once: abandon requests in progress and cut user hooks short; outputs are
        still flushed and closed."""
        self._engine.kill()

    async def schedule(self, request: Request) -> bool:
        """Queue a request from outside the spider (an extension, an engine_idle handler):
        the same admission as a callback's link. False when it was not queued."""
        return await self._engine.schedule(request)

    async def snapshot(self, *, hosts: int = 10) -> dict[str, Any]:
        """The crawl's state, what is queued and in flight, the busiest `hosts` and the
        storage mode's part (the status page reads only this)."""
        return await self._engine.snapshot(hosts=hosts)

    async def _refused(self, request: Request, exc: Exception, kind: str) -> None:
        await self._processor.refused(request, exc, kind)

    def _check_done(self) -> None:
        self._engine.check_done()
