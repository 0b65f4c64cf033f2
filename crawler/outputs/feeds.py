"""Output specs as `-o`/`-O` take them: a path, a `file://` URI, `-` (standard output) or
a URI whose scheme names a registered sink, with Scrapy's placeholders and an optional
`:format` suffix for files.

    output/%(name)s-%(time)s.jsonl    %(name)s the spider's name, %(time)s the start time
                                      (UTC, e.g. 2026-11-25T21-55-45), %(attr)s any spider
                                      attribute
    output/{spider}.{worker}.jsonl    the spider's name and this process's worker id (host
                                      name and pid, or --worker-id): one file per worker
    items.txt:csv                     a format other than the extension says
    -   or   -:csv                    standard output (JSON lines unless a format is given)
    file:///tmp/items.json            a local file by URI
    memo://anything                   the sink registered for memo:// (crawler/outputs/sinks.py)
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from crawler.core.plugins import describe
from crawler.exceptions import OutputError
from crawler.outputs.files import STDOUT
from crawler.outputs.formats import FORMATS, make_exporter
from crawler.outputs.sinks import Sink, sink_factory

__all__ = ["output_sink"]

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|\{(spider|worker)\}")
_FORMAT_SUFFIX = re.compile(r"^(.+):(" + "|".join(FORMATS) + r")$", re.IGNORECASE)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_UNKNOWN_SUFFIX = re.compile(r"^[^:]*\.\w+:([A-Za-z]\w*)$")  # items.txt:yaml


def output_sink(spec: str, *, overwrite: bool, fields: tuple[str, ...] | None,
                spider: Any, started: datetime.datetime,
                sinks: tuple[tuple[str, Any], ...] = (), worker: str = "",
                format: str | None = None, indent: int | None = None) -> Sink:
    """The sink for one `-o`/`-O` value (or a `feeds` entry, whose `format` and `indent`
    come apart); OutputError when it names nothing writable. `sinks` are the setting's
    (scheme, factory) pairs."""
    target, format_name = spec, format
    match = _FORMAT_SUFFIX.match(spec)
    if match:
        target, format_name = match.group(1), match.group(2)
    elif format is None and (unknown := _UNKNOWN_SUFFIX.match(spec)):
        raise OutputError(f"unknown output format {unknown.group(1)!r} in {spec!r} (known: "
                          f"{', '.join(sorted(FORMATS))})")
    target = _fill(target, spider, started, spec, worker)
    scheme = _SCHEME.match(target)
    if scheme and scheme.group(1).lower() != "file":
        try:
            factory = sink_factory(scheme.group(1), sinks)
        except OutputError as exc:
            raise OutputError(f"cannot write to {spec!r}: {exc}") from None
        sink = _built(factory, _fill(spec, spider, started, spec, worker), overwrite, fields)
        sink.spider_name = str(getattr(spider, "name", "") or "")
        return sink
    if scheme:
        parts = urlsplit(target)
        if parts.netloc not in ("", "localhost"):
            raise OutputError(f"cannot write to {spec!r}: file:// URIs must name a local file")
        target = unquote(parts.path)
    if target != STDOUT and (not target or target.endswith("/") or Path(target).name == ""):
        raise OutputError(f"cannot write to {spec!r}: it names a directory, not a file")
    return make_exporter(target, overwrite=overwrite, fields=fields, format=format_name,
                         indent=indent)


def _built(factory: Any, uri: str, overwrite: bool, fields: tuple[str, ...] | None) -> Sink:
    try:
        sink = factory(uri, overwrite=overwrite, fields=fields)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"cannot write to {uri!r}: {describe(exc)}") from exc
    if not isinstance(sink, Sink):
        raise OutputError(f"the sink for {uri!r} is a {type(sink).__name__}, not a "
                          "crawler.outputs.sinks.Sink")
    return sink


def _fill(target: str, spider: Any, started: datetime.datetime, spec: str,
          worker: str) -> str:
    """Replace %(name)s, %(time)s, %(attribute)s, {spider} and {worker} placeholders."""
    def value(match: re.Match[str]) -> str:
        key = match.group(1) or match.group(2)
        if key == "worker":
            return worker
        if key == "spider":
            return str(spider.name)
        if key == "time":
            return started.astimezone(datetime.UTC).replace(microsecond=0, tzinfo=None) \
                .isoformat().replace(":", "-")
        if key == "name":
            return str(spider.name)
        if not key.startswith("_") and hasattr(spider, key):
            return str(getattr(spider, key))
        raise OutputError(f"unknown placeholder %({key})s in {spec!r} (known: %(name)s, "
                          "%(time)s and the spider's attributes)")

    return _PLACEHOLDER.sub(value, target)
