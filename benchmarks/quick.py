"""Ours vs the floor on one generated site, alternating runs: python -m benchmarks.quick

    python -m benchmarks.quick [--shape dup|tree|pgdocs|pydocs] [--pages 20000] [--runs 2]
                               [--hosts 1] [--rev REV] [--jobdir] [--shared 1,2] [--pg]

`--rev REV` adds the crawler as of a git revision (checked out in a temporary worktree) as a
third contender, for before/after comparisons of a change within one alternating run.
`--jobdir` adds ours with a job directory; `--shared 1,2` adds ours on a Redis frontier
(`--redis URL`, default redis://127.0.0.1:6379/13) with 1 and 2 worker processes
(`run --workers N`), their per-worker outputs counted together. `--pg [URL]` adds ours
writing its items to PostgreSQL (table crawler_bench, emptied by -O) instead of a file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.run import command
from benchmarks.servers import serve
from benchmarks.shapes import shape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Run:
    name: str
    pages: int
    wall: float
    rss_mb: float
    cpu: float
    busy: float = 0.0  # core-seconds the whole machine was busy (server and Redis included)

    @property
    def rate(self) -> float:
        return self.pages / self.wall


def _measure(name: str, cmd: list[str], out: Path) -> Run:
    shared = "JOB" in cmd  # a fresh crawl name each run; outputs out.<worker>.jsonl
    if shared:
        job = uuid.uuid4().hex
        cmd = [job if arg == "JOB" else arg for arg in cmd]
        for old in out.parent.glob(f"{out.stem}.*.jsonl"):
            old.unlink()
    busy_before = _machine_busy()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    busy = _machine_busy() - busy_before
    if shared:  # the run's keys go: runs would otherwise pile up in the user's Redis
        _forget_job(cmd[cmd.index("--frontier") + 1], job)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"{name} failed ({proc.returncode}): {err[-2000:]}")
    parts = sorted(out.parent.glob(f"{out.stem}.*.jsonl")) if shared else [out]
    pages = 0
    stats = out.with_suffix(".stats.json")
    if not out.exists() and stats.exists():  # a database output: the items it stored
        outputs = json.loads(stats.read_bytes())["outputs"]
        pages = sum(o["items"] for o in outputs.values())
        parts = []
    for part in parts:
        with part.open("rb") as f:
            pages += sum(1 for _ in f)
    return Run(name, pages, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime,
               busy)


def _forget_job(url: str, job: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"crawler:*:{job}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _machine_busy() -> float:
    """Core-seconds every CPU of the machine has spent busy since boot (/proc/stat), so
    that a run's share of the server's and Redis's work shows: on 2 cores, busy / wall
    near 2 means the machine, not the crawler, was the limit. 0 where /proc is absent."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def contenders(starts: list[str], tmp: Path, concurrency: int, max_pages: int | None,
               rev_root: Path | None = None, jobdir: bool = False,
               shared: tuple[int, ...] = (), redis: str = "", postgres: str = "",
               ) -> dict[str, tuple[list[str], Path]]:
    names = ("floor", "ours", "jobdir") if jobdir else ("floor", "ours")
    plan = {name: (command(name, starts, tmp / f"{name}.jsonl", concurrency,
                           max_pages=max_pages), tmp / f"{name}.jsonl")
            for name in names}
    if rev_root is not None:  # the same command, importing the crawler from the worktree
        rev_out = tmp / "rev.jsonl"
        ours = command("ours", starts, rev_out, concurrency, max_pages=max_pages)
        plan["rev"] = (["env", "-C", str(rev_root), f"PYTHONPATH={rev_root}", *ours], rev_out)
        if jobdir:  # and its job directory, for before/after of the job dir's own path
            rev_job = tmp / "revjob.jsonl"
            cmd = command("jobdir", starts, rev_job, concurrency, max_pages=max_pages)
            plan["revjob"] = (["env", "-C", str(rev_root), f"PYTHONPATH={rev_root}", *cmd],
                              rev_job)
    if postgres:  # ours writing to PostgreSQL instead of a file (the table emptied by -O)
        out = tmp / "pg.jsonl"
        cmd = command("ours", starts, out, concurrency, max_pages=max_pages)
        at = cmd.index("-O")
        cmd[at + 1] = f"{postgres}?table=crawler_bench"
        plan["pg"] = (cmd, out)
    for n in shared:  # one output per worker, no --stats (the workers would share it)
        for name, root in ((f"redis{n}", None), (f"revredis{n}", rev_root)):
            if name.startswith("rev") and root is None:
                continue
            out = tmp / f"{name}.jsonl"
            cmd = command("ours", starts, out, concurrency, max_pages=max_pages)
            cmd = [*cmd[:cmd.index("-O")], "-O", str(tmp / f"{name}.{{worker}}.jsonl")]
            if max_pages:
                cmd += ["-s", f"max_pages={max_pages}"]
            cmd += ["--frontier", redis, "--job", "JOB", "--workers", str(n)]
            if root is not None:
                cmd = ["env", "-C", str(root), f"PYTHONPATH={root}", *cmd]
            plan[name] = (cmd, out)
    return plan


