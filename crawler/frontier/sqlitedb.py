"""The SQLite files the crawler keeps (a job, the HTTP cache): opened one way, removed
whole. Callers run these in a thread of their own (crawler/threads.py), never on the
event loop."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["connect", "remove"]


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
