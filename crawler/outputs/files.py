"""Feed exporters: records to .jsonl, .json and .csv files, or to standard output.

An exporter is checked (`check`, reads only), opened without truncating (`open`), then
started (`begin`: an overwrite truncates here, after every output opened). Records are
buffered and written in batches by the file's own thread (crawler/threads.py), each batch
handed over at once and written at the offset where the last complete record ends, so
batches land in the order they were taken and the loop never waits on the disk. A failed
write (a full disk) cuts the file back to that offset, so a .json array stays closed and
valid and no torn line is left; nothing after it is written, and the exporter is marked
failed and reports it through `on_error`. Writes never raise into a callback.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import io
import json
import logging
import os
import stat
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from crawler.exceptions import OutputError
from crawler.outputs.items import Record, csv_value
from crawler.outputs.sinks import Sink
from crawler.threads import OrderedThread

__all__ = [
    "CsvExporter", "Cut", "Exporter", "JsonExporter", "JsonLinesExporter", "exporter_class",
    "file_identity", "make_exporter",
]

logger = logging.getLogger(__name__)

_BATCH_BYTES = 64 * 1024
TAIL_BYTES = 4096  # the bytes before a committed length whose digest a job dir checks
_VALIDATE_JSON_BYTES = 64 * 1024 * 1024  # a .json to append to is parsed whole up to this
STDOUT = "-"


@dataclass(frozen=True, slots=True)
class Cut:
    """A batch handed over for writing: the file's length once it is written (its last
    record's end), up to TAIL_BYTES before that, the file thread's future and the loop's."""

    length: int
    tail: bytes
    done: Future[None]
    written: asyncio.Future[None]


_NOTHING_TO_WRITE: Future[None] = Future()
_NOTHING_TO_WRITE.set_result(None)


def _settled_future() -> asyncio.Future[None]:
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def _settled(future: asyncio.Future[None]) -> None:
    """Wait for `future` without taking its outcome (a failed write is the exporter's to
    report) and without cancelling it when the waiter is cancelled."""
    if not future.done():
        await asyncio.wait([future])


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
        self._fd = -1  # the open file, written by _thread only
        self._file: object | None = None  # set while open
        self._thread = OrderedThread("output")
        self._stream = path == STDOUT  # no offsets: nothing to truncate back to
        self._size = 0  # offset after the last complete record (handed over for writing)
        self._existing = 0  # size found by check()
        self._created = False
        self._last_write: asyncio.Future[None] | None = None  # the last batch handed over
        self._io_error: OSError | None = None  # set by the thread: nothing more is written
        self._restore_error: OSError | None = None
        self._tail = b""  # the last bytes before _size (what a job dir checks on resume)

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
        if stat.S_ISFIFO(st.st_mode):  # opening one blocks until it has a reader: not here
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as exc:
                why = "it is a named pipe with no reader" if exc.errno == errno.ENXIO \
                    else exc.strerror
                raise OutputError(f"cannot write {path}: {why}") from None
        else:
            _try_open(path, os.O_WRONLY)
        if not stat.S_ISREG(st.st_mode):
            self._stream = True  # /dev/null, a pipe: written in order, never cut back
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
            await self._thread.run(partial(self.path.parent.mkdir, parents=True,
                                           exist_ok=True))
            # a stream (a device, a named pipe) is opened for writing only, and without
            # waiting for a pipe's reader: the thread's writes wait for it instead
            flags = os.O_WRONLY | os.O_NONBLOCK if self._stream else os.O_RDWR | os.O_CREAT
            try:
                fd = await self._thread.run(os.open, self.path, flags, 0o666)
                if self._stream:
                    os.set_blocking(fd, True)
            except OSError as exc:
                raise OutputError(f"cannot open {self.path}: {exc.strerror}") from None
            self._created = not existed
        self._fd = fd
        self._file = self.path

    async def begin(self) -> None:
        """Start writing: truncate for an overwrite, continue an existing file otherwise."""
        if self._stream:
            return
        if self.overwrite:
            await self._thread.run(os.ftruncate, self._fd, 0)
            self._size = 0
            self._tail = b""
        else:
            self._size = self._existing
            self._tail = await self._read_back(self._size)

    async def _read_back(self, end: int) -> bytes:
        """Up to TAIL_BYTES of the file before offset `end`."""
        start = max(0, end - TAIL_BYTES)
        if start == end:
            return b""
        data: bytes = await self._thread.run(os.pread, self._fd, end - start, start)
        return data

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
        """Write what is buffered and wait for it. A cancelled caller does not cancel the
        write: the batch has left the buffer, so it must reach the file."""
        if not self._buffer or self._file is None or self.error is not None:
            return
        await _settled(self.cut().written)

    def cut(self) -> Cut:
        """Take what is buffered now and hand it to the file's thread at once, after every
        batch taken before it and before any taken later. The Cut says, as of now, where
        its last record will end and the bytes before that; its `done` is the thread's
        future (None, or the OSError that failed the file). A job's commit takes its cut
        this way, under its lock, so that the length it stores covers exactly the pages
        completed before, and waits for `done` in its own thread (see
        crawler/frontier/jobdir.py)."""
        batch, self._buffer, self._buffered = self._buffer, [], 0
        records, self._pending = self._pending, 0
        if self.error is not None:  # the file is whole only up to before the failure
            failed: Future[None] = Future()
            failed.set_exception(self._io_error or OSError(self.error))
            return Cut(self._size, self._tail, failed, _settled_future())
        if not batch or self._file is None:
            return Cut(self._size, self._tail, _NOTHING_TO_WRITE, _settled_future())
        good = self._size  # where the file is whole if this write fails
        offset, data, piece = self._layout(batch)
        self._size = good + len(piece) if not self._stream else self._size
        self._keep_tail(piece)
        done = self._thread.submit(self._write_sync, offset, data, good)
        written = asyncio.wrap_future(done)
        written.add_done_callback(partial(self._wrote, records))
        self._last_write = written
        return Cut(self._size, self._tail, done, written)

    def _layout(self, batch: list[bytes]) -> tuple[int, bytes, bytes]:
        """Where to write a batch, what, and the part of it that is records (the file's
        length grows by that much)."""
        data = b"".join(batch)
        return self._size, data, data

    def _write_sync(self, offset: int, data: bytes, good: int) -> None:
        """In the file's thread: write `data` at `offset` (a stream: in order). After a
        failure nothing more is written; the failed write cut the file back to `good`."""
        if self._io_error is not None:
            raise self._io_error
        fd = self._fd
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view) if self._stream else os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:  # ENOSPC, EIO, EPIPE
            self._io_error = exc
            if not self._stream:
                try:
                    self._restore_sync(good)
                except OSError as again:
                    self._restore_error = again
            raise

    def _restore_sync(self, good: int) -> None:
        os.ftruncate(self._fd, good)

    def _wrote(self, records: int, written: asyncio.Future[None]) -> None:
        """On the loop, once a batch's write ended: count it, or fail the output."""
        if written.cancelled():
            return
        exc = written.exception()
        if exc is None:
            self.count += records
            return
        if self.error is None:
            self.error = _reason(exc)
            if self._restore_error is not None:
                self.error += ("; cutting it back failed too: "
                               f"{self._restore_error.strerror}")
            self._buffer, self._buffered, self._pending = [], 0, 0
            self.on_error(self)

    async def _written(self) -> None:
        """Wait for every batch handed over so far."""
        if self._last_write is not None:
            await _settled(self._last_write)

    def cut_back(self, length: int) -> None:
        """Cut the file back to where a record ended, leaving it whole (blocking)."""
        assert isinstance(self.path, Path)
        with self.path.open("r+b") as file:
            file.truncate(length)

    def _keep_tail(self, data: bytes) -> None:
        self._tail = (self._tail + data[-TAIL_BYTES:])[-TAIL_BYTES:]

    async def _write_at(self, offset: int, data: bytes) -> None:
        """Before records are written (begin, close of a stream): in the file's thread."""
        await self._thread.run(self._write_sync, offset, data, offset)

    async def close(self) -> None:
        if self._file is None:
            return
        try:
            await self.flush()
        finally:
            await self._written()  # writes of cancelled flushes finish first
            await self._close_file()

    async def _close_file(self) -> None:
        if self._file is not None:
            self._file = None
            try:
                await self._thread.run(os.close, self._fd)
            except OSError as exc:
                if self.error is None:
                    self.error = _reason(exc)
                    self.on_error(self)
        self._thread.stop()


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
            self._keep_tail(b"\n")


