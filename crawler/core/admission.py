"""Admission: which requests enter the frontier.

`enqueue_many` (a page's links at once) drops (and counts, and logs at DEBUG; at ERROR for
a start request) what must never be fetched: bad URLs, other schemes, off-site hosts,
requests past `max_depth`, duplicates, and what the trap guards and a full frontier refuse.
Paths robots.txt disallows are refused through `refused`, which calls the request's
errback. A request to a host whose robots.txt is not known yet waits beside the frontier
while it is fetched, so no worker waits for it; its fingerprint is recorded first, so its
duplicates do not wait (or fail) with it. `wait_for_room()` is the backpressure on start(): it is
read as the crawl needs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from crawler.core.guards import TrapGuards
from crawler.core.robots import RobotsCache
from crawler.exceptions import DownloadError, IgnoreRequest, Kind
from crawler.frontier import Frontier
from crawler.http import Request
from crawler.http.urls import FETCHABLE_SCHEMES, AllowedDomains, parse_url
from crawler.settings import Settings
from crawler.stats import Stats

__all__ = ["Admission", "Refused"]

_SEED_WINDOW = 10_000  # queued requests at which start() waits, at least
_HOSTS_CACHED = 10_000  # hosts whose allowed_domains answer is kept

logger = logging.getLogger(__name__)

Refused = Callable[[Request, Exception, str], Awaitable[None]]
"""Called with a request robots.txt refuses (or whose host's robots.txt is unreachable),
the exception for its errback, and the kind."""


class Admission:
    """The frontier's gatekeeper.

    Usage:
        admission = Admission(frontier, stats=stats, fingerprint=fingerprint, wake=wake)
        await admission.enqueue_many(links)
    """

    def __init__(
        self,
        frontier: Frontier,
        *,
        stats: Stats,
        fingerprint: Callable[[Request], bytes],
        wake: Callable[[], None],
        allowed_domains: AllowedDomains | None = None,
        settings: Settings | None = None,
        refused: Refused | None = None,
        robots_done: Callable[[], None] = lambda: None,
        robots_at_fetch: bool = False,
        schemes: frozenset[str] = FETCHABLE_SCHEMES,
    ) -> None:
        s = settings or Settings()
        self.frontier = frontier
        self._stats = stats
        self._fingerprint = fingerprint
        self._wake = wake  # wakes the dispatcher: something was queued
        self._refused = refused or _ignore
        self._robots_done = robots_done  # a host's robots.txt work ended
        self._allowed = allowed_domains or None
        self._schemes = schemes  # those a download handler takes
        self._max_depth = s.max_depth
        self._guards = TrapGuards(stats, max_url_length=s.max_url_length,
                                  max_requests_per_host=s.max_requests_per_host,
                                  max_query_variants=s.max_query_variants)
        self._max_queued = s.max_queued
        # start() is read as the crawl needs it: it waits while this many requests are queued
        # (at most half the frontier, so that the links pages yield still find room)
        self._seed_window = max(1, min(s.max_queued // 2, max(_SEED_WINDOW, 64 * s.workers)))
        self._room = asyncio.Event()
        self._room.set()
        self._admitted_hosts: dict[str, bool] = {}  # host key -> in allowed_domains
        self._warned_full = False
        self.stopping = False  # set when the crawl stops taking new requests
        self.robots: RobotsCache | None = None  # when robots.txt is obeyed
        self._awaiting_robots: dict[str, list[tuple[Request, bytes]]] = {}
        self.awaiting = 0  # requests waiting for their host's robots.txt
        self._robots_tasks: set[asyncio.Task[None]] = set()
        # robots_at_fetch (a fleet): a request whose host's robots.txt is not known yet is
        # queued, and checked when it is fetched (robots_refusal): one held here would be
        # lost with this process, and unseen by the others
        self._hold_robots = not robots_at_fetch
        self._rules: dict[str, asyncio.Task[None]] = {}  # host -> robots.txt being loaded

    async def queued(self) -> int:
        """Requests in the frontier or waiting for their host's robots.txt."""
        return await self.frontier.queued() + self.awaiting

    def stop(self) -> None:
        """Admit nothing more; a start() waiting for room goes on (and stops)."""
        self.stopping = True
        self._room.set()

    def admissible(self, request: Request) -> bool:
        """Parse and check a request's URL, host and depth; count and drop what fails. A
        plain link on an origin already seen is checked without parsing its URL."""
        if self._guards.too_long(request.url):
            return False
        if request._canonical is not None and request._host is not None:
            allowed = self._admitted_hosts.get(request._host)
            if allowed is True and self._max_depth is None:
                return True  # the common case, said at once
            if allowed is not None:
                return self._admit(request, allowed)
        parsed = parse_url(request._yurl if request._yurl is not None else request.url,
                           self._schemes)
        if isinstance(parsed, str):
            if parsed is Kind.INVALID_URL:
                self._stats.invalid_url += 1
            else:
                self._stats.unsupported_scheme += 1
            self._dropped(request, parsed.replace("_", " "))
            return False
        request._yurl = parsed
        allowed = self._allowed is None or self._allowed.admits(parsed)
        host = request.host
        if host not in self._admitted_hosts:
            if len(self._admitted_hosts) >= _HOSTS_CACHED:
                self._admitted_hosts.clear()
            self._admitted_hosts[host] = allowed
        return self._admit(request, allowed)

    def _admit(self, request: Request, allowed: bool) -> bool:
        if not allowed:
            self._stats.offsite_dropped += 1
            self._dropped(request, "off-site (not in allowed_domains)")
            return False
        if self._max_depth is not None and request.depth > self._max_depth:
            self._stats.depth_limited += 1
            logger.debug("dropped %s: deeper than max_depth", request.url[:200])
            return False
        return True

    def _dropped(self, request: Request, why: str) -> None:
        if request.depth == 0 and "redirect_urls" not in request.meta:
            logger.error("start request %s dropped: %s", request.url[:200], why)
        else:
            logger.debug("dropped %s: %s", request.url[:200], why)

    async def enqueue(self, request: Request) -> bool:
        """Queue `request` unless it is inadmissible, disallowed or a duplicate; True when
        queued (or waiting for its host's robots.txt)."""
        return await self.enqueue_many([request]) == 1

    async def enqueue_many(self, requests: list[Request]) -> int:
        """`enqueue` for a batch (a page's links): one call to the frontier for the
        duplicate check and one to add, whatever the batch's size. Returns how many were
        queued (or wait for their host's robots.txt)."""
        # most links are duplicates: fingerprint them first, parsing only URLs that are not
        # known to be canonical, and ask the frontier about all of them at once
        fingerprint, admissible = self._fingerprint, self.admissible
        fps = [fingerprint(r) if r._canonical is not None or admissible(r) else None
               for r in requests]
        seen = iter(await self.frontier.seen_many([fp for fp in fps if fp is not None]))
        stats, guards, robots = self._stats, self._guards, self.robots
        room = self._max_queued - await self.queued()
        batch: set[bytes] = set()  # duplicates within the batch
        to_add: list[tuple[Request, bytes, bool]] = []
        waiting = 0
        # a plain link to a host already admitted needs none of admissible()'s work
        max_length, admitted = guards.max_url_length, self._admitted_hosts
        plain_ok = self._max_depth is None
        guard_plain = guards.limits_plain_links
        for request, fp in zip(requests, fps, strict=True):
            if fp is None:
                continue
            was_seen = next(seen)
            if not request.dont_filter and (was_seen or fp in batch):
                stats.duplicates_filtered += 1
                continue
            canonical = request._canonical
            if canonical is not None and not (
                    plain_ok and len(canonical) <= max_length
                    and admitted.get(request._host or "") is True) and not admissible(request):
                continue
            batch.add(fp)
            if len(to_add) >= room:
                self._full(request)
            elif (canonical is not None and not guard_plain) or guards.admit(request):
                permission = robots.permission(request) if robots is not None else True
                if permission is True or (permission is None and not self._hold_robots):
                    to_add.append((request, fp, request.dont_filter))
                else:
                    waiting += await self._hold_or_refuse(request, fp, permission)
        if not to_add:
            return waiting
        queued = sum(await self.frontier.add_many(to_add))
        stats.requests_scheduled += queued
        stats.duplicates_filtered += len(to_add) - queued
        self._wake()
        return queued + waiting

    async def _hold_or_refuse(self, request: Request, fp: bytes, permission: bool | str | None,
                              ) -> bool:
        """Record a request robots.txt holds (unknown yet) or refuses, so that its duplicates
        are dropped at once; True when it waits for the host's robots.txt."""
        if not await self.frontier.mark_seen(fp, request) and not request.dont_filter:
            self._stats.duplicates_filtered += 1
            return False
        if permission is None:
            self._await_robots(request, fp)
            return True
        await self._refuse(request, permission)
        return False

    async def _refuse(self, request: Request, permission: bool | str) -> None:
        """robots.txt disallows `request` (False), or could not be read (why)."""
        await self._refused(request, *self._refusal(request, permission))

    def _refusal(self, request: Request, permission: bool | str) -> tuple[Exception, str]:
        """The exception for the errback of a refused request, and its kind; counted."""
        if permission is False:
            self._stats.robots_disallowed += 1
            logger.debug("robots.txt disallows %s", request.url)
            return IgnoreRequest(f"robots.txt disallows {request.url}"), Kind.ROBOTS_DISALLOWED
        reason = str(permission)
        return DownloadError(reason, f"robots.txt of {request.yurl.origin()} unreachable "
                             f"({reason})", request), reason

    def _full(self, request: Request) -> None:
        self._stats.queue_full += 1
        if not self._warned_full:
            self._warned_full = True
            logger.warning("the frontier holds max_queued (%d) requests: new ones are dropped "
                           "(counted as queue_full) until it drains; a crawl trap? see "
                           "max_query_variants and max_requests_per_host", self._max_queued)
        else:
            logger.debug("frontier full: dropped %s", request.url[:200])

    async def check_room(self) -> None:
        if not self._room.is_set() and await self.queued() < self._seed_window:
            self._room.set()

    async def wait_for_room(self) -> None:
        """Wait until the frontier has room for more start requests (backpressure on
        start(): it is read as the crawl needs it, not all at once)."""
        while await self.queued() >= self._seed_window and not self.stopping:
            self._room.clear()
            await self._room.wait()

    async def _add(self, request: Request, fp: bytes, *, force: bool = False) -> bool:
        if not (await self.frontier.add_many([(request, fp, force or request.dont_filter)]))[0]:
            self._stats.duplicates_filtered += 1
            return False
        self._stats.requests_scheduled += 1
        self._wake()
        return True

    def _await_robots(self, request: Request, fp: bytes) -> None:
        host = request.host
        waiting = self._awaiting_robots.get(host)
        self.awaiting += 1
        if waiting is not None:
            waiting.append((request, fp))
            return
        self._awaiting_robots[host] = [(request, fp)]
        task = asyncio.create_task(self._load_robots(host, request), name=f"robots {host}")
        self._robots_tasks.add(task)
        task.add_done_callback(self._robots_tasks.discard)

    async def robots_refusal(self, request: Request) -> tuple[Exception, str] | None:
        """None when robots.txt lets `request` be fetched (loaded first if needed), else
        the exception for its errback and its kind, counted. For requests queued
        unchecked (robots_at_fetch)."""
        robots = self.robots
        if robots is None:
            return None
        permission = robots.permission(request)
        if permission is None:
            host = request.host
            task = self._rules.get(host)
            if task is None:  # one load per host, however many requests wait for it
                task = self._rules[host] = asyncio.create_task(
                    self._load_rules(host, request), name=f"robots {host}")
                task.add_done_callback(lambda _: self._rules.pop(host, None))
            await asyncio.shield(task)
            permission = robots.permission(request)
        if permission is True:
            return None
        return self._refusal(request, Kind.INTERNAL if permission is None else permission)

    async def _load_rules(self, host: str, request: Request) -> None:
        robots = self.robots
        assert robots is not None
        try:
            await robots.load(request)
            delay = robots.crawl_delay(request)
            if delay:
                await self.frontier.set_crawl_delay(host, delay)
        except Exception:  # never lose the waiting requests to a bug or a parser crash
            logger.exception("loading robots.txt for %s failed", host)

    async def _load_robots(self, host: str, first: Request) -> None:
        await self._load_rules(host, first)
        robots = self.robots
        assert robots is not None
        waiting = self._awaiting_robots.pop(host)
        self.awaiting -= len(waiting)
        # every permission now, while the rules are loaded (the cache may let them go later)
        permissions = [robots.permission(request) for request, _ in waiting]
        for (request, fp), permission in zip(waiting, permissions, strict=True):
            if permission is True:
                if not self.stopping:
                    await self._add(request, fp, force=True)  # its fingerprint is recorded
            else:
                await self._refuse(request, Kind.INTERNAL if permission is None else permission)
        await self.check_room()
        self._robots_done()

    def close(self) -> None:
        for task in (*self._robots_tasks, *self._rules.values()):
            task.cancel()


async def _ignore(request: Request, exc: Exception, kind: str) -> None:
    return None
