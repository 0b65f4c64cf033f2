"""An in-memory frontier: per-host queues, a heap of ready hosts, a heap of sleeping ones.

Within a host, requests go by priority (higher first) and then in arrival order, which is
breadth first. Across hosts, the ready host whose next request ranks best goes first. Every
operation is O(log hosts) or better, independent of the number of queued requests.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

from crawler.http import Request
from crawler.ratelimit import HostPolicy, HostSlot

_Key = tuple[int, int]  # (-priority, arrival sequence)


class _HostQueue:
    __slots__ = ("buckets", "count", "slot")

    def __init__(self, slot: HostSlot) -> None:
        self.buckets: dict[int, deque[tuple[int, Request]]] = {}
        self.count = 0
        self.slot = slot

    def head(self) -> _Key:
        priority = max(self.buckets)
        return (-priority, self.buckets[priority][0][0])

    def push(self, seq: int, request: Request) -> None:
        bucket = self.buckets.get(request.priority)
        if bucket is None:
            bucket = self.buckets[request.priority] = deque()
        bucket.append((seq, request))
        self.count += 1

    def pop(self) -> Request:
        priority = max(self.buckets) if len(self.buckets) > 1 else next(iter(self.buckets))
        bucket = self.buckets[priority]
        _, request = bucket.popleft()
        if not bucket:
            del self.buckets[priority]
        self.count -= 1
        return request


class MemoryFrontier:
    """The default frontier, held in this process's memory.

    Usage:
        frontier = MemoryFrontier(HostPolicy(concurrency=4, delay=0.5))
    """

    def __init__(self, policy: HostPolicy | None = None) -> None:
        self.policy = policy or HostPolicy()
        self._seen: set[bytes] = set()
        self._hosts: dict[str, _HostQueue] = {}
        self._ready: list[tuple[_Key, str]] = []  # may hold stale entries; checked on pop
        self._sleeping: list[tuple[float, str]] = []
        self._delayed: list[tuple[float, int, Request]] = []  # retries waiting out a backoff
        self._seq = itertools.count()
        self._queued = 0  # in host queues; retries waiting in _delayed are added in queued()
        self._in_flight = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def seen(self, fingerprint: bytes) -> bool:
        return fingerprint in self._seen

    async def mark_seen(self, fingerprint: bytes) -> bool:
        if fingerprint in self._seen:
            return False
        self._seen.add(fingerprint)
        return True

    async def add(self, request: Request, fingerprint: bytes, *, force: bool = False) -> bool:
        seen = self._seen
        if fingerprint in seen:
            if not force:
                return False
        else:
            seen.add(fingerprint)
        self._push(request)
        return True

    async def retry(self, request: Request, not_before: float) -> None:
        heapq.heappush(self._delayed, (not_before, next(self._seq), request))

    def _queue(self, host: str) -> _HostQueue:
        queue = self._hosts.get(host)
        if queue is None:
            queue = self._hosts[host] = _HostQueue(HostSlot(self.policy))
        return queue

    def _push(self, request: Request) -> None:
        host = request.host
        queue = self._queue(host)
        seq = next(self._seq)
        before = queue.head() if queue.count else None
        queue.push(seq, request)
        self._queued += 1
        key = queue.head()
        # a new or better head needs a ready-heap entry (the old one goes stale); a host held
        # back by its delay is moved to _sleeping by pop(); a full one returns through done()
        if key != before and queue.slot.active < self.policy.concurrency:
            heapq.heappush(self._ready, (key, host))

    async def pop(self, now: float) -> Request | None:
        self._wake(now)
        ready = self._ready
        while ready:
            key, host = heapq.heappop(ready)
            queue = self._hosts.get(host)
            if queue is None or not queue.count or queue.head() != key:
                continue  # stale entry
            slot = queue.slot
            if not slot.ready(now, self.policy):
                if slot.active < self.policy.concurrency:
                    heapq.heappush(self._sleeping, (slot.next_start, host))
                continue  # re-enters through _wake or done()
            request = queue.pop()
            slot.start(now, self.policy)
            self._queued -= 1
            self._in_flight += 1
            self._reschedule(host, queue, now)
            return request
        return None

    async def done(self, request: Request, now: float, *, latency: float | None = None,
                   status: int | None = None) -> None:
        host = request.host
        queue = self._hosts[host]
        queue.slot.finish(now, self.policy, latency, status)
        self._in_flight -= 1
        if queue.slot.active == self.policy.concurrency - 1:
            self._reschedule(host, queue, now)
        elif not queue.count and queue.slot.idle(now):
            del self._hosts[host]

    async def pause_host(self, host: str, until: float) -> None:
        self._queue(host).slot.pause_until(until)

    async def set_crawl_delay(self, host: str, delay: float) -> None:
        self._queue(host).slot.set_crawl_delay(delay, self.policy)

    def wakeup_at(self) -> float | None:
        times = [heap[0][0] for heap in (self._sleeping, self._delayed) if heap]
        return min(times) if times else None

    def queued(self) -> int:
        return self._queued + len(self._delayed)

    def in_flight(self) -> int:
        return self._in_flight

    def _reschedule(self, host: str, queue: _HostQueue, now: float) -> None:
        """Put a host with work back where it belongs: ready, sleeping, or (when full) nowhere
        until one of its requests is done."""
        if not queue.count:
            if queue.slot.idle(now):
                del self._hosts[host]
            return
        slot = queue.slot
        if slot.active >= self.policy.concurrency:
            return
        if now >= slot.next_start:
            heapq.heappush(self._ready, (queue.head(), host))
        else:
            heapq.heappush(self._sleeping, (slot.next_start, host))

    def _wake(self, now: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            self._push(heapq.heappop(delayed)[2])
        sleeping = self._sleeping
        while sleeping and sleeping[0][0] <= now:
            _, host = heapq.heappop(sleeping)
            queue = self._hosts.get(host)
            if queue is None or not queue.count:
                continue
            slot = queue.slot
            if slot.ready(now, self.policy):
                heapq.heappush(self._ready, (queue.head(), host))
            elif slot.active < self.policy.concurrency:
                # paused again since it went to sleep (Retry-After, autothrottle): sleep on
                heapq.heappush(sleeping, (slot.next_start, host))
