"""A job directory: every change to the frontier journaled to SQLite, each page's items
written with its completion, so that a crawl resumes exactly once after any stop
(crawler/frontier/jobdir.py holds the store itself)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from crawler.core.ratelimit import HostPolicy
from crawler.exceptions import StartupError
from crawler.frontier.jobdir import Job
from crawler.frontier.journaled import JournaledFrontier
from crawler.frontier.pagerecords import PageRecords
from crawler.http import Request
from crawler.settings import Settings
from crawler.storage.base import PageItems, Storage, StorageContext, Task

__all__ = ["JobStorage", "max_wait"]

logger = logging.getLogger(__name__)


def max_wait(s: Settings) -> float:
    """The longest any wait a job stored may last once restored: a Retry-After pause or a
    backoff (retry_backoff_max), a delay or Crawl-delay (autothrottle_max_delay)."""
    return max(s.retry_backoff_max, s.autothrottle_max_delay, s.download_delay * 1.5, 1.0)


class JobStorage(Storage):
    """Usage: `JobStorage(context)` with `settings.job_dir` set."""

    def __init__(self, context: StorageContext) -> None:
        s = context.settings
        if s.job_dir is None:
            raise StartupError("a job storage needs the job_dir setting")
        # restart: the job dir's state is forgotten once its lock is taken (--restart)
        self.job = Job(s.job_dir, context.spider, restart=context.restart, stats=context.stats)
        super().__init__(context, JournaledFrontier(
            self.job, context.fingerprint, HostPolicy.from_settings(s), max_wait=max_wait(s),
            dfs=s.crawl_order == "dfs"))

    async def prepare(self) -> bool:
        job, stats = self.job, self.context.stats
        await job.open()
        if job.restarted:
            logger.info("the job in %s starts over", job.directory)
        if job.finished:
            job.restore_stats(stats)
            stats.finish_reason = "job_finished"
            logger.warning("the job in %s has finished (%s): nothing to do; --restart runs it "
                           "again", job.directory, job.meta.get("finish_reason"))
            return False
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

    async def complete(self, request: Request, page: PageItems, keep: bool) -> None:
        assert isinstance(page, PageRecords)
        try:
            async with self.job.lock:  # the page's items and its completion in one commit
                await self.write_page(page)
                if not keep:
                    await self.frontier.ack(request)
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
        return {"job_dir": str(self.job.directory), "resumed": self.job.resumed}

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self.job.close()
