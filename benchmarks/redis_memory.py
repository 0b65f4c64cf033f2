"""Redis memory per seen URL in a shared frontier: python -m benchmarks.redis_memory

Adds 1,000,000 fingerprint digests, as RedisFrontier stores them (12 bytes each, in one
set), to a scratch key on the Redis at --redis (default redis://127.0.0.1:6379/13) and
prints the bytes per URL that Redis reports (MEMORY USAGE of the set, and used_memory
before and after). The key is deleted at the end.
"""

from __future__ import annotations

import argparse
import hashlib

import redis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--urls", type=int, default=1_000_000)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    key = "crawler:benchmark:redis-memory:seen"
    client.delete(key)
    before = int(client.info("memory")["used_memory"])
    batch = 10_000
    for start in range(0, args.urls, batch):
        digests = [hashlib.sha1(f"GET http://example.test/page/{i}".encode()).digest()[:12]
                   for i in range(start, min(start + batch, args.urls))]
        client.sadd(key, *digests)
    after = int(client.info("memory")["used_memory"])
    usage = int(client.memory_usage(key, samples=0) or 0)
    count = int(client.scard(key))
    client.delete(key)
    client.close()
    print(f"{count:,} seen URLs: {usage / count:.1f} bytes each by MEMORY USAGE, "
          f"{(after - before) / count:.1f} by used_memory ({(after - before) / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
