"""Broad crawls: thousands of hosts, each with a download delay, and whether the delay holds
as the server sees it.

    python -m benchmarks.broad [--hosts 2000] [--pages 25] [--delay 1.0]
                               [--concurrency 512]

nginx serves one generated site under every name `h<i>.broad.test` (the crawl gives those
names to 127.0.0.1 with the `resolve` setting; nginx answers any Host); each host has
`--pages` pages in a chain of relative links (page j links to j+1 and j+2), so a host's
pages are found one after another, as on a real site. The crawl starts from every host's
first page with `download_delay` per host, no randomisation, one request per host at a
time. Measured: pages/s against the politeness ceiling (hosts / delay), every host's pages
all fetched, and, from nginx's log (`$msec $host`), the gaps between two requests to a
host as the server saw them: the shortest, and how many fell under 95 % of the delay.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.servers import serve

ROOT = Path(__file__).resolve().parent.parent

_SPIDER = '''
from crawler import Request, Spider

class Broad(Spider):
    name = "broad"

    def __init__(self, hosts="1", port="80", **kw):
        super().__init__(**kw)
        self.hosts, self.port = int(hosts), int(port)

    async def start(self):
        for i in range(self.hosts):
            yield Request(f"http://h{i}.broad.test:{self.port}/p/0.html")

    def parse(self, response):
        yield {"url": response.url}
        for a in response.css("a"):
            yield response.follow(a)
'''


def generate(root: Path, pages: int) -> None:
    (root / "p").mkdir(parents=True, exist_ok=True)
    for j in range(pages):
        links = "".join(f'<a href="{k}.html">{k}</a>' for k in (j + 1, j + 2) if k < pages)
        (root / "p" / f"{j}.html").write_text(
            f"<!doctype html><html><body><h1>page {j}</h1>{links}</body></html>\n")


def gaps(log: Path, delay: float) -> tuple[int, dict[str, int], float, int, int]:
    """Requests logged; pages per host; the shortest gap between two requests to a host,
    the gaps under 95 % of the delay, and the gaps in all."""
    times: dict[str, list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        msec, host, uri = line.split(" ", 2)
        if uri.startswith("/p/"):
            times[host].append(float(msec))
    shortest, under, count = float("inf"), 0, 0
    for seen in times.values():
        seen.sort()
        for a, b in itertools.pairwise(seen):
            shortest = min(shortest, b - a)
            under += b - a < 0.95 * delay
            count += 1
    return (sum(len(t) for t in times.values()), {h: len(t) for h, t in times.items()},
            shortest, under, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=25)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crawler-broad-") as tmp_name:
        tmp = Path(tmp_name)
        generate(tmp / "site", args.pages)
        project = tmp / "project"
        (project / "spiders").mkdir(parents=True)
        (project / "spiders" / "__init__.py").write_text("")
        (project / "spiders" / "broad.py").write_text(_SPIDER)
        # one nginx server: the default for its port, so it answers every h<i> name
        with serve(tmp / "site", access_log=tmp / "access.log",
                   log_format="$msec $host $request_uri") as (_, bases):
            port = int(bases[0].rstrip("/").rsplit(":", 1)[1])
            cmd = [sys.executable, "-m", "crawler", "run", "broad", "-a",
                   f"hosts={args.hosts}", "-a", f"port={port}", "-O", "items.jsonl",
                   "--no-progress", "-L", "WARNING", "-s", "obey_robots=false",
                   "-s", f"resolve=*.broad.test:{port}:127.0.0.1",
                   "-s", f"download_delay={args.delay}", "-s", "randomize_download_delay=false",
                   "-s", "per_host_concurrency=1", "-s", f"concurrency={args.concurrency}"]
            started = time.perf_counter()
            done = subprocess.run(cmd, cwd=project, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                  capture_output=True)
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"the crawl failed: {done.stderr.decode()[-2000:]}")
        requests, per_host, shortest, under, count = gaps(tmp / "access.log", args.delay)
        expected = args.hosts * args.pages
        complete = sum(1 for n in per_host.values() if n == args.pages)
        ceiling = args.hosts / args.delay
        # a host's chain takes (pages - 1) delays at least: the crawl cannot end sooner
        floor_wall = (args.pages - 1) * args.delay
        print(f"{args.hosts} hosts x {args.pages} pages, delay {args.delay:g} s per host, "
              f"concurrency {args.concurrency}")
        print(f"  {requests}/{expected} pages in {wall:.1f} s: {requests / wall:.0f} pages/s "
              f"(politeness ceiling {ceiling:.0f} pages/s; no crawl of these chains ends "
              f"before {floor_wall:.0f} s)")
        print(f"  hosts with every page: {complete}/{args.hosts}")
        print(f"  gaps between a host's requests, at the server: shortest {shortest:.3f} s; "
              f"{under} of {count} under {0.95 * args.delay:.2f} s")


if __name__ == "__main__":
    main()
