"""What a kill costs a job dir: pages fetched again after SIGKILLs. python -m benchmarks.kills

    python -m benchmarks.kills [--pages 20000] [--kills 8] [--every 0.6] [--concurrency 64]

Crawls the duplicate-heavy site (nginx, with an access log) with `--job-dir`, SIGKILLs
the crawl `--kills` times, `--every` seconds after each (re)start, then resumes it to the
end; prints the fetches per page (every request nginx served but robots.txt, over the
site's pages), the pages fetched again per kill, and checks that the output holds every
page exactly once.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.quick import ROOT
from benchmarks.run import command
from benchmarks.servers import serve
from benchmarks.shapes import shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--every", type=float, default=0.6)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    site = shape("dup", args.pages)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "access.log"
        out = Path(tmp) / "out.jsonl"
        with serve(site.root, access_log=log) as (server, bases):
            cmd = command("jobdir", [bases[0] + site.start], out, args.concurrency)
            cmd = [a for a in cmd if a != "--restart"]
            kills = 0
            started = time.perf_counter()
            for _ in range(args.kills):
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                try:
                    proc.wait(args.every)
                    break  # it finished before the kill
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
            done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, check=False)
            wall = time.perf_counter() - started
            if done.returncode:
                raise SystemExit(f"the resumed crawl failed: {done.stderr.decode()[-2000:]}")
            time.sleep(0.5)  # nginx writes its log lines
        fetched = collections.Counter(
            line for line in log.read_text().splitlines() if line != "/robots.txt")
        items = collections.Counter(json.loads(line)["url"]
                                    for line in out.read_bytes().splitlines())
    pages = len(fetched)
    again = sum(fetched.values()) - pages
    print(f"server: {server}; {site.title}; concurrency {args.concurrency}")
    print(f"{kills} kills, {wall:.1f}s in all: {sum(fetched.values())} fetches of {pages} "
          f"pages = {sum(fetched.values()) / pages:.3f} fetches per page; {again} fetched "
          f"again ({again / max(kills, 1):.0f} per kill)")
    twice = sum(1 for n in items.values() if n > 1)
    print(f"output: {len(items)} pages, {sum(items.values())} items, {twice} written twice")
    if len(items) != site.expected or twice:
        raise SystemExit("the output does not hold every page exactly once")


if __name__ == "__main__":
    main()
