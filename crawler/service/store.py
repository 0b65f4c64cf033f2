"""The service's records: every run and its history, in SQLite under the data directory,
so that a restart (or a `kill -9`) loses none of them.

A run's row is written when it is created and at each change of state, from one thread of
the store's own (crawler/threads.py), never on the event loop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from crawler.frontier.sqlitedb import connect
from crawler.threads import OrderedThread

__all__ = ["ACTIVE", "FINAL", "Run", "RunStore", "Schedule"]

# a run's states: queued -> running -> finished | failed | cancelled; running -> pausing ->
# paused -> queued (resumed) ...; queued -> cancelled
QUEUED, RUNNING, PAUSING, PAUSED = "queued", "running", "pausing", "paused"
CANCELLING, FINISHED, FAILED, CANCELLED = "cancelling", "finished", "failed", "cancelled"
ACTIVE = frozenset({RUNNING, PAUSING, CANCELLING})  # a process is (or was) running it
FINAL = frozenset({FINISHED, FAILED, CANCELLED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, data TEXT NOT NULL,
                                 state TEXT NOT NULL, spider TEXT NOT NULL,
                                 priority INTEGER NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, priority DESC, seq);
CREATE TABLE IF NOT EXISTS schedules (id TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


@dataclass
class Run:
    """One run of a spider: what to run, where its files are, and what happened."""

    id: str
    spider: str
    args: dict[str, str] = field(default_factory=dict)  # spider arguments (-a)
    settings: dict[str, str] = field(default_factory=dict)  # -s KEY=VALUE
    priority: int = 0  # higher first among the queued
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None  # the first start
    finished: float | None = None
    pid: int | None = None
    exit_code: int | None = None
    finish_reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0  # processes started for it (a resume or a restart starts another)
    schedule: str | None = None  # the schedule that made it
    workers: int = 1  # processes on a shared (Redis) frontier: a fleet run
    seq: int = 0  # arrival order, for first in first out among equal priorities

    def public(self) -> dict[str, Any]:
        """The run as the API shows it."""
        return {k: v for k, v in asdict(self).items() if k not in ("seq",)}


@dataclass
class Schedule:
    """Runs of a spider made by the clock: a cron expression (in `timezone`) or an interval
    in seconds."""

    id: str
    spider: str
    cron: str | None = None  # "0 3 * * *": at 03:00 every day
    every: float | None = None  # seconds between two firings
    timezone: str = "UTC"
    args: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    overlap: str = "skip"  # its previous run still going: "skip" this firing, or "queue" it
    missed: str = "once"  # firings missed while the service was down: run "once", or "skip"
    enabled: bool = True
    next_fire: float = 0.0  # when it fires next (epoch seconds)
    last_fire: float | None = None
    created: float = field(default_factory=time.time)
    fired: int = 0  # runs it made
    skipped: int = 0  # firings it skipped (overlap, missed)

    def public(self) -> dict[str, Any]:
        return asdict(self)


class RunStore:
    """Usage: `store = RunStore(data / "service.db")`; `await store.open()`;
    `await store.save(run)`; `await store.runs(state="queued")`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = OrderedThread("service-db")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._db = await self._thread.run(connect, self.path, _SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await self._thread.run(db.close)
        self._thread.stop()

    async def save(self, run: Run) -> None:
        await self._thread.run(self._save, run)

    def _save(self, run: Run) -> None:
        assert self._db is not None
        if not run.seq:
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs").fetchone()
            run.seq = int(row[0])
        self._db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run.id, run.seq, orjson.dumps(asdict(run)).decode(), run.state, run.spider,
             run.priority, run.created))

    async def get(self, run_id: str) -> Run | None:
        found = await self.runs(ids=[run_id])
        return found[0] if found else None

    async def runs(self, *, states: Sequence[str] = (), spider: str | None = None,
                   ids: Sequence[str] = (), limit: int = 1000, offset: int = 0,
                   oldest_first: bool = False) -> list[Run]:
        """Runs, newest first (or by queue order: priority, then arrival, with
        `oldest_first`), filtered by state, spider or id."""
        return list(await self._thread.run(self._runs, tuple(states), spider, tuple(ids),
                                           limit, offset, oldest_first))

    def _runs(self, states: tuple[str, ...], spider: str | None, ids: tuple[str, ...],
              limit: int, offset: int, oldest_first: bool) -> list[Run]:
        assert self._db is not None
        where: list[str] = []
        params: list[Any] = []
        for column, values in (("state", states), ("id", ids)):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        if spider is not None:
            where.append("spider = ?")
            params.append(spider)
        order = "priority DESC, seq" if oldest_first else "seq DESC"
        sql = ("SELECT data FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY {order} LIMIT ? OFFSET ?")
        rows = self._db.execute(sql, (*params, limit, offset)).fetchall()
        return [Run(**orjson.loads(data)) for (data,) in rows]

    async def count(self) -> dict[str, int]:
        """Runs by state."""
        assert self._db is not None
        rows = await self._thread.run(
            lambda: self._db.execute(  # type: ignore[union-attr]
                "SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall())
        return {state: int(n) for state, n in rows}

    async def save_schedule(self, schedule: Schedule) -> None:
        await self._thread.run(self._save_schedule, schedule)

    def _save_schedule(self, schedule: Schedule) -> None:
        assert self._db is not None
        self._db.execute("INSERT OR REPLACE INTO schedules VALUES (?, ?)",
                         (schedule.id, orjson.dumps(asdict(schedule)).decode()))

    async def schedules(self) -> list[Schedule]:
        assert self._db is not None
        rows = await self._thread.run(
            lambda: self._db.execute(  # type: ignore[union-attr]
                "SELECT data FROM schedules ORDER BY id").fetchall())
        return [Schedule(**orjson.loads(data)) for (data,) in rows]

    async def delete_schedule(self, schedule_id: str) -> bool:
        assert self._db is not None
        cursor = await self._thread.run(
            self._db.execute, "DELETE FROM schedules WHERE id = ?", (schedule_id,))
        return bool(cursor.rowcount)

    async def forget(self, keep: int, before: float | None = None) -> list[Run]:
        """Drop the oldest finished runs past the newest `keep` of them, and those that
        finished before `before` (epoch seconds); the dropped."""
        old = await self.runs(states=sorted(FINAL), limit=1 << 30, offset=keep)
        if before is not None:
            done = await self.runs(states=sorted(FINAL), limit=1 << 30)
            old += [r for r in done[:keep] if (r.finished or r.created) < before]
        if old:
            await self._thread.run(self._delete, [r.id for r in old])
        return old

    def _delete(self, ids: list[str]) -> None:
        assert self._db is not None
        self._db.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in ids])
