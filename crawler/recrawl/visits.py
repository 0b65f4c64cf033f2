"""A job's pages judged as they are visited: what a request is sent with (conditional
headers from its page's history), what its response shows (crawler/recrawl/history.py's
`judge`), and, when the page completes, what goes to the history and the change feed.

The job's storage (crawler/storage/jobdir.py) owns one `Visits` and calls it at each step
of a request: `before_fetch`, `judge` (before the callback: an unchanged page's is not
called), `settle` (when its page completes), then `weigh_items` and `record` under the
job's lock with the page's items. Entries are kept by the request's row id, so a retry or
a redirect (which keep the row) is one visit; they go when the page completes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crawler.frontier.codec import store_id
from crawler.middlewares.freshness import ask_if_changed
from crawler.recrawl.feed import ChangeFeed, change_record
from crawler.recrawl.history import Change, Visit, judge, next_interval
from crawler.redact import redact

if TYPE_CHECKING:
    from crawler.frontier.jobdir import Job
    from crawler.frontier.pagerecords import PageRecords
    from crawler.http import Request, Response
    from crawler.settings import Settings
    from crawler.stats import Stats

__all__ = ["Settled", "Visits"]

_Looked = tuple[str, Visit | None, str]  # fingerprint (hex), the page's record, its URL


@dataclass(slots=True)
class Settled:
    """What one completed page's visit comes to."""

    change: Change | None  # None: no judgement (it failed)
    visit: Visit | None  # its new record (None: forget it, or keep it as it was)
    fp: str
    url: str
    previous: Visit | None
    gone: list[tuple[str, str]]  # pages a redirect away showed gone: (fingerprint, URL)

    def writes_items(self, emit_unchanged: bool) -> bool:
        """Whether the page's items go to the outputs (not when judged unchanged)."""
        return self.change is not Change.UNCHANGED or emit_unchanged


class Visits:
    """Usage: see the module docstring; `lookups`: the pages have a history to look up (a
    recrawl round or a continuous crawl; a first round judges every page new)."""

    def __init__(self, job: Job, settings: Settings, stats: Stats,
                 fingerprint: Callable[[Request], bytes], feed: ChangeFeed | None,
                 clock: Callable[[], float]) -> None:
        self._job = job
        self._settings = settings
        self._stats = stats
        self._fingerprint = fingerprint
        self._feed = feed
        self._clock = clock
        self.lookups = False
        self._looked: dict[int, _Looked] = {}
        self._verdicts: dict[int, tuple[Change, Visit | None]] = {}
        self._gone: dict[int, list[tuple[str, str]]] = {}

    async def before_fetch(self, request: Request) -> None:
        """Look the page up; send the validators it had (not with `emit_unchanged`: the
        body is needed). A request redirected away from a page the job knew shows it gone."""
        rid = store_id(request)
        if rid is None:
            return
        fp = self._fingerprint(request).hex()
        earlier = self._looked.get(rid)
        if earlier is not None and earlier[0] != fp and earlier[1] is not None and \
                request.meta.get("redirect_urls"):
            self._gone.setdefault(rid, []).append((earlier[0], earlier[2]))
        previous = await self._job.visit_of(fp) if self.lookups else None
        if previous is None and earlier is not None and earlier[0] == fp:
            previous = earlier[1]  # a retry of the same page
        # the URL the history and the change feed name: no credential in it
        self._looked[rid] = (fp, previous, redact(request.url))
        if previous is not None and not self._settings.emit_unchanged and \
                request.method == "GET":
            ask_if_changed(request, previous.etag, previous.modified)

    def judge(self, request: Request, response: Response) -> Change | None:
        """What `response` shows of its page, kept until the page completes."""
        rid = store_id(request)
        looked = self._looked.get(rid) if rid is not None else None
        if looked is None:
            return None
        fp, previous, url = looked
        change, fields = judge(previous, response, self._clock(), self._settings)
        if change is None:
            return None
        visit = None
        if fields is not None:
            try:
                data = self._job.history_data(request)
            except ValueError:  # (it was stored as a row: not expected)
                data = None
            if data is not None:
                visit = Visit(fp, url, request.host, request.priority, data, **fields)
        self._verdicts[rid] = (change, visit)
        return change

    def settle(self, request: Request) -> Settled | None:
        """The page of `request` completed: its visit's outcome (None: nothing to keep)."""
        rid = store_id(request)
        if rid is None:
            return None
        looked = self._looked.pop(rid, None)
        verdict = self._verdicts.pop(rid, None)
        gone = self._gone.pop(rid, [])
        if looked is None:
            return Settled(None, None, "", "", None, gone) if gone else None
        fp, previous, url = looked
        if verdict is not None:
            return Settled(verdict[0], verdict[1], fp, url, previous, gone)
        if previous is None and not gone:
            return None
        # visited without a judgement (it failed): its record as it was, due an interval on
        retimed = previous._replace(fetched=self._clock()) if previous is not None else None
        return Settled(None, retimed, fp, url, previous, gone)

    async def weigh_items(self, settled: Settled, page: PageRecords) -> None:
        """`recrawl_digest = "items"`: a page found new or changed is judged by a digest of
        its items (the same items as last time: unchanged)."""
        if self._settings.recrawl_digest != "items" or settled.visit is None or \
                settled.change not in (Change.NEW, Change.CHANGED):
            return
        digest = hashlib.blake2b(digest_size=16)
        async for record, _ in page.replay():  # held in memory, or spilled
            digest.update(record.json + b"\n")
        settled.visit = settled.visit._replace(items=digest.hexdigest())
        previous = settled.previous
        if settled.change is Change.CHANGED and previous is not None and \
                previous.items == settled.visit.items:
            settled.change = Change.UNCHANGED
            settled.visit = settled.visit._replace(
                changed=previous.changed,
                interval=next_interval(previous.interval, False, self._settings))

    async def record(self, settled: Settled) -> None:
        """The visit into the history and the change feed (call under the job's lock, with
        the page's items)."""
        job, counters = self._job, self._stats.counters
        changes = []
        for fp, url in settled.gone:
            job.forget(fp)
            changes.append((url, Change.GONE))
        if settled.visit is not None:
            job.remember(settled.visit)
        elif settled.change is Change.GONE:
            job.forget(settled.fp)
        if settled.change is not None:
            changes.append((settled.url, settled.change))
        now = self._clock()
        for url, change in changes:
            counters[f"recrawl/{change}"] += 1
            if self._feed is not None:
                await self._feed.write(change_record(url, change, now))
