"""Job directories: a crawl's state in SQLite (`--job-dir DIR`), so that running the same
command again resumes it after any stop, `kill -9` included, with each page's items in
every file output exactly once.

The guarantee, by construction:

1. A request gets a row (its data as JSON, callbacks by name) when it enters the frontier,
   or is held for its host's robots.txt. A retry or a redirect carries its row's id and
   updates the row; the row is deleted only when the request is complete: its callback or
   errback has ended, or it failed or was refused for good.
2. A page's items do not reach the outputs while its callback runs: they are kept with the
   page, and when it is complete they are appended to the outputs' buffers and the row's
   deletion is noted, together, under one lock.
3. A commit (soon after pages complete, at most `_COMMIT_EVERY` seconds apart, and at
   the end) takes, under that lock, the notes and each output's buffer, handing the
   buffer over for writing after every batch taken before it and before any taken later
   (crawler/outputs/files.py `cut`); the length each file has at the end of that batch is one
   at which it is whole (whole lines, a closed JSON array) and holds exactly the records
   of the pages completed before the cut. Then it stores, in one SQLite transaction, the
   new rows and seen fingerprints, the deletions, those lengths with a digest of the
   bytes just before each, the stats as of the cut and `spider.state`.
4. On resume every output file is checked first (its stored length within it, the digest
   of the bytes before that length unchanged: a file edited since is refused, one line,
   before any file is touched), then each is cut back to its stored length: what lies
   beyond came from pages whose completion was not stored. Every row still there (queued,
   waiting out a backoff, in flight at the kill) is queued again, and those pages are
   fetched again; the `pages` count stored with a commit leaves out pages whose request
   was not settled by it, so that a page fetched again is counted once.

So the items in a file are exactly those of the completed rows, whenever the process
died: none lost, none twice. Fetches may repeat (a page in flight is fetched again);
outputs do not. A page's records are held in bounded memory however many its callback
yields (crawler/frontier/pagerecords.py spills the rest to the job dir). Limits: only file
outputs can be cut back, so standard output and other sinks are refused with a job dir
(except idempotent ones: upserts); items that start() yields itself (not a callback's)
are written as they come. start() runs again on every resume: requests it yields that the
job has seen are skipped (`dont_filter` ones too), so a start URL added since is crawled
and the others are not fetched again; after a start() that had run to its end, the items
it yields are skipped as well.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import fcntl
import logging
import os
import sqlite3
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson

from crawler.exceptions import JobFailed, StartupError
from crawler.frontier import sqlitedb
from crawler.frontier.codec import STORE_ID, RequestCodec, store_id
from crawler.frontier.joboutputs import cut_back, tail_digest
from crawler.frontier.pagerecords import PageRecords
from crawler.http import Request
from crawler.middlewares.freshness import CONDITIONAL_HEADERS
from crawler.outputs.sinks import Sink
from crawler.recrawl.history import Visit
from crawler.stats import Stats
from crawler.threads import OrderedThread

__all__ = ["JOB_FILE", "Job"]

logger = logging.getLogger(__name__)

JOB_FILE = "job.sqlite3"
_COMMIT_EVERY = 0.25  # seconds at most between commits
# after a page completes, the next commit waits this long for others to complete with it:
# a kill redoes about what was in flight plus what completed in this time and a commit's
_COMMIT_GAP = 0.01
_IN_FLIGHT = 2  # commits handed to the job's thread and not yet stored, at most
_UNRESTORABLE_LOGGED = 5  # stored requests that cannot be restored named in the log
_SCHEMA = """
CREATE TABLE IF NOT EXISTS job (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, data TEXT NOT NULL,
                                     not_before REAL, host TEXT NOT NULL,
                                     priority INTEGER NOT NULL, waiting INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS waiting_by_host ON requests (host, priority DESC, id)
    WHERE waiting = 1;
-- a commit's new fingerprints of one size, end to end: the frontier's memory decides what
-- is new, so the table is only appended to, and only read on resume
CREATE TABLE IF NOT EXISTS seen (size INTEGER NOT NULL, fps BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outputs (name TEXT PRIMARY KEY, length INTEGER NOT NULL,
                                    tail TEXT);
CREATE TABLE IF NOT EXISTS hosts (host TEXT PRIMARY KEY, slot TEXT NOT NULL);
-- every page fetched, as crawler/recrawl/history.py's Visit: what a recrawl revisits
CREATE TABLE IF NOT EXISTS history (fp TEXT PRIMARY KEY, url TEXT NOT NULL,
                                    host TEXT NOT NULL, priority INTEGER NOT NULL,
                                    data TEXT NOT NULL, etag TEXT, modified TEXT, digest TEXT,
                                    fetched REAL NOT NULL, changed REAL NOT NULL,
                                    interval REAL NOT NULL, items TEXT,
                                    queued INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS due ON history (fetched + interval) WHERE queued = 0;
"""
_SCHEMA_VERSION = "2"
# id, data, not_before, host, priority, waiting: as inserted
_Row = tuple[int, str, float | None, str, int, int]
# A commit is a few statements, whatever its size: rows go in as one JSON array each.
# executemany() would release and take back the GIL around every row's step, and with
# the event loop busy each taking back waits for it (up to sys.getswitchinterval()): a
# commit of 7,000 rows then takes seconds and slows the loop by as many forced switches.
_INSERT_ROWS = ("INSERT OR REPLACE INTO requests SELECT " + ", ".join(
    f"json_extract(value, '$[{i}]')" for i in range(6)) + " FROM json_each(?)")
_IDS = "(SELECT value FROM json_each(?))"
_INSERT_VISITS = ("INSERT OR REPLACE INTO history (" + ", ".join(Visit._fields) + ") SELECT "
                  + ", ".join(f"json_extract(value, '$[{i}]')"
                              for i in range(len(Visit._fields))) + " FROM json_each(?)")
# what a request's meta holds about one fetch of it, not about what to fetch: left out of
# the request a page's history keeps (its row id is replaced when it is queued again)
_TRANSIENT = frozenset({"retry_times", "redirect_times", "redirect_urls",
                        "redirect_reasons", "download_latency", "browser_results",
                        "browser_page_result"})
_STATS_KEPT = ("start_requests", "pages", "items", "items_dropped", "requests_scheduled",
               "requests_failed", "duplicates_filtered", "offsite_dropped", "invalid_url",
               "unsupported_scheme", "depth_limited", "url_too_long", "host_limited",
               "query_variants_limited", "queue_full", "redirects", "retries",
               "robots_disallowed", "slow_callbacks")

class Job:
    """One crawl's state in `directory/job.sqlite3`. SQLite runs in a thread of its own.

    Usage (the engine's): `await job.open()`, `await job.prepare_outputs(sinks)`, the
    journaled frontier calls `row`/`store`/`added`/`seen`/`retried`/`complete` (its
    `ack`) and `load`, a task runs `commit_periodically`, `commit(finished=...)` ends the
    crawl and `await job.close()` releases it. `restart=True` forgets what the directory
    held, once its lock is taken.
    """

    def __init__(self, directory: str | Path, spider: Any, *, restart: bool = False,
                 stats: Stats | None = None) -> None:
        self.directory = Path(directory)
        self.path = self.directory / JOB_FILE
        self._spider = spider
        self._restart = restart
        self._worker = OrderedThread("job")  # every SQLite call, off the loop
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self.stats = stats or Stats()  # the crawl's
        self._codec = RequestCodec(spider, STORE_ID, counters=self.stats.counters)
        self.lock = asyncio.Lock()  # a page's completion vs a commit's cut
        self._committing = asyncio.Lock()  # one commit at a time, in order
        self._completed = asyncio.Event()  # a page completed since the last commit
        self.resumed = False
        self.finished = False  # the job had finished before this run
        self.seeded = False  # start() was exhausted in an earlier run
        self.restarted = False  # restart=True found a job and forgot it
        self.meta: dict[str, str] = {}
        self._next_id = 1
        self._rows: dict[int, _Row] = {}  # rows to insert or replace, by id
        self._done: set[int] = set()
        self._seen: list[bytes] = []
        self._slots: dict[str, str] = {}  # host -> its politeness record, as JSON
        self._lengths: dict[str, tuple[int, str | None]] = {}  # output -> length, tail
        self._outputs: list[Sink] = []
        self._seed_done = False
        self._state_warned = False
        # pages received by requests whose outcome no commit holds yet (row id -> pages):
        # a kill fetches them again, so a commit's count leaves them out
        self._unsettled: dict[int, int] = {}
        self._unrestorable = 0
        self._visits: dict[str, Visit] = {}  # pages' history to store, by fingerprint
        self._forgotten: set[str] = set()  # ... to remove (gone)
        self._queued: set[str] = set()  # ... queued again (continuous), with their rows

    # -- opening ------------------------------------------------------------------------

    async def open(self) -> None:
        """Create or reopen the job; StartupError for another spider's job, one that
        another crawl runs, or one that cannot be read."""
        try:
            await self._worker.run(self._connect)
        except StartupError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"cannot open the job in {self.directory}: {exc}") from None
        name = self.meta.get("spider")
        if name is not None and name != self._spider.name:
            raise StartupError(f"{self.directory} is a job of spider {name!r}, not "
                               f"{self._spider.name!r}: use another --job-dir, or --restart "
                               "to start it over")
        self.finished = self.meta.get("finished") == "1"
        self.seeded = self.meta.get("seeded") == "1"

    def _lock(self) -> None:
        """One crawl per job at a time: an advisory lock the OS drops with the process."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "job.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StartupError(f"the job in {self.directory} is in use by another crawl "
                               f"(pid {holder}): one crawl per job dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _connect(self) -> None:
        self._lock()  # first: --restart must not remove the database of a running crawl
        if self._restart:
            self.restarted = sqlitedb.remove(self.path)
        db = self._db = sqlitedb.connect(self.path, _SCHEMA)
        if "tail" not in {row[1] for row in db.execute("PRAGMA table_info(outputs)")}:
            db.execute("ALTER TABLE outputs ADD COLUMN tail TEXT")  # a job from before
        self.meta = dict(db.execute("SELECT key, value FROM job"))
        self._lengths = {name: (length, tail) for name, length, tail in
                         db.execute("SELECT name, length, tail FROM outputs")}
        self.resumed = "spider" in self.meta  # (before a new job's meta is written)
        top = db.execute("SELECT MAX(id) FROM requests").fetchone()[0]
        try:
            self._next_id = max(int(self.meta.get("next_id", 1)), (top or 0) + 1)
        except ValueError:
            raise StartupError(self._damaged("its next request id is not a number")) from None
        if "spider" not in self.meta:
            now = _now()
            meta = {"spider": self._spider.name, "created": now, "updated": now,
                    "schema": _SCHEMA_VERSION}
            with db:
                db.executemany("INSERT INTO job VALUES (?, ?)", meta.items())
            self.meta.update(meta)
        elif self.meta.get("schema") != _SCHEMA_VERSION:
            raise StartupError(f"the job in {self.directory} was made by another version of "
                               "the crawler: use another --job-dir, or --restart to start it "
                               "over")

    def _damaged(self, what: str) -> str:
        return f"the job in {self.directory} is damaged ({what}): --restart starts it over"

    async def prepare_outputs(self, sinks: Sequence[Sink]) -> None:
        """Files are cut back: on resume, each to its stored length, appended from there
        (before any output is checked or opened). A sink whose writes are idempotent (a
        database upsert) rewrites what a resumed job redoes; any other is refused."""
        from crawler.outputs.files import Exporter  # the file sinks

        for sink in sinks:
            if sink.idempotent and not isinstance(sink, Exporter):
                continue
            if not isinstance(sink, Exporter) or sink._stream:
                raise StartupError(f"output {sink.name} cannot be used with a job dir: only "
                                   "files can be cut back to their last committed item (or "
                                   "an idempotent sink: a database sink with ?key=FIELD "
                                   "upserts)")
        self._outputs = list(sinks)
        if self.resumed:
            await asyncio.to_thread(cut_back, sinks, self._lengths)

    async def restore(self) -> tuple[list[bytes], dict[str, int], dict[str, dict[str, float]]]:
        """The seen fingerprints; how many stored requests each host has (every one, queued,
        waiting out a backoff or in flight at the last stop, waits on disk again); and the
        hosts' politeness records (pauses, Crawl-delays)."""
        try:
            seen, waiting, slots = await self._worker.run(self._reload)
            records = {host: orjson.loads(slot) for host, slot in slots}
        except (sqlite3.Error, ValueError) as exc:
            raise StartupError(self._damaged(f"{type(exc).__name__}: {exc}")) from None
        if waiting or seen:
            logger.info("resuming the job in %s: %d request(s) to do, %d seen",
                        self.directory, sum(waiting.values()), len(seen))
        return seen, waiting, {h: r for h, r in records.items() if isinstance(r, dict)}

    def _reload(self) -> tuple[list[bytes], dict[str, int], list[tuple[str, str]]]:
        db = self._db
        assert db is not None
        with db:
            db.execute("BEGIN")
            db.execute("UPDATE requests SET waiting = 1 WHERE waiting = 0")
        seen = [fps[i:i + size] for size, fps in db.execute("SELECT size, fps FROM seen")
                for i in range(0, len(fps), size)]
        waiting = dict(db.execute("SELECT host, COUNT(*) FROM requests GROUP BY host"))
        return seen, waiting, list(db.execute("SELECT host, slot FROM hosts"))

    async def load(self, host: str, limit: int, *, newest_first: bool = False,
                   ) -> tuple[list[tuple[Request, float | None]], int]:
        """Up to `limit` of `host`'s requests waiting on disk, best first (priority, then
        arrival; `newest_first`: the latest arrivals first), marked as loaded, with their
        not-before wall times; and how many rows were taken (a row that is no request any
        more is dropped, logged and counted). A commit comes first, so that what was
        stored as waiting is there to be found."""
        await self.commit()
        rows = await self._worker.run(self._take, host, limit, newest_first)
        requests = []
        for rid, data, not_before in rows:
            try:
                request = self._codec.decode(data, rid)
                if not_before is not None:
                    not_before = float(not_before)
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                # the spider lost a method since, or the row is damaged
                self._unrestorable += 1
                self.stats.errors["unrestorable_request"] += 1
                if self._unrestorable <= _UNRESTORABLE_LOGGED:
                    logger.error("a stored request cannot be restored (%s): dropped%s", exc,
                                 "; further ones are only counted (errors."
                                 "unrestorable_request)"
                                 if self._unrestorable == _UNRESTORABLE_LOGGED else "")
                self._done.add(rid)
                continue
            requests.append((request, not_before))
        return requests, len(rows)

    def _take(self, host: str, limit: int, newest_first: bool,
              ) -> list[tuple[int, str, float | None]]:
        db = self._db
        assert db is not None
        order = "id DESC" if newest_first else "id"
        with db:
            db.execute("BEGIN")
            rows = list(db.execute(
                "SELECT id, data, not_before FROM requests WHERE host = ? AND waiting = 1 "
                f"ORDER BY priority DESC, {order} LIMIT ?", (host, limit)))
            db.execute(f"UPDATE requests SET waiting = 0 WHERE id IN {_IDS}",
                       (orjson.dumps([row[0] for row in rows]),))
        return rows

    def restore_stats(self, stats: Stats) -> None:
        """The counts of earlier runs, so that the job's totals add up (StartupError, one
        line, for a damaged record)."""
        try:
            saved = orjson.loads(self.meta.get("stats", "{}"))
            for name in _STATS_KEPT:
                setattr(stats, name, int(saved.get(name, 0)))
            stats.status_counts.update({int(k): int(v) for k, v in
                                        saved.get("status_counts", {}).items()})
            stats.errors.update(saved.get("errors", {}))
            stats.counters.update(saved.get("counters", {}))
            state = self.meta.get("state")
            if state:
                self._spider.state = orjson.loads(state)
        except (ValueError, TypeError, AttributeError) as exc:
            raise StartupError(self._damaged(f"its stored stats or spider.state: {exc}")) \
                from None
        stats.pages_before = stats.pages

    # -- what happens to requests (called on the loop, never blocking) --------------------

    def assign(self, request: Request) -> int:
        """The request's row id, given now if it has none (kept in its meta, so that a
        retry or a redirect keeps the row)."""
        meta = request.meta
        rid: int | None = meta.get(STORE_ID)
        if rid is None:
            rid = meta[STORE_ID] = self._next_id
            self._next_id += 1
        return rid

    def row(self, request: Request) -> tuple[int, str]:
        """The request's row: its id and data. ValueError when it cannot be stored."""
        return self.assign(request), self._codec.encode(request)

    def store(self, row: tuple[int, str], request: Request, fingerprint: bytes | None, *,
              waiting: bool = False, not_before: float | None = None) -> None:
        """A request entered the frontier (or is held for robots.txt, or waits out a
        backoff until wall time `not_before`): keep its row. `waiting`: it is on disk only,
        for the frontier to load when its host has room. A retry or a redirect replacing
        its row settles the pages its request received."""
        rid, data = row
        self._rows[rid] = (rid, data, not_before, request._slot or request.host,
                           request.priority, int(waiting))
        self._unsettled.pop(rid, None)
        if fingerprint is not None:
            self._seen.append(fingerprint)

    def added(self, request: Request, fingerprint: bytes | None) -> None:
        self.store(self.row(request), request, fingerprint)

    def seen(self, fingerprint: bytes) -> None:
        self._seen.append(fingerprint)

    def retried(self, request: Request, not_before: float) -> None:
        """A retry replaces its row, with the (wall) time before which it may not start."""
        self.store(self.row(request), request, None, not_before=not_before)

    def fetched(self, request: Request) -> None:
        """A page (a response) was received for `request`: unsettled until its outcome is
        stored (its completion, or the retry or redirect that replaces its row)."""
        rid = store_id(request)
        if rid is not None:
            self._unsettled[rid] = self._unsettled.get(rid, 0) + 1

    def complete(self, request: Request) -> None:
        """`request` is done for good: its row goes (call under `lock`, right after its
        page's records were handed to the outputs)."""
        rid = store_id(request)
        if rid is not None:
            self._rows.pop(rid, None)
            self._done.add(rid)
            self._unsettled.pop(rid, None)
            self._completed.set()

    def host(self, host: str, record: dict[str, float]) -> None:
        """A host's politeness changed (a Retry-After pause, a Crawl-delay): keep it."""
        self._slots[host] = orjson.dumps(record).decode()

    def seeding_done(self) -> None:
        self._seed_done = True

    # -- the pages' history (crawler/recrawl/) ----------------------------------------------

    @property
    def round(self) -> int:
        """Which round of the job this is: 1, then one more for each --recrawl."""
        return int(self.meta.get("round", "1"))

    async def visit_of(self, fp: str) -> Visit | None:
        """What the job remembers of the page with fingerprint `fp` (hex), if anything."""
        if fp in self._visits:
            return self._visits[fp]
        if fp in self._forgotten:
            return None
        row = await self._worker.run(self._visit_row, fp)
        return None if row is None else Visit(*row)

    def _visit_row(self, fp: str) -> tuple[Any, ...] | None:
        assert self._db is not None
        row: tuple[Any, ...] | None = self._db.execute(
            f"SELECT {', '.join(Visit._fields)} FROM history WHERE fp = ?", (fp,)).fetchone()
        return row

    def history_data(self, request: Request) -> str:
        """`request` as the history keeps it: what fetches the page again, without what
        one fetch added (its row id, retries, redirects, conditional headers).
        ValueError when it cannot be stored."""
        meta, headers = request._meta, request.headers
        if (meta and not _TRANSIENT.isdisjoint(meta)) or (headers and any(
                name in headers for name in CONDITIONAL_HEADERS)):
            kept = {k: v for k, v in (meta or {}).items() if k not in _TRANSIENT}
            request = request.replace(meta=kept or None, headers=[
                (k, v) for k, v in (request._header_items() or ())
                if k.title() not in CONDITIONAL_HEADERS])
        return self._codec.encode(request)

    async def due(self, now: float, limit: int,
                  ) -> tuple[list[tuple[Request, bytes]], float | None]:
        """Up to `limit` pages of the history due by wall time `now` and not queued, as
        requests with their fingerprints, each marked queued with the commit that stores
        its row; and when the next page not queued is due (None: none is)."""
        await self.commit()
        rows, next_due = await self._worker.run(self._due, now, limit)
        found = []
        for fp, data in rows:
            try:
                request = self._codec.decode(data, None)
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                self.stats.errors["unrestorable_request"] += 1
                logger.error("a page of the history cannot be visited again (%s): "
                             "forgotten", exc)
                self._forgotten.add(fp)
                continue
            self._queued.add(fp)
            found.append((request, bytes.fromhex(fp)))
        return found, next_due

    def _due(self, now: float, limit: int) -> tuple[list[tuple[str, str]], float | None]:
        db = self._db
        assert db is not None
        rows = list(db.execute("SELECT fp, data FROM history WHERE queued = 0 AND "
                               "fetched + interval <= ? ORDER BY fetched + interval LIMIT ?",
                               (now, limit)))
        if len(rows) == limit:
            return rows, now
        later = db.execute("SELECT MIN(fetched + interval) FROM history WHERE queued = 0 "
                           "AND fetched + interval > ?", (now,)).fetchone()[0]
        return rows, later

    def remember(self, visit: Visit) -> None:
        """A page's new record, stored with the next commit (call under `lock`)."""
        self._forgotten.discard(visit.fp)
        self._queued.discard(visit.fp)  # visited: the record replaces the queued mark
        self._visits[visit.fp] = visit

    def forget(self, fp: str) -> None:
        """A page is gone: its record goes with the next commit (call under `lock`)."""
        self._visits.pop(fp, None)
        self._queued.discard(fp)
        self._forgotten.add(fp)

    async def new_round(self) -> int:
        """Start the next round of a finished job: every page of its history queued again
        (their fingerprints seen, so that links to them do not queue them twice), start()
        run again, the round's counts from zero. The pages it queued."""
        await self.commit()
        queued: int
        queued, self._next_id = await self._worker.run(self._new_round)
        self.finished = self.seeded = False
        self.resumed = True
        return queued

    def _new_round(self) -> tuple[int, int]:
        db = self._db
        assert db is not None
        first = self._next_id
        number = str(self.round + 1)
        with db:
            db.execute("BEGIN")
            db.execute("DELETE FROM requests")  # (a finished job has none)
            db.execute("DELETE FROM seen")
            db.execute("DELETE FROM hosts")
            db.execute("INSERT INTO requests SELECT ? + rowid, data, NULL, host, priority, 1 "
                       "FROM history", (first,))
            # the pages' fingerprints, seen: one row each (restore() splits rows by size)
            db.create_function("fp_blob", 1, bytes.fromhex, deterministic=True)
            db.execute("INSERT INTO seen SELECT length(fp), fp FROM "
                       "(SELECT fp_blob(fp) AS fp FROM history)")
            top = db.execute("SELECT MAX(id) FROM requests").fetchone()[0]
            queued = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
            next_id = max(first, (top or 0) + 1)
            for key in ("finished", "finish_reason", "seeded", "stats"):
                db.execute("DELETE FROM job WHERE key = ?", (key,))
            db.executemany("INSERT OR REPLACE INTO job VALUES (?, ?)", [
                ("round", number), ("next_id", str(next_id)), ("updated", _now())])
        self.meta = dict(db.execute("SELECT key, value FROM job"))
        return int(queued), next_id

    def page_records(self) -> PageRecords:
        """A holder for the records of one page until it is complete."""
        return PageRecords(self.directory)

    # -- committing -----------------------------------------------------------------------

    async def commit(self, stats: Stats | None = None, *, finished: bool = False) -> None:
        """Store what happened since the last commit, with where each output's last record
        ends. A cancelled caller does not cancel it (what it took must be stored), and
        commits are stored one after another. JobFailed when the database cannot be
        written."""
        if stats is not None:
            self.stats = stats
        stored = await asyncio.shield(self._submit(self.stats, finished))
        await _stored(stored, self.directory)

    async def _submit(self, stats: Stats, finished: bool) -> asyncio.Future[None]:
        """Take a commit's cut and hand its store to the job's thread, after every commit
        handed over before (the thread runs them in order); its future."""
        from crawler.outputs.files import Exporter

        async with self._committing:  # cuts and hand-overs in order; the page lock: the cut
            async with self.lock:
                self._completed.clear()
                rows, self._rows = self._rows, {}
                done, self._done = self._done, set()
                seen, self._seen = self._seen, []
                slots, self._slots = self._slots, {}
                visits, self._visits = self._visits, {}
                forgotten, self._forgotten = self._forgotten, set()
                queued, self._queued = self._queued, set()
                seeded = self._seed_done
                # each output's buffer is handed over for writing now, in order: the
                # lengths cover exactly the pages completed before this point
                cuts = [(sink, sink.cut()) for sink in self._outputs
                        if isinstance(sink, Exporter)]
                # the counts as of the cut: items of pages completed later are not in it,
                # pages whose requests are not settled are fetched again after a kill
                kept = _kept(stats, unsettled=sum(self._unsettled.values()))
                meta = {"updated": _now(), "next_id": str(self._next_id),
                        "stats": orjson.dumps(kept).decode(), "state": self._state()}
            for other in self._outputs:  # an idempotent sink: committed up to (past) the cut
                if not isinstance(other, Exporter):
                    await other.flush()
            if seeded:
                meta["seeded"] = "1"
            if finished:
                meta.update(finished="1", finish_reason=stats.finish_reason or "finished")
            lengths = [(sink.name, cut.length, tail_digest(cut.tail))
                       for sink, cut in cuts]
            # one trip: the job's thread waits there for the files' threads to write the
            # cuts, then stores (nothing, if a file failed: it is cut back to its last
            # commit's length, and the crawl stops)
            return asyncio.wrap_future(self._worker.submit(
                self._store_after, [cut.done for _, cut in cuts], rows, done, seen, slots,
                lengths, meta, visits, forgotten, queued))

    def _store_after(self, writes: list[Future[None]], *args: Any) -> None:
        for write in writes:
            try:
                write.result()
            except OSError:
                raise _OutputFailed from None
        self._store(*args)

    def _store(self, rows: dict[int, _Row], done: set[int],
               seen: list[bytes], slots: dict[str, str],
               lengths: list[tuple[str, int, str]], meta: dict[str, str],
               visits: dict[str, Visit], forgotten: set[str], queued: set[str]) -> None:
        db = self._db
        assert db is not None
        by_size: dict[int, list[bytes]] = {}
        for fp in seen:
            by_size.setdefault(len(fp), []).append(fp)
        with db:
            db.execute("BEGIN")
            db.executemany("INSERT INTO seen VALUES (?, ?)",
                           [(size, b"".join(fps)) for size, fps in by_size.items()])
            if rows:
                db.execute(_INSERT_ROWS, (orjson.dumps(list(rows.values())),))
            if done:
                db.execute(f"DELETE FROM requests WHERE id IN {_IDS}",
                           (orjson.dumps(list(done)),))
            db.executemany("INSERT OR REPLACE INTO outputs VALUES (?, ?, ?)", lengths)
            db.executemany("INSERT OR REPLACE INTO hosts VALUES (?, ?)", slots.items())
            if visits:
                db.execute(_INSERT_VISITS, (orjson.dumps([tuple(v) for v in visits.values()]),))
            if forgotten:
                db.execute(f"DELETE FROM history WHERE fp IN {_IDS}",
                           (orjson.dumps(list(forgotten)),))
            if queued:  # with the rows that visit them: a kill loses neither
                db.execute(f"UPDATE history SET queued = 1 WHERE fp IN {_IDS}",
                           (orjson.dumps(list(queued)),))
            if "finished" in meta and db.execute("SELECT 1 FROM requests LIMIT 1").fetchone():
                # rows this run could not load stay for the next one: not finished
                del meta["finished"], meta["finish_reason"]
            db.executemany("INSERT OR REPLACE INTO job VALUES (?, ?)", meta.items())

    def _state(self) -> str:
        """spider.state as JSON; what JSON cannot hold keeps the last stored state."""
        try:
            return orjson.dumps(self._spider.state).decode()
        except TypeError as exc:
            if not self._state_warned:
                self._state_warned = True
                logger.error("spider.state cannot be stored as JSON (%s): the job keeps the "
                             "last state that could", exc)
            return self.meta.get("state", "{}")

    async def commit_periodically(self, stats: Stats) -> None:
        """Commit soon after pages complete (`_COMMIT_GAP` later, so that pages completing
        together share a commit), and every `_COMMIT_EVERY` seconds anyway. Commits are
        pipelined: the next one's cut is taken while the thread stores the last (at most
        `_IN_FLIGHT` handed over), so a kill loses only what completed in a gap and a
        store, not in a round trip through the loop as well."""
        completed = self._completed
        self.stats = stats
        pending: collections.deque[asyncio.Future[None]] = collections.deque()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(completed.wait(), _COMMIT_EVERY)
                if completed.is_set():
                    await asyncio.sleep(_COMMIT_GAP)
                pending.append(await asyncio.shield(self._submit(stats, False)))
                while pending and (len(pending) > _IN_FLIGHT or pending[0].done()):
                    await _stored(pending.popleft(), self.directory)
        finally:
            for store in pending:  # stored in the thread's order; their errors: said there
                store.add_done_callback(_retrieve)

    async def close(self) -> None:
        if self._unrestorable:
            logger.warning("%d stored request(s) could not be restored and were dropped "
                           "(a callback renamed or removed since they were stored?)",
                           self._unrestorable)
        if self._db is not None:
            await self._worker.run(self._db.close)
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the lock goes with it
            self._lock_fd = None
        self._worker.stop()


class _OutputFailed(Exception):
    """A cut could not be written: its commit is not stored."""


async def _stored(store: asyncio.Future[None], directory: Path) -> None:
    """Wait for a commit's store; JobFailed when the database could not be written (a
    commit whose cut could not be written is not stored, and that is not the job's
    failure: the output's)."""
    try:
        await asyncio.shield(store)
    except _OutputFailed:
        return
    except (sqlite3.Error, OSError) as exc:
        raise JobFailed(f"cannot store the job's progress in {directory}: {exc}; it "
                        "resumes from its last commit") from None


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _kept(stats: Stats, *, unsettled: int = 0) -> dict[str, Any]:
    kept: dict[str, Any] = {name: getattr(stats, name) for name in _STATS_KEPT}
    kept["pages"] = max(0, stats.pages - unsettled)
    kept["status_counts"] = {str(k): v for k, v in stats.status_counts.items()}
    # str(): a Kind key (a StrEnum) is its text; orjson takes plain str keys only
    kept["errors"] = {str(k): v for k, v in stats.errors.items()}
    kept["counters"] = {str(k): v for k, v in stats.counters.items()}
    return kept


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
