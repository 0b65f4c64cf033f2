"""The outputs of one crawl, handled together: checked before anything is opened, opened
before any is truncated, written record by record, flushed every second, closed first at
the end (before user close hooks, which may hang).

An output is any Sink (crawler/outputs/sinks.py); files are Exporters. A failed output (a full disk,
a sink that raised) stops taking records and is reported here once; a file is cut back to
its last complete record by its exporter. The others keep every record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from crawler.core.plugins import describe
from crawler.exceptions import CrawlerError, OutputError
from crawler.outputs.items import Record
from crawler.outputs.sinks import Sink
from crawler.stats import Stats

__all__ = ["Outputs"]

logger = logging.getLogger(__name__)

_FLUSH_INTERVAL = 1.0  # seconds between forced flushes


class Outputs:
    """Usage: `outputs = Outputs([make_exporter("a.jsonl")], stats, on_failure=stop)`."""

    def __init__(self, sinks: Sequence[Sink], stats: Stats,
                 on_failure: Callable[[Sink], None] = lambda sink: None) -> None:
        self.sinks = list(sinks)
        self._item_sinks = [sink for sink in self.sinks if sink.takes_items]
        self._stats = stats
        self._on_failure = on_failure
        for sink in self.sinks:
            sink.on_error = self._failed

    @property
    def failed(self) -> list[Sink]:
        return [s for s in self.sinks if s.error is not None]

    async def check(self) -> None:
        """Raise OutputError for a target given twice or one that cannot be written."""
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        seen: dict[object, str] = {}
        for sink in self.sinks:
            key = sink.identity()
            if key in seen:
                raise OutputError(f"output {sink.name} is given twice (as {seen[key]} "
                                  "too): each output needs its own target")
            seen[key] = sink.name
            _guarded(sink.check, sink)

    async def open(self) -> None:
        """Open every output, then start them (an overwrite truncates only now)."""
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                await _opened(sink.open(), sink)
                opened.append(sink)
            for sink in self.sinks:
                await _opened(sink.begin(), sink)
        except BaseException:
            for sink in opened:
                try:
                    await sink.discard()
                except Exception:
                    logger.exception("discarding %s failed", sink.name)
            raise

    async def write(self, record: Record) -> None:
        """An item, to every output that takes items."""
        for sink in self._item_sinks:
            try:
                await sink.write(record)
            except Exception as exc:  # a sink's bug: that output fails, the crawl stops
                self._raised(sink, "write", exc)

    def marks(self) -> list[object] | None:
        """Where every output taking items stands (after a flush), for `rewind()`; None
        when one of them cannot undo what it writes."""
        marks = [sink.mark() for sink in self._item_sinks]
        return None if any(mark is None for mark in marks) else marks

    async def rewind(self, marks: list[object]) -> None:
        """Undo every item written since `marks()` (flushed, nothing buffered)."""
        for sink, mark in zip(self._item_sinks, marks, strict=True):
            try:
                await sink.rewind(mark)
            except Exception as exc:
                self._raised(sink, "rewind", exc)

    async def flush(self) -> None:
        for sink in self.sinks:
            try:
                await sink.flush()
            except Exception as exc:
                self._raised(sink, "flush", exc)

    async def flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_INTERVAL)
            await self.flush()

    async def close(self) -> None:
        """Flush and close every output, whatever happens to one of them."""
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception as exc:  # never lose the other outputs to one
                logger.exception("closing %s failed", sink.name)
                sink.error = sink.error or f"{type(exc).__name__}: {exc}"
        for sink in self.sinks:
            entry: dict[str, object] = {"items": sink.count}
            if sink.error is not None:
                entry["error"] = sink.error
            for counter in ("rejected", "retries", "reconnects"):  # a database sink's
                if getattr(sink, counter, 0):
                    entry[counter] = getattr(sink, counter)
            dropped = getattr(sink, "fields_dropped", None)
            if dropped:
                entry["fields_dropped"] = dict(dropped)
            self._stats.outputs[sink.name] = entry

    def _raised(self, sink: Sink, what: str, exc: Exception) -> None:
        if sink.error is None:
            logger.error("%s of %s raised", what, sink.name, exc_info=exc)
            sink.failed(f"{type(exc).__name__}: {exc}")

    def _failed(self, sink: Sink) -> None:
        logger.error("cannot write %s: %s; it ends at its last complete record, and the crawl "
                     "stops", sink.name, sink.error)
        self._stats.errors["output"] += 1
        self._on_failure(sink)


def _guarded(check: Callable[[], None], sink: Sink) -> None:
    try:
        check()
    except CrawlerError:
        raise
    except Exception as exc:
        raise OutputError(f"cannot write to {sink.name}: {describe(exc)}") from exc


async def _opened(step: Awaitable[None], sink: Sink) -> None:
    try:
        await step
    except CrawlerError:
        raise
    except Exception as exc:
        raise OutputError(f"cannot open {sink.name}: {describe(exc)}") from exc
