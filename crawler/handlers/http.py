"""Owns the aiohttp.ClientSession and turns its errors into ours.

This is the only module that sees aiohttp's exceptions. Redirects are not followed here:
the engine turns them into new requests, so each hop passes the same politeness and
off-site checks as any other request. Bodies are decompressed here (crawler/http/compression.py),
within the size limit. Per request, `meta["download_maxsize"]` replaces
`max_response_size` (Scrapy's key), and `meta["download_truncate"]` keeps the first that
many bytes instead of failing (robots.txt is read that way).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict
from yarl import URL

from crawler.exceptions import DownloadError, Kind
from crawler.handlers.dns import build_resolver
from crawler.handlers.netguard import ForbiddenAddress, GuardedResolver, forbidden, literal_address
from crawler.http import Request, Response
from crawler.http.compression import ACCEPT_ENCODING, DecodingError, Inflater
from crawler.http.referer import referer_header
from crawler.http.urls import proxy_address
from crawler.settings import Settings

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["Downloader", "HttpDownloader", "default_headers", "proxy_url", "request_headers",
           "sent_header", "tls_failure"]

logger = logging.getLogger(__name__)
_TLS_WARNINGS = 1000  # origins named in a TLS warning; later ones only counted


# When the request this task is fetching went out (its headers written), on the loop's
# clock: the processor puts a box here around each fetch and takes the latency from it, so
# that a host's delay counts from the moment the server sees the request, not from before a
# connection was made (crawler/core/ratelimit.py).
SENT: ContextVar[list[float] | None] = ContextVar("sent", default=None)


async def _headers_sent(session: Any, context: Any, params: Any) -> None:
    box = SENT.get()
    if box is not None:
        box[0] = asyncio.get_running_loop().time()


class Downloader(Protocol):
    """The engine's only view of the network: one request in, one response out."""

    async def fetch(self, request: Request) -> Response:
        """Download `request`; raise DownloadError with a `kind` when no response comes."""


