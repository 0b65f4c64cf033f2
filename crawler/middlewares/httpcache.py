"""Keep responses on disk and replay them instead of fetching (Scrapy's HttpCacheMiddleware).

With `http_cache=True` (or `--cache`) every 2xx response (and the statuses in
`http_cache_codes`) is stored in `<http_cache_dir>/<spider>.sqlite3`, keyed by the request
fingerprint, and a later request with that fingerprint is answered from there without
touching the network: no politeness delay is charged, and robots.txt (stored too, whatever
its 4xx answer) is not fetched again. So a spider can be rerun while its selectors are
written. `http_cache_expiration` seconds make a stored response stale (0: never);
`meta["dont_cache"]` skips the cache for one request; `--cache-clear` empties it.

`http_cache_policy = "rfc9111"` behaves as an HTTP cache (RFC 9111, a private one) instead
of replaying everything: a response with `Cache-Control: no-store` (or to a request with
it) is not stored; a stored one is served only while fresh (its `max-age`, else `Expires`
minus `Date`, else a tenth of its age since `Last-Modified`, less its `Age`; `no-cache`
or a request's `no-cache` / `max-age=0`: never fresh); a stale one is revalidated: the
request goes out with `If-None-Match` / `If-Modified-Since` from it, and a `304` is
answered with the stored body (its headers refreshed, counted `httpcache/revalidated`); a
stale one without validators is fetched again whole. `must-revalidate` changes nothing
here: nothing stale is ever served.

One identity's responses are never served to another: a request sent with credentials
(an `Authorization` or `Proxy-Authorization` header, a user:password in its URL) is
neither looked up nor stored (counted as `httpcache/uncacheable`); a request's cookies
are part of its key (a digest of the `Cookie` it is sent with), so a response is replayed
only to a request with the same cookies. `Vary` is honoured: a stored response records
the values its request had for the headers `Vary` names, and is replayed only to a
request with the same values (`Vary: *`: not stored).

SQLite calls run in one thread of their own, never on the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from multidict import CIMultiDict

from crawler.exceptions import NotConfigured, StartupError
from crawler.frontier import sqlitedb
from crawler.handlers.http import default_headers, sent_header
from crawler.http import Request, Response
from crawler.middlewares.freshness import ask_if_changed, cache_directives, fresh
from crawler.signals import Signal
from crawler.threads import OrderedThread

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["HttpCacheMiddleware", "cache_path", "clear_cache"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    fingerprint BLOB PRIMARY KEY,
    url TEXT NOT NULL,
    status INTEGER NOT NULL,
    headers BLOB NOT NULL,
    body BLOB NOT NULL,
    stored REAL NOT NULL,
    vary TEXT
)
"""
_DROP_HEADERS = ("Content-Encoding", "Content-Length", "Transfer-Encoding")  # body is decoded


def cache_path(directory: str | Path, spider_name: str) -> Path:
    return Path(directory) / f"{spider_name}.sqlite3"


def clear_cache(directory: str | Path, spider_name: str) -> bool:
    """Delete a spider's cache (blocking); True when there was one."""
    return sqlitedb.remove(cache_path(directory, spider_name))


