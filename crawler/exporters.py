"""Feed exporters: records to .jsonl, .json and .csv files, or to standard output.

An exporter is checked (`check`, reads only), opened without truncating (`open`), then
started (`begin`: an overwrite truncates here, after every output opened). Records are
buffered and written in batches through aiofiles, each batch at the offset where the last
complete record ends. A failed write (a full disk) cuts the file back to that offset, so a
.json array stays closed and valid and no torn line is left; the exporter is then marked
failed and reports it through `on_error`. Writes never raise into a callback.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import aiofiles
import orjson

from crawler.exceptions import OutputError
from crawler.items import Record, csv_value
from crawler.sinks import Sink

__all__ = [
    "CsvExporter", "Exporter", "JsonExporter", "JsonLinesExporter", "exporter_class",
    "file_identity", "make_exporter",
]

logger = logging.getLogger(__name__)

_BATCH_BYTES = 64 * 1024
_VALIDATE_JSON_BYTES = 64 * 1024 * 1024  # a .json to append to is parsed whole up to this
STDOUT = "-"


class Exporter(Sink):
    """Base of the file sinks: buffers encoded records and writes them in batches.
    Subclasses encode."""

    suffix = ""

    def __init__(self, path: Path | str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None) -> None:
        super().__init__("standard output" if path == STDOUT else str(path),
                         overwrite=overwrite, fields=fields)
        self.path = path if path == STDOUT else Path(path)
        self._pending = 0  # records in the buffer
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._file: Any = None
        self._stream = path == STDOUT  # no offsets: nothing to truncate back to
        self._size = 0  # offset after the last complete record
        self._existing = 0  # size found by check()
        self._created = False
        self._lock = asyncio.Lock()  # one write at a time, in the order batches were cut

    # -- before anything is written ------------------------------------------------------

    def identity(self) -> object:
        return file_identity(self.path)

    def check(self) -> None:
        """Raise OutputError if this output cannot be written; read what appending needs.
        Nothing is truncated or written (blocking: run it in a thread)."""
        if self.path == STDOUT:
            return
        assert isinstance(self.path, Path)
        path = self.path
        try:
            st = path.stat()
        except FileNotFoundError:
            self._check_creatable(path)
            return
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"cannot write {path}: it is a directory")
        _try_open(path, os.O_WRONLY)
        if not stat.S_ISREG(st.st_mode):
            self._stream = True  # /dev/null, a FIFO: written in order, never cut back
            return
        if not self.overwrite and st.st_size:
            self._existing = st.st_size
            with path.open("rb") as file:
                self._read_existing(file, st.st_size)

    def _check_creatable(self, path: Path) -> None:
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise OutputError(f"cannot create {path}: {parent} is not a directory")
        if parent == path.parent:  # try it: permissions alone do not tell (root, read-only)
            _try_open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            path.unlink()
        elif not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"cannot create {path}: {parent} is not writable")

    def _read_existing(self, file: io.BufferedReader, size: int) -> None:
        """Appending: learn what the existing content needs (subclasses)."""

    async def open(self) -> None:
        """Open for writing, creating the file but truncating nothing yet."""
        if self.path == STDOUT:
            fd = os.dup(1)
        else:
            assert isinstance(self.path, Path)
            existed = self.path.exists()
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
            try:
                fd = await asyncio.to_thread(os.open, self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise OutputError(f"cannot open {self.path}: {exc.strerror}") from None
            self._created = not existed
        self._file = await aiofiles.open(fd, "r+b" if not self._stream else "wb", buffering=0)

    async def begin(self) -> None:
        """Start writing: truncate for an overwrite, continue an existing file otherwise."""
        if self._stream:
            return
        if self.overwrite:
            await self._file.truncate(0)
            self._size = 0
        else:
            self._size = self._existing

    async def discard(self) -> None:
        """Undo open() when the crawl could not start: close, and remove a file it made."""
        await self._close_file()
        if self._created and isinstance(self.path, Path):
            await asyncio.to_thread(self.path.unlink, True)

    # -- writing ---------------------------------------------------------------------------

    async def write(self, record: Record) -> None:
        """Buffer a record; write the batch when it is large enough."""
        if self.error is not None:
            return
        data = self.encode(record)
        self._buffer.append(data)
        self._buffered += len(data)
        self._pending += 1
        if self._buffered >= _BATCH_BYTES:
            await self.flush()

    def encode(self, record: Record) -> bytes:
        raise NotImplementedError

    async def flush(self) -> None:
        """Write what is buffered. A cancelled caller does not cancel the write: the batch
        has left the buffer, so it must reach the file."""
        if not self._buffer or self._file is None or self.error is not None:
            return
        batch, self._buffer, self._buffered = self._buffer, [], 0
        records, self._pending = self._pending, 0
        await asyncio.shield(self._write_in_turn(batch, records))

    async def _write_in_turn(self, batch: list[bytes], records: int) -> int:
        """Write a batch after every earlier one; where its last record ends then."""
        async with self._lock:
            if self.error is None and batch:
                try:
                    await self._write_batch(batch)
                except (OSError, ValueError) as exc:  # ENOSPC, EIO, EPIPE, a closed file
                    await self._failed(exc)
                else:
                    self.count += records
            return self._size

    def cut(self) -> tuple[list[bytes], int]:
        """Take what is buffered now (a job's commit point; see crawler/jobs.py)."""
        batch, self._buffer, self._buffered = self._buffer, [], 0
        records, self._pending = self._pending, 0
        return batch, records

    async def write_cut(self, cut: tuple[list[bytes], int]) -> int:
        """Write a cut after every earlier batch; where its last record ends."""
        return await asyncio.shield(self._write_in_turn(*cut))

    def cut_back(self, length: int) -> None:
        """Cut the file back to where a record ended, leaving it whole (blocking)."""
        assert isinstance(self.path, Path)
        with self.path.open("r+b") as file:
            file.truncate(length)

    async def _write_batch(self, batch: list[bytes]) -> None:
        data = b"".join(batch)
        await self._write_at(self._size, data)
        self._size += len(data)

    async def _write_at(self, offset: int, data: bytes) -> None:
        if not self._stream:
            await self._file.seek(offset)
        view = memoryview(data)
        while view:
            written = await self._file.write(view)
            view = view[written:]

    async def _failed(self, exc: OSError | ValueError) -> None:
        """Cut the file back to its last complete record and stop taking records."""
        self.error = _reason(exc)
        self._buffer, self._buffered, self._pending = [], 0, 0
        if not self._stream:
            try:
                await self._restore()
            except OSError as again:
                self.error += f"; cutting it back failed too: {again.strerror}"
        self.on_error(self)

    async def _restore(self) -> None:
        await self._file.truncate(self._size)

    async def close(self) -> None:
        if self._file is None:
            return
        try:
            await self.flush()
        finally:
            async with self._lock:  # writes of cancelled flushes finish first
                await self._close_file()

    async def _close_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                await file.close()
            except OSError as exc:
                if self.error is None:
                    self.error = _reason(exc)
                    self.on_error(self)


class _LineExporter(Exporter):
    """Formats with one record per line: an append adds a missing final newline."""

    def __init__(self, path: Path | str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._newline_needed = False

    def _read_existing(self, file: io.BufferedReader, size: int) -> None:
        file.seek(size - 1)
        if file.read(1) != b"\n":
            self._newline_needed = True

    async def begin(self) -> None:
        await super().begin()
        if self._newline_needed and not self.overwrite:
            logger.warning("%s did not end with a newline (a torn last record?): adding one "
                           "before the new records", self.name)
            await self._write_at(self._size, b"\n")
            self._size += 1


class JsonLinesExporter(_LineExporter):
    """One JSON object per line; appending is natural."""

    suffix = ".jsonl"

    def encode(self, record: Record) -> bytes:
        return record.json + b"\n"


class JsonExporter(Exporter):
    """One JSON array, valid after every batch: each write ends with the closing bracket,
    which the next write overwrites."""

    suffix = ".json"
    _TAIL = b"\n]\n"

    def __init__(self, path: Path | str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._empty = True  # no element in the array yet

    def _read_existing(self, file: io.BufferedReader, size: int) -> None:
        """Appending continues the array: the file must be one JSON array."""
        refuse = OutputError(f"cannot append to {self.path}: it is not a JSON array; "
                             "use -O to overwrite it")
        if size <= _VALIDATE_JSON_BYTES:
            data = file.read()
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise refuse from None
            if not isinstance(parsed, list):
                raise refuse
            self._empty = not parsed
            end = len(data.rstrip())
        else:  # too large to parse here: check both ends
            head = file.read(4096).lstrip()
            file.seek(size - 4096)
            tail = file.read().rstrip()
            if not head.startswith(b"[") or not tail.endswith(b"]"):
                raise refuse
            self._empty = False
            end = size - 4096 + len(tail)
        self._existing = end - 1  # new elements go where the closing bracket is

    async def begin(self) -> None:
        await super().begin()
        if self._stream:
            await self._write_at(0, b"[")
            return
        if self._size == 0:
            await self._write_at(0, b"[" + self._TAIL)
            self._size = 1
        else:  # continue an array: a normalised tail, from where its bracket was
            head = await self._read_back(self._size)
            self._size -= len(head) - len(head.rstrip())
            await self._file.truncate(self._size)
            await self._write_at(self._size, self._TAIL)

    async def _read_back(self, end: int) -> bytes:
        start = max(0, end - 4096)
        await self._file.seek(start)
        return bytes(await self._file.read(end - start))

    def encode(self, record: Record) -> bytes:
        return record.json

    def cut_back(self, length: int) -> None:
        assert isinstance(self.path, Path)
        with self.path.open("r+b") as file:  # later writes overwrote the bracket: again
            file.truncate(length)
            file.seek(length)
            file.write(self._TAIL)

    async def _write_batch(self, batch: list[bytes]) -> None:
        sep = b"\n" if self._empty else b",\n"
        piece = sep + b",\n".join(batch)
        if self._stream:
            await self._write_at(0, piece)
        else:
            await self._write_at(self._size, piece + self._TAIL)
        self._size += len(piece)
        self._empty = False

    async def _restore(self) -> None:
        # the old tail sat at _size; rewriting it within the file's length needs no new space
        await self._file.truncate(self._size + len(self._TAIL))
        await self._write_at(self._size, self._TAIL)

    async def close(self) -> None:
        if self._stream and self._file is not None and self.error is None:
            await self.flush()
            async with self._lock:
                try:
                    await self._write_at(0, self._TAIL)
                except (OSError, ValueError) as exc:
                    await self._failed(exc)
        await super().close()


class CsvExporter(_LineExporter):
    """CSV with a header from `feed_fields`, the existing file's header when appending, or
    the first item's keys. Values for other keys are left out, with one warning per key."""

    suffix = ".csv"

    def __init__(self, path: Path | str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._header_needed = True
        self._known: frozenset[str] = frozenset(fields or ())
        self.fields_dropped: Counter[str] = Counter()  # values left out, by key

    def _read_existing(self, file: io.BufferedReader, size: int) -> None:
        super()._read_existing(file, size)
        file.seek(0)
        text = file.read(64 * 1024).decode("utf-8", "replace")
        header = next(csv.reader(io.StringIO(text)), None)
        if header:
            if self.fields is not None and tuple(self.fields) != tuple(header):
                logger.warning("appending to %s: using its header (%s), not feed_fields",
                               self.name, ",".join(header))
            self.fields = tuple(header)
            self._known = frozenset(header)
            self._header_needed = False

    def encode(self, record: Record) -> bytes:
        row = record.fields
        if self.fields is None:
            self.fields = tuple(str(k) for k in row)
            self._known = frozenset(self.fields)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if self._header_needed:
            writer.writerow(self.fields)
            self._header_needed = False
        if not self._known.issuperset(row):
            self._left_out(row)
        writer.writerow([csv_value(row.get(f)) for f in self.fields])
        return out.getvalue().encode()

    def _left_out(self, row: dict[str, Any]) -> None:
        for key in row:
            if key not in self._known:
                if not self.fields_dropped[key]:
                    logger.warning("%s has no column %r: its values are left out (set "
                                   "feed_fields to choose the columns)", self.name, key)
                self.fields_dropped[key] += 1


FORMATS: dict[str, type[Exporter]] = {
    "jsonl": JsonLinesExporter, "jsonlines": JsonLinesExporter, "jl": JsonLinesExporter,
    "json": JsonExporter, "csv": CsvExporter,
}


def exporter_class(format_name: str) -> type[Exporter]:
    """The exporter for a format name or file suffix ("jsonl", ".csv", ...)."""
    cls = FORMATS.get(format_name.lower().lstrip("."))
    if cls is None:
        known = ", ".join(sorted(FORMATS))
        raise OutputError(f"unknown output format {format_name!r} (known: {known})")
    return cls


def make_exporter(path: str | os.PathLike[str], *, overwrite: bool = False,
                  fields: tuple[str, ...] | None = None,
                  format: str | None = None) -> Exporter:
    """The exporter for a file path (or "-" for standard output), by its extension unless
    `format` is given; no extension means JSON lines."""
    target = os.fspath(path)
    if format is None:
        suffix = "" if target == STDOUT else Path(target).suffix
        format = suffix or "jsonl"
    return exporter_class(format)(target, overwrite=overwrite, fields=fields)


def file_identity(path: Path | str) -> object:
    """What makes two output paths the same file: device and inode when it exists, else
    the resolved path."""
    if path == STDOUT:
        return STDOUT
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def _try_open(path: Path, flags: int) -> None:
    """Open and close at once: proves the file can be opened for writing, changes nothing."""
    try:
        os.close(os.open(path, flags, 0o666))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
