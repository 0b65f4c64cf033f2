"""Admission and dispatch: which requests enter the frontier, and when workers get them.

`enqueue` drops (and counts) what must never be fetched: bad URLs, other schemes, off-site
hosts, requests past `max_depth`, duplicates. The dispatcher task moves requests whose host
is ready from the frontier to an asyncio.Queue, never more than there are idle workers, so
the choice of what to fetch next is made at the last moment and no worker waits on a host
that is held back while another host has work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from crawler.frontier import Frontier
from crawler.http import Request
from crawler.stats import Stats
from crawler.urls import host_allowed, parse_url


class Scheduler:
    """The frontier's gatekeeper and the workers' queue.

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
        allowed_domains: frozenset[str] = frozenset(),
        max_depth: int | None = None,
    ) -> None:
        self.frontier = frontier
        self.queue: asyncio.Queue[Request] = asyncio.Queue()
        self._stats = stats
        self._fingerprint = fingerprint
        self._allowed = allowed_domains
        self._max_depth = max_depth
        self._idle_workers = 0
        self._wakeup = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.paused = False  # set when the crawl stops taking new requests
        self.can_dispatch: Callable[[], bool] = lambda: True

    def admissible(self, request: Request) -> bool:
        """Parse and check a request's URL, host and depth; count and drop what fails."""
        parsed = parse_url(request._yurl if request._yurl is not None else request.url)
        if isinstance(parsed, str):
            if parsed == "invalid_url":
                self._stats.invalid_url += 1
            else:
                self._stats.unsupported_scheme += 1
            return False
        request._yurl = parsed
        if self._allowed and not host_allowed(parsed.host or "", self._allowed):
            self._stats.offsite_dropped += 1
            return False
        if self._max_depth is not None and request.depth > self._max_depth:
            self._stats.depth_limited += 1
            return False
        return True

    async def enqueue(self, request: Request) -> bool:
        """Queue `request` unless it is inadmissible or a duplicate; True when queued."""
        if not self.admissible(request):
            return False
        fp = self._fingerprint(request)
        if not await self.frontier.add(request, fp, force=request.dont_filter):
            self._stats.duplicates_filtered += 1
            return False
        self._stats.requests_scheduled += 1
        self._wakeup.set()
        return True

    async def get(self) -> Request:
        """Wait for the next request to fetch (called by idle workers)."""
        self._idle_workers += 1
        self._wakeup.set()
        try:
            return await self.queue.get()
        finally:
            self._idle_workers -= 1

    async def done(self, request: Request) -> None:
        """The fetch of `request` is over; its host may take another."""
        await self.frontier.done(request, asyncio.get_running_loop().time())
        self._wakeup.set()

    def pending(self) -> int:
        """Requests queued or in flight (dispatched but not done)."""
        return self.frontier.queued() + self.frontier.in_flight()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """The dispatcher loop; runs until cancelled."""
        loop = asyncio.get_running_loop()
        frontier, queue = self.frontier, self.queue
        while True:
            self._wakeup.clear()
            while (not self.paused and self._idle_workers > queue.qsize()
                   and self.can_dispatch()):
                request = await frontier.pop(loop.time())
                if request is None:
                    break
                queue.put_nowait(request)
            self._arm_timer(loop, frontier.wakeup_at())
            await self._wakeup.wait()

    def _arm_timer(self, loop: asyncio.AbstractEventLoop, at: float | None) -> None:
        """Wake the dispatcher when the next delayed host becomes ready."""
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._on_timer) if at is not None else None

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._wakeup.set()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
