"""What the parts of a crawl share: its lifecycle state, the context handed to each part
(so that no part imports the engine), and the result `Crawler.run()` returns."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crawler.core.scheduler import Scheduler
    from crawler.settings import Settings
    from crawler.signals import Signals
    from crawler.spider import Spider
    from crawler.stats import Stats

__all__ = ["CrawlContext", "CrawlResult", "CrawlState"]


class CrawlState(enum.Enum):
    NEW = "new"  # constructed; run() not called yet
    OPENING = "opening"  # checking outputs, opening pipelines and outputs
    RUNNING = "running"  # workers are fetching
    STOPPING = "stopping"  # no new fetches; requests being processed may finish
    CLOSING = "closing"  # outputs flushed and closed; user close hooks running
    CLOSED = "closed"  # every hook called; stats final


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
