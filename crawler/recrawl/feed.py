"""The change feed (`--changes FILE`): one JSON line per page a job visited,
`{"url": ..., "change": "new" | "changed" | "unchanged" | "gone", "time": ...}`, the time
in ISO 8601 (UTC). It is a file output of the job, written with the pages' items and cut
back with them on resume: valid after any failure, each visit in it exactly once."""

from __future__ import annotations

import datetime

import orjson

from crawler.outputs.formats import JsonLinesExporter
from crawler.outputs.items import Record

__all__ = ["ChangeFeed", "change_record", "utc_text"]


class ChangeFeed(JsonLinesExporter):
    """Usage: a crawl's output (the crawler adds it for `changes_file`) that takes no items:
    each visit (crawler/recrawl/visits.py) writes its `change_record` to it."""

    takes_items = False


def utc_text(when: float) -> str:
    """Wall time `when` as the feed and `jobs DIR` write it: `2026-12-05T01:40:00Z`."""
    return datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat(
        timespec="seconds").replace("+00:00", "Z")


def change_record(url: str, change: str, when: float) -> Record:
    fields = {"url": url, "change": change, "time": utc_text(when)}
    return Record(fields, orjson.dumps(fields))
