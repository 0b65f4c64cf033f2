"""A job directory: every change to the frontier journaled to SQLite, each page's items
written with its completion, so that a crawl resumes exactly once after any stop
(crawler/frontier/jobdir.py holds the store itself); and each page's history, judged again
when a recrawl visits it (crawler/recrawl/)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from crawler.core.ratelimit import HostPolicy
from crawler.exceptions import StartupError
from crawler.frontier.jobdir import Job
from crawler.frontier.journaled import JournaledFrontier
from crawler.frontier.pagerecords import PageRecords
from crawler.http import Request, Response
from crawler.recrawl.feed import ChangeFeed
from crawler.recrawl.history import Change
from crawler.recrawl.visits import Visits
from crawler.settings import Settings
from crawler.storage.base import PageItems, Storage, StorageContext, Task

__all__ = ["JobStorage", "max_wait"]

logger = logging.getLogger(__name__)

_DUE_BATCH = 1_000  # pages queued again at once in continuous mode
_LONGEST_SLEEP = 60.0  # seconds: a continuous crawl looks at its history at least this often


def max_wait(s: Settings) -> float:
    """The longest any wait a job stored may last once restored: a Retry-After pause or a
    backoff (retry_backoff_max), a delay or Crawl-delay (autothrottle_max_delay)."""
    return max(s.retry_backoff_max, s.autothrottle_max_delay, s.download_delay * 1.5, 1.0)


class JobStorage(Storage):
    """Usage: `JobStorage(context)` with `settings.job_dir` set."""

    keeps_history = True
    # what a continuous crawl waits with (wall time: the history outlives the process);
    # tests give a fake clock
    clock: Callable[[], float] = staticmethod(time.time)
    sleep: Callable[[float], Awaitable[None]] = staticmethod(asyncio.sleep)

    def __init__(self, context: StorageContext) -> None:
        s = context.settings
        if s.job_dir is None:
            raise StartupError("a job storage needs the job_dir setting")
        # restart: the job dir's state is forgotten once its lock is taken (--restart)
        self.job = Job(s.job_dir, context.spider, restart=context.restart, stats=context.stats)
        super().__init__(context, JournaledFrontier(
            self.job, context.fingerprint, HostPolicy.from_settings(s), max_wait=max_wait(s),
            dfs=s.crawl_order == "dfs"))
        # each page judged as it is visited (crawler/recrawl/visits.py)
        self.visits = Visits(self.job, s, context.stats, context.fingerprint, next(
            (sink for sink in context.outputs.sinks if isinstance(sink, ChangeFeed)), None),
            clock=lambda: self.clock())
        self.continuous = s.continuous
        self.next_due: float | None = None  # continuous: when the next page is due

    async def prepare(self) -> bool:
        job, stats = self.job, self.context.stats
        await job.open()
        if job.restarted:
            logger.info("the job in %s starts over", job.directory)
        s = self.context.settings
        if job.finished and s.continuous and not s.recrawl:
            job.finished = False  # it goes on: its pages are visited as they fall due
            logger.info("the job in %s goes on: its pages are visited again as they fall "
                        "due", job.directory)
        elif job.finished and s.recrawl:
            queued = await job.new_round()
            logger.info("round %d of the job in %s: %d page(s) to visit again", job.round,
                        job.directory, queued)
        elif job.finished:
            job.restore_stats(stats)
            stats.finish_reason = "job_finished"
            logger.warning("the job in %s has finished (%s): nothing to do; --recrawl visits "
                           "its pages again, --restart runs it again", job.directory,
                           job.meta.get("finish_reason"))
            return False
        elif s.recrawl and job.resumed:
            logger.info("the job in %s has not finished round %d: resuming it (--recrawl "
                        "starts the next round once it has)", job.directory, job.round)
        self.visits.lookups = job.round > 1 or s.continuous
        await job.prepare_outputs(self.context.outputs.sinks)
        if job.resumed:
            job.restore_stats(stats)
        self.resumed = job.resumed
        return True

    async def started(self) -> None:
        await self.job.commit(self.context.stats)  # the outputs' lengths as they start

    def tasks(self, changed: Callable[[], None]) -> list[Task]:
        return [("job-commits", self.job.commit_periodically(self.context.stats))]

    def page(self, request: Request | None) -> PageItems:
        if request is None:  # start()'s items: written as they come, kept by the next commit
            return super().page(request)
        return self.job.page_records()

    async def revisit(self, request: Request) -> None:
        await self.visits.before_fetch(request)

    def judge(self, request: Request, response: Response) -> Change | None:
        return self.visits.judge(request, response)

    async def await_due(self) -> None:
        while True:
            now = self.clock()
            due, self.next_due = await self.job.due(now, _DUE_BATCH)
            if due:
                await self.frontier.add_many([(request, fp, True) for request, fp in due])
                self.context.stats.counters["recrawl/due"] += len(due)
                logger.info("%d page(s) due again: visiting them", len(due))
                return
            wait = _LONGEST_SLEEP if self.next_due is None else \
                min(max(self.next_due - now, 0.0), _LONGEST_SLEEP)
            await self.sleep(wait)

    async def complete(self, request: Request, page: PageItems, keep: bool) -> None:
        assert isinstance(page, PageRecords)
        settled = None if keep else self.visits.settle(request)
        try:
            write = True
            if settled is not None:
                await self.visits.weigh_items(settled, page)
                write = settled.writes_items(self.context.settings.emit_unchanged)
            async with self.job.lock:  # the page's items and its completion in one commit
                if write:
                    await self.write_page(page)
                if settled is not None:
                    await self.visits.record(settled)
                if not keep:
                    await self.frontier.ack(request)
            if write:
                await self.signal_page(request, page)
        finally:
            page.close()

    def fetched(self, request: Request) -> None:
        self.job.fetched(request)

    async def finish(self, finished: Callable[[], Awaitable[bool]]) -> None:
        stats = self.context.stats  # what the last commit missed, and whether it finished
        done = not stats.finish_reason and await finished()
        await self.job.commit(stats, finished=done)

    def seeding_done(self) -> None:
        self.job.seeding_done()

    def seeded(self) -> bool:
        return self.job.seeded

    async def snapshot(self) -> dict[str, Any]:
        state = {"job_dir": str(self.job.directory), "resumed": self.job.resumed,
                 "round": self.job.round}
        if self.continuous:
            state["next_due"] = self.next_due
        return state

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self.job.close()