@contextlib.contextmanager
def worktree(rev: str | None) -> Iterator[Path | None]:
    """A temporary checkout of `rev` (nothing when None)."""
    if rev is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rev"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], cwd=ROOT,
                       check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT,
                           check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rev", help="also run the crawler as of this git revision")
    parser.add_argument("--shape", default="dup", help="dup, tree, pgdocs or pydocs")
    parser.add_argument("--jobdir", action="store_true",
                        help="also run ours with a job directory (--job-dir)")
    parser.add_argument("--shared", default="",
                        help="also run ours on a Redis frontier with these worker counts: 1,2")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--pg", nargs="?", const="postgresql://postgres@127.0.0.1:5432/test",
                        default="", metavar="URL",
                        help="also run ours writing to PostgreSQL (default URL: "
                             "postgresql://postgres@127.0.0.1:5432/test)")
    args = parser.parse_args()
    shared = tuple(int(n) for n in args.shared.split(",") if n)
    site = shape(args.shape, args.pages // args.hosts if args.shape == "dup" else args.pages)
    runs: dict[str, list[Run]] = {}
    with serve(site.root, args.hosts) as (server, bases), tempfile.TemporaryDirectory() as tmp, \
            worktree(args.rev) as rev_root:
        starts = [b + site.start for b in bases]
        plan = contenders(starts, Path(tmp), args.concurrency, site.max_pages, rev_root,
                          args.jobdir, shared, args.redis, args.pg)
        print(f"server: {server}; {site.title}, {args.hosts} host(s)")
        for _ in range(args.runs):
            for name, (cmd, out) in plan.items():
                run = _measure(name, cmd, out)
                runs.setdefault(name, []).append(run)
                print(f"  {name:6} {run.pages:7} pages {run.wall:6.2f}s {run.rate:7.0f} pages/s "
                      f"rss {run.rss_mb:5.0f} MB cpu {run.cpu:5.1f}s "
                      f"machine {run.busy / run.wall:4.2f} cores busy")
    medians = {n: statistics.median(r.rate for r in rs) for n, rs in runs.items()}
    for name, rate in medians.items():
        print(f"{name}: median {rate:.0f} pages/s")
    print(f"ours/floor = {medians['ours'] / medians['floor']:.2f}")
    if "rev" in medians:
        print(f"ours/rev = {medians['ours'] / medians['rev']:.2f} (rev = {args.rev})")
    # this machine's speed drifts: the ratio within each round (runs minutes apart at most)
    # is steadier than a ratio of medians
    for new, old in (("jobdir", "revjob"),
                     *((f"redis{n}", f"revredis{n}") for n in shared)):
        if old in runs:
            per_round = [j.rate / r.rate for j, r in zip(runs[new], runs[old], strict=True)]
            print(f"{new}/{old} per round: {', '.join(f'{r:.2f}' for r in per_round)}; "
                  f"median {statistics.median(per_round):.2f}")
    for other in ("floor", "rev", "jobdir", "pg", *(f"redis{n}" for n in shared)):
        if other in runs:
            per_round = [o.rate / f.rate for o, f in zip(runs["ours"], runs[other], strict=True)]
            print(f"ours/{other} per round: {', '.join(f'{r:.2f}' for r in per_round)}; "
                  f"median {statistics.median(per_round):.2f}")


if __name__ == "__main__":
    main()
