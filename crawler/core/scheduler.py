"""Dispatch: when workers get requests.

The dispatcher task moves requests whose host is ready from the frontier to an
asyncio.Queue, never more than there are idle workers, so the choice of what to fetch next
is made at the last moment and no worker waits on a host that is held back while another
host has work. Admission (crawler/core/admission.py) decides what enters the frontier; the
Scheduler is the one object the engine talks to for both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from crawler.core.admission import Admission, Refused
from crawler.core.robots import RobotsCache
from crawler.frontier import Frontier
from crawler.http import Request
from crawler.http.urls import FETCHABLE_SCHEMES, AllowedDomains
from crawler.settings import Settings
from crawler.stats import Stats

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)


class Scheduler:
    """Admission in front of the frontier, dispatch behind it.

    Usage:
        scheduler = Scheduler(MemoryFrontier(), stats=Stats(), fingerprint=fingerprint)
        await scheduler.enqueue(Request("http://127.0.0.1:8080/"))
        request = await scheduler.get()     # in a worker
        await scheduler.done(request)       # when its fetch is over
    """

    def __init__(
        self,
        frontier: Frontier,
        *,
        stats: Stats,
        fingerprint: Callable[[Request], bytes],
        allowed_domains: AllowedDomains | None = None,
        settings: Settings | None = None,
        refused: Refused | None = None,
        maybe_done: Callable[[], None] = lambda: None,
        dispatch_room: Callable[[], int] = lambda: 1 << 30,
        robots_at_fetch: bool = False,
        schemes: frozenset[str] = FETCHABLE_SCHEMES,
    ) -> None:
        self.frontier = frontier
        self._maybe_done = maybe_done  # something ended: the crawl may be over
        self.queue: asyncio.Queue[Request] = asyncio.Queue()
        self.admission = Admission(frontier, stats=stats, fingerprint=fingerprint,
                                   wake=self._wake, allowed_domains=allowed_domains,
                                   settings=settings, refused=refused, robots_done=maybe_done,
                                   robots_at_fetch=robots_at_fetch, schemes=schemes)
        self.enqueue = self.admission.enqueue
        self.enqueue_many = self.admission.enqueue_many
        self.wait_for_room = self.admission.wait_for_room
        self._dispatch_room = dispatch_room  # how many more may start (max_pages)
        self._stopping = False  # stop(): nothing new is taken or dispatched
        self.paused = False  # pause(True): nothing new starts until pause(False)
        self._idle_workers = 0
        self.in_flight = 0  # popped here and not yet done (this process's share)
        self._wakeup = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def use_robots(self, robots: RobotsCache) -> None:
        """Gate admission on robots.txt, fetched through `robots`."""
        self.admission.robots = robots

    def stop(self) -> None:
        """Take and dispatch nothing new (the crawl is stopping)."""
        self._stopping = True
        self.admission.stop()
        self._wakeup.set()

    def pause(self, paused: bool) -> None:
        """Start no new request while `paused` (a user's pause); requests in flight finish
        and the links they find are still queued."""
        self.paused = paused
        self._wakeup.set()

    async def retry(self, request: Request, delay: float) -> None:
        """Queue a retry of `request` that must not start for `delay` seconds."""
        await self.frontier.retry(request, delay)
        self._wake()

    async def get(self) -> Request:
        """Wait for the next request to fetch (called by idle workers)."""
        self._idle_workers += 1
        self._wakeup.set()
        try:
            return await self.queue.get()
        finally:
            self._idle_workers -= 1

    async def done(self, request: Request, *, latency: float | None = None,
                   status: int | None = None, cached: bool = False) -> None:
        """The fetch of `request` is over; its host may take another."""
        self.in_flight -= 1
        await self.frontier.done(request, latency=latency, status=status, cached=cached)
        self._wake()

    async def pause_host(self, request: Request, seconds: float) -> None:
        """Start nothing more on `request`'s host for `seconds` (Retry-After)."""
        await self.frontier.pause_host(request.host, seconds)

    async def pending(self) -> int:
        """Requests queued, in flight, or waiting for robots.txt."""
        frontier = self.frontier
        return (await frontier.queued() + await frontier.in_flight()
                + self.admission.awaiting)

    async def queued(self) -> int:
        return await self.admission.queued()

    def wake(self) -> None:
        """Requests were queued behind the scheduler's back (a continuous crawl's due
        pages): look at the frontier again."""
        self._wake()

    def _wake(self) -> None:
        """Wake the dispatcher if a worker is waiting for it. With every worker busy there is
        nothing to dispatch, and the next worker to go idle wakes it in get()."""
        if self._idle_workers:
            self._wakeup.set()

    async def run(self) -> None:
        """The dispatcher loop; runs until cancelled."""
        loop = asyncio.get_running_loop()
        frontier, queue = self.frontier, self.queue
        while True:
            self._wakeup.clear()
            while not self._stopping and not self.paused:
                n = min(self._idle_workers - queue.qsize(), self._dispatch_room())
                if n <= 0:
                    break
                requests = await frontier.pop_many(n)
                for request in requests:
                    queue.put_nowait(request)
                self.in_flight += len(requests)
                if len(requests) < n:
                    break
            await self.admission.check_room()
            at = await frontier.wakeup_at()
            if frontier.poll is not None and self._idle_workers > queue.qsize() \
                    and not self._stopping and not self.paused:
                # other processes add work and free hosts: look again soon
                soon = frontier.clock() + frontier.poll
                at = soon if at is None else min(at, soon)
                if not self.in_flight and not queue.qsize():
                    self._maybe_done()  # idle here: the crawl may be over for the fleet
            self._arm_timer(loop, at)
            await self._wakeup.wait()

    def _arm_timer(self, loop: asyncio.AbstractEventLoop, at: float | None) -> None:
        """Wake the dispatcher when the next delayed host becomes ready."""
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at  # on the frontier's clock: the loop waits the difference
        self._timer = loop.call_later(max(0.0, at - self.frontier.clock()), self._on_timer) \
            if at is not None else None

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._wakeup.set()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        self.admission.close()
