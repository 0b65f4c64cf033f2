"""The memory frontier, writing every change through a job directory (crawler/jobs.py).

Requests are queued and chosen exactly as by `MemoryFrontier` (per-host politeness,
priorities, breadth-first order); each request that enters, is held for robots.txt, or
waits out a backoff also gets its row in the job, and `open()` queues again what the last
run left: every stored request (in flight at a kill included) and the seen fingerprints.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from crawler.frontier.memory import MemoryFrontier
from crawler.http import Request
from crawler.jobs import Job
from crawler.ratelimit import HostPolicy

__all__ = ["JournaledFrontier"]


class JournaledFrontier(MemoryFrontier):
    """Usage: `JournaledFrontier(job, fingerprint, HostPolicy.from_settings(settings))`."""

    def __init__(self, job: Job, fingerprint: Callable[[Request], bytes],
                 policy: HostPolicy | None = None) -> None:
        super().__init__(policy)
        self.job = job
        self._fingerprint = fingerprint

    async def open(self, spider: object | None = None) -> None:
        await super().open(spider)
        seen, requests = await self.job.restore()
        for fp in seen:
            await super().mark_seen(fp)
        loop_now, wall_now = asyncio.get_running_loop().time(), time.time()
        for request, not_before in requests:
            if not_before is not None and not_before > wall_now:
                await super().retry(request, loop_now + (not_before - wall_now))
            else:
                await super().add_many([(request, self._fingerprint(request), True)])

    async def add_many(self, entries: Sequence[tuple[Request, bytes, bool]]) -> list[bool]:
        # rows first (an unstorable request raises here, before anything is queued), and
        # only for what may be new: most links are duplicates
        job, seen = self.job, self._seen
        rows = [job.row(request) if force or hash(fp) not in seen else None
                for request, fp, force in entries]
        added = await super().add_many(entries)
        for (_, fp, _), row, ok in zip(entries, rows, added, strict=True):
            if ok and row is not None:
                job.store(row, fp)
        return added

    async def mark_seen(self, fingerprint: bytes, request: Request | None = None) -> bool:
        new = await super().mark_seen(fingerprint)
        if request is not None and (new or request.dont_filter):
            self.job.added(request, fingerprint if new else None)
        elif new:
            self.job.seen(fingerprint)
        return new

    async def retry(self, request: Request, not_before: float) -> None:
        self.job.retried(request, not_before - asyncio.get_running_loop().time())
        await super().retry(request, not_before)
