"""The change feed (`--changes FILE`): one JSON line per page a job visited,
`{"url": ..., "change": "new" | "changed" | "unchanged" | "gone", "time": ...}`, the time
in ISO 8601 (UTC). It is a file output of the job, written with the pages' items and cut
back with them on resume: valid after any failure, each visit in it exactly once."""

from __future__ import annotations

import datetime

import orjson

from crawler.outputs.formats import JsonLinesExporter
from crawler.outputs.items import Record

__all__ = ["ChangeFeed", "change_record"]


class ChangeFeed(JsonLinesExporter):
    """Usage: a crawl's output (the crawler adds it for `changes_file`) that takes no items:
    the job's storage writes `change_record`s to it."""

    takes_items = False


def change_record(url: str, change: str, when: float) -> Record:
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat(
        timespec="seconds").replace("+00:00", "Z")
    fields = {"url": url, "change": change, "time": moment}
    return Record(fields, orjson.dumps(fields))