class HttpDownloader:
    """An aiohttp-backed Downloader, used as an async context manager.

    Usage:
        async with HttpDownloader(settings) as downloader:
            response = await downloader.fetch(Request("http://127.0.0.1:8080/"))
    """

    def __init__(self, settings: Settings, *, resolver: AbstractResolver | None = None,
                 refuse: Any = forbidden, counters: Counter[str] | None = None) -> None:
        """`resolver`: aiohttp's (a test's static one; default: crawler/handlers/dns.py's
        cache); `refuse`: which addresses the guard refuses when `allow_private_addresses`
        is false (crawler/handlers/netguard.py); `counters`: the crawl's (DNS lookups)."""
        self._settings = settings
        self._counters = counters
        self._session: aiohttp.ClientSession | None = None
        self._resolver = resolver
        self._refuse = refuse
        self._guard: GuardedResolver | None = None
        self._tls_warned: set[str] = set()  # origins whose TLS failure was logged
        # sent with every request, not set on the session: a request may drop one (None)
        self._headers = default_headers(settings)
        self._referer_policy = settings.referer_policy

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> HttpDownloader:
        return cls(crawler.settings, counters=crawler.stats.counters)

    async def __aenter__(self) -> HttpDownloader:
        s = self._settings
        # DNS (crawler/handlers/dns.py), made on the loop: the cache, the crawl's own names
        # in front of it, the guard in front of both
        resolver = self._resolver or build_resolver(s, self._counters)
        self._resolver = resolver
        if not s.allow_private_addresses:
            self._guard = GuardedResolver(resolver, self._refuse)
        connector = aiohttp.TCPConnector(
            limit=s.workers,
            limit_per_host=0,  # the frontier enforces per-host limits
            use_dns_cache=False,  # the resolver's cache honours TTLs; aiohttp's does not
            enable_cleanup_closed=False,
            ssl=s.tls_context(),
            resolver=self._guard or self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=s.timeout, sock_connect=s.connect_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # compression.Inflater: bounded, and checks the stream end
            skip_auto_headers=(),
            # when a delay is in force, the moment each request goes out (SENT); without
            # one, not worth aiohttp's tracing on every request (~5 % of pages/s)
            trace_configs=[_sent_trace()] if s.download_delay or s.autothrottle else None,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._guard is not None:
            await self._guard.close()
        elif self._resolver is not None:
            await self._resolver.close()

    async def fetch(self, request: Request) -> Response:
        assert self._session is not None, "use HttpDownloader as an async context manager"
        try:
            return await self._fetch(self._session, request)
        except DownloadError:
            raise
        except TimeoutError as exc:
            raise DownloadError(Kind.TIMEOUT, f"timed out: {exc!s}", request) from exc
        except ForbiddenAddress as exc:
            raise DownloadError(Kind.FORBIDDEN_ADDRESS, str(exc), request) from None
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, ForbiddenAddress):
                raise DownloadError(Kind.FORBIDDEN_ADDRESS, str(exc.os_error), request) \
                    from None
            raise DownloadError(Kind.DNS, f"DNS lookup failed: {exc}", request) from exc
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise self._tls_failure(request, exc) from exc
        except aiohttp.ClientConnectorError as exc:
            raise DownloadError(Kind.CONNECTION, f"cannot connect: {exc}", request) from exc
        except aiohttp.ClientPayloadError as exc:
            raise DownloadError(Kind.PAYLOAD, f"broken body: {exc}", request) from exc
        except aiohttp.InvalidURL as exc:
            raise DownloadError(Kind.INVALID_URL, f"invalid URL: {exc}", request) from exc
        except aiohttp.ClientResponseError as exc:
            raise DownloadError(Kind.PROTOCOL, f"bad response: {exc.message}", request) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise DownloadError(Kind.CONNECTION, f"{type(exc).__name__}: {exc}", request) from exc
        except (ValueError, UnicodeError) as exc:
            raise DownloadError(Kind.INVALID_REQUEST, f"{type(exc).__name__}: {exc}", request) \
                from exc

    async def _fetch(self, session: aiohttp.ClientSession, request: Request) -> Response:
        meta = request._meta or _NO_META
        limit = meta.get("download_maxsize") or self._settings.max_response_size
        truncate = bool(meta.get("download_truncate"))
        headers = self._request_headers(request)
        proxy, proxy_headers = _proxy(meta.get("proxy"), request) if "proxy" in meta \
            else (None, None)
        if self._guard is not None:
            await self._check_target(request.yurl, proxy)
        if proxy_headers and request.yurl.scheme == "http":  # no CONNECT: the request says it
            headers = CIMultiDict(headers)
            headers.update(proxy_headers)
        async with session.request(
            request.method,
            request.yurl,
            headers=headers,
            skip_auto_headers=request.dropped_headers or None,
            data=request.body or None,
            allow_redirects=False,
            proxy=proxy,
            proxy_headers=proxy_headers,
        ) as resp:
            declared = resp.content_length
            if declared is not None and declared > limit and not truncate:
                raise DownloadError(
                    Kind.TOO_LARGE, f"Content-Length {declared} exceeds {limit} bytes", request
                )
            try:
                inflater = Inflater.for_encoding(resp.headers.get("Content-Encoding", ""), limit)
                body = await _read_limited(resp, limit, inflater, truncate)
            except DecodingError as exc:
                raise DownloadError(exc.kind, str(exc), request) from None
            return Response(resp.url, resp.status, resp.headers, body, request)

    async def _check_target(self, url: URL, proxy: URL | None) -> None:
        """The guard: a numeric host is checked as written (the client connects to it
        without a lookup); through a proxy the target is resolved here to be checked."""
        guard = self._guard
        assert guard is not None
        host = url.host or ""
        literal = literal_address(host)
        if literal is not None:
            guard.check(host, literal)
        elif proxy is not None:
            guard.trusted.add(proxy.host or "")  # the operator's proxy: not checked
            await guard.check_target(host, url.port or 0)

    def _tls_failure(self, request: Request, exc: Exception) -> DownloadError:
        reason = getattr(exc, "certificate_error", None) or exc
        return tls_failure(request, reason, self._tls_warned, logger)

    def _request_headers(self, request: Request) -> CIMultiDict[str]:
        return request_headers(request, self._headers, self._referer_policy)


