"""A job directory: every change to the frontier journaled to SQLite, each page's items
written with its completion, so that a crawl resumes exactly once after any stop
(crawler/frontier/jobdir.py holds the store itself); and each page's history, judged again
when a recrawl visits it (crawler/recrawl/)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from multidict import CIMultiDict

from crawler.core.ratelimit import HostPolicy
from crawler.exceptions import StartupError
from crawler.frontier.codec import store_id
from crawler.frontier.jobdir import Job
from crawler.frontier.journaled import JournaledFrontier
from crawler.frontier.pagerecords import PageRecords
from crawler.http import Request, Response
from crawler.recrawl.feed import ChangeFeed, change_record
from crawler.recrawl.history import Change, Visit, conditional_headers, judge, next_interval
from crawler.redact import redact
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
        # a request's look at the history (row id -> fingerprint, the page's record, the
        # URL), its judgement (-> change, new record), pages a redirect showed gone
        self._looked: dict[int, tuple[str, Visit | None, str]] = {}
        self._verdicts: dict[int, tuple[Change, Visit | None, str, str]] = {}
        self._gone: dict[int, list[tuple[str, str]]] = {}
        self._feed = next((sink for sink in context.outputs.sinks
                           if isinstance(sink, ChangeFeed)), None)
        self._lookups = False  # a recrawl: the pages have a history to look up
        self._items_digest = s.recrawl_digest == "items"
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
        self._lookups = job.round > 1 or s.continuous
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
        rid = store_id(request)
        if rid is None:
            return
        fp = self.context.fingerprint(request).hex()
        earlier = self._looked.get(rid)
        if earlier is not None and earlier[0] != fp and earlier[1] is not None and \
                request.meta.get("redirect_urls"):  # the page it came from redirects away
            self._gone.setdefault(rid, []).append((earlier[0], earlier[2]))
        previous = await self.job.visit_of(fp) if self._lookups else None
        if previous is None and earlier is not None and earlier[0] == fp:
            previous = earlier[1]  # a retry of the same page
        # the URL the history and the change feed name: no credential in it
        self._looked[rid] = (fp, previous, redact(request.url))
        if previous is not None and not self.context.settings.emit_unchanged and \
                request.method == "GET":
            headers = conditional_headers(previous)
            if headers:
                if request.headers is None:
                    request.headers = CIMultiDict()
                request.headers.update(headers)

    def judge(self, request: Request, response: Response) -> Change | None:
        rid = store_id(request)
        looked = self._looked.get(rid) if rid is not None else None
        if looked is None:
            return None
        fp, previous, url = looked
        change, fields = judge(previous, response, self.clock(), self.context.settings)
        if change is None:
            return None
        visit = None
        if fields is not None:
            try:
                data = self.job.history_data(request)
            except ValueError:  # (it was stored as a row: not expected)
                data = None
            if data is not None:
                visit = Visit(fp, url, request.host, request.priority, data, **fields)
        self._verdicts[rid] = (change, visit, fp, url)
        return change

    async def _by_items(self, verdict: tuple[Change, Visit | None, str, str],
                        looked: tuple[str, Visit | None, str] | None, page: PageRecords,
                        ) -> tuple[Change, Visit | None, str, str]:
        """recrawl_digest = "items": a page whose body changed, judged by its items."""
        change, visit, fp, url = verdict
        assert visit is not None
        digest = hashlib.blake2b(digest_size=16)
        held = page.in_memory()
        if held is not None:
            for record, _ in held:
                digest.update(record.json + b"\n")
        else:
            async for record, _ in page.replay():
                digest.update(record.json + b"\n")
        visit = visit._replace(items=digest.hexdigest())
        previous = looked[1] if looked is not None else None
        if change is Change.CHANGED and previous is not None and previous.items == visit.items:
            s = self.context.settings
            return Change.UNCHANGED, visit._replace(
                changed=previous.changed,
                interval=next_interval(previous.interval, False, s)), fp, url
        return change, visit, fp, url

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

    async def _record(self, verdict: tuple[Change, Visit | None, str, str] | None,
                      gone: list[tuple[str, str]] | None) -> None:
        """A page's judgement into its history and the change feed (under the job's lock,
        with the page's items)."""
        now = self.clock()
        changes = []
        for fp, url in gone or ():
            self.job.forget(fp)
            self.context.stats.counters[f"recrawl/{Change.GONE}"] += 1
            changes.append((url, Change.GONE))
        if verdict is not None:
            change, visit, fp, url = verdict
            if visit is not None:
                self.job.remember(visit)
            elif change is Change.GONE:
                self.job.forget(fp)
            changes.append((url, change))
            self.context.stats.counters[f"recrawl/{change}"] += 1
        if self._feed is not None:
            for url, change in changes:
                await self._feed.write(change_record(url, change, now))

    async def complete(self, request: Request, page: PageItems, keep: bool) -> None:
        assert isinstance(page, PageRecords)
        verdict = gone = retimed = looked = None
        rid = store_id(request)
        if not keep and rid is not None:
            looked = self._looked.pop(rid, None)
            verdict = self._verdicts.pop(rid, None)
            gone = self._gone.pop(rid, None)
            if verdict is None and looked is not None and looked[1] is not None:
                # visited without a judgement (it failed): due again an interval later
                retimed = looked[1]._replace(fetched=self.clock())
        try:
            if verdict is not None and verdict[1] is not None and self._items_digest and \
                    verdict[0] in (Change.NEW, Change.CHANGED):
                verdict = await self._by_items(verdict, looked, page)
            # a page judged unchanged by its items: they are not written again
            write = verdict is None or verdict[0] != Change.UNCHANGED or \
                self.context.settings.emit_unchanged
            async with self.job.lock:  # the page's items and its completion in one commit
                if write:
                    await self.write_page(page)
                if verdict is not None or gone:
                    await self._record(verdict, gone)
                if retimed is not None:
                    self.job.remember(retimed)
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
