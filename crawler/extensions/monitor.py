"""Watching a crawl from inside: the event-loop stall probe and the progress log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from crawler.stats import Stats

__all__ = ["LoopWatch", "log_progress"]

logger = logging.getLogger(__name__)

TICK = 0.05  # seconds between event-loop stall probes
LATE = 0.02  # seconds the probe may be kept waiting before callbacks yield
_REPORTED_STALL = 0.05  # stalls longer than this are logged at DEBUG


class LoopWatch:
    """Measures how late a short sleep wakes up: the longest event-loop stall, including one
    still under way when the crawl ends.

    Usage:
        watch = LoopWatch(stats)
        task = asyncio.create_task(watch.run())  # for the whole crawl, then
        watch.finish()
    """

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self.last_wake = 0.0  # loop time of the probe's last wake-up
        self._recent = 0.0  # the longest stall since recent_stall() was last asked

    def recent_stall(self) -> float:
        """The longest stall since the last call (the autoscaler's loop-lag sample)."""
        stall, self._recent = self._recent, 0.0
        return stall

    async def run(self) -> None:
        loop, stats = asyncio.get_running_loop(), self._stats
        self.last_wake = loop.time()
        while True:
            await asyncio.sleep(TICK)
            now = loop.time()
            stall = now - self.last_wake - TICK
            if stall > _REPORTED_STALL:
                logger.debug("the event loop was held for %.3fs", stall)
            stats.max_loop_stall = max(stats.max_loop_stall, stall)
            self._recent = max(self._recent, stall)
            self.last_wake = now

    def late(self) -> float:
        """The loop time past which the probe is overdue by more than `LATE`: callbacks
        yield then, so that many pages ready at once do not hold the loop between them."""
        return self.last_wake + TICK + LATE

    def blocked_since(self, start: float, now: float) -> float:
        """How long the loop has been blocked, up to `now`, counting from `start` at the
        earliest: the probe wakes every TICK unless something holds the loop."""
        return now - max(start, self.last_wake + TICK)

    def finish(self) -> None:
        """Count a stall under way at the very end (the probe cannot wake to see it)."""
        if self.last_wake:
            now = asyncio.get_running_loop().time()
            self._stats.max_loop_stall = max(self._stats.max_loop_stall,
                                             now - self.last_wake - TICK)


async def log_progress(stats: Stats, interval: float,
                       snapshot: Callable[..., Awaitable[dict[str, Any]]]) -> None:
    """A progress line every `interval` seconds."""
    loop = asyncio.get_running_loop()
    last_pages, last_time = 0, loop.time()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        rate = (stats.pages - last_pages) / (now - last_time)
        last_pages, last_time = stats.pages, now
        now_ = await snapshot(hosts=0)
        in_flight, queued = now_["in_flight"], now_["queued"]
        logger.info(
            "%d pages (%.1f/s), %d items, %d in flight, %d queued, %d failed, %d retries",
            stats.pages, rate, stats.items, in_flight, queued,
            stats.requests_failed,
            stats.retries)
