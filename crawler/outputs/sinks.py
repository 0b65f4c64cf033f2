"""Sinks: where items go. Files are one kind (crawler/outputs/files.py); others are registered
by URI scheme, so that `-o postgresql://...` or `-o memo://x` finds its sink without the
CLI knowing it.

A sink subclasses `Sink` and implements `write` (and usually `open`, `flush`, `close`):

    class ListSink(Sink):
        def __init__(self, uri, *, overwrite=False, fields=None):
            super().__init__(uri)
            self.items = []

        async def write(self, record):   # record.fields: a dict; record.json: its bytes
            self.items.append(record.fields)

    register_sink("memo", ListSink)            # or the setting: sinks = {"memo": ListSink}

Every sink is checked (`check`, blocking, in a thread) before any is opened, opened
before any is started (`begin`: where a file is truncated), written record by record,
flushed every second, and closed before user close hooks run. A sink that raises is
marked failed (its `error`), stops taking records and stops the crawl, as a full disk does;
the others keep every record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from crawler.core.plugins import load_object
from crawler.exceptions import OutputError
from crawler.outputs.items import Record

__all__ = ["Sink", "SinkFactory", "register_sink", "sink_factory"]

SinkFactory = Callable[..., "Sink"]
"""Builds a sink: `factory(uri, *, overwrite: bool, fields: tuple[str, ...] | None)`."""

_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*$")
_REGISTRY: dict[str, SinkFactory] = {}


class Sink:
    """Base of every sink: the state the crawl reads, and methods that do nothing."""

    # writing a record again leaves the target as writing it once (an upsert): a job dir
    # may then redo pages into it after a kill, as files are instead cut back
    idempotent: bool = False
    # False: the crawl's items do not go to it (the change feed: its records come from the
    # job's storage)
    takes_items: bool = True

    def __init__(self, uri: str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None) -> None:
        self.name = uri  # how logs and stats name it
        self.overwrite = overwrite
        self.fields = fields
        self.count = 0  # records written
        self.spider_name = ""  # the crawl's spider (set by output_sink)
        self.error: str | None = None  # why the sink stopped taking records
        self.on_error: Callable[[Sink], None] = lambda sink: None

    def identity(self) -> object:
        """What makes two outputs the same target (a file's device and inode)."""
        return self.name

    def check(self) -> None:
        """Raise OutputError if the sink cannot be written; blocking, run in a thread."""

    async def open(self) -> None:
        """Acquire the target (connect, open a file) without destroying anything yet."""

    async def begin(self) -> None:
        """Every sink opened: start (an overwrite truncates here)."""

    async def write(self, record: Record) -> None:
        raise NotImplementedError

    async def flush(self) -> None:
        """Make what was written durable (called every second and at the end)."""

    async def close(self) -> None:
        """Flush and release the target."""

    async def discard(self) -> None:
        """Undo `open` when the crawl could not start."""
        await self.close()

    def mark(self) -> object | None:
        """Where the sink stands now, for `rewind()`, taken with nothing buffered; None
        when it cannot undo what it writes (a stream, a database, most of your own)."""
        return None

    async def rewind(self, mark: object) -> None:
        """Undo every record written since `mark()`, leaving the target as it was then
        (with nothing buffered, after a flush)."""
        raise NotImplementedError

    def failed(self, reason: str) -> None:
        """Stop taking records and say so (once)."""
        if self.error is None:
            self.error = reason
            self.on_error(self)


def _postgres(uri: str, **kwargs: Any) -> Sink:
    from crawler.outputs.postgres import PostgresSink  # asyncpg only when asked for

    return PostgresSink(uri, **kwargs)


def register_sink(scheme: str, factory: SinkFactory) -> None:
    """Make `-o SCHEME://...` build its sink with `factory`."""
    scheme = scheme.lower()
    if not _SCHEME.match(scheme) or scheme == "file":
        raise ValueError(f"cannot register a sink for scheme {scheme!r}")
    _REGISTRY[scheme] = factory


def sink_factory(scheme: str, configured: Iterable[tuple[str, Any]] = ()) -> SinkFactory:
    """The factory for `scheme`: the `sinks` setting's first, then the registered ones."""
    scheme = scheme.lower()
    for name, spec in configured:
        if name.lower() == scheme:
            factory = load_object(spec, "sink") if isinstance(spec, str) else spec
            if not callable(factory):
                raise OutputError(f"the sink for {scheme}:// is not a class: {factory!r}")
            return factory  # type: ignore[no-any-return]
    factory = _REGISTRY.get(scheme)
    if factory is None:
        known = ", ".join(["file", *sorted({*_REGISTRY, *(n for n, _ in configured)})])
        raise OutputError(f"{scheme}:// outputs are not supported (known: {known}; a file "
                          "path, or - for standard output; a plugin adds a scheme with the "
                          "sinks setting)")
    return factory


register_sink("postgresql", _postgres)
register_sink("postgres", _postgres)
