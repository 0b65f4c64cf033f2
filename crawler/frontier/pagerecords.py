"""A page's records while its callback runs, with a job dir or a shared frontier: held
until the page is complete (crawler/frontier/jobdir.py) and, in a fleet, its lease checked, in
bounded memory whatever the callback yields.

The first `MEMORY_RECORDS` records (or `MEMORY_BYTES` of their JSON) are kept in memory
with their items; past that, records go to an unnamed temporary file in the job
directory (else the system's temporary directory) as JSON lines (orjson writes no raw
newline), `SPILL_CHUNK` at a time through a thread, and are read back in order when the
page is handed to the outputs. The file has no name, so a killed process leaves nothing
behind. A spilled record comes back as its JSON and the fields parsed from it: the
item_scraped signal of such a record gets the fields dict instead of the object the
callback yielded.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import orjson

from crawler.outputs.items import Record

__all__ = ["MEMORY_BYTES", "MEMORY_RECORDS", "PageRecords"]

MEMORY_RECORDS = 1000  # records of one page held in memory before the rest is spilled
MEMORY_BYTES = 4 << 20  # ... or this many bytes of their JSON
SPILL_CHUNK = 1 << 20  # bytes of records written to the spill file at once
_READ_CHUNK = 1 << 20


class PageRecords:
    """Usage: `page = PageRecords(job_dir)`; `await page.add(record, item)` as the
    callback yields; `async for record, item in page.replay()` when the page is complete;
    `page.close()` on every path."""

    def __init__(self, directory: Path | None, *, memory_records: int = MEMORY_RECORDS,
                 memory_bytes: int = MEMORY_BYTES) -> None:
        self._directory = directory
        self._memory_records = memory_records
        self._memory_bytes = memory_bytes
        self._held: list[tuple[Record, Any]] = []
        self._held_bytes = 0
        self._pending: list[bytes] = []  # records for the spill file, not written yet
        self._pending_bytes = 0
        self._spilled = 0  # records in the file
        self._file: IO[bytes] | None = None

    def __len__(self) -> int:
        return len(self._held) + len(self._pending) + self._spilled

    @property
    def spilled(self) -> bool:
        return self._file is not None or bool(self._pending)

    async def add(self, record: Record, item: Any) -> None:
        if not self.spilled and len(self._held) < self._memory_records \
                and self._held_bytes < self._memory_bytes:
            self._held.append((record, item))
            self._held_bytes += len(record.json)
            return
        self._pending.append(record.json)
        self._pending_bytes += len(record.json) + 1
        if self._pending_bytes >= SPILL_CHUNK:
            await self._spill()

    async def _spill(self) -> None:
        if not self._pending:
            return
        data = b"\n".join(self._pending) + b"\n"
        count = len(self._pending)
        self._pending, self._pending_bytes = [], 0
        file = self._file
        if file is None:
            file = self._file = await asyncio.to_thread(tempfile.TemporaryFile,
                                                        dir=self._directory, prefix="page-")
        await asyncio.to_thread(file.write, data)  # type: ignore[union-attr]
        self._spilled += count

    def in_memory(self) -> list[tuple[Record, Any]] | None:
        """Every record with its item when none was spilled (the common case, without an
        async iterator per page); else None: use replay()."""
        return self._held if not self.spilled else None

    async def replay(self) -> AsyncIterator[tuple[Record, Any]]:
        """Every record in the order added, with its item (a spilled one's fields)."""
        for pair in self._held:
            yield pair
        if self._file is None:
            for data in self._pending:
                yield _record(data)
            return
        await self._spill()
        file = self._file
        await asyncio.to_thread(file.seek, 0)
        rest = b""
        while True:
            chunk = await asyncio.to_thread(file.read, _READ_CHUNK)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield _record(line)

    def items(self) -> list[Any]:
        """The items held in memory (those the signals get as yielded)."""
        return [item for _, item in self._held]

    def close(self) -> None:
        """Drop the spill file (closing it is quick: it has no name to remove)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._held, self._pending = [], []


def _record(data: bytes) -> tuple[Record, Any]:
    fields = orjson.loads(data)
    return Record(fields, data), fields
