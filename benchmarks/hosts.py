"""The frontier with many hosts: bytes per host and the cost of picking the next request.

    python -m benchmarks.hosts [--hosts 1000,10000,100000] [--per-host 5]

For each count, a memory frontier (the one a job dir's builds on) is given `--per-host`
requests for each of that many hosts (`https://h<i>.example/p<j>`, plain followed links),
with a 1 s delay per host and one request per host at a time, as a broad crawl runs. Then
every request is taken and finished, a host at a time becoming ready again as its delay
passes (a fake clock moves on when nothing is ready). Measured: what the frontier holds
once the requests are added (tracemalloc: its host queues and slots, the packed requests,
the seen-set), per host and per request, and the time per pop and per done, which must
stay flat as hosts grow. `--per-host 1` shows a host's own cost best.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc

from crawler import Request
from crawler.core.ratelimit import HostPolicy
from crawler.frontier.memory import MemoryFrontier


class _Spider:
    name = "hosts"

    def parse(self, response: object) -> None:
        return None


async def measure(hosts: int, per_host: int) -> tuple[float, float, float, float]:
    """Bytes per host with the requests queued, bytes per request, microseconds per pop
    and per done."""
    now = [0.0]
    spider = _Spider()
    frontier = MemoryFrontier(HostPolicy(concurrency=1, delay=1.0, randomize=False),
                              clock=lambda: now[0])
    await frontier.open(spider)
    requests = [Request(f"https://h{i}.example/p{j}", spider.parse, depth=1)
                for j in range(per_host) for i in range(hosts)]
    fps = [r.url.encode() for r in requests]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await frontier.add_many([(r, fp, False) for r, fp in zip(requests, fps, strict=True)])
    del requests, fps
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    popped = done = 0
    pop_time = done_time = 0.0
    total = hosts * per_host
    while popped < total:
        started = time.perf_counter()
        batch = await frontier.pop_many(256)
        pop_time += time.perf_counter() - started
        popped += len(batch)
        started = time.perf_counter()
        for request in batch:
            await frontier.done(request, latency=0.01, status=200)
        done_time += time.perf_counter() - started
        done += len(batch)
        if not batch:
            wake = await frontier.wakeup_at()
            now[0] = wake if wake is not None else now[0] + 1.0
    return held / hosts, held / total, pop_time / popped * 1e6, done_time / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1000,10000,100000")
    parser.add_argument("--per-host", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.per_host} requests per host, delay 1 s, one at a time per host")
    for count in (int(n) for n in args.hosts.split(",")):
        per_host, per_request, pop_us, done_us = asyncio.run(measure(count, args.per_host))
        print(f"  {count:>7} hosts: {per_host:,.0f} bytes per host queued "
              f"({per_request:,.0f} per request, the seen-set included); "
              f"pop {pop_us:.2f} us, done {done_us:.2f} us per request")


if __name__ == "__main__":
    main()
