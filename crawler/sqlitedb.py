"""The SQLite files the crawler keeps (a job, the HTTP cache): opened one way, removed
whole. Callers run these in a thread of their own, never on the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["Worker", "connect", "remove"]


class Worker:
    """The one thread a connection is used from: calls run there, in order, off the loop.

    Usage: `worker = Worker("job"); rows = await worker.run(db.execute, sql).`
    """

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def stop(self) -> None:
        """Let the thread end once what was queued has run."""
        self._pool.shutdown(wait=False)


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating its directory) in WAL mode, in autocommit: callers BEGIN their own
    transactions. `check_same_thread` is off: one worker thread uses it at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # a kill loses no commit; a power cut may
    db.executescript(schema)
    return db


def remove(path: Path) -> bool:
    """Delete the database and its WAL files; True when there was one."""
    found = False
    for suffix in ("", "-wal", "-shm"):
        try:
            path.with_name(path.name + suffix).unlink()
            found = True
        except FileNotFoundError:
            pass
    return found
