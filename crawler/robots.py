"""robots.txt: fetched once per host before its first request, parsed by Protego.

RFC 9309: a 2xx file is obeyed; 4xx means everything is allowed; 5xx or a network failure
(retried with backoff) means nothing is allowed for this crawl. Up to five redirects are
followed, and only the first 500 KiB of the file is read and parsed (the RFC's minimum):
a larger file is cut there, never taken as "allow all".

Memory is bounded whatever the hosts serve. Parsed rules cost about six times the text
(3 MB for a 500 KiB file), so they are kept for the hosts used last, up to
`PARSED_BYTES` of robots.txt text; older hosts keep their text compressed (up to
`STORED_BYTES`) and are parsed again when needed; and at most `MAX_HOSTS` hosts are
remembered at all, beyond which the oldest is fetched again if it comes back. A file over
`_THREAD_BYTES` is parsed in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from protego import Protego
from yarl import URL

from crawler.exceptions import DownloadError
from crawler.http import Request, Response
from crawler.retry import RetryPolicy, backoff

logger = logging.getLogger(__name__)

MAX_ROBOTS_BYTES = 500 * 1024
PARSED_BYTES = 8 << 20  # robots.txt text whose parsed rules are kept at once
STORED_BYTES = 16 << 20  # compressed text kept for hosts whose rules were let go
MAX_HOSTS = 100_000  # hosts whose robots.txt outcome is remembered
_THREAD_BYTES = 64 * 1024
_MAX_HOPS = 5
_UNREACHABLE = frozenset({429})  # treated like 5xx: the host asks us to back off

Verdict = bool | str | None
"""True: allowed; False: disallowed; a str: the host's robots.txt is unreachable (why: the
failure's kind), so nothing there is fetched; None: not known yet, load() it."""


class RobotsCache:
    """Per-host robots.txt rules, loaded on demand, within bounded memory.

    Usage:
        robots = RobotsCache(downloader.fetch, user_agent="mybot/1.0")
        if robots.verdict(request) is None:
            await robots.load(request)
        verdict = robots.verdict(request)
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
    ) -> None:
        self._fetch = fetch
        self._user_agent = user_agent
        self._retry = retry or RetryPolicy()
        self._parsed_budget = parsed_bytes
        self._stored_budget = stored_bytes
        self._max_hosts = max_hosts
        # host -> True (allow all), a reason (unreachable) or the compressed robots.txt
        self._hosts: OrderedDict[str, bool | str | bytes] = OrderedDict()
        self._stored = 0  # bytes of compressed text in _hosts
        self._parsed: OrderedDict[str, tuple[Protego, int]] = OrderedDict()  # rules, text size
        self._parsed_size = 0
        self._last = ""  # the host verdict() moved to the end of _hosts last
        self.parses = 0  # files parsed, counting parses again after eviction

    def verdict(self, request: Request) -> Verdict:
        """Whether `request` may be fetched, once its host's robots.txt is known."""
        host = request.host
        parsed = self._parsed.get(host)
        if parsed is not None:
            self._parsed.move_to_end(host)
            return bool(parsed[0].can_fetch(request.path_qs, self._user_agent))
        state = self._hosts.get(host)
        if state is None or isinstance(state, bytes):
            return None  # unknown, or stored and not parsed: load() parses it again
        if host != self._last:  # recency, without a move for every link of one host
            self._hosts.move_to_end(host)
            self._last = host
        return state

    def crawl_delay(self, request: Request) -> float | None:
        parsed = self._parsed.get(request.host)
        if parsed is not None:
            delay = parsed[0].crawl_delay(self._user_agent)
            return float(delay) if delay else None
        return None

    async def load(self, request: Request) -> None:
        """Make the request's host's rules known: parse the stored text again, or fetch and
        parse robots.txt (retried per the policy)."""
        host = request.host
        state = self._hosts.get(host)
        if isinstance(state, bytes):
            self._hosts.move_to_end(host)
            await self._parse(host, zlib.decompress(state).decode("utf-8", "replace"))
            return
        origin = request.yurl.origin()
        outcome = await self._fetch_rules(origin.with_path("/robots.txt"))
        if isinstance(outcome, bytes):
            text = outcome.decode("utf-8", "replace")
            self._remember(host, zlib.compress(outcome, 1))
            await self._parse(host, text)
        else:
            self._remember(host, outcome)
        logger.debug("robots.txt for %s: %s", origin,
                     "parsed" if isinstance(outcome, bytes) else outcome)

    async def _parse(self, host: str, text: str) -> None:
        if len(text) > _THREAD_BYTES:
            rules = await asyncio.to_thread(Protego.parse, text)
        else:
            rules = Protego.parse(text)
        self.parses += 1
        old = self._parsed.pop(host, None)
        if old is not None:
            self._parsed_size -= old[1]
        self._parsed[host] = (rules, len(text))
        self._parsed_size += len(text)
        while self._parsed_size > self._parsed_budget and len(self._parsed) > 1:
            _, (_, size) = self._parsed.popitem(last=False)
            self._parsed_size -= size

    def _remember(self, host: str, state: bool | str | bytes) -> None:
        old = self._hosts.pop(host, None)
        if isinstance(old, bytes):
            self._stored -= len(old)
        self._hosts[host] = state
        if isinstance(state, bytes):
            self._stored += len(state)
        while len(self._hosts) > 1 and (len(self._hosts) > self._max_hosts
                                        or self._stored > self._stored_budget):
            gone, dropped = self._hosts.popitem(last=False)
            if isinstance(dropped, bytes):
                self._stored -= len(dropped)
            parsed = self._parsed.pop(gone, None)
            if parsed is not None:
                self._parsed_size -= parsed[1]

    async def _fetch_rules(self, robots_url: URL) -> bytes | bool | str:
        """The file's first 500 KiB, True (allow all) or why it is unreachable."""
        attempt = 0
        while True:
            try:
                response = await self._fetch_following(robots_url)
            except DownloadError as exc:
                reason = exc.kind
            else:
                status = response.status
                if 200 <= status < 300:
                    return response.body[:MAX_ROBOTS_BYTES]
                if 300 <= status < 500 and status not in _UNREACHABLE:
                    return True  # unavailable (or too many redirects): crawl freely
                reason = f"http_{status}"
            if attempt >= self._retry.retries:
                logger.warning("robots.txt at %s unreachable (%s): not crawling this host",
                               robots_url, reason)
                return reason
            await asyncio.sleep(backoff(attempt, self._retry.base, self._retry.cap))
            attempt += 1

    async def _fetch_following(self, url: URL) -> Response:
        for _ in range(_MAX_HOPS + 1):
            response = await self._fetch(Request(url, dont_filter=True, meta={
                "download_maxsize": MAX_ROBOTS_BYTES, "download_truncate": True}))
            location = response.headers.get("Location")
            if not (300 <= response.status < 400 and location):
                return response
            try:
                url = url.join(URL(location.strip()))
            except ValueError:
                return response
        return response
