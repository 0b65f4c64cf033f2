"""One process's connection to a fleet's Redis: opened with the checks a crawl needs (the
server answers, will not evict the crawl's keys, holds the crawl's generation), and every
command riding out an outage (or a server out of memory) of up to `outage` seconds,
retried with backoff and logged once. Past that, or when Redis refuses a command (the
crawl's state gone, a key of the wrong type), the link breaks: one line, said once, and
FrontierUnavailable for every caller after."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from crawler.exceptions import FrontierUnavailable, StartupError
from crawler.redact import redact

__all__ = ["FRONTIER_ERROR", "UNREACHABLE", "VANISHED", "RedisLink", "pipeline"]

logger = logging.getLogger(__name__)

UNREACHABLE = "frontier_unreachable"  # the finish reason after too long an outage
FRONTIER_ERROR = "frontier_error"  # the finish reason after Redis refused a command
VANISHED = "CRAWLER_VANISHED"  # the scripts' error when the crawl's generation is gone


async def pipeline(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Several commands in one round trip (MULTI/EXEC)."""
    async with client.pipeline(transaction=True) as pipe:
        for name, *args in commands:
            getattr(pipe, name)(*args)
        return list(await pipe.execute())


class RedisLink:
    """Usage: `link = RedisLink(url, prefix=..., outage=60, broken=on_broken)`;
    `offset, generation = await link.open()`; `await link.call(client.get, key)`;
    `await link.close()`."""

    def __init__(self, url: str, *, prefix: str, outage: float,
                 broken: Callable[[str, str], None]) -> None:
        self.url = url
        self.prefix = prefix
        self.outage = outage
        self.client: Any = None
        self.reason: str | None = None  # UNREACHABLE or FRONTIER_ERROR, once broken
        self.failure: str | None = None  # why, in one line
        self._broken = broken  # told (reason, message) once, when the link breaks
        self._outage_since: float | None = None

    @property
    def where(self) -> str:
        """The URL without its password, for every message."""
        return redact(self.url)

    async def open(self) -> tuple[float, str]:
        """Connect; (Redis time - local wall time, the crawl's generation). StartupError,
        before any output is touched, when the server does not answer or may evict."""
        import redis.asyncio as aioredis  # the optional extra: crawler[redis]

        # a black-holed server (a frozen Redis, a partition) must not hold one command
        # longer than the outage the crawl rides out
        wait = max(2.0, min(30.0, self.outage / 3))
        client = aioredis.from_url(self.url, socket_connect_timeout=min(5.0, wait),
                                   socket_timeout=wait)
        try:
            seconds, micros = await client.time()
        except Exception as exc:
            await client.aclose()
            raise StartupError(f"cannot reach the frontier at {self.where}: "
                               f"{redact(str(exc))}") from None
        try:
            await self._check_eviction(client)
            await client.set(self.prefix + "gen", uuid.uuid4().hex, nx=True)
            gen = await client.get(self.prefix + "gen")
        except StartupError:
            await client.aclose()
            raise
        except Exception as exc:
            await client.aclose()
            raise StartupError(f"the frontier at {self.where} refused the crawl's state: "
                               f"{redact(str(exc))}") from None
        self.client = client
        return seconds + micros / 1e6 - time.time(), gen.decode() if gen else ""

    async def _check_eviction(self, client: Any) -> None:
        """Refuse a Redis that may evict the crawl's keys (an allkeys-* policy with a
        maxmemory): the crawl would lose requests silently. A server that does not say
        (CONFIG refused, as managed services do) is warned about."""
        from redis.exceptions import ResponseError

        try:
            policy = (await client.config_get("maxmemory-policy")).get("maxmemory-policy")
            limit = (await client.config_get("maxmemory")).get("maxmemory")
        except ResponseError:
            logger.warning("the frontier at %s does not say whether it evicts keys (CONFIG "
                           "GET refused): make sure its maxmemory-policy is noeviction or "
                           "volatile-*; the crawl stops if its state vanishes", self.where)
            return
        policy = policy.decode() if isinstance(policy, bytes) else str(policy or "")
        if policy.startswith("allkeys") and str(limit).strip("b'") not in ("0", ""):
            limit = limit.decode() if isinstance(limit, bytes) else str(limit)
            raise StartupError(
                f"the frontier at {self.where} may evict the crawl's keys "
                f"(maxmemory-policy {policy}, maxmemory {limit}): set maxmemory-policy "
                "to noeviction (or volatile-lru), or remove its maxmemory")

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def call(self, fn: Any, *args: Any, retry: bool = True, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` against Redis, riding out an outage; `retry=False` raises
        its first error instead."""
        from redis.exceptions import BusyLoadingError, OutOfMemoryError, ResponseError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        delay = 0.1
        task = asyncio.current_task()
        while True:
            if self.reason is not None:
                raise FrontierUnavailable(self.failure or "the frontier is gone")
            try:
                result = await fn(*args, **kwargs)
                if task is not None and task.cancelling():
                    # redis-py can swallow a cancellation that lands in a command (seen
                    # with 7.4 as a 2 s stall at the end of a crawl): raise it here
                    raise asyncio.CancelledError
            except ResponseError as exc:
                message = str(exc)
                if not (isinstance(exc, OutOfMemoryError) or "> 'maxmemory'" in message):
                    raise self.fail(FRONTIER_ERROR, self._refused(message)) from None
                if not await self._ride_out(exc, retry, "is out of memory (maxmemory, "
                                                      "noeviction)"):
                    raise self.fail(FRONTIER_ERROR, f"the frontier at {self.where} stayed "
                                    f"out of memory for {self.outage:.0f} s: give it more "
                                    "maxmemory; run again to resume") from None
            except (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError) as exc:
                if not await self._ride_out(exc, retry, "is unreachable"):
                    raise self.fail(UNREACHABLE, "the shared frontier was unreachable for "
                                    f"too long ({self.outage:.0f} s, {self.where}): "
                                    "stopped; run again to resume") from None
            else:
                if self._outage_since is not None:
                    logger.warning("the frontier at %s is back after %.1f s", self.where,
                                   time.monotonic() - self._outage_since)
                    self._outage_since = None
                return result
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def pipeline(self, commands: list[tuple[Any, ...]], *, retry: bool = True,
                       ) -> list[Any]:
        """Several commands in one round trip, riding out an outage."""
        return list(await self.call(pipeline, self.client, commands, retry=retry))

    async def _ride_out(self, exc: Exception, retry: bool, what: str) -> bool:
        """A failed call: True to try again (within the outage the crawl rides out)."""
        if not retry:
            raise exc
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            logger.warning("the frontier at %s %s (%s): waiting for it (up to %.0f s)",
                           self.where, what, redact(str(exc)) or type(exc).__name__,
                           self.outage)
            return True
        return now - self._outage_since <= self.outage

    def _refused(self, message: str) -> str:
        if message.startswith(VANISHED):
            return (f"the crawl's state in the frontier at {self.where} ({self.prefix}*) "
                    "vanished mid-crawl: deleted by another client, or evicted (its "
                    "maxmemory-policy); what was written is kept, --job NAME starts anew")
        return f"the frontier at {self.where} refused a command: {redact(message)}"

    def fail(self, reason: str, message: str) -> FrontierUnavailable:
        """Break the link for good (said once, in one line); the error for the caller."""
        if self.reason is None:
            self.reason, self.failure = reason, message
            logger.error("%s", message)
            self._broken(reason, message)
        return FrontierUnavailable(self.failure or message)
