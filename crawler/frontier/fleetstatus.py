"""A shared crawl's progress as its Redis holds it: `python -m crawler status` and the
status page of a fleet's worker read it."""

from __future__ import annotations

from typing import Any

import orjson

from crawler.exceptions import StartupError
from crawler.frontier.redislink import pipeline
from crawler.redact import redact

__all__ = ["read_status"]


async def read_status(url: str, spider: str, job: str | None = None) -> dict[str, Any]:
    """Its counts, leases, seen-set size, state, and each worker's last heartbeat.
    StartupError when Redis does not answer."""
    import redis.asyncio as aioredis

    prefix = f"crawler:{spider}:{job or spider}:"
    client = aioredis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        (seconds, micros), counts, items, leased, seen, workers, seeded, seeding, stop = \
            await pipeline(client, [
                ("time",), ("hgetall", prefix + "counts"), ("hvals", prefix + "items"),
                ("zcard", prefix + "leased"), ("scard", prefix + "seen"),
                ("hgetall", prefix + "workers"), ("get", prefix + "seeded"),
                ("get", prefix + "seeding"), ("get", prefix + "stop")])
    except Exception as exc:
        raise StartupError(f"cannot read the frontier at {redact(url)}: "
                           f"{redact(str(exc))}") from None
    finally:
        await client.aclose()
    now = seconds + micros / 1e6
    counts = {k.decode(): int(v) for k, v in counts.items()}
    counts["items"] = sum(int(v) for v in items)
    queued = counts.get("queued", 0)
    if not (seeded or seeding or seen):
        state = "not started (no such crawl)"
    elif stop:
        state = f"stopping or stopped ({stop.decode()})"
    elif seeded and not queued and not leased:
        state = "finished"
    else:
        state = "running"
    heartbeats = {}
    for name, record in workers.items():
        beat = orjson.loads(record)
        beat["age"] = now - beat["heartbeat"]
        heartbeats[name.decode()] = beat
    return {"prefix": prefix, "counts": counts, "leased": leased, "seen": seen,
            "state": state, "workers": heartbeats}