class HttpCacheMiddleware:
    def __init__(self, crawler: CrawlerProtocol) -> None:
        s = crawler.settings
        self._path = cache_path(s.http_cache_dir, crawler.spider.name)
        self._expiration = s.http_cache_expiration
        self._codes = frozenset(s.http_cache_codes)
        self._rfc = s.http_cache_policy == "rfc9111"
        self._fingerprint = crawler.fingerprint
        self._defaults = default_headers(s)  # what a request is sent with, for Vary
        self._counters = crawler.stats.counters
        self._db: sqlite3.Connection | None = None
        self._worker = OrderedThread("http-cache")  # every SQLite call, off the loop
        self._check_dir()
        crawler.signals.connect(Signal.SPIDER_OPENED, self.open)
        crawler.signals.connect(Signal.SPIDER_CLOSED, self.close)

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> HttpCacheMiddleware:
        if not crawler.settings.http_cache:
            raise NotConfigured
        return cls(crawler)

    def _check_dir(self) -> None:
        directory = self._path.parent
        if directory.exists() and not directory.is_dir():
            raise StartupError(f"http_cache_dir {str(directory)!r} is not a directory")

    async def open(self) -> None:
        try:
            await self._worker.run(self._connect)
        except (OSError, sqlite3.Error) as exc:
            logger.error("cannot open the HTTP cache %s: %s; going on without it",
                         self._path, exc)
        else:
            logger.info("HTTP cache: %s", self._path)

    def _connect(self) -> None:
        db = self._db = sqlitedb.connect(self._path, _SCHEMA)
        if "vary" not in {row[1] for row in db.execute("PRAGMA table_info(responses)")}:
            db.execute("ALTER TABLE responses ADD COLUMN vary TEXT")  # a cache from before

    def _key(self, request: Request) -> bytes | None:
        """The request's key: its fingerprint and a digest of its cookies; None for a
        request sent with credentials, which is not cached."""
        headers = request.headers
        if request.yurl.password is not None or (headers is not None and (
                "Authorization" in headers or "Proxy-Authorization" in headers)):
            self._counters["httpcache/uncacheable"] += 1
            return None
        key: bytes = self._fingerprint(request)
        cookie = sent_header(request, "Cookie", self._defaults)
        if cookie:
            key += hashlib.blake2b(cookie.encode(), digest_size=16).digest()
        return key

    async def close(self) -> None:
        if self._db is not None:
            await self._worker.run(self._db.close)
            self._db = None
        self._worker.stop()

    async def process_request(self, request: Request) -> Response | None:
        if self._db is None or (request._meta and request._meta.get("dont_cache")):
            return None
        key = self._key(request)
        if key is None:
            return None
        try:
            row = await self._worker.run(self._get, key)
        except sqlite3.Error as exc:
            self._failed("read", exc)
            return None
        if row is None or (self._expiration and time.time() - row[4] > self._expiration) \
                or not self._same_vary(request, row[5]):
            self._counters["httpcache/miss"] += 1
            return None
        url, status, headers, body, stored, _ = row
        stored_headers: CIMultiDict[str] = CIMultiDict(orjson.loads(headers))
        if self._rfc and not fresh(request, stored_headers, stored, time.time()):
            # revalidate: a 304 gets the stored body
            if ask_if_changed(request, stored_headers.get("ETag"),
                              stored_headers.get("Last-Modified")):
                self._counters["httpcache/revalidate"] += 1
            else:
                self._counters["httpcache/stale"] += 1
            return None
        self._counters["httpcache/hit"] += 1
        return Response(url, status, stored_headers, body, request, flags=("cached",))

    def _same_vary(self, request: Request, vary: str | None) -> bool:
        if not vary:
            return True
        stored: dict[str, str | None] = orjson.loads(vary)
        return all(sent_header(request, name, self._defaults) == value
                   for name, value in stored.items())

    def _get(self, key: bytes) -> tuple[Any, ...] | None:
        assert self._db is not None
        row: tuple[Any, ...] | None = self._db.execute(
            "SELECT url, status, headers, body, stored, vary FROM responses "
            "WHERE fingerprint = ?", (key,)).fetchone()
        return row

    async def process_response(self, request: Request, response: Response) -> Response:
        if self._rfc and response.status == 304 and self._db is not None \
                and "cached" not in response.flags:
            return await self._revalidated(request, response)
        if self._rfc and self._db is not None and (
                "no-store" in cache_directives(response.headers)
                or (request.headers is not None
                    and "no-store" in cache_directives(request.headers))):
            self._counters["httpcache/no_store"] += 1
            return response
        if self._db is None or "cached" in response.flags or not self._storable(
                request, response.status) or (request._meta and request._meta.get("dont_cache")):
            return response
        names = [n.strip() for value in response.headers.getall("Vary", ())
                 for n in value.split(",") if n.strip()]
        if "*" in names:
            self._counters["httpcache/vary_star"] += 1
            return response
        key = self._key(request)
        if key is None:
            return response
        vary = orjson.dumps({n.lower(): sent_header(request, n, self._defaults)
                             for n in names}).decode() if names else None
        headers = [(k, v) for k, v in response.headers.items() if k not in _DROP_HEADERS]
        row = (key, response.url, response.status, orjson.dumps(headers), response.body,
               time.time(), vary)
        try:
            await self._worker.run(self._put, row)
        except sqlite3.Error as exc:
            self._failed("write", exc)
        else:
            self._counters["httpcache/store"] += 1
        return response

    async def _revalidated(self, request: Request, response: Response) -> Response:
        """A 304 to a revalidation: the stored response, its headers refreshed by the
        304's, kept fresh from now (the 304 itself when nothing is stored)."""
        key = self._key(request)
        if key is None:
            return response
        try:
            row = await self._worker.run(self._get, key)
        except sqlite3.Error as exc:
            self._failed("read", exc)
            return response
        if row is None:
            return response
        url, status, headers, body, _, vary = row
        merged: CIMultiDict[str] = CIMultiDict(orjson.loads(headers))
        for name in set(response.headers.keys()) - set(_DROP_HEADERS):
            merged.popall(name, None)
            for value in response.headers.getall(name):
                merged.add(name, value)
        try:
            await self._worker.run(self._put, (key, url, status, orjson.dumps(
                list(merged.items())), body, time.time(), vary))
        except sqlite3.Error as exc:
            self._failed("write", exc)
        self._counters["httpcache/revalidated"] += 1
        return Response(url, status, merged, body, request, flags=("cached", "revalidated"))

    def _storable(self, request: Request, status: int) -> bool:
        if 200 <= status < 300 or status in self._codes:
            return True
        # a robots.txt 4xx means "no rules": replaying it spares the fetch as well
        return status < 500 and bool(request.meta.get("robots_txt"))

    def _put(self, row: tuple[Any, ...]) -> None:
        assert self._db is not None  # autocommit: one statement, one transaction
        self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    def _failed(self, what: str, exc: Exception) -> None:
        self._counters[f"httpcache/{what}_errors"] += 1
        if self._counters[f"httpcache/{what}_errors"] == 1:
            logger.error("HTTP cache %s failed (%s): %s; further failures are only counted",
                         what, self._path, exc)
