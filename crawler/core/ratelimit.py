"""Per-host politeness: how many requests may be in flight and how far apart they start.

A `HostSlot` is the state of one host (scheme + host + port; or, with `politeness_by`, a
registrable domain or an address: crawler/core/politeness.py). It never sleeps: the frontier
asks `ready(now)` and reads `next_start`, so no worker waits on a held-back host. The delay
between starts is the largest of `download_delay`, the host's robots.txt Crawl-delay and,
with autothrottle, a delay adapted to the host's latency; Retry-After and 429/503 answers
push `next_start` further out.

The delay holds between the moments requests go out, as the server sees them, not between
the moments they leave the frontier: a request that waited after its dispatch (a busy
event loop, middlewares, a full connection pool) moves the next start by as much, once its
fetch is over (`finish` learns when it went out from its latency: measured from the moment
its headers were written when `download_delay` or autothrottle is on, else from just
before the fetch, which is as good unless connections are slow to make).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from crawler.core.politeness import PolitenessKeys
from crawler.settings import Settings

__all__ = ["HostPolicy", "HostSlot"]

BACKOFF_STATUSES = frozenset({429, 503})


_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Limits applied to every host."""

    # the defaults are Settings' own, so that HostPolicy() is as polite as a default crawl
    concurrency: int = _DEFAULTS.per_host_concurrency  # requests in flight per host
    delay: float = _DEFAULTS.download_delay  # seconds between the starts of two requests
    randomize: bool = _DEFAULTS.randomize_download_delay  # gap is delay x U(0.5, 1.5)
    autothrottle: bool = _DEFAULTS.autothrottle  # adapt the delay to the host's latency
    # autothrottle: requests the host should be serving; the delay before any latency is
    # known; and the ceiling for autothrottle and Crawl-delay
    target_concurrency: float = _DEFAULTS.autothrottle_target_concurrency
    start_delay: float = _DEFAULTS.autothrottle_start_delay
    max_delay: float = _DEFAULTS.autothrottle_max_delay
    # which requests share a slot (`politeness_by`; crawler/core/politeness.py)
    keys: PolitenessKeys = field(default_factory=PolitenessKeys, compare=False)

    @classmethod
    def from_settings(cls, s: Settings) -> HostPolicy:
        return cls(concurrency=s.per_host_concurrency, delay=s.download_delay,
                   randomize=s.randomize_download_delay, autothrottle=s.autothrottle,
                   target_concurrency=s.autothrottle_target_concurrency,
                   start_delay=s.autothrottle_start_delay, max_delay=s.autothrottle_max_delay,
                   keys=PolitenessKeys.from_settings(s))


class HostSlot:
    """In-flight count, current delay and next allowed start of one host."""

    __slots__ = ("active", "crawl_delay", "delay", "gap", "last_start", "next_start",
                 "prior_start")

    def __init__(self, policy: HostPolicy) -> None:
        self.active = 0
        # current base delay; autothrottle starts it high and moves it with latency
        self.delay = max(policy.delay, policy.start_delay) if policy.autothrottle \
            else policy.delay
        self.crawl_delay = 0.0  # from robots.txt; a floor even for randomised gaps
        self.next_start = 0.0  # loop time before which no request to this host may start
        self.last_start = 0.0
        self.prior_start = 0.0  # next_start before the last start: a cache hit goes back
        self.gap = 0.0  # the gap the last start took

    def ready(self, now: float, policy: HostPolicy) -> bool:
        return self.active < policy.concurrency and now >= self.next_start

    def start(self, now: float, policy: HostPolicy) -> None:
        self.active += 1
        self.last_start = now
        self.prior_start = self.next_start
        gap = self.delay
        if gap and policy.randomize:
            gap *= random.uniform(0.5, 1.5)
        gap = max(gap, self.crawl_delay)
        self.gap = gap
        if gap:
            self.next_start = max(self.next_start, now + gap)

    def finish(self, now: float, policy: HostPolicy, latency: float | None,
               status: int | None, *, cached: bool = False) -> None:
        """A request is over; with autothrottle, move the delay toward latency/target. A
        cached one (no network) takes back the gap its start set."""
        self.active -= 1
        if cached:
            if self.next_start > now:
                self.next_start = max(self.prior_start, now)
            return
        if latency is None:
            return
        if self.gap:  # the gap counts from when it went out (the module docstring)
            sent = now - latency
            self.next_start = max(self.next_start, sent + self.gap)
            self.last_start = max(self.last_start, sent)
        if not policy.autothrottle:
            return
        floor = max(policy.delay, self.crawl_delay)
        if status in BACKOFF_STATUSES:  # back off sharply, starting now
            self.delay = min(policy.max_delay, max(self.delay * 2, latency, 1.0, floor))
            self.next_start = max(self.next_start, now + self.delay)
            return
        target = latency / policy.target_concurrency
        new = (self.delay + target) / 2
        if status is not None and not 200 <= status < 300 and new < self.delay:
            return  # error pages are fast; they must not speed us up
        self.delay = min(policy.max_delay, max(floor, new))
        self.next_start = max(self.next_start, self.last_start + self.delay)

    def pause_until(self, when: float) -> None:
        """No new request before `when` (Retry-After)."""
        self.next_start = max(self.next_start, when)

    def set_crawl_delay(self, delay: float, policy: HostPolicy) -> None:
        self.crawl_delay = min(delay, policy.max_delay)
        self.delay = max(self.delay, self.crawl_delay)

    def record(self) -> dict[str, float]:
        """What a durable store keeps of the slot: plain numbers (times on the frontier's
        clock). In-flight counts are not kept: a new process has none."""
        return {"delay": self.delay, "crawl_delay": self.crawl_delay,
                "next_start": self.next_start}

    @classmethod
    def from_record(cls, record: dict[str, float], policy: HostPolicy) -> HostSlot:
        slot = cls(policy)
        slot.delay = max(slot.delay, float(record.get("delay", 0.0)))
        slot.crawl_delay = float(record.get("crawl_delay", 0.0))
        slot.next_start = float(record.get("next_start", 0.0))
        return slot

    def idle(self, now: float) -> bool:
        """Nothing in flight and no delay pending: the slot can be forgotten (a Crawl-delay
        is kept by the frontier and set again on the next slot)."""
        return self.active == 0 and now >= self.next_start
