"""Feed exporters: items to .jsonl, .json and .csv files through aiofiles.

Items are serialised when they arrive (so a bad item fails alone) and written in batches
from a thread, never blocking the loop. Each batch is one write() that leaves the file
valid: a .json array is closed after every batch and reopened by the next.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os
import orjson

from crawler.exceptions import UsageError

_BATCH_BYTES = 64 * 1024


def _to_jsonable(item: Any) -> Any:
    if isinstance(item, dict):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return item
    if hasattr(item, "__dict__"):
        return {k: v for k, v in vars(item).items() if not k.startswith("_")}
    return item


def _dumps(item: Any) -> bytes:
    try:
        return orjson.dumps(_to_jsonable(item), default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise ValueError(f"item is not serialisable: {exc}") from exc


class Exporter:
    """Base: buffers encoded bytes and writes them in batches. Subclasses encode."""

    suffix = ""

    def __init__(self, path: Path, *, overwrite: bool, fields: tuple[str, ...] | None) -> None:
        self.path = path
        self.overwrite = overwrite
        self.fields = fields
        self.count = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._file: Any = None
        self._lock = asyncio.Lock()  # one write at a time, in the order batches were cut

    async def open(self) -> None:
        await aiofiles.os.makedirs(self.path.parent, exist_ok=True)
        mode = "wb" if self.overwrite else "ab"
        self._file = await aiofiles.open(self.path, mode)

    async def export(self, item: Any) -> None:
        data = self.encode(item)
        self._buffer.append(data)
        self._buffered += len(data)
        self.count += 1
        if self._buffered >= _BATCH_BYTES:
            await self.flush()

    def encode(self, item: Any) -> bytes:
        raise NotImplementedError

    async def flush(self) -> None:
        """Write what is buffered. A cancelled caller does not cancel the write: the batch
        has left the buffer, so it must reach the file."""
        if not self._buffer or self._file is None:
            return
        batch, self._buffer, self._buffered = self._buffer, [], 0
        await asyncio.shield(self._write_in_turn(batch))

    async def _write_in_turn(self, batch: list[bytes]) -> None:
        async with self._lock:
            await self._write(batch)

    async def _write(self, batch: list[bytes]) -> None:
        await self._file.write(b"".join(batch))
        await self._file.flush()

    async def close(self) -> None:
        if self._file is None:
            return
        try:
            await self.flush()
        finally:
            async with self._lock:  # writes of cancelled flushes finish first
                await self._file.close()
                self._file = None


class JsonLinesExporter(Exporter):
    """One JSON object per line; appending is natural."""

    suffix = ".jsonl"

    def encode(self, item: Any) -> bytes:
        return _dumps(item) + b"\n"


class JsonExporter(Exporter):
    """One JSON array, valid after every batch: each write ends with the closing bracket,
    which the next write overwrites."""

    suffix = ".json"
    _TAIL = b"\n]\n"

    def __init__(self, path: Path, *, overwrite: bool, fields: tuple[str, ...] | None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._end = 0  # file offset where the closing tail starts
        self._empty = True

    async def open(self) -> None:
        await aiofiles.os.makedirs(self.path.parent, exist_ok=True)
        exists = await aiofiles.os.path.exists(self.path)
        size = (await aiofiles.os.stat(self.path)).st_size if exists else 0
        if self.overwrite or size == 0:
            self._file = await aiofiles.open(self.path, "wb")
            await self._file.write(b"[" + self._TAIL)
            await self._file.flush()
            self._end = 1
            return
        self._file = await aiofiles.open(self.path, "r+b")
        await self._resume(size)

    async def _resume(self, size: int) -> None:
        """Continue an existing array (`-o` appends): find its closing bracket."""
        tail_len = min(size, 4096)
        await self._file.seek(size - tail_len)
        tail = (await self._file.read(tail_len)).rstrip()
        if not tail.endswith(b"]"):
            await self._file.close()
            self._file = None
            raise UsageError(
                f"cannot append to {self.path}: it does not end with a JSON array; "
                "use -O to overwrite it"
            )
        before = tail[:-1].rstrip()  # new items go right after the last one
        self._empty = before.endswith(b"[")
        self._end = size - tail_len + len(before)

    def encode(self, item: Any) -> bytes:
        return _dumps(item)

    async def _write(self, batch: list[bytes]) -> None:
        sep = b"\n" if self._empty else b",\n"
        piece = sep + b",\n".join(batch)
        await self._file.seek(self._end)
        await self._file.write(piece + self._TAIL)
        await self._file.flush()
        self._end += len(piece)
        self._empty = False


class CsvExporter(Exporter):
    """CSV with a header from `feed_fields` or the first item's keys; extra keys are left out."""

    suffix = ".csv"

    def __init__(self, path: Path, *, overwrite: bool, fields: tuple[str, ...] | None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._header_needed = True

    async def open(self) -> None:
        await super().open()
        self._header_needed = (await self._file.tell()) == 0

    def encode(self, item: Any) -> bytes:
        row = _to_jsonable(item)
        if dataclasses.is_dataclass(row) and not isinstance(row, type):
            row = dataclasses.asdict(row)
        if not isinstance(row, dict):
            raise ValueError(f"CSV needs dict-like items, got {type(item).__name__}")
        out = io.StringIO()
        if self.fields is None:
            self.fields = tuple(str(k) for k in row)
        writer = csv.writer(out, lineterminator="\n")
        if self._header_needed:
            writer.writerow(self.fields)
            self._header_needed = False
        writer.writerow([_csv_value(row.get(f)) for f in self.fields])
        return out.getvalue().encode()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=str).decode()
    return value


_EXPORTERS: dict[str, type[Exporter]] = {
    e.suffix: e for e in (JsonLinesExporter, JsonExporter, CsvExporter)
}


def make_exporter(path: str | os.PathLike[str], *, overwrite: bool = False,
                  fields: tuple[str, ...] | None = None) -> Exporter:
    """The exporter for `path`, chosen by its extension (.jsonl, .json or .csv)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".jl" or suffix == "":
        suffix = ".jsonl"
    cls = _EXPORTERS.get(suffix)
    if cls is None:
        known = ", ".join(sorted(_EXPORTERS))
        raise UsageError(f"cannot export to {str(path)!r}: unknown format {suffix!r} ({known})")
    return cls(target, overwrite=overwrite, fields=fields)
