"""robots.txt: fetched once per host before its first request, parsed by Protego.

RFC 9309: a 2xx file is obeyed; 4xx means everything is allowed; 5xx or a network failure
(retried with backoff) means nothing is allowed for this crawl. Up to five redirects are
followed, and only the first 500 KiB of the file is read and parsed (the RFC's minimum):
a larger file is cut there, never taken as "allow all".

Memory and time are bounded whatever the hosts serve. Parsed rules cost about ten times
the text (5 MB for a 500 KiB file), so they are kept for the files used last, up to
`PARSED_BYTES` of robots.txt text; every file's text is kept compressed (up to
`STORED_BYTES`) and parsed again when needed; hosts serving the same file (the subdomains
of one site) share its text and its parsed rules; and at most `MAX_HOSTS` hosts are
remembered at all, beyond which the oldest is fetched again if it comes back. A file over
`_THREAD_BYTES` is parsed in a thread, one file at a time, so that parsing (pure Python,
holding the GIL) never takes more than about half the loop's time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from protego import Protego
from yarl import URL

from crawler.core.retry import RetryPolicy, backoff
from crawler.exceptions import DownloadError, http_kind
from crawler.http import Request, Response

__all__ = ["RobotsCache", "SharedRules"]

_WEB = ("http://", "https://")  # the schemes robots.txt governs
logger = logging.getLogger(__name__)

MAX_ROBOTS_BYTES = 500 * 1024
PARSED_BYTES = 2 << 20  # robots.txt text whose parsed rules are kept at once
STORED_BYTES = 16 << 20  # robots.txt texts kept compressed, parsed again when needed
MAX_HOSTS = 100_000  # hosts whose robots.txt outcome is remembered
_THREAD_BYTES = 64 * 1024
_MAX_HOPS = 5
_UNREACHABLE = frozenset({429})  # treated like 5xx: the host asks us to back off

Permission = bool | str | None
"""True: allowed; False: disallowed; a str: the host's robots.txt is unreachable (why: the
failure's kind), so nothing there is fetched; None: not known yet, load() it."""


class SharedRules(Protocol):
    """Where processes that crawl together keep what each host's robots.txt said."""

    async def rules(self, origin: str, fetch: Callable[[], Awaitable[bytes | bool | str]],
                    ) -> bytes | bool | str:
        """The outcome of fetching `origin`'s robots.txt (its text, True: allow all, or
        why it is unreachable), calling `fetch` only when no other process has or does."""


