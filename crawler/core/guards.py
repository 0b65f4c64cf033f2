"""Trap guards: limits that keep a crawl trap (a calendar, faceted search, session IDs in
URLs) from growing the frontier without end.

- `max_url_length` (2083, Scrapy's URLLENGTH_LIMIT): longer URLs are dropped.
- `max_requests_per_host`: requests scheduled per host (scheme + host + port).
- `max_query_variants` (10,000): distinct query strings of one path on one host
  (`/calendar?day=...`).

Each refusal is counted under its own stats key and the first of each kind is logged as a
warning. The per-host and per-path counts live in LRU maps of at most `TRACKED` keys, so
their memory is bounded too: a key that falls out starts counting again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from crawler.http import Request
from crawler.stats import Stats

__all__ = ["TrapGuards"]

logger = logging.getLogger(__name__)

TRACKED = 100_000  # hosts, and host+path keys, whose counts are kept


class TrapGuards:
    """Usage: `if guards.admit(request): queue it` (after the duplicate check)."""

    def __init__(self, stats: Stats, *, max_url_length: int, max_requests_per_host: int | None,
                 max_query_variants: int | None) -> None:
        self._stats = stats
        self.max_url_length = max_url_length
        self._per_host_limit = max_requests_per_host
        self._variants_limit = max_query_variants
        # plain links have no query: only a per-host limit can refuse one
        self.limits_plain_links = max_requests_per_host is not None
        self._per_host: OrderedDict[str, int] = OrderedDict()
        self._variants: OrderedDict[str, int] = OrderedDict()
        self._warned: set[str] = set()

    def too_long(self, url: str) -> bool:
        """URL length, checked before the URL is even parsed."""
        if len(url) <= self.max_url_length:
            return False  # (callers may check this first themselves: the hot path)
        self._stats.url_too_long += 1
        self._warn_once("url_too_long", f"URLs longer than max_url_length "
                                        f"({self.max_url_length}) are dropped, e.g. {url[:120]}...")
        return True

    def admit(self, request: Request) -> bool:
        """Count a new request against its host and path; False (counted) when over a limit."""
        if self._variants_limit is not None and request._canonical is None:  # plain: no query
            url = request.yurl
            if url.raw_query_string:
                key = f"{request.host}{url.raw_path}"
                if _bump(self._variants, key) > self._variants_limit:
                    self._stats.query_variants_limited += 1
                    self._warn_once("query", f"{url.raw_path} on {request.host} has more than "
                                             f"max_query_variants ({self._variants_limit}) "
                                             "query strings: further ones are dropped")
                    return False
        if self._per_host_limit is not None:
            if _bump(self._per_host, request.host) > self._per_host_limit:
                self._stats.host_limited += 1
                self._warn_once("host", f"{request.host} reached max_requests_per_host "
                                        f"({self._per_host_limit}): further requests to it "
                                        "are dropped")
                return False
        return True

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning("%s (counted in the stats; warned once)", message)
        else:
            logger.debug("%s", message)


def _bump(counts: OrderedDict[str, int], key: str) -> int:
    count = counts.pop(key, 0) + 1
    counts[key] = count  # the most recent at the end
    if len(counts) > TRACKED:
        counts.popitem(last=False)
    return count
