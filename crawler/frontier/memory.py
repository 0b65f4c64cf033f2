"""An in-memory frontier: per-host queues, a heap of ready hosts, a heap of sleeping ones.

Within a host, requests go by priority (higher first) and then in arrival order, which is
breadth first (or, with `dfs`, newest first: depth first). Across hosts, the ready host
whose next request ranks best goes first. Every operation is O(log hosts) or better,
independent of the number of queued requests.

Memory: a queued request that holds only its URL, callback and depth (most followed links)
is kept as a flat tuple `(seq, url, callback name, depth)` of strings and ints: about 200
bytes with its URL, and untracked by the garbage collector (a full collection still
visits each through its queue: about 30 ms per million). The seen-set keeps a 64-bit hash
of each fingerprint (a collision among a billion URLs is about 3% likely) in a dict the
collector does not track at all. Per-host state is dropped when a host is idle; robots.txt
Crawl-delays are kept in a bounded map and applied again when the host comes back.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from crawler.core.ratelimit import HostPolicy, HostSlot
from crawler.frontier.codec import RequestCodec
from crawler.http import Request

__all__ = ["DELAYS_KEPT", "MemoryFrontier"]

_Key = tuple[int, int]  # (-priority, arrival sequence)
_Entry = tuple[Any, ...]  # (seq, url, callback name, depth[, id]) or (seq, Request)
DELAYS_KEPT = 100_000  # hosts whose Crawl-delay is remembered


class _HostQueue:
    __slots__ = ("buckets", "count", "sign", "slot")

    def __init__(self, slot: HostSlot, sign: int) -> None:
        self.buckets: dict[int, deque[_Entry]] = {}
        self.count = 0
        self.slot = slot
        self.sign = sign  # 1: the oldest first (bfs); -1: the newest (dfs)

    def head(self) -> _Key:
        priority = max(self.buckets)
        return (-priority, self.sign * self.buckets[priority][0][0])

    def pop(self) -> tuple[int, _Entry]:
        priority = max(self.buckets) if len(self.buckets) > 1 else next(iter(self.buckets))
        bucket = self.buckets[priority]
        entry = bucket.popleft()
        if not bucket:
            del self.buckets[priority]
        self.count -= 1
        return priority, entry


class MemoryFrontier:
    """The default frontier, held in this process's memory.

    Usage:
        frontier = MemoryFrontier(HostPolicy(concurrency=4, delay=0.5))
    """

    id_key: str | None = None  # the meta key of a request's id in a store behind this one
    poll: float | None = None
    failure: str | None = None

    def __init__(self, policy: HostPolicy | None = None, *,
                 clock: Callable[[], float] = time.monotonic, dfs: bool = False) -> None:
        self.policy = policy or HostPolicy()
        # within a priority: the oldest request first (breadth first), or with `dfs` the
        # newest (depth first, Scrapy's LIFO queues), within a host and across hosts
        self.dfs = dfs
        self._sign = -1 if dfs else 1
        self.clock = clock  # every time here is on it (the event loop's by default)
        self._codec: RequestCodec | None = None  # packs queued requests, given the spider
        # the seen-set as a dict of ints to None: a dict holding no object the garbage
        # collector tracks is not tracked itself, so a full collection does not walk a
        # million fingerprints (a set would: 50 ms per million, a stall of the loop)
        self._seen: dict[int, None] = {}
        self._hosts: dict[str, _HostQueue] = {}
        self._ready: list[tuple[_Key, str]] = []  # may hold stale entries; checked on pop
        self._sleeping: list[tuple[float, str]] = []
        self._delayed: list[tuple[float, int, Request]] = []  # retries waiting out a backoff
        self._crawl_delays: OrderedDict[str, float] = OrderedDict()
        self._seq = itertools.count()
        self._queued = 0  # in host queues; retries waiting in _delayed are added in queued()
        self._in_flight = 0
        self._seed_claimed = False
        # the politeness key of an origin (politeness_by; crawler/core/politeness.py): the
        # hosts below are keys; a popped request carries its key (`_slot`) to done()
        self._slot_of = self.policy.keys.of
        self._grouped = self.policy.keys.grouped
        self._lookups = self.policy.keys.by == "ip"

    async def open(self, spider: object | None = None) -> None:
        """`spider` lets queued requests name their callback instead of holding it."""
        self._codec = RequestCodec(spider, self.id_key) if spider is not None else None

    async def close(self) -> None:
        await self.policy.keys.close()

    async def seen_many(self, fingerprints: Sequence[bytes]) -> list[bool]:
        seen = self._seen
        return [hash(fp) in seen for fp in fingerprints]

    async def mark_seen(self, fingerprint: bytes, request: Request | None = None) -> bool:
        key = _key(fingerprint)
        if key in self._seen:
            return False
        self._seen[key] = None
        return True

    async def add_many(self, entries: Sequence[tuple[Request, bytes, bool]]) -> list[bool]:
        if self._lookups:  # politeness_by = ip: the names' addresses first
            await self.policy.keys.prepare(request for request, _, _ in entries)
        seen, push = self._seen, self._push
        added = []
        for request, fingerprint, force in entries:
            key = hash(fingerprint)  # as _key()
            if key in seen:
                if not force:
                    added.append(False)
                    continue
            else:
                seen[key] = None
            push(request)
            added.append(True)
        return added

    async def retry(self, request: Request, delay: float) -> None:
        heapq.heappush(self._delayed, (self.clock() + delay, next(self._seq), request))

    def _queue(self, host: str) -> _HostQueue:
        queue = self._hosts.get(host)
        if queue is None:
            slot = HostSlot(self.policy)
            delay = self._crawl_delays.get(host)
            if delay:
                slot.set_crawl_delay(delay, self.policy)
            queue = self._hosts[host] = _HostQueue(slot, self._sign)
        return queue

    def _push(self, request: Request) -> None:
        host = self._slot_of(request._host or request.host)  # the politeness key
        queue = self._hosts.get(host) or self._queue(host)
        seq = next(self._seq)
        priority = request.priority
        # the entry is the new head when the host had none or it ranks above the old one
        # (later arrivals of the same priority queue behind it; before it, depth first)
        new_head = not queue.count or priority > max(queue.buckets) or (
            self.dfs and priority == max(queue.buckets))
        codec = self._codec
        entry: _Entry | Request = codec.pack(request, seq) if codec is not None else request
        if isinstance(entry, Request):
            entry.compact()
            entry = (seq, entry)
        bucket = queue.buckets.get(priority)
        if bucket is None:
            bucket = queue.buckets[priority] = deque()
        if self.dfs:
            bucket.appendleft(entry)
        else:
            bucket.append(entry)
        queue.count += 1
        self._queued += 1
        # a new head needs a ready-heap entry (the old one goes stale); a host held back by
        # its delay is moved to _sleeping by pop(); a full one returns through done()
        if new_head and queue.slot.active < self.policy.concurrency:
            heapq.heappush(self._ready, ((-priority, self._sign * seq), host))

    def _pop(self) -> Request | None:
        """The best request whose host may start one now, marked started; else None."""
        now = self.clock()
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
            priority, entry = queue.pop()
            slot.start(now, self.policy)
            self._queued -= 1
            self._in_flight += 1
            self._reschedule(host, queue, now)
            if len(entry) == 2:
                request = entry[1]
            else:
                assert self._codec is not None
                request = self._codec.unpack(entry, priority,
                                             None if self._grouped else host)
            request._slot = host
            return request  # type: ignore[no-any-return]
        return None

    async def pop_many(self, n: int) -> list[Request]:
        requests: list[Request] = []
        while len(requests) < n:
            request = self._pop()
            if request is None:
                break
            requests.append(request)
        return requests

    async def done(self, request: Request, *, latency: float | None = None,
                   status: int | None = None, cached: bool = False) -> None:
        now = self.clock()
        host = request._slot or self._slot_of(request.host)
        queue = self._hosts[host]
        queue.slot.finish(now, self.policy, latency, status, cached=cached)
        self._in_flight -= 1
        if queue.slot.active == self.policy.concurrency - 1 or cached:  # ready again?
            self._reschedule(host, queue, now)
        elif not queue.count and queue.slot.idle(now):
            del self._hosts[host]

    async def ack(self, request: Request) -> None:
        return None  # nothing to give back after a crash: the process is the store

    async def ack_many(self, requests: Sequence[Request]) -> None:
        for request in requests:
            await self.ack(request)

    def watch(self, changed: Callable[[], None], stop: Callable[[str], None], *,
              pages: Callable[[], int], items: Callable[[], int]) -> None:
        return None  # nobody else changes it

    async def claim_seeding(self) -> bool:
        claimed, self._seed_claimed = not self._seed_claimed, True
        return claimed  # once: the crawl's one process runs start() once

    async def seeding_done(self) -> None:
        return None

    async def pause_host(self, host: str, seconds: float) -> None:
        self._queue(self._slot_of(host)).slot.pause_until(self.clock() + seconds)

    async def set_crawl_delay(self, host: str, delay: float) -> None:
        host = self._slot_of(host)
        if self._grouped:  # the origins of one key: the slowest one's delay holds for all
            delay = max(delay, self._crawl_delays.get(host, 0.0))
        self._crawl_delays[host] = delay
        self._crawl_delays.move_to_end(host)
        if len(self._crawl_delays) > DELAYS_KEPT:
            self._crawl_delays.popitem(last=False)
        self._queue(host).slot.set_crawl_delay(delay, self.policy)

    async def wakeup_at(self) -> float | None:
        return self._wakeup_at()

    def _wakeup_at(self) -> float | None:
        times = [heap[0][0] for heap in (self._sleeping, self._delayed) if heap]
        return min(times) if times else None

    def host_states(self, hosts: Sequence[str]) -> dict[str, tuple[int, float]]:
        """(requests in flight, current delay in seconds) of each of `hosts` known here."""
        out = {}
        for host in hosts:
            queue = self._hosts.get(self._slot_of(host))
            if queue is not None:
                slot = queue.slot
                out[host] = (slot.active, max(slot.delay, slot.crawl_delay))
        return out

    async def hosts_kept(self) -> int:
        return len(self._hosts)

    async def queued(self) -> int:
        return self._queued + len(self._delayed)

    async def in_flight(self) -> int:
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


def _key(fingerprint: bytes) -> int:
    """A 64-bit hash of a fingerprint, as an int: half the memory of the bytes, computed once
    per bytes object (Python caches it), and stable for the life of the process."""
    return hash(fingerprint)
