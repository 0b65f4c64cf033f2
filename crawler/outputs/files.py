"""A file output: what every format (crawler/outputs/formats.py) shares.

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
import errno
import io
import logging
import os
import stat
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from crawler.exceptions import OutputError
from crawler.outputs.items import Record
from crawler.outputs.sinks import Sink
from crawler.threads import OrderedThread

__all__ = ["STDOUT", "TAIL_BYTES", "Cut", "Exporter", "file_identity", "reason"]

logger = logging.getLogger(__name__)

_BATCH_BYTES = 64 * 1024
TAIL_BYTES = 4096  # the bytes before a committed length whose digest a job dir checks
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
            self.error = reason(exc)
            if self._restore_error is not None:
                self.error += ("; cutting it back failed too: "
                               f"{self._restore_error.strerror}")
            self._buffer, self._buffered, self._pending = [], 0, 0
            self.on_error(self)

    async def _written(self) -> None:
        """Wait for every batch handed over so far."""
        if self._last_write is not None:
            await _settled(self._last_write)

    def mark(self) -> object | None:
        if self._stream or self._file is None or self.error is not None:
            return None
        return _Mark(self._size, self._tail, self.count, self._format_state())

    async def rewind(self, mark: object) -> None:
        """Cut the open file back to `mark` (every batch handed over since has landed
        first), in the file's thread, leaving it whole: a fleet worker takes back the
        items of pages whose leases it lost while it wrote them."""
        assert isinstance(mark, _Mark)
        assert not self._buffer, "rewind() after a flush, with nothing buffered"
        await self._written()
        if self.error is not None:
            return
        try:
            await self._thread.run(self._restore_sync, mark.size)
        except OSError as exc:
            self.failed(reason(exc))
            return
        self._size, self._tail, self.count = mark.size, mark.tail, mark.count
        self._restore_format(mark.state)

    def _format_state(self) -> object:
        """What a format remembers of what it wrote (a CSV header, an empty envelope)."""
        return None

    def _restore_format(self, state: object) -> None:
        """Back to `_format_state()`'s answer (rewind)."""

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
                    self.error = reason(exc)
                    self.on_error(self)
        self._thread.stop()


@dataclass(frozen=True, slots=True)
class _Mark:
    """Where an open file stood (Exporter.mark)."""

    size: int
    tail: bytes
    count: int
    state: object


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


def reason(exc: BaseException) -> str:
    """What went wrong, in a few words ("[Errno 28] No space left on device")."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def _try_open(path: Path, flags: int) -> None:
    """Open and close at once: proves the file can be opened for writing, changes nothing."""
    try:
        os.close(os.open(path, flags, 0o666))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
