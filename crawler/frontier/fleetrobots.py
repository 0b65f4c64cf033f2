"""robots.txt once for a fleet: each origin's outcome kept in the fleet's Redis for a day.
The first worker to need it fetches it (holding a lock), the others wait for its answer;
if that worker dies, the lock expires and another fetches it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from crawler.frontier.redislink import RedisLink

__all__ = ["FleetRobots"]

_LOCK = 60  # seconds one worker may take to fetch a robots.txt for the fleet
_POLL = 0.1  # seconds between looks for it by the others
_KEPT = 86_400  # seconds an outcome is kept in Redis


class FleetRobots:
    """Usage: `FleetRobots(link, worker)` as a RobotsCache's `shared` rules."""

    def __init__(self, link: RedisLink, worker: str) -> None:
        self._link = link
        self._worker = worker

    async def rules(self, origin: str, fetch: Callable[[], Awaitable[bytes | bool | str]],
                    ) -> bytes | bool | str:
        """`origin`'s robots.txt outcome: stored, or fetched here (and stored)."""
        link = self._link
        r, key = link.client, f"{link.prefix}robots:{origin}"
        deadline = time.monotonic() + _LOCK
        while True:
            stored = await link.call(r.get, key)
            if stored is not None:
                return _outcome(stored)
            if await link.call(r.set, key + ":lock", self._worker, nx=True, ex=_LOCK):
                break
            if time.monotonic() > deadline:  # the fetcher is slow or gone: fetch here too
                return await fetch()
            await asyncio.sleep(_POLL)
        try:
            outcome = await fetch()
            await link.call(r.set, key, _stored(outcome), ex=_KEPT)
        finally:
            with contextlib.suppress(Exception):
                await link.call(r.delete, key + ":lock", retry=False)
        return outcome


def _stored(outcome: bytes | bool | str) -> bytes:
    if isinstance(outcome, bytes):
        return b"B" + outcome
    if outcome is True:
        return b"T"
    return b"R" + str(outcome).encode()


def _outcome(stored: bytes) -> bytes | bool | str:
    kind, rest = stored[:1], stored[1:]
    if kind == b"B":
        return rest
    if kind == b"T":
        return True
    return rest.decode()
