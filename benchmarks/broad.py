"""Broad crawls: thousands of hosts, each with a download delay, and whether the delay holds
as the server sees it.

    python -m benchmarks.broad [--hosts 2000] [--pages 25] [--delay 1.0]
                               [--concurrency 512] [--variants] [--scrapy]

nginx serves one generated site under every name `www.h<i>.test` (the crawl gives those
names to 127.0.0.1 with the `resolve` setting; nginx answers any Host); each host has
`--pages` pages in a chain of relative links (page j links to j+1 and j+2), so a host's
pages are found one after another, as on a real site. The crawl starts from every host's
first page with `download_delay` per host, no randomisation, one request per host at a
time. Measured: pages/s against the politeness ceiling (hosts / delay), every host's pages
all fetched, and, from nginx's log (`$msec $host`), the gaps between two requests to a
host as the server saw them: the shortest, and how many fell under 95 % of the delay.
`--variants` runs ours again with each broad-crawl setting (politeness by registrable
domain, autoscaled concurrency, the curl HTTP stack) to show what each costs; `--scrapy`
runs Scrapy on the same server and settings (benchmarks/peers/scrapy_broad.py), as it
comes and with what its "Broad Crawls" page recommends (the DownloaderAwarePriorityQueue,
breadth-first order).
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
from typing import Any

from benchmarks.servers import serve, spider_project

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
            yield Request(f"http://www.h{i}.test:{self.port}/p/0.html")

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


def crawl(name: str, cmd: list[str], project: Path, log: Path, hosts: int, pages: int,
          delay: float) -> dict[str, Any]:
    """Run one crawler's command; its figures from nginx's log (then emptied)."""
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=project, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed: {done.stderr.decode()[-2000:]}")
    time.sleep(0.5)  # nginx writes its log as requests end
    requests, per_host, shortest, under, count = gaps(log, delay)
    log.write_text("")
    result = {"name": name, "pages": requests, "expected": hosts * pages,
              "seconds": round(wall, 1), "pages_per_second": round(requests / wall),
              "hosts_complete": sum(1 for n in per_host.values() if n == pages),
              "hosts": hosts, "shortest_gap": round(shortest, 3), "gaps_under": under,
              "gaps": count}
    print(f"  {name}: {requests}/{hosts * pages} pages in {wall:.1f} s: "
          f"{requests / wall:.0f} pages/s; hosts with every page: "
          f"{result['hosts_complete']}/{hosts}; gaps at the server: shortest "
          f"{shortest:.3f} s, {under} of {count} under {0.95 * delay:.2f} s", flush=True)
    return result


# ours again with one broad-crawl setting each: what it costs on this shape
VARIANTS = {"ours, politeness_by = domain": ["-s", "politeness_by=domain"],
            "ours, concurrency = auto": ["-s", "concurrency=auto", "-s",
                                         "max_concurrency=2048"],
            "ours, http_stack = curl": ["-s", "http_stack=curl"]}


def run(hosts: int = 2000, pages: int = 25, delay: float = 1.0, concurrency: int = 512,
        variants: bool = False, scrapy: bool = False) -> dict[str, Any]:
    """The broad shape: ours (and its variants, and Scrapy) on one nginx; the figures."""
    print(f"{hosts} hosts x {pages} pages, delay {delay:g} s per host, "
          f"concurrency {concurrency}; politeness ceiling {hosts / delay:.0f} pages/s; no "
          f"crawl of these chains ends before {(pages - 1) * delay:.0f} s", flush=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="crawler-broad-") as tmp_name:
        tmp = Path(tmp_name)
        generate(tmp / "site", pages)
        project = spider_project(tmp / "project", "broad", _SPIDER)
        log = tmp / "access.log"
        # one nginx server: the default for its port, so it answers every www.h<i> name
        with serve(tmp / "site", access_log=log,
                   log_format="$msec $host $request_uri") as (_, bases):
            port = int(bases[0].rstrip("/").rsplit(":", 1)[1])
            ours = [sys.executable, "-m", "crawler", "run", "broad", "-a", f"hosts={hosts}",
                    "-a", f"port={port}", "-O", "items.jsonl", "--no-progress", "-L",
                    "WARNING", "-s", "obey_robots=false", "-s",
                    f"resolve=*.test:{port}:127.0.0.1", "-s", f"download_delay={delay}",
                    "-s", "randomize_download_delay=false", "-s", "per_host_concurrency=1",
                    "-s", f"concurrency={concurrency}"]
            results.append(crawl("ours", ours, project, log, hosts, pages, delay))
            for name, extra in VARIANTS.items() if variants else ():
                results.append(crawl(name, ours + extra, project, log, hosts, pages, delay))
            for name, extra in (("Scrapy", []), ("Scrapy, tuned", ["tuned"])) \
                    if scrapy else ():
                results.append(crawl(name, [
                    sys.executable, str(ROOT / "benchmarks" / "peers" / "scrapy_broad.py"),
                    str(hosts), str(port), str(delay), str(concurrency),
                    str(tmp / "scrapy.jsonl"), *extra], project, log, hosts, pages, delay))
    return {"hosts": hosts, "pages": pages, "delay": delay, "concurrency": concurrency,
            "ceiling": round(hosts / delay), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=25)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--variants", action="store_true",
                        help="also ours with each broad-crawl setting")
    parser.add_argument("--scrapy", action="store_true",
                        help="also Scrapy (benchmarks/peers/scrapy_broad.py), after ours")
    args = parser.parse_args()
    run(args.hosts, args.pages, args.delay, args.concurrency, args.variants, args.scrapy)


if __name__ == "__main__":
    main()