class JsonLinesExporter(_LineExporter):
    """One JSON object per line; appending is natural."""

    suffix = ".jsonl"

    def encode(self, record: Record) -> bytes:
        return record.json + b"\n"


class JsonExporter(Exporter):
    """One JSON array, valid after every batch: each write ends with the closing bracket,
    which the next write overwrites. `indent`: each item pretty-printed (Scrapy's
    FEED_EXPORT_INDENT)."""

    suffix = ".json"
    _TAIL = b"\n]\n"

    def __init__(self, path: Path | str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None, indent: int | None = None) -> None:
        super().__init__(path, overwrite=overwrite, fields=fields)
        self._empty = True  # no element in the array yet
        self._indent = indent or None

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
            self._tail = b"["
        else:  # continue an array: a normalised tail, from where its bracket was
            head = self._tail
            self._size -= len(head) - len(head.rstrip())
            self._tail = head.rstrip()
            await self._thread.run(os.ftruncate, self._fd, self._size)
            await self._write_at(self._size, self._TAIL)

    def encode(self, record: Record) -> bytes:
        if self._indent is None:
            return record.json
        if self._indent == 2:
            return orjson.dumps(orjson.loads(record.json), option=orjson.OPT_INDENT_2)
        return json.dumps(orjson.loads(record.json), indent=self._indent,
                          ensure_ascii=False).encode()

    def cut_back(self, length: int) -> None:
        assert isinstance(self.path, Path)
        with self.path.open("r+b") as file:  # later writes overwrote the bracket: again
            file.truncate(length)
            file.seek(length)
            file.write(self._TAIL)

    def _layout(self, batch: list[bytes]) -> tuple[int, bytes, bytes]:
        sep = b"\n" if self._empty else b",\n"
        piece = sep + b",\n".join(batch)
        self._empty = False
        return self._size, piece if self._stream else piece + self._TAIL, piece

    def _restore_sync(self, good: int) -> None:
        # the old tail sat at `good`; rewriting it within the file's length needs no space
        os.ftruncate(self._fd, good + len(self._TAIL))
        os.pwrite(self._fd, self._TAIL, good)

    async def close(self) -> None:
        if self._stream and self._file is not None and self.error is None:
            await self.flush()
            await self._written()
            try:
                await self._write_at(0, self._TAIL)
            except OSError as exc:
                self.failed(_reason(exc))
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
                  format: str | None = None, indent: int | None = None) -> Exporter:
    """The exporter for a file path (or "-" for standard output), by its extension unless
    `format` is given; no extension means JSON lines. `indent` pretty-prints .json items."""
    target = os.fspath(path)
    if format is None:
        suffix = "" if target == STDOUT else Path(target).suffix
        format = suffix or "jsonl"
    cls = exporter_class(format)
    if issubclass(cls, JsonExporter):
        return cls(target, overwrite=overwrite, fields=fields, indent=indent)
    return cls(target, overwrite=overwrite, fields=fields)


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
