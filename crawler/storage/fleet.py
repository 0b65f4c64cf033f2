"""A fleet: one Redis frontier shared by every process of a crawl. A page's items are
written once it is complete and while this process still holds its lease, then the page
is acknowledged, so that a process killed at any moment loses nothing and duplicates
nothing (crawler/frontier/redisstore.py holds the store itself).

The acknowledgement is the fence: it takes only the leases this worker still holds, and
says which it no longer did. A worker that stalled (SIGSTOP, a frozen VM) past the
fleet's patience between writing a batch and acknowledging it has written pages that
another worker redoes; it cuts its files back to where they stood before the batch and
writes again only the pages it acknowledged. Every write to the outputs goes through one
lock, so that nothing else lands in that stretch. Only outputs that can be cut back
(files) are repaired; with another (standard output, a sink of your own) the lost pages'
items stay and are counted (`frontier/lease_lost_after_write`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from crawler.core.ratelimit import HostPolicy
from crawler.core.robots import SharedRules
from crawler.exceptions import FrontierUnavailable
from crawler.frontier.codec import store_id
from crawler.frontier.fleetstatus import read_status
from crawler.frontier.pagerecords import PageRecords
from crawler.frontier.redisstore import RedisFrontier
from crawler.http import Request
from crawler.outputs.items import Record
from crawler.redact import redact
from crawler.storage.base import PageItems, Storage, StorageContext, Task, WriteThrough

__all__ = ["FleetStorage"]

logger = logging.getLogger(__name__)

_ACK_EVERY = 0.5  # seconds between acknowledgements (after a flush)
_STATUS_EVERY = 2.0  # seconds between reads of the fleet's status


class FleetStorage(Storage):
    """Usage: `FleetStorage(context, "redis://127.0.0.1:6379/0")`."""

    robots_at_fetch = True  # one held here would be lost with this process, unseen by others
    frontier: RedisFrontier

    def __init__(self, context: StorageContext, url: str) -> None:
        s, spider = context.settings, context.spider
        if s.job_dir is not None:
            from crawler.exceptions import StartupError

            raise StartupError("a shared frontier (the frontier setting) keeps the crawl's "
                               "state itself: give no job dir and no other frontier")
        super().__init__(context, RedisFrontier(
            url, spider=spider.name, job=s.frontier_job, policy=HostPolicy.from_settings(s),
            worker=s.worker_id, lease=s.frontier_lease, max_pages=s.max_pages,
            max_items=s.max_items, max_duration=s.max_duration, outage=s.frontier_outage,
            stats=context.stats, dfs=s.crawl_order == "dfs"))
        self._url = url
        # pages complete, their items not yet written (write_acknowledged())
        self._acks: list[tuple[Request, PageRecords]] = []
        self._ack_soon = asyncio.Event()  # this worker went idle: acknowledge now
        self._writing = asyncio.Lock()  # one writer of the outputs: a rewind undoes only its own
        self._batches: set[asyncio.Task[bool]] = set()  # written and being acknowledged
        self._status: dict[str, Any] = {}
        self._status_at = -1e9

    @property
    def shared_rules(self) -> SharedRules:
        return self.frontier.shared_rules

    def tasks(self, changed: Callable[[], None]) -> list[Task]:
        return [("acks", self._acking(changed))]

    def page(self, request: Request | None) -> PageItems:
        if request is None:  # start()'s own items: written as they come, under the lock
            return _Locked(WriteThrough(self.context, request), self._writing)
        return PageRecords(None)

    async def complete(self, request: Request, page: PageItems, keep: bool) -> None:
        assert isinstance(page, PageRecords)
        if keep:  # a retry or a redirect goes on under the same lease
            page.close()
        else:
            self._acks.append((request, page))  # written and acknowledged together

    def idle(self) -> None:
        if self._acks:
            self._ack_soon.set()  # what was written is acknowledged now

    async def finish(self, finished: Callable[[], Awaitable[bool]]) -> None:
        await self._settled()  # a batch the stop caught half done ends first
        await self.write_acknowledged()  # what the last flush left unacknowledged

    async def close(self) -> None:
        try:
            await self._settled()
        except Exception:  # the crawl stopped before finish() (which would have raised it)
            logger.exception("writing and acknowledging completed pages failed")
        finally:
            for batch in self._batches:  # only when this wait was cancelled: stop at once
                batch.cancel()
        try:
            await super().close()
        finally:
            for _, records in self._acks:
                records.close()
            self._acks = []

    async def _acking(self, changed: Callable[[], None]) -> None:
        """Acknowledge written pages every _ACK_EVERY, and at once when this worker has
        nothing in progress (the fleet's end waits for the last acknowledgements)."""
        soon = self._ack_soon
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(soon.wait(), _ACK_EVERY)
            soon.clear()
            if await self.write_acknowledged():
                changed()

    async def write_acknowledged(self) -> bool:
        """Write the pages completed since the last call whose leases this worker still
        holds (the others are dropped: another worker redoes them), flush the outputs,
        then acknowledge them, so that a page is acknowledged only once its items are in
        the files (a worker killed before that leaves them leased: another worker redoes
        them); pages whose leases were lost meanwhile are taken back out of the files
        (`_take_back`). Nothing is acknowledged when an output failed. True when some
        were."""
        if not self._acks:
            return False
        pending, self._acks = self._acks, []
        batch = asyncio.create_task(self._batch(pending), name="fleet-acks")
        self._batches.add(batch)
        batch.add_done_callback(self._batches.discard)
        # a stop cancels the caller (the acks task), never a batch between its write and
        # its acknowledgement: written and not acknowledged, its pages would be redone
        return await asyncio.shield(batch)

    async def _batch(self, pending: list[tuple[Request, PageRecords]]) -> bool:
        try:
            async with self._writing:
                return await self._write_and_ack(pending)
        finally:
            for _, records in pending:
                records.close()

    async def _settled(self) -> None:
        """Wait for the batches under way (their callers cancelled); their errors raised."""
        if not self._batches:
            return
        done, _ = await asyncio.wait(set(self._batches))
        for batch in done:
            error = None if batch.cancelled() else batch.exception()
            if error is not None:
                raise error

    async def _write_and_ack(self, pending: list[tuple[Request, PageRecords]]) -> bool:
        outputs = self.context.outputs
        await outputs.flush()
        marks = outputs.marks()  # where a rewind goes back to
        held = await self._held(pending)
        for _, records in held:
            await self.write_page(records)
        await outputs.flush()
        if outputs.failed:
            return False
        try:
            lost = await self.frontier.ack_held([request for request, _ in held])
        except Exception as exc:  # the frontier is gone: their leases expire, others redo them
            logger.warning("%d page(s) could not be acknowledged (%s): another worker will "
                           "fetch them again", len(held), redact(str(exc)))
            self.context.stats.errors["unacknowledged"] += len(held)
            return False
        if lost:
            held = await self._take_back(held, lost, marks)
        for request, records in held:
            await self.signal_page(request, records)
        return True

    async def _take_back(self, held: list[tuple[Request, PageRecords]], lost: set[str],
                         marks: list[object] | None) -> list[tuple[Request, PageRecords]]:
        """Some of `held` lost their leases after `_held()` said otherwise (this worker
        stalled in between): cut the outputs back to `marks` and write again only the
        pages acknowledged. The acknowledged ones."""
        kept = [(r, p) for r, p in held if str(store_id(r)) not in lost]
        gone = [(r, p) for r, p in held if str(store_id(r)) in lost]
        if marks is None:  # an output that cannot be cut back: the items stay, twice
            self.frontier.written_twice(len(gone))
            return kept
        outputs, stats = self.context.outputs, self.context.stats
        await outputs.rewind(marks)
        stats.items -= sum(len(records) for _, records in held)
        for _, records in kept:
            await self.write_page(records)
        await outputs.flush()
        for request, records in gone:
            self.frontier.lease_lost(request, len(records))
        return kept

    async def _held(self, pending: list[tuple[Request, PageRecords]],
                    ) -> list[tuple[Request, PageRecords]]:
        """The pages whose leases this worker still holds: known without asking while its
        heartbeat is fresh, else asked (one script); a lost one's items are dropped."""
        frontier = self.frontier
        unsure = [(r, p) for r, p in pending
                  if store_id(r) is not None and not frontier.lease_fresh(r)]
        if not unsure:
            return pending
        try:
            answers = await frontier.owns([r for r, _ in unsure])
        except FrontierUnavailable:
            answers = [False] * len(unsure)  # stopping: they stay leased, and are redone
        lost = {id(r) for (r, p), held in zip(unsure, answers, strict=True) if not held}
        for request, records in unsure:
            if id(request) in lost and not self.context.outputs.failed:
                frontier.lease_lost(request, len(records))
        return [(r, p) for r, p in pending if id(r) not in lost]

    async def snapshot(self) -> dict[str, Any]:
        """The fleet's view of every worker, read at most every 2 s."""
        if time.monotonic() - self._status_at >= _STATUS_EVERY:
            self._status_at = time.monotonic()
            s = self.context.settings
            try:
                state = await read_status(self._url, self.context.spider.name, s.frontier_job)
                self._status = {"counts": state["counts"], "leased": state["leased"],
                                "seen": state["seen"], "workers": state["workers"]}
            except Exception as exc:  # the frontier rides out outages; the page says so
                self._status = {"error": f"{type(exc).__name__}: {exc}"}
        return {"fleet": self._status}


class _Locked:
    """A page's items written as they come, each under the fleet's output lock."""

    __slots__ = ("_lock", "_page")

    def __init__(self, page: WriteThrough, lock: asyncio.Lock) -> None:
        self._page, self._lock = page, lock

    def __len__(self) -> int:
        return len(self._page)

    async def add(self, record: Record, item: Any) -> None:
        async with self._lock:
            await self._page.add(record, item)

    def close(self) -> None:
        self._page.close()
