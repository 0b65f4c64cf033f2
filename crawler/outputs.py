"""The outputs of one crawl, handled together: checked before anything is opened, opened
before any is truncated, written record by record, flushed every second, closed first at
the end (before user close hooks, which may hang).

A failed output (a full disk) is cut back to its last complete record by its exporter and
reported here once; the others keep every record.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from crawler.exceptions import OutputError
from crawler.exporters import STDOUT, CsvExporter, Exporter
from crawler.items import Record
from crawler.stats import Stats

__all__ = ["Outputs", "identity"]

logger = logging.getLogger(__name__)

_FLUSH_INTERVAL = 1.0  # seconds between forced flushes


class Outputs:
    """Usage: `outputs = Outputs([make_exporter("a.jsonl")], stats, on_failure=stop)`."""

    def __init__(self, exporters: Sequence[Exporter], stats: Stats,
                 on_failure: Callable[[Exporter], None] = lambda exporter: None) -> None:
        self.exporters = list(exporters)
        self._stats = stats
        self._on_failure = on_failure
        for exporter in self.exporters:
            exporter.on_error = self._failed

    @property
    def failed(self) -> list[Exporter]:
        return [e for e in self.exporters if e.error is not None]

    async def check(self) -> None:
        """Raise OutputError for a path given twice or one that cannot be written."""
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        seen: dict[object, str] = {}
        for exporter in self.exporters:
            key = identity(exporter.path)
            if key in seen:
                raise OutputError(f"output {exporter.name} is given twice (as {seen[key]} "
                                  "too): each output needs its own file")
            seen[key] = exporter.name
            exporter.check()

    async def open(self) -> None:
        """Open every output, then start them (an overwrite truncates only now)."""
        opened: list[Exporter] = []
        try:
            for exporter in self.exporters:
                await exporter.open()
                opened.append(exporter)
            for exporter in self.exporters:
                await exporter.begin()
        except BaseException:
            for exporter in opened:
                await exporter.discard()
            raise

    async def write(self, record: Record) -> None:
        for exporter in self.exporters:
            await exporter.write(record)

    async def flush(self) -> None:
        for exporter in self.exporters:
            await exporter.flush()

    async def flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_INTERVAL)
            await self.flush()

    async def close(self) -> None:
        """Flush and close every output, whatever happens to one of them."""
        for exporter in self.exporters:
            try:
                await exporter.close()
            except Exception as exc:  # never lose the other outputs to one
                logger.exception("closing %s failed", exporter.name)
                exporter.error = exporter.error or f"{type(exc).__name__}: {exc}"
        for exporter in self.exporters:
            entry: dict[str, object] = {"items": exporter.count}
            if exporter.error is not None:
                entry["error"] = exporter.error
            if isinstance(exporter, CsvExporter) and exporter.fields_dropped:
                entry["fields_dropped"] = dict(exporter.fields_dropped)
            self._stats.outputs[exporter.name] = entry

    def _failed(self, exporter: Exporter) -> None:
        logger.error("cannot write %s: %s; it ends at its last complete record, and the crawl "
                     "stops", exporter.name, exporter.error)
        self._stats.errors["output"] += 1
        self._on_failure(exporter)


def identity(path: Path | str) -> object:
    """What makes two output paths the same file: device and inode when it exists, else
    the resolved path."""
    if path == STDOUT:
        return STDOUT
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)