def request_headers(request: Request, defaults: CIMultiDict[str],
                    referer_policy: str) -> CIMultiDict[str]:
    """The headers `request` is sent with: the `defaults` with the request's own replacing
    them (None drops one), its Referer as `referer_policy` (or its meta's) allows. A
    request's own cookies (`Request(cookies=...)`) go in a Cookie header when no cookie
    middleware took them."""
    referer = request.referer
    if referer is not None:
        meta = request._meta
        policy = meta.get("referrer_policy", referer_policy) if meta else referer_policy
        referer = referer_header(referer, request.url, policy)
    if request.headers is None and not request.dropped_headers and not request.cookies \
            and referer is None:
        return defaults
    headers = defaults.copy()
    if referer is not None:  # the request's own Referer (or its dropping) wins
        headers["Referer"] = referer
    for name in request.dropped_headers:
        headers.popall(name, None)
    if request.headers is not None:
        for name in request.headers.keys():
            headers.popall(name, None)
        headers.extend(request.headers)
    if request.cookies and "Cookie" not in headers:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in request.cookies.items())
    return headers


_NO_META: dict[str, Any] = {}


def default_headers(settings: Settings) -> CIMultiDict[str]:
    """The headers every request is sent with unless it sets or drops them."""
    return CIMultiDict({
        "User-Agent": settings.user_agent,
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "Accept-Language": "en",
        "Accept-Encoding": ACCEPT_ENCODING,
    })


def sent_header(request: Request, name: str, defaults: CIMultiDict[str]) -> str | None:
    """The value `request` is sent with for header `name` (its own, else the default)."""
    if request.headers is not None and name in request.headers:
        return ", ".join(request.headers.getall(name))
    if name.lower() in request.dropped_headers:
        return None
    if name.lower() == "cookie" and request.cookies:
        return "; ".join(f"{k}={v}" for k, v in request.cookies.items())
    return defaults.get(name)


def proxy_url(value: object, request: Request | None = None) -> URL:
    """`meta["proxy"]` as a URL: http:// or https:// with a host, else DownloadError
    (`invalid_request`), which does not repeat the value: it may hold a password."""
    url = proxy_address(str(value))
    if url is None:
        raise DownloadError(Kind.INVALID_REQUEST, "bad meta['proxy']: not an http(s) URL "
                            "with a host", request)
    return url


def _proxy(value: object, request: Request) -> tuple[URL | None, dict[str, str] | None]:
    """A proxy URL without its credentials, and the header that carries them."""
    if value is None:
        return None, None
    url = proxy_url(value, request)
    if url.user is None:
        return url, None
    auth = aiohttp.encode_basic_auth(url.user, url.password or "")
    return url.with_user(None), {"Proxy-Authorization": auth}


def tls_failure(request: Request, reason: object, warned: set[str],
                log: logging.Logger) -> DownloadError:
    """A certificate or handshake failure: not retried, and said once per host at WARNING
    (on `log`; `warned` holds the origins said, up to _TLS_WARNINGS), since only a setting
    changes the outcome."""
    origin = request.host  # scheme://host:port
    if origin not in warned and len(warned) < _TLS_WARNINGS:
        warned.add(origin)
        log.warning("TLS failure at %s: %s (trust its CA with -s tls_ca_bundle=FILE, "
                    "or skip verification with -s tls_verify=false)", origin, reason)
    return DownloadError(Kind.TLS, f"TLS failure: {reason}", request)


async def _read_limited(resp: aiohttp.ClientResponse, limit: int, inflater: Inflater | None,
                        truncate: bool) -> bytes:
    """Read and decode the body, stopping as soon as it passes `limit` (decompression bombs,
    endless bodies): DecodingError("too_large"), or with `truncate` its first `limit`
    bytes."""
    chunks: list[bytes] = []
    size = 0
    content = resp.content
    while size <= limit:
        chunk = await content.readany()
        if not chunk:
            if inflater is not None:
                inflater.finish()
            break
        for piece in (chunk,) if inflater is None else inflater.feed(chunk):
            size += len(piece)
            chunks.append(piece)
            if size > 1 << 20:
                await asyncio.sleep(0)  # a fast stream or a bomb must not hold the loop
    if size > limit:
        if not truncate:
            raise DecodingError(Kind.TOO_LARGE, f"body exceeds {limit} bytes")
        return b"".join(chunks)[:limit]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _sent_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_headers_sent)
    return trace
