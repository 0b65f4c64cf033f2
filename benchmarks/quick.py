"""Ours vs the floor on one generated site, alternating runs: python -m benchmarks.quick

    python -m benchmarks.quick [--pages 20000] [--runs 2] [--hosts 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.servers import serve
from benchmarks.site import generate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Run:
    name: str
    pages: int
    wall: float
    rss_mb: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.pages / self.wall


def _measure(name: str, cmd: list[str], out: Path) -> Run:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"{name} failed ({proc.returncode}): {err[-2000:]}")
    with out.open("rb") as f:
        pages = sum(1 for _ in f)
    return Run(name, pages, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def contenders(starts: list[str], tmp: Path, concurrency: int) -> dict[str, tuple[list[str], Path]]:
    floor_out, ours_out = tmp / "floor.jsonl", tmp / "ours.jsonl"
    return {
        "floor": ([sys.executable, "-m", "benchmarks.floor", str(floor_out), *starts,
                   "--workers", str(concurrency)], floor_out),
        "ours": ([sys.executable, "-m", "crawler", "run", "bench", "-a",
                  f"start={','.join(starts)}", "-s", f"concurrency={concurrency}",
                  "-O", str(ours_out)], ours_out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    per_host = args.pages // args.hosts
    site = generate(HERE / ".sites" / str(per_host), per_host)
    runs: dict[str, list[Run]] = {}
    with serve(site, args.hosts) as (server, bases), tempfile.TemporaryDirectory() as tmp:
        starts = [b + "p/0.html" for b in bases]
        plan = contenders(starts, Path(tmp), args.concurrency)
        print(f"server: {server}; {args.pages} pages on {args.hosts} host(s)")
        for _ in range(args.runs):
            for name, (cmd, out) in plan.items():
                run = _measure(name, cmd, out)
                runs.setdefault(name, []).append(run)
                print(f"  {name:6} {run.pages:7} pages {run.wall:6.2f}s {run.rate:7.0f} pages/s "
                      f"rss {run.rss_mb:5.0f} MB cpu {run.cpu:5.1f}s")
    medians = {n: statistics.median(r.rate for r in rs) for n, rs in runs.items()}
    for name, rate in medians.items():
        print(f"{name}: median {rate:.0f} pages/s")
    print(f"ours/floor = {medians['ours'] / medians['floor']:.2f}")


if __name__ == "__main__":
    main()
