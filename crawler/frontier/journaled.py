"""A job directory's frontier: the memory frontier's order and politeness, with the queue on
disk and only a window of it in memory.

Every request that enters (or is held for robots.txt, or waits out a backoff) gets its row
in the job (crawler/frontier/jobdir.py). A request is kept in memory too while its host
has fewer than `HOST_WINDOW` there and the whole window holds fewer than `WINDOW`;
otherwise it waits on disk only, and so do the later requests of that host, so that each
host's requests still come out in order. When a host's window runs low, its next requests
are loaded from disk, best first (priority, then arrival: breadth first); hosts with none
in memory are loaded as the window empties. What a killed run left waits on disk and is
loaded the same way. The seen-set stays in memory: a 64-bit hash per fingerprint (about
60 bytes each).

Within the window, order and per-host politeness are exactly the memory frontier's; a
request of higher priority that arrives while its host has requests on disk waits behind
the host's in-memory window (at most `HOST_WINDOW` requests). Depth first (`dfs`), the
newest requests are loaded from disk first, and the order holds within the window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from crawler.core.ratelimit import HostPolicy, HostSlot
from crawler.frontier.codec import STORE_ID
from crawler.frontier.jobdir import Job
from crawler.frontier.memory import DELAYS_KEPT, MemoryFrontier
from crawler.http import Request

__all__ = ["HOST_WINDOW", "WINDOW", "JournaledFrontier"]

logger = logging.getLogger(__name__)

WINDOW = 20_000  # requests held in memory, all hosts
HOST_WINDOW = 2_000  # ... per host
_LOADS = 4  # hosts loaded from disk at once
_POLL = 0.005  # seconds between dispatcher wake-ups while a load runs


class JournaledFrontier(MemoryFrontier):
    """Usage: `JournaledFrontier(job, fingerprint, HostPolicy.from_settings(settings))`."""

    id_key = STORE_ID  # a queued request's row id, packed with it

    def __init__(self, job: Job, fingerprint: Callable[[Request], bytes],
                 policy: HostPolicy | None = None, *, window: int = WINDOW,
                 host_window: int = HOST_WINDOW, max_wait: float = 3600.0,
                 clock: Callable[[], float] = time.time, dfs: bool = False) -> None:
        # wall time: stored times outlive the process
        super().__init__(policy, clock=clock, dfs=dfs)
        self.job = job
        # the longest a stored time may hold a host or a retry back once restored: a
        # clock set back between runs must not turn a minute's pause into a day's
        self._max_wait = max_wait
        self._changed: Callable[[], None] = lambda: None
        self._fingerprint = fingerprint
        self._window = window
        self._host_window = host_window
        self._on_disk: dict[str, int] = {}  # host -> requests waiting on disk only
        self._disk_total = 0
        self._starving: OrderedDict[str, None] = OrderedDict()  # on disk, none in memory
        self._loading: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self, spider: object | None = None) -> None:
        await super().open(spider)
        seen, waiting, slots = await self.job.restore()
        for fp in seen:
            self._seen[hash(fp)] = None
        now = self.clock()
        for host, record in slots.items():  # a pause or a Crawl-delay outlives the process
            if record.get("crawl_delay") and len(self._crawl_delays) < DELAYS_KEPT:
                self._crawl_delays[host] = record["crawl_delay"]
            if record.get("next_start", 0.0) > now:
                record = {**record, "next_start": min(record["next_start"],
                                                      now + self._max_wait)}
                self._queue(host).slot = HostSlot.from_record(record, self.policy)
        for host, count in waiting.items():
            self._on_disk[host] = count
            self._disk_total += count
            self._starving[host] = None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().close()

    async def queued(self) -> int:
        return await super().queued() + self._disk_total

    def _in_memory(self, host: str) -> int:
        queue = self._hosts.get(host)
        return queue.count if queue is not None else 0

    async def add_many(self, entries: Sequence[tuple[Request, bytes, bool]]) -> list[bool]:
        if self._lookups:  # politeness_by = ip: the names' addresses first
            await self.policy.keys.prepare(request for request, _, _ in entries)
        # rows first (an unstorable request raises here, before anything is queued), and
        # only for what may be new: most links are duplicates
        job, seen = self.job, self._seen
        keys = [hash(fp) for _, fp, _ in entries]  # as MemoryFrontier's seen-set keys
        rows = [job.row(request) if force or key not in seen else None
                for (request, _, force), key in zip(entries, keys, strict=True)]
        added = []
        for (request, fp, force), key, row in zip(entries, keys, rows, strict=True):
            new = key not in seen
            if not new and not force:
                added.append(False)
                continue
            seen[key] = None
            assert row is not None
            host = request._slot = self._slot_of(request._host or request.host)
            if self._on_disk.get(host) or self._queued >= self._window \
                    or self._in_memory(host) >= self._host_window:
                job.store(row, request, fp if new else None, waiting=True)
                self._on_disk[host] = self._on_disk.get(host, 0) + 1
                self._disk_total += 1
                if not self._in_memory(host):
                    self._starving[host] = None
            else:
                job.store(row, request, fp if new else None)
                self._push(request)
            added.append(True)
        return added

    def _pop(self) -> Request | None:
        request = super()._pop()
        if request is not None:
            host = request._slot
            assert host is not None
            if self._on_disk.get(host) and self._in_memory(host) < self._host_window // 2:
                self._load(host)
        if self._starving and len(self._loading) < _LOADS and self._queued < self._window // 2:
            for host in list(self._starving)[:_LOADS - len(self._loading)]:
                self._load(host)
        return request

    async def wakeup_at(self) -> float | None:
        at = self._wakeup_at()
        if self._loading or (self._starving and self._queued < self._window // 2):
            soon = self.clock() + _POLL  # a load will bring work
            return soon if at is None else min(at, soon)
        return at

    def _load(self, host: str) -> None:
        if host in self._loading:
            return
        self._loading.add(host)
        self._starving.pop(host, None)
        task = asyncio.create_task(self._loaded(host), name=f"load {host}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _loaded(self, host: str) -> None:
        try:
            room = max(1, self._host_window - self._in_memory(host))
            requests, taken = await self.job.load(host, room, newest_first=self.dfs)
            if self._lookups:
                await self.policy.keys.prepare(request for request, _ in requests)
            now = self.clock()
            # depth first, the newest come first from disk and each push goes before the
            # others: pushed oldest first, the newest ends at the head
            for request, not_before in reversed(requests) if self.dfs else requests:
                if not_before is not None and not_before > now:
                    await super().retry(request, min(not_before - now, self._max_wait))
                else:
                    self._push(request)
            on_disk = self._on_disk.get(host, 0)
            self._disk_total -= min(taken, on_disk)
            if on_disk > taken:
                self._on_disk[host] = on_disk - taken
                if not taken:  # stored after the commit it waited for: next time
                    self._starving[host] = None
            else:
                self._on_disk.pop(host, None)
        except Exception:
            # this run gives up on them (else it would wait for them forever); they stay
            # on disk, and the job is not marked finished while they are there
            lost = self._on_disk.pop(host, 0)
            self._disk_total -= lost
            self.job.stats.errors["job_load"] += lost
            logger.exception("loading %d request(s) of %s from the job failed: left for "
                             "the next run", lost, host)
        finally:
            self._loading.discard(host)
            self._changed()  # what is pending changed: the crawl may be over (none loaded)

    def watch(self, changed: Callable[[], None], stop: Callable[[str], None], *,
              pages: Callable[[], int], items: Callable[[], int]) -> None:
        """`changed()` after each load from disk: a load whose rows could not be restored
        leaves nothing to fetch, and nobody else would ask whether the crawl is over."""
        self._changed = changed

    async def pause_host(self, host: str, seconds: float) -> None:
        await super().pause_host(host, seconds)
        self._keep_slot(self._slot_of(host))

    async def set_crawl_delay(self, host: str, delay: float) -> None:
        await super().set_crawl_delay(host, delay)
        self._keep_slot(self._slot_of(host))

    def _keep_slot(self, host: str) -> None:
        self.job.host(host, self._hosts[host].slot.record())

    async def ack(self, request: Request) -> None:
        self.job.complete(request)  # its row goes with the next commit

    async def mark_seen(self, fingerprint: bytes, request: Request | None = None) -> bool:
        new = await super().mark_seen(fingerprint)
        if request is not None and (new or request.dont_filter):
            self.job.added(request, fingerprint if new else None)
        elif new:
            self.job.seen(fingerprint)
        return new

    async def retry(self, request: Request, delay: float) -> None:
        self.job.retried(request, self.clock() + delay)
        await super().retry(request, delay)
