"""A job directory's state as `python -m crawler jobs DIR` shows it, read without taking
the job's lock (a running crawl may hold it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from crawler.exceptions import StartupError
from crawler.frontier.jobdir import JOB_FILE

__all__ = ["read_job"]


def read_job(directory: str | Path) -> dict[str, Any]:
    """A job's state for `python -m crawler jobs DIR` (blocking); StartupError, one line,
    for what cannot be read. On a read-only mount the database is read as it is on disk
    (`note` says that commits still in its write-ahead log may be missing)."""
    path = Path(directory) / JOB_FILE
    if not path.is_file():
        raise StartupError(f"{directory} holds no job ({JOB_FILE} not found)")
    note = ""
    try:
        meta, queued, waiting, history = _read_meta(f"file:{path}?mode=ro")
    except sqlite3.OperationalError:  # read-only: the WAL index cannot be made beside it
        try:
            meta, queued, waiting, history = _read_meta(f"file:{path}?immutable=1")
        except sqlite3.Error as exc:
            raise StartupError(f"cannot read the job in {directory}: {exc}") from None
        note = "read-only: the last commits may be missing"
    except sqlite3.Error as exc:
        raise StartupError(f"cannot read the job in {directory}: {exc}") from None
    try:
        stats = orjson.loads(meta.get("stats", "{}"))
    except orjson.JSONDecodeError:
        raise StartupError(f"the job in {directory} is damaged: its stored stats are not "
                           "JSON") from None
    return {
        "spider": meta.get("spider", "?"), "started": meta.get("created", "?"),
        "updated": meta.get("updated", "?"), "pages": stats.get("pages", 0),
        "items": stats.get("items", 0), "failed": stats.get("requests_failed", 0),
        "queued": queued, "waiting_to_retry": waiting,
        "finished": meta.get("finished") == "1", "finish_reason": meta.get("finish_reason", ""),
        "note": note, "round": int(meta.get("round", "1")), "known": history[0],
        "next_due": history[1],
    }


def _read_meta(uri: str) -> tuple[dict[str, str], int, int, tuple[int, float | None]]:
    """The job's meta, its queued and retry-waiting requests, and its history: the pages
    it knows and when the first of them is due again (None: none, or a job made before
    the history was kept)."""
    db = sqlite3.connect(uri, uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM job"))
        queued, waiting = db.execute(
            "SELECT COUNT(*), COUNT(not_before) FROM requests").fetchone()
        try:
            history = db.execute(
                "SELECT COUNT(*), MIN(fetched + interval) FROM history").fetchone()
        except sqlite3.OperationalError:  # no such table: a job from before
            history = (0, None)
    finally:
        db.close()
    return meta, queued, waiting, history
