"""What the parts of a crawl share: its lifecycle state, the context handed to each part
(so that no part imports the engine), what a plugin may use of the crawler
(CrawlerProtocol), and the result `Crawler.run()` returns."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from crawler.core.scheduler import Scheduler
    from crawler.http import Request
    from crawler.settings import Settings
    from crawler.signals import Signals
    from crawler.spider import Spider
    from crawler.stats import Stats

__all__ = ["CrawlContext", "CrawlResult", "CrawlState", "CrawlerProtocol"]


class CrawlState(enum.Enum):
    NEW = "new"  # constructed; run() not called yet
    OPENING = "opening"  # checking outputs, opening pipelines and outputs
    RUNNING = "running"  # workers are fetching
    STOPPING = "stopping"  # no new fetches; requests being processed may finish
    CLOSING = "closing"  # outputs flushed and closed; user close hooks running
    CLOSED = "closed"  # every hook called; stats final


class CrawlerProtocol(Protocol):
    """What a plugin (pipeline, middleware, extension, download handler, sink) gets from
    `from_crawler(crawler)`, and may rely on."""

    settings: Settings
    stats: Stats
    signals: Signals
    spider: Spider
    fingerprint: Callable[[Request], bytes]  # the duplicate filter's key (Scrapy's
    # request_fingerprinter)

    def running(self) -> bool:
        """Whether the crawl takes new requests (not stopping or closing)."""

    async def schedule(self, request: Request) -> bool:
        """Queue a request through the same admission as a callback's link."""

    async def snapshot(self, *, hosts: int = 10) -> dict[str, Any]:
        """The crawl now: state, queued, in flight, busiest hosts, the storage's part."""

    def pause(self) -> None:
        """Start no new request until resume()."""

    def resume(self) -> None:
        """Start requests again after pause()."""

    def stop(self, reason: str = "shutdown") -> None:
        """Finish what is in progress, then close."""


@dataclass(frozen=True, slots=True)
class CrawlContext:
    """The crawl as its parts see it: who to ask, who to tell, and how to stop it."""

    spider: Spider
    settings: Settings
    stats: Stats
    signals: Signals
    scheduler: Scheduler
    running: Callable[[], bool]  # whether the crawl takes new requests now
    stop: Callable[[str], None]  # stop(reason): finish what is in progress, then close


@dataclass(frozen=True, slots=True)
class CrawlResult:
    """What `Crawler.run()` returns."""

    stats: Stats
    failed_outputs: tuple[Any, ...] = ()  # the outputs (sinks) that could not be written
    problem: str | None = None  # why the crawl failed, in one line (a job dir that could
    # not be written, an internal error), or None

    @property
    def finish_reason(self) -> str:
        return self.stats.finish_reason
