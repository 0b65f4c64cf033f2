"""Fakes for the core parts' unit tests: a network answering from a table, a storage mode
recording what completes, a spider, and a crawl context built around them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crawler import Request, Response, Settings, Spider
from crawler.core.plugins import PluginThread
from crawler.core.processor import Processor
from crawler.core.scheduler import Scheduler
from crawler.core.scraper import Scraper
from crawler.core.state import CrawlContext
from crawler.exceptions import DownloadError
from crawler.extensions.monitor import LoopWatch
from crawler.frontier import MemoryFrontier
from crawler.http.urls import fingerprint
from crawler.outputs.outputs import Outputs
from crawler.signals import Signals
from crawler.stats import Stats
from crawler.storage.base import PageItems, Storage, StorageContext


class TableNetwork:
    """A Downloader answering url -> (status, body) or an exception; records each fetch."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.fetched: list[str] = []

    async def fetch(self, request: Request) -> Response:
        self.fetched.append(request.url)
        answer = self.table.get(request.url)
        if answer is None:
            raise DownloadError("connection", f"nothing at {request.url}", request)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return Response(request.url, status, {"Content-Type": "text/html"}, body.encode(),
                        request)


class RecordingStorage(Storage):
    """Memory storage whose completions are recorded: (url, keep, items held)."""

    def __init__(self, context: StorageContext) -> None:
        super().__init__(context, MemoryFrontier())
        self.completed: list[tuple[str, bool, int]] = []
        self.items: list[Any] = []

    def page(self, request: Request | None) -> PageItems:
        return _Held(self.items)

    async def complete(self, request: Request, page: PageItems, keep: bool) -> None:
        self.completed.append((request.url, keep, len(page)))
        page.close()


class _Held:
    def __init__(self, sink: list[Any]) -> None:
        self.sink, self.held = sink, 0

    def __len__(self) -> int:
        return self.held

    async def add(self, record: Any, item: Any) -> None:
        self.held += 1
        self.sink.append(item)

    def close(self) -> None:
        return None


class Site(Spider):
    name = "site"

    async def parse(self, response):
        yield {"url": response.url}
        for a in response.css("a"):
            yield response.follow(a)

    async def failed(self, failure):
        yield {"failed": failure.request.url, "kind": failure.kind}


@dataclass
class Parts:
    """The core parts of one crawl, around fakes."""

    settings: Settings
    stats: Stats = field(default_factory=Stats)
    spider: Site = field(default_factory=Site)
    stopped: list[str] = field(default_factory=list)
    running: bool = True

    def __post_init__(self) -> None:
        self.signals = Signals(self.stats)
        self.storage = RecordingStorage(StorageContext(
            self.spider, self.settings, self.stats, self.signals, Outputs([], self.stats),
            fingerprint))
        self.refused: list[tuple[str, str]] = []

        async def refused(request: Request, exc: Exception, kind: str) -> None:
            self.refused.append((request.url, kind))

        self.scheduler = Scheduler(self.storage.frontier, stats=self.stats,
                                   fingerprint=fingerprint, settings=self.settings,
                                   refused=refused)
        self.context = CrawlContext(self.spider, self.settings, self.stats, self.signals,
                                    self.scheduler, running=lambda: self.running,
                                    stop=self.stopped.append)
        self.scraper = Scraper(self.context, pipelines=[], watch=LoopWatch(self.stats),
                               thread=PluginThread())

    def processor(self, network: TableNetwork, middlewares: list[Any] | None = None,
                  ) -> Processor:
        return Processor(self.context, scraper=self.scraper, storage=self.storage,
                         downloader=network, middlewares=middlewares or [])
