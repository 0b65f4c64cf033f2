"""Items into PostgreSQL: `-o postgresql://USER@HOST:PORT/DB?table=NAME[&key=FIELD]`.

The table is created when missing: `id bigserial`, `spider text`, `item jsonb`,
`scraped_at timestamptz`. With `key=FIELD` a unique index on (spider, item->>FIELD) makes
every write an upsert: a re-crawl updates its rows instead of adding more. `-O` empties
the table (this spider's rows) before the crawl.

Items are written by one connection in batches, one INSERT ... SELECT FROM unnest() per
batch in its own transaction, off the crawl's path: `write()` only appends to a bounded
buffer and waits when it is full (backpressure, never a drop). If the server goes away,
the batch is retried with backoff until it is committed (logged once per outage); `flush()`
returns when everything before it is committed, so a job directory or a shared frontier
acknowledges pages only once their items are in the table. An item PostgreSQL cannot
store (a NUL character, say) is logged, counted (`rejected`) and left out of its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from crawler.exceptions import OutputError
from crawler.outputs.items import Record
from crawler.outputs.sinks import Sink
from crawler.redact import redact

__all__ = ["PostgresSink"]

logger = logging.getLogger(__name__)

BATCH = 1000  # records per INSERT
BUFFER = 20_000  # records held while the server is slow or away; write() waits beyond
BUFFER_BYTES = 64 * 1024 * 1024  # ... or this many bytes of them (large items)
BATCH_BYTES = 8 * 1024 * 1024  # a batch ends at BATCH records or this many bytes
_LINGER = 0.2  # seconds a partial batch waits for more records
_BACKOFF = (0.25, 0.5, 1.0, 2.0, 5.0)  # seconds between tries while the server is away
CLOSE_PATIENCE = 30.0  # seconds close() keeps retrying an unreachable server
_Entry = tuple[bytes, bytes | None]  # an item's JSON, and its key's JSON with ?key=
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TYPES = {"text": ("text", "character varying"), "jsonb": ("jsonb",)}
WAIT_NOTICE = 10.0  # seconds a batch waits on the server (a lock) before that is said


class PostgresSink(Sink):
    """The `postgresql://` and `postgres://` sink (see the module docstring)."""

    def __init__(self, uri: str, *, overwrite: bool = False,
                 fields: tuple[str, ...] | None = None) -> None:
        super().__init__(_masked(uri), overwrite=overwrite, fields=fields)
        self._dsn, self.table, self.key = _parse(uri)
        self._identity = _masked(self._dsn) + f"#{self.table}"
        self._conn: Any = None
        # (item JSON, its key's JSON when ?key=): the key read once, when the item comes
        self._buffer: deque[_Entry] = deque()
        self._buffered = 0  # bytes in _buffer
        self._taken = 0  # records put in the buffer
        self._settled = 0  # of those, committed or refused by the server
        self._room = asyncio.Event()
        self._wake = asyncio.Event()
        self._committed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._deadline: float | None = None  # close(): give up on the server after it
        # with a key, writing an item again updates its row: a resumed job may redo pages
        self.idempotent = self.key is not None
        self.rejected = 0  # items PostgreSQL cannot store
        self.retries = 0  # batches tried again after the server went away
        self.reconnects = 0  # new connections after the first (a restart, a cut one)
        self._waited = False  # a batch kept waiting by the server was said

    def identity(self) -> object:
        return self._identity

    async def open(self) -> None:
        """Connect, create the table (and the key's index), check the rights: every
        problem is a one-line OutputError before any page is fetched."""
        asyncpg = _asyncpg()
        try:
            self._conn = await self._connect(asyncpg)
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            raise OutputError(f"{self.name}: {exc}") from None
        except asyncpg.InvalidPasswordError:
            raise OutputError(f"{self.name}: password authentication failed") from None
        except asyncpg.InvalidCatalogNameError as exc:
            raise OutputError(f"{self.name}: {exc}") from None
        except asyncpg.PostgresError as exc:
            raise OutputError(f"{self.name}: {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise OutputError(f"{self.name}: cannot connect: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        try:
            await self._prepare()
        except BaseException as exc:
            await self._conn.close()
            self._conn = None
            if isinstance(exc, asyncpg.PostgresError):
                raise OutputError(f"{self.name}: cannot prepare table {self.table}: {exc}") \
                    from None
            raise

    async def _connect(self, asyncpg: Any) -> Any:
        settings = {} if "application_name" in self._dsn else {
            "application_name": f"crawler {self.spider_name}"[:63]}  # pg_stat_activity
        return await asyncpg.connect(self._dsn, timeout=10, server_settings=settings)

    async def _prepare(self) -> None:
        conn, table = self._conn, self._quoted()
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, spider text NOT "
            "NULL, item jsonb NOT NULL, scraped_at timestamptz NOT NULL DEFAULT now())")
        await self._check_columns()
        if self.key is not None:
            index = _quote(f"{self.table.split('.')[-1]}_{self.key}_key"[:63])
            await conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} "
                               f"(spider, (item->>{_literal(self.key)}))")
        allowed = await conn.fetchval("SELECT has_table_privilege($1, 'INSERT')", self.table)
        if not allowed:
            raise OutputError(f"{self.name}: permission denied to insert into {self.table}")

    async def _check_columns(self) -> None:
        """A table that was there before must take our rows: `spider` text and `item`
        jsonb, and every other NOT NULL column with a default (else every batch would
        fail, after pages were fetched)."""
        rows = await self._conn.fetch(
            "SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull, "
            "atthasdef OR attidentity <> '' AS has_default FROM pg_attribute WHERE "
            "attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
            self._quoted())
        columns = {r["attname"]: r for r in rows}
        problems = [f"no {name} {kind} column" for name, kind in (("spider", "text"),
                                                                   ("item", "jsonb"))
                    if name not in columns]
        problems += [f"its {name} column is {columns[name]['type']}, not {kind}"
                     for name, kind in (("spider", "text"), ("item", "jsonb"))
                     if name in columns and columns[name]["type"] not in _TYPES[kind]]
        problems += [f"its column {name} is NOT NULL without a default"
                     for name, r in columns.items() if name not in ("spider", "item")
                     and r["attnotnull"] and not r["has_default"]]
        if problems:
            raise OutputError(f"{self.name}: table {self.table} exists with another layout "
                              f"({'; '.join(problems)}): give another ?table= (it is made "
                              "with id, spider text, item jsonb, scraped_at)")

    async def begin(self) -> None:
        if self.overwrite:
            await self._conn.execute(f"DELETE FROM {self._quoted()} WHERE spider = $1",
                                     self.spider_name)
        self._writer = asyncio.create_task(self._write_batches(), name=f"sink {self.name}")
        self._writer.add_done_callback(self._writer_ended)

    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        """A writer that died (the table dropped, a right revoked) fails the sink at once,
        so that write() and flush() stop waiting for it and the crawl stops."""
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.failed(f"{type(exc).__name__}: {exc}")
        self._room.set()
        self._committed.set()

    async def write(self, record: Record) -> None:
        data = record.json
        if b"\\u0000" in data:  # jsonb has no NUL character: refused before a round trip
            self._reject(record.fields, "a string holds a NUL character (\\u0000), which "
                                        "PostgreSQL text cannot store")
            return
        key = None
        if self.key is not None:
            value = record.fields.get(self.key)
            if value is None:
                self._reject(record.fields, f"no {self.key!r} field to upsert on (?key=)")
                return
            key = orjson.dumps(value)
        while (len(self._buffer) >= BUFFER or self._buffered >= BUFFER_BYTES) \
                and self.error is None:
            self._room.clear()  # backpressure: the crawl waits for the server
            await self._room.wait()
        if self.error is not None:
            return
        self._buffer.append((data, key))
        self._buffered += len(data)
        self._taken += 1
        if len(self._buffer) >= BATCH:
            self._wake.set()

    async def flush(self) -> None:
        """Return once every record written before the call is committed."""
        target = self._taken
        while self._settled < target and self.error is None \
                and self._writer is not None and not self._writer.done():
            self._committed.clear()
            self._wake.set()
            await self._committed.wait()

    async def close(self) -> None:
        if self._writer is not None:
            self._deadline = time.monotonic() + CLOSE_PATIENCE
            try:
                await self.flush()
            finally:
                self._closing = True
                self._wake.set()
                with contextlib.suppress(Exception):  # reported by _writer_ended
                    await self._writer
                self._writer = None
        if self._buffer and self.error is None:
            self.failed(f"{len(self._buffer)} item(s) could not be written: PostgreSQL did "
                        f"not take them within {CLOSE_PATIENCE:.0f} s (unreachable, or a "
                        "lock held on the table)")
        if self._conn is not None:
            try:
                await asyncio.wait_for(self._conn.close(), 5)
            except Exception:  # a dead connection needs no goodbye
                self._conn.terminate()
            self._conn = None

    async def discard(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _write_batches(self) -> None:
        while True:
            if not self._buffer:
                self._committed.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(self._buffer) < BATCH and not self._closing:
                try:  # a partial batch waits a moment for company
                    await asyncio.wait_for(self._wake.wait(), _LINGER)
                except TimeoutError:
                    pass
                self._wake.clear()
            batch: list[_Entry] = []
            size = 0
            for entry in self._buffer:  # up to BATCH records or BATCH_BYTES, at least one
                if batch and (len(batch) >= BATCH or size + len(entry[0]) > BATCH_BYTES):
                    break
                batch.append(entry)
                size += len(entry[0])
            stored = await self._commit(batch)
            if stored is None:
                return  # gave up (close() past its patience)
            for _ in batch:
                self._buffer.popleft()
            self._buffered -= size
            self._settled += len(batch)
            self.count += stored
            self._room.set()
            self._committed.set()

    async def _commit(self, batch: list[_Entry]) -> int | None:
        """Write `batch` in one transaction, riding out a server that goes away; items the
        server refuses are rejected one by one. How many rows were stored; None when
        close() stopped waiting."""
        asyncpg = _asyncpg()
        tries = 0
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._connect(asyncpg)
                    self.reconnects += 1
                if not await self._insert_watched(batch):
                    return None  # close() stopped waiting for the server
                if tries:
                    logger.info("%s: PostgreSQL is back; writing again", self.name)
                return len(batch)
            except asyncpg.DataError:
                return await self._insert_one_by_one(batch)
            except (OSError, TimeoutError, asyncpg.PostgresConnectionError,
                    asyncpg.InterfaceError, asyncpg.InternalClientError,
                    asyncpg.exceptions.OperatorInterventionError) as exc:
                # the connection is gone or out of step (a backend terminated while idle
                # leaves asyncpg's protocol mid-operation): a new one, the batch again
                if tries == 0:
                    logger.warning("%s: PostgreSQL unreachable (%s): %d item(s) held, "
                                   "retrying; the crawl waits when %d are held", self.name,
                                   _one_line(exc), len(self._buffer), BUFFER)
                tries += 1
                self.retries += 1
                if self._conn is not None:
                    self._conn.terminate()
                    self._conn = None
                if self._deadline is not None and time.monotonic() > self._deadline:
                    return None
                await asyncio.sleep(_BACKOFF[min(tries - 1, len(_BACKOFF) - 1)])

    async def _insert(self, batch: list[_Entry]) -> None:
        table = self._quoted()
        if self.key is None:
            sql = (f"INSERT INTO {table} (spider, item) SELECT $1, x FROM "
                   "unnest($2::jsonb[]) AS x")
        else:
            # one row may be updated once per INSERT: the last item of each key, keys
            # compared as the index compares them (item->>FIELD: 1 and "1" are one key)
            field = _literal(self.key)
            sql = (f"INSERT INTO {table} (spider, item) SELECT $1, x FROM (SELECT DISTINCT "
                   f"ON (x->>{field}) x FROM unnest($2::jsonb[]) WITH ORDINALITY AS u(x, n) "
                   f"ORDER BY x->>{field}, n DESC) AS last ON CONFLICT (spider, "
                   f"(item->>{field})) DO UPDATE SET item = EXCLUDED.item, scraped_at = now()")
        await self._conn.execute(sql, self.spider_name, [data.decode() for data, _ in batch])

    async def _insert_watched(self, batch: list[_Entry]) -> bool:
        """`_insert`, said once when the server keeps it waiting (a lock held on the
        table): the crawl waits for it, but close() only for CLOSE_PATIENCE seconds.
        False when close() stopped waiting (the statement is cancelled)."""
        insert = asyncio.ensure_future(self._insert(batch))
        waited = 0.0
        try:
            while True:
                done, _ = await asyncio.wait({insert}, timeout=WAIT_NOTICE)
                if done:
                    insert.result()
                    if waited and self._waited:
                        logger.info("%s: the batch went in after %.0f s", self.name, waited)
                    return True
                waited += WAIT_NOTICE
                if not self._waited:
                    self._waited = True
                    logger.warning("%s: a batch of %d item(s) has waited %.0f s for "
                                   "PostgreSQL (a lock held on table %s?): the crawl waits "
                                   "for it", self.name, len(batch), waited, self.table)
                if self._deadline is not None and time.monotonic() > self._deadline:
                    return False
        finally:
            if not insert.done():
                insert.cancel()
                with contextlib.suppress(BaseException):
                    await insert

    async def _insert_one_by_one(self, batch: list[_Entry]) -> int:
        asyncpg = _asyncpg()
        stored = 0
        for entry in batch:
            try:
                await self._insert([entry])
                stored += 1
            except asyncpg.DataError as exc:
                self._reject(orjson.loads(entry[0]), _one_line(exc))
        return stored

    def _reject(self, fields: dict[str, Any], why: str) -> None:
        self.rejected += 1
        url = fields.get("url") if isinstance(fields, dict) else None
        logger.warning("%s: item not stored: %s%s", self.name, why,
                       f" (url {url})" if url else "")

    def _quoted(self) -> str:
        return ".".join(_quote(part) for part in self.table.split("."))


def _parse(uri: str) -> tuple[str, str, str | None]:
    """(the DSN asyncpg gets, the table, the key field) from the -o URI."""
    parts = urlsplit(uri)
    if not parts.hostname and not parts.path.strip("/"):
        raise OutputError(f"{_masked(uri)}: give a server and a database, e.g. "
                          "postgresql://USER@HOST:5432/DB?table=items")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in ("table", "key")}
    table = ours.get("table", "items")
    if not all(_IDENT.fullmatch(part) for part in table.split(".")) or table.count(".") > 1:
        raise OutputError(f"{_masked(uri)}: table {table!r} is not a plain name "
                          "(letters, digits, _; optionally schema.table)")
    key = ours.get("key")
    if key is not None and not key:
        raise OutputError(f"{_masked(uri)}: key= needs an item field name")
    rest = urlencode([(k, v) for k, v in query if k not in ("table", "key")])
    scheme = "postgresql"
    return urlunsplit((scheme, parts.netloc, parts.path, rest, "")), table, key


def _masked(uri: str) -> str:
    """The URI without its password (in its user part or its query), for every message."""
    return redact(uri)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _asyncpg() -> Any:
    try:
        return importlib.import_module("asyncpg")
    except ImportError:
        raise OutputError("postgresql:// outputs need asyncpg: pip install "
                          "'crawler[postgres]'") from None
