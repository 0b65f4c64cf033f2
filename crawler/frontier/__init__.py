"""The frontier: requests waiting to be fetched, the seen-set, and per-host readiness.

One interface, several stores: `MemoryFrontier` (default, one process),
`JournaledFrontier` (the same order and politeness, every change written through a job
directory so that a crawl resumes after any stop, and the queue on disk past a window)
and `RedisFrontier` (one frontier for many processes on many machines). The frontier owns
per-host politeness so that a shared store enforces it across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from crawler.frontier.journaled import JournaledFrontier
from crawler.frontier.memory import MemoryFrontier
from crawler.frontier.redisstore import RedisFrontier
from crawler.http import Request


class Frontier(Protocol):
    """What the scheduler needs from a request store. Its times are on its own `clock`
    (seconds; a shared store's is wall time), injected, so tests can fake it. Every
    question is async, counters included: a shared store answers for the whole fleet, over
    the network. A request taken by pop() is leased until ack()."""

    clock: Callable[[], float]
    poll: float | None  # other processes change it: seconds between looks while workers
    # wait (None: nobody else does, and it says when it changes)
    failure: str | None  # why the store stopped the crawl (one line), if it did

    async def open(self, spider: object | None = None) -> None:
        """Acquire resources (files, connections). Queued requests may name their callback
        as a method of `spider` instead of holding it."""

    async def close(self) -> None:
        """Release them; queued requests survive only in persistent stores."""

    async def seen_many(self, fingerprints: Sequence[bytes]) -> list[bool]:
        """Whether each fingerprint was recorded: a pre-check for a page's links at once, so
        that duplicates skip robots and per-host work; add_many() still decides (a shared
        store may say False for what another process recorded)."""

    async def mark_seen(self, fingerprint: bytes, request: Request | None = None) -> bool:
        """Record `fingerprint` without queueing anything (`request`, held for its host's
        robots.txt, or refused), so that its duplicates are filtered; False when it was
        recorded before. A durable store keeps `request` until it is done."""

    async def add_many(self, entries: Sequence[tuple[Request, bytes, bool]]) -> list[bool]:
        """For each (request, fingerprint, force): record the fingerprint and queue the
        request; False when it was seen before, unless `force` (dont_filter=True) queues it
        anyway. In order: of two equal fingerprints in one call, the second is a duplicate."""

    async def retry(self, request: Request, delay: float) -> None:
        """Queue `request` again (no duplicate check), not to start for `delay` seconds."""

    async def pop_many(self, n: int) -> list[Request]:
        """Up to `n` requests whose hosts may start one now, best first, marked started
        (leased until ack())."""

    async def done(self, request: Request, *, latency: float | None = None,
                   status: int | None = None, cached: bool = False) -> None:
        """The request's fetch is over: free its host's slot; latency and status feed
        autothrottle (status None: no response). `cached`: the network was not used (a
        cache hit), so the start charges the host no delay."""

    async def ack(self, request: Request) -> None:
        """`request` is complete: its callback ended and its items were handed to the
        outputs. Until then a popped request is leased, not gone: a durable store gives it
        back after a crash (the memory store forgets it at pop)."""

    async def ack_many(self, requests: Sequence[Request]) -> None:
        """`ack` for each, at once."""

    async def pause_host(self, host: str, seconds: float) -> None:
        """Start nothing on `host` (a `host_key`) for `seconds` (Retry-After)."""

    async def set_crawl_delay(self, host: str, delay: float) -> None:
        """The host's robots.txt Crawl-delay: a floor for the gap between its starts."""

    async def hosts_kept(self) -> int:
        """Hosts whose politeness record the store keeps (an idle host's is forgotten, so
        that a crawl of many hosts holds only the busy ones)."""

    def host_states(self, hosts: Sequence[str]) -> dict[str, tuple[int, float]]:
        """(requests in flight, current delay in seconds) of each of `hosts` this process
        knows (the status page); a host it does not know is left out."""

    async def wakeup_at(self) -> float | None:
        """When (on `clock`) a host now held back by its delay becomes ready, if any."""

    async def queued(self) -> int:
        """Requests waiting (retries waiting out a backoff included)."""

    async def in_flight(self) -> int:
        """Requests popped and not yet done(); in a shared store, popped by any process and
        not yet acknowledged (its callback may still add requests)."""

    def watch(self, changed: Callable[[], None], stop: Callable[[str], None], *,
              pages: Callable[[], int], items: Callable[[], int]) -> None:
        """A shared store calls `changed()` when others may have changed what is pending,
        and `stop(reason)` when the crawl stops for everyone (a fleet-wide limit); it reads
        this process's `pages()` and `items()` for the fleet's counts."""

    async def claim_seeding(self) -> bool:
        """Whether this process runs the spider's start(): True once per crawl (in a fleet,
        again for another process if the one running it died before it ended)."""

    async def seeding_done(self) -> None:
        """start() ran to its end."""


__all__ = ["Frontier", "JournaledFrontier", "MemoryFrontier", "RedisFrontier"]