class RobotsCache:
    """Per-host robots.txt rules, loaded on demand, within bounded memory.

    Usage:
        robots = RobotsCache(downloader.fetch, user_agent="mybot/1.0")
        if robots.permission(request) is None:
            await robots.load(request)
        permission = robots.permission(request)
    """

    def __init__(
        self,
        fetch: Callable[[Request], Awaitable[Response]],
        *,
        user_agent: str,
        retry: RetryPolicy | None = None,
        parsed_bytes: int = PARSED_BYTES,
        stored_bytes: int = STORED_BYTES,
        max_hosts: int = MAX_HOSTS,
        shared: SharedRules | None = None,
    ) -> None:
        self._fetch = fetch
        self._user_agent = user_agent
        self._retry = retry or RetryPolicy()
        self._parsed_budget = parsed_bytes
        self._stored_budget = stored_bytes
        self._max_hosts = max_hosts
        self._shared = shared  # a fleet's store: each robots.txt fetched once for all
        # host -> True (allow all), a reason (unreachable) or the digest of its robots.txt
        self._hosts: OrderedDict[str, Permission | bytes] = OrderedDict()
        self._texts: dict[bytes, _Stored] = {}  # digest -> the text, compressed
        self._stored = 0  # bytes of compressed text in _texts
        self._parsed: OrderedDict[bytes, tuple[Protego, int]] = OrderedDict()  # digest ->
        self._parsed_size = 0  # (rules, text size); the sum of those sizes
        self._parsing: dict[bytes, asyncio.Future[None]] = {}
        self._thread_parse = asyncio.Semaphore(1)
        self._last = ""  # the host permission() moved to the end of _hosts last
        self.parses = 0  # files parsed, counting parses again after eviction

    def permission(self, request: Request) -> Permission:
        """Whether `request` may be fetched, once its host's robots.txt is known. A URL of
        another scheme than http(s) (one a download handler of your own serves) has no
        robots.txt (RFC 9309 is HTTP's), so it may."""
        host = request.host
        if not host.startswith(_WEB):
            return True
        state = self._hosts.get(host)
        if host != self._last and state is not None:  # recency, not moved for every link
            self._hosts.move_to_end(host)
            self._last = host
        if isinstance(state, bytes):
            parsed = self._parsed.get(state)
            if parsed is None:
                return None  # stored and not parsed: load() parses it again
            self._parsed.move_to_end(state)
            return bool(parsed[0].can_fetch(request.path_qs, self._user_agent))
        return state

    def crawl_delay(self, request: Request) -> float | None:
        state = self._hosts.get(request.host)
        parsed = self._parsed.get(state) if isinstance(state, bytes) else None
        if parsed is not None:
            delay = parsed[0].crawl_delay(self._user_agent)
            return float(delay) if delay else None
        return None

    async def load(self, request: Request) -> None:
        """Make the request's host's rules known: parse the stored text again, or fetch and
        parse robots.txt (retried per the policy)."""
        host = request.host
        state = self._hosts.get(host)
        if not isinstance(state, bytes):
            origin = request.yurl.origin()
            # through the same proxy as the request it is fetched for, if it names one
            proxy = request._meta.get("proxy") if request._meta else None
            robots_url = origin.with_path("/robots.txt")
            outcome = await (self._shared.rules(str(origin), partial(
                self._fetch_rules, robots_url, proxy)) if self._shared is not None
                else self._fetch_rules(robots_url, proxy))
            logger.debug("robots.txt for %s: %s", origin,
                         "fetched" if isinstance(outcome, bytes) else outcome)
            if not isinstance(outcome, bytes):
                self._remember(host, outcome)
                return
            state = hashlib.blake2b(outcome, digest_size=16).digest()
            if state not in self._texts:
                stored = _Stored(zlib.compress(outcome, 1), len(outcome))
                self._texts[state] = stored
                self._stored += len(stored.compressed)
            self._remember(host, state)
        await self._parse(state)

    async def _parse(self, digest: bytes) -> None:
        """Parse the stored text of `digest` unless its rules are parsed (or being parsed)."""
        while digest not in self._parsed:
            pending = self._parsing.get(digest)
            if pending is not None:
                await asyncio.shield(pending)
                continue
            stored = self._texts.get(digest)
            if stored is None:
                return  # forgotten meanwhile: permission() says None, the caller loads again
            self._parsing[digest] = asyncio.get_running_loop().create_future()
            try:
                if stored.size > _THREAD_BYTES:
                    async with self._thread_parse:
                        rules = await asyncio.to_thread(_parse_text, stored.compressed)
                else:
                    rules = _parse_text(stored.compressed)
            finally:
                self._parsing.pop(digest).set_result(None)
            self.parses += 1
            if digest not in self._texts:
                return
            self._parsed[digest] = (rules, stored.size)
            self._parsed_size += stored.size
            while self._parsed_size > self._parsed_budget and len(self._parsed) > 1:
                _, (_, size) = self._parsed.popitem(last=False)
                self._parsed_size -= size

    def _remember(self, host: str, state: Permission | bytes) -> None:
        self._forget(host)
        self._hosts[host] = state
        if isinstance(state, bytes):
            self._texts[state].hosts += 1
        while len(self._hosts) > 1 and (len(self._hosts) > self._max_hosts
                                        or self._stored > self._stored_budget):
            self._forget(next(iter(self._hosts)))

    def _forget(self, host: str) -> None:
        state = self._hosts.pop(host, None)
        if host == self._last:
            self._last = ""
        if not isinstance(state, bytes):
            return
        stored = self._texts[state]
        stored.hosts -= 1
        if stored.hosts <= 0:
            del self._texts[state]
            self._stored -= len(stored.compressed)
            parsed = self._parsed.pop(state, None)
            if parsed is not None:
                self._parsed_size -= parsed[1]

    async def _fetch_rules(self, robots_url: URL, proxy: str | None) -> bytes | bool | str:
        """The file's first 500 KiB, True (allow all) or why it is unreachable."""
        attempt = 0
        while True:
            try:
                response = await self._fetch_following(robots_url, proxy)
            except DownloadError as exc:
                reason = exc.kind
                if not self._retry.retryable(reason):
                    attempt = self._retry.retries  # a TLS failure, a bad URL: no use trying
            else:
                status = response.status
                if 200 <= status < 300:
                    return _whole_lines(response.body)
                if 300 <= status < 500 and status not in _UNREACHABLE:
                    return True  # unavailable (or too many redirects): crawl freely
                reason = http_kind(status)
            if attempt >= self._retry.retries:
                logger.warning("robots.txt at %s unreachable (%s): not crawling this host",
                               robots_url, reason)
                return reason
            await asyncio.sleep(backoff(attempt, self._retry.base, self._retry.cap))
            attempt += 1

    async def _fetch_following(self, url: URL, proxy: str | None) -> Response:
        extra = {} if proxy is None else {"proxy": proxy}
        for _ in range(_MAX_HOPS + 1):
            response = await self._fetch(Request(url, dont_filter=True, meta={**extra,
                "download_maxsize": MAX_ROBOTS_BYTES, "download_truncate": True,
                # the middlewares pass it on as it is: this loader retries and redirects
                "robots_txt": True, "dont_retry": True, "dont_redirect": True,
                "download_handler": url.scheme,  # over HTTP, never rendered
                "handle_httpstatus_all": True}))
            location = response.headers.get("Location")
            if not (300 <= response.status < 400 and location):
                return response
            try:
                url = url.join(URL(location.strip()))
            except ValueError:
                return response
        return response


@dataclass(slots=True)
class _Stored:
    compressed: bytes
    size: int  # of the text
    hosts: int = 0  # hosts serving it


def _parse_text(compressed: bytes) -> Protego:
    # utf-8-sig: a byte-order mark would make the first line's "User-agent" unknown, and
    # every rule of its group ignored (RFC 9309 says to skip it)
    return Protego.parse(zlib.decompress(compressed).decode("utf-8-sig", "replace"))


def _whole_lines(body: bytes) -> bytes:
    """The first MAX_ROBOTS_BYTES of a robots.txt, without a line cut short by the limit
    (`Disallow: /private` cut to `Disallow: /` would forbid the whole host)."""
    if len(body) < MAX_ROBOTS_BYTES:
        return body
    body = body[:MAX_ROBOTS_BYTES]
    end = max(body.rfind(b"\n"), body.rfind(b"\r"))
    return body[:end + 1] if end >= 0 else body
