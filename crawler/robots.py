"""robots.txt: fetched once per host before its first request, parsed by Protego.

RFC 9309: a 2xx file is obeyed; 4xx means everything is allowed; 5xx or a network failure
(retried with backoff) means nothing is allowed for this crawl. Up to five redirects are
followed, and at most 500 KiB of the file is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from protego import Protego
from yarl import URL

from crawler.exceptions import DownloadError
from crawler.http import Request, Response
from crawler.retry import RetryPolicy, backoff

logger = logging.getLogger(__name__)

MAX_ROBOTS_BYTES = 500 * 1024
_MAX_HOPS = 5
_UNREACHABLE = frozenset({429})  # treated like 5xx: the host asks us to back off

Rules = Protego | bool | str  # True: allow all; a str: unreachable, why (disallow all)


class RobotsCache:
    """Per-host robots.txt rules, loaded on demand.

    Usage:
        robots = RobotsCache(downloader.fetch, user_agent="mybot/1.0")
        if robots.verdict(request) is None:
            await robots.load(request)
        allowed = robots.verdict(request)
    """

    def __init__(
        self,
        fetch: Callable[[Request], Awaitable[Response]],
        *,
        user_agent: str,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._fetch = fetch
        self._user_agent = user_agent
        self._retry = retry or RetryPolicy()
        self._rules: dict[str, Rules] = {}

    def verdict(self, request: Request) -> bool | None:
        """True/False once the host's rules are known; None before."""
        rules = self._rules.get(request.host)
        if rules is None or isinstance(rules, bool):
            return rules
        if isinstance(rules, str):
            return False
        return bool(rules.can_fetch(request.yurl.raw_path_qs, self._user_agent))

    def unreachable(self, request: Request) -> str | None:
        """Why the host's robots.txt could not be read (`connection`, `http_503`, ...), if so."""
        rules = self._rules.get(request.host)
        return rules if isinstance(rules, str) else None

    def crawl_delay(self, request: Request) -> float | None:
        rules = self._rules.get(request.host)
        if isinstance(rules, Protego):
            delay = rules.crawl_delay(self._user_agent)
            return float(delay) if delay else None
        return None

    async def load(self, request: Request) -> None:
        """Fetch and parse the robots.txt of the request's host (retried per the policy)."""
        origin = request.yurl.origin()
        rules = await self._fetch_rules(origin.with_path("/robots.txt"))
        self._rules[request.host] = rules
        logger.debug("robots.txt for %s: %s", origin,
                     "parsed" if isinstance(rules, Protego) else rules)

    async def _fetch_rules(self, robots_url: URL) -> Rules:
        attempt = 0
        while True:
            try:
                response = await self._fetch_following(robots_url)
            except DownloadError as exc:
                if exc.kind == "too_large":
                    return True  # cannot read it within the limit: treat as unavailable
                reason = exc.kind
            else:
                status = response.status
                if 200 <= status < 300:
                    text = response.body[:MAX_ROBOTS_BYTES].decode("utf-8", "replace")
                    return Protego.parse(text)
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
            response = await self._fetch(Request(url, dont_filter=True))
            location = response.headers.get("Location")
            if not (300 <= response.status < 400 and location):
                return response
            try:
                url = url.join(URL(location.strip()))
            except ValueError:
                return response
        return response

