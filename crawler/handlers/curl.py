"""The second HTTP stack: libcurl through curl_cffi, with HTTP/2 and a browser's TLS and
HTTP/2 fingerprint (`impersonate`), for sites that refuse clients that do not look like a
browser. `http_stack = "curl"` sends every http(s) page through it; a request picks a
stack with `meta["download_handler"] = "curl"` (or `"aiohttp"`).

It behaves as the aiohttp handler (crawler/handlers/http.py) does, whatever the stack: the
same headers and Referer, redirects left to the middleware, `max_response_size` (and
`meta["download_maxsize"]`, `meta["download_truncate"]`) checked on the bytes as they
arrive, bodies decompressed by crawler/http/compression.py within the limit, `timeout` and
`connect_timeout`, the same failure kinds, `meta["proxy"]` with its credentials sent as
Proxy-Authorization only, and DNS through the crawl's own resolver (its TTL cache,
`resolve`, the SSRF guard): the address is looked up here, checked, and handed to libcurl
for the connection (CURLOPT_RESOLVE), so libcurl never resolves a target itself and a name
that rebinds cannot slip past the guard.

Why curl_cffi (and not rnet): measured on loopback (`python -m benchmarks.clients`,
benchmarks/results/clients.txt) both reach about the same requests/s over TLS and HTTP/2,
both below aiohttp on one host, and rnet crashed (SIGSEGV) once when left to find a CA
itself; curl_cffi is libcurl (HTTP/2 through proxies, which Scrapy lacks, and every proxy
and TLS option curl has), pins its fingerprints to named browser versions, and lets a
request give its own addresses (CURLOPT_RESOLVE), which the guard needs. Its transfers run
on the event loop's thread (libcurl's multi interface driven by asyncio): it does not move
the network work off the GIL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import tempfile
from collections import Counter
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict
from yarl import URL

from crawler.exceptions import DownloadError, Kind, StartupError
from crawler.handlers.dns import build_resolver
from crawler.handlers.http import (
    SENT,
    default_headers,
    proxy_url,
    request_headers,
    tls_failure,
)
from crawler.handlers.netguard import ForbiddenAddress, GuardedResolver, forbidden, literal_address
from crawler.http import Request, Response
from crawler.http.compression import DecodingError, Inflater
from crawler.settings import Settings

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

    from crawler.core.state import CrawlerProtocol

__all__ = ["CurlDownloader"]

logger = logging.getLogger(__name__)

# libcurl's error codes -> our kinds (https://curl.se/libcurl/c/libcurl-errors.html)
_KINDS: dict[int, Kind] = {
    1: Kind.INVALID_URL, 3: Kind.INVALID_URL, 6: Kind.DNS, 5: Kind.CONNECTION,
    7: Kind.CONNECTION, 28: Kind.TIMEOUT, 52: Kind.CONNECTION, 55: Kind.CONNECTION,
    56: Kind.CONNECTION, 18: Kind.PAYLOAD, 61: Kind.CONTENT_ENCODING, 8: Kind.PROTOCOL,
    16: Kind.PROTOCOL, 92: Kind.PROTOCOL, 97: Kind.CONNECTION,
    **dict.fromkeys((35, 53, 58, 59, 60, 64, 77, 80, 82, 83, 90, 91, 98), Kind.TLS),
}
# the addresses of this task's request (CURLOPT_RESOLVE entries), set on the libcurl handle
# the session takes for it (_Session.pop_curl)
_RESOLVE: ContextVar[list[str] | None] = ContextVar("curl_resolve", default=None)


def _session_class() -> Any:
    try:
        from curl_cffi.const import CurlOpt
        from curl_cffi.requests import AsyncSession
    except ImportError:
        return None

    class _Session(AsyncSession):  # type: ignore[type-arg]
        async def pop_curl(self) -> Any:
            curl = await super().pop_curl()
            entries = _RESOLVE.get()
            if entries:  # reset when the handle goes back to the pool
                curl.setopt(CurlOpt.RESOLVE, entries)
            return curl

    return _Session


class CurlDownloader:
    """A Downloader on libcurl (curl_cffi), used as an async context manager.

    Usage:
        async with CurlDownloader(Settings(impersonate="chrome")) as downloader:
            response = await downloader.fetch(Request("https://example.com/"))
    """

    def __init__(self, settings: Settings, *, counters: Counter[str] | None = None,
                 resolver: AbstractResolver | None = None, refuse: Any = forbidden) -> None:
        self._session_class = _session_class()
        if self._session_class is None:
            raise StartupError("the curl HTTP stack needs curl_cffi: pip install "
                               "'crawler[broad]'")
        self._settings = settings
        self._counters = counters
        self._resolver = resolver
        self._refuse = refuse
        self._guard: GuardedResolver | None = None
        self._session: Any = None
        self._headers = default_headers(settings)
        self._referer_policy = settings.referer_policy
        self._tls_warned: set[str] = set()
        self._bundle: str | None = None  # the usual CAs and tls_ca_bundle's, in a temp file

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> CurlDownloader:
        return cls(crawler.settings, counters=crawler.stats.counters)

    async def __aenter__(self) -> CurlDownloader:
        from curl_cffi import CurlHttpVersion

        s = self._settings
        self._resolver = self._resolver or build_resolver(s, self._counters)
        # the guard filters what the resolver answers; without it every address passes
        self._guard = GuardedResolver(self._resolver, self._refuse if not
                                      s.allow_private_addresses else lambda _: False)
        verify: bool | str = s.tls_verify
        if s.tls_verify and s.tls_ca_bundle:  # trusted as well as the usual CAs, not instead
            self._bundle = await asyncio.to_thread(_joined_bundle, s.tls_ca_bundle)
            verify = self._bundle
        self._session = self._session_class(
            max_clients=s.workers, verify=verify, impersonate=s.impersonate,
            default_headers=False,  # our headers, in our order; the fingerprint is TLS's
            http_version=CurlHttpVersion.V2TLS if s.http2 else CurlHttpVersion.V1_1,
            allow_redirects=False,  # each hop is a request of its own (the middleware's)
            trust_env=False,  # proxies come from meta (crawler/middlewares/proxy.py)
            discard_cookies=True)  # cookies are the middleware's: curl keeps none
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if self._guard is not None:
            await self._guard.close()
        if self._bundle is not None:
            await asyncio.to_thread(Path(self._bundle).unlink, missing_ok=True)
            self._bundle = None

    async def fetch(self, request: Request) -> Response:
        assert self._session is not None, "use CurlDownloader as an async context manager"
        from curl_cffi.curl import CurlError

        try:
            return await self._fetch(request)
        except DownloadError:
            raise
        except ForbiddenAddress as exc:
            raise DownloadError(Kind.FORBIDDEN_ADDRESS, str(exc), request) from None
        except CurlError as exc:
            kind = _kind(exc)
            if kind is Kind.TLS:
                raise self._tls_failure(request, exc) from None
            raise DownloadError(kind, f"{_message(exc)}", request) from None
        except TimeoutError:
            raise DownloadError(Kind.TIMEOUT, f"no response within {self._settings.timeout:g} "
                                "s", request) from None
        except OSError as exc:  # the resolver's: the name does not resolve
            raise DownloadError(Kind.DNS, f"DNS lookup failed: {exc}", request) from None
        except (ValueError, UnicodeError) as exc:
            raise DownloadError(Kind.INVALID_REQUEST, f"{type(exc).__name__}: {exc}", request) \
                from None

    async def _fetch(self, request: Request) -> Response:
        s = self._settings
        meta = request._meta or {}
        limit = meta.get("download_maxsize") or s.max_response_size
        truncate = bool(meta.get("download_truncate"))
        url = request.yurl
        proxy, proxy_auth = _proxy(meta.get("proxy"), request)
        entries = await self._addresses(url, proxy)
        token = _RESOLVE.set(entries)
        try:
            async with asyncio.timeout(s.timeout):
                resp = await self._session.request(
                    request.method, str(url),
                    headers=list(request_headers(request, self._headers,
                                                 self._referer_policy).items()),
                    data=request.body or None, proxy=proxy, proxy_auth=proxy_auth,
                    # connecting; then (streamed) a stall as long as both, past which the
                    # total (asyncio's, around the read too) has already ended it
                    timeout=(s.connect_timeout, s.timeout),
                    accept_encoding=None,  # the body comes as sent; inflated below
                    stream=True)
                done = False
                _note_sent(resp)
                try:
                    headers: CIMultiDict[str] = CIMultiDict(
                        (k, v) for k, v in resp.headers.multi_items() if v is not None)
                    declared = headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > limit and not truncate:
                        raise DownloadError(Kind.TOO_LARGE, f"Content-Length {declared} "
                                            f"exceeds {limit} bytes", request)
                    chunks = await _read_limited(resp, limit, truncate, request)
                    done = True
                finally:
                    await _close(resp, done)
        finally:
            _RESOLVE.reset(token)
        try:
            body = await _inflated(chunks, headers.get("Content-Encoding", ""), limit,
                                   truncate)
        except DecodingError as exc:
            raise DownloadError(exc.kind, str(exc), request) from None
        return Response(URL(resp.url, encoded=True), resp.status_code, headers, body, request)

    async def _addresses(self, url: URL, proxy: str | None) -> list[str] | None:
        """The target's address for libcurl, looked up and checked here (none through a
        proxy, which resolves it: the target is only checked)."""
        guard = self._guard
        assert guard is not None
        host = url.host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        literal = literal_address(host)
        if literal is not None:
            guard.check(host, literal)
            return None
        if proxy is not None:
            if not self._settings.allow_private_addresses:
                await guard.check_target(host, port)
            return None
        found = await guard.resolve(host, port)
        address = found[0]["host"]
        shown = f"[{address}]" if isinstance(ipaddress.ip_address(address),
                                             ipaddress.IPv6Address) else address
        return [f"{host}:{port}:{shown}"]

    def _tls_failure(self, request: Request, exc: Exception) -> DownloadError:
        return tls_failure(request, _message(exc), self._tls_warned, logger)


def _joined_bundle(extra: str) -> str:
    """A temporary PEM file of the CAs libcurl trusts by default (certifi's, curl_cffi's
    own) followed by `extra`'s: libcurl takes one CA file, which replaces its default."""
    import certifi

    fd, path = tempfile.mkstemp(prefix="crawler-ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as out:
        out.write(Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n")
        out.write(Path(extra).read_bytes())
    return path


def _note_sent(resp: Any) -> None:
    """When the request went out (the loop's clock), for a delay that counts from there
    (crawler/core/ratelimit.py): now, as its headers are read, less libcurl's time from the
    moment the request was about to be written (connection and TLS done) to its first
    byte back. Late rather than early: a response read late moves it later, never sooner,
    so the gap the server sees is never shorter than the delay."""
    box = SENT.get()
    if box is None or resp.curl is None:
        return
    from curl_cffi.const import CurlInfo

    curl = resp.curl
    waited = float(curl.getinfo(CurlInfo.STARTTRANSFER_TIME)) - float(
        curl.getinfo(CurlInfo.PRETRANSFER_TIME))
    box[0] = asyncio.get_running_loop().time() - max(0.0, waited)


def _kind(exc: Exception) -> Kind:
    code = int(getattr(exc, "code", 0) or 0)
    if code == 56 and "chunk" in str(exc):  # a receive error that is broken framing
        return Kind.PROTOCOL
    return _KINDS.get(code, Kind.CONNECTION)


def _message(exc: Exception) -> str:
    """libcurl's message, without curl_cffi's pointer to its documentation."""
    text = str(exc)
    return text.split(". See https://", 1)[0]


def _proxy(value: object, request: Request) -> tuple[str | None, tuple[str, str] | None]:
    """meta["proxy"] as libcurl takes it: the URL without credentials, and the credentials
    apart (sent as Proxy-Authorization, never logged)."""
    if value is None:
        return None, None
    url = proxy_url(value, request)
    auth = (url.user or "", url.password or "") if url.user is not None else None
    return str(url.with_user(None)), auth


async def _close(resp: Any, done: bool) -> None:
    """End a streamed transfer: wait for a finished one's end; stop any other at once
    (curl_cffi's aclose() waits for the whole body, however long or endless)."""
    task = resp.astream_task
    if task is None:
        return
    if not done:
        resp.quit_now.set()  # the write callback stops the transfer at its next bytes
        task.cancel()  # and the handle leaves libcurl now, even if none come
    await asyncio.gather(task, return_exceptions=True)


async def _read_limited(resp: Any, limit: int, truncate: bool, request: Request,
                        ) -> list[bytes]:
    """The raw body's chunks, stopping as soon as it passes `limit`: TOO_LARGE, or with
    `truncate` its first `limit` bytes. Not http.py's reader, which yields to the loop
    after each piece past a megabyte: curl_cffi queues what libcurl receives without a
    bound, and yielding per chunk lets it outrun the reader (920 MB against 93 MB on an
    endless body); taking from that queue yields when it is empty, which is enough."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_content():
        size += len(chunk)
        if size > limit:
            if not truncate:
                raise DownloadError(Kind.TOO_LARGE, f"body exceeds {limit} bytes", request)
            chunks.append(chunk[:len(chunk) - (size - limit)])
            break
        chunks.append(chunk)
    return chunks


async def _inflated(chunks: list[bytes], encoding: str, limit: int, truncate: bool) -> bytes:
    """The body from its raw chunks, decompressed within `limit` (crawler/http/compression.py),
    yielding to the loop after each piece (at most 1 MiB) once past the first megabyte."""
    inflater = Inflater.for_encoding(encoding, limit)
    if inflater is None:
        body = b"".join(chunks)
    else:
        out: list[bytes] = []
        size = 0
        for chunk in chunks:
            for piece in inflater.feed(chunk):  # one raw chunk of a bomb: megabytes each
                size += len(piece)
                out.append(piece)
                if size > limit:
                    break
                if size > 1 << 20:
                    await asyncio.sleep(0)  # the loop runs between pieces, as in http.py
            if size > limit:
                break
        else:
            if not truncate:
                inflater.finish()
        body = b"".join(out)
    if len(body) > limit:
        if not truncate:
            raise DecodingError(Kind.TOO_LARGE, f"body exceeds {limit} bytes")
        return body[:limit]
    return body
