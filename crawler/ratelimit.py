"""Per-host politeness: how many requests may be in flight and how far apart they start.

A `HostSlot` is the state of one host (scheme + host + port). It never sleeps: callers ask
`ready(now)` and `ready_at()` and schedule accordingly, so no worker waits on a slow host.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Limits applied to every host."""

    concurrency: int = 8  # requests in flight per host
    delay: float = 0.0  # seconds between the starts of two requests to a host


class HostSlot:
    """In-flight count and last start time of one host."""

    __slots__ = ("active", "delay", "next_start")

    def __init__(self, delay: float) -> None:
        self.active = 0
        self.delay = delay
        self.next_start = 0.0  # loop time before which no request to this host may start

    def ready(self, now: float, policy: HostPolicy) -> bool:
        return self.active < policy.concurrency and now >= self.next_start

    def start(self, now: float) -> None:
        self.active += 1
        if self.delay:
            self.next_start = now + self.delay

    def finish(self) -> None:
        self.active -= 1

    def idle(self, now: float) -> bool:
        """Nothing in flight and no delay pending: the slot can be forgotten."""
        return self.active == 0 and now >= self.next_start
