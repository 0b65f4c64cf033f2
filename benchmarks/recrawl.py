"""Recrawls: a generated site crawled, changed, and crawled again with `--recrawl`.

    python -m benchmarks.recrawl [--pages 20000] [--change 0.10] [--gone 0.02]
                                 [--new 0.01] [--seed 1] [--page-kb 4]

nginx serves the site's static pages (`--page-kb` each; page i links to 3i+1..3i+3), with
the ETag and Last-Modified it makes from each file and a 304 to a matching conditional
request. The first crawl runs with a job dir; then a seeded share of the pages changes
(new text, so a new ETag and mtime), a share is deleted, and new pages are linked from
changed ones; the second crawl is `--recrawl` of the same job. Measured: the bytes nginx
sent in each crawl (headers and bodies, from its access log), each crawl's pages/s, and
the change feed's precision and recall for changed, gone and new pages against the
generator's lists. Then the same on a server that sends no validators and ignores
conditional requests, where the body's digest alone tells.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.servers import NO_VALIDATORS, serve, spider_project

ROOT = Path(__file__).resolve().parent.parent
_WORDS = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "  # 57 bytes

_SPIDER = '''
from crawler import Spider

class RecrawlBench(Spider):
    name = "recrawlbench"

    def __init__(self, base="", **kw):
        super().__init__(**kw)
        self.start_urls = [base + "p/0.html"]

    def parse(self, response):
        yield {"url": response.url, "text": response.css_first("p.v").text()}
        for a in response.css("a"):
            yield response.follow(a)
'''


_FILLER = _WORDS * 64


def page(i: int, n: int, version: int = 1, extra: tuple[int, ...] = ()) -> str:
    links = "".join(f'<a href="/p/{c}.html">{c}</a>' for c in
                    [*range(3 * i + 1, min(3 * i + 4, n)), *extra])
    return (f"<!doctype html><html><head><title>{i}</title></head><body>"
            f'<p class="v">page {i} version {version}</p>{links}<p>{_FILLER}</p>'
            "</body></html>\n")


def generate(root: Path, n: int) -> None:
    (root / "p").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / "p" / f"{i}.html").write_text(page(i, n))


def mutate(root: Path, n: int, change: float, gone: float, new: float,
           seed: int) -> dict[str, set[str]]:
    """Change, delete and add pages; the paths of each."""
    rng = random.Random(seed)
    chosen = rng.sample(range(1, n), int(n * (change + gone)))
    changed, deleted = chosen[:int(n * change)], chosen[int(n * change):]
    added = list(range(n, n + int(n * new)))
    parents = {p: [] for p in changed}
    for k, child in enumerate(added):  # each new page linked from a changed page
        parents[changed[k % len(changed)]].append(child)
    for i in changed:
        (root / "p" / f"{i}.html").write_text(page(i, n, 2, tuple(parents[i])))
    for i in deleted:
        (root / "p" / f"{i}.html").unlink()
    for i in added:
        (root / "p" / f"{i}.html").write_text(page(i, n))
    return {"changed": {f"/p/{i}.html" for i in changed},
            "gone": {f"/p/{i}.html" for i in deleted},
            "new": {f"/p/{i}.html" for i in added}}


def crawl(project: Path, base: str, feed: Path, *extra: str) -> float:
    """One run of the job; its wall time."""
    cmd = [sys.executable, "-m", "crawler", "run", "recrawlbench", "-a", f"base={base}",
           "--job-dir", "job", "-o", "items.jsonl", "--changes", str(feed), "--no-progress",
           "-L", "WARNING", "-s", "obey_robots=false", "-s", "concurrency=32",
           "-s", "per_host_concurrency=32", *extra]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=project, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"},
                          capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"the crawl failed: {done.stderr.decode()[-2000:]}")
    return time.perf_counter() - started


def sent_bytes(log: Path) -> tuple[int, int]:
    """Requests and bytes in nginx's log; the log is emptied."""
    lines = log.read_text().splitlines()
    log.write_text("")
    return len(lines), sum(int(line.split()[1]) for line in lines)


def score(feed: Path, truth: dict[str, set[str]]) -> dict[str, tuple[float, float]]:
    """Precision and recall of the feed's changed, gone and new pages."""
    import orjson

    found: dict[str, set[str]] = {"changed": set(), "gone": set(), "new": set()}
    for line in feed.read_bytes().splitlines():
        record = orjson.loads(line)
        if record["change"] in found:
            found[record["change"]].add("/" + record["url"].split("/", 3)[3])
    out = {}
    for kind, expected in truth.items():
        hits = len(found[kind] & expected)
        out[kind] = (hits / len(found[kind]) if found[kind] else 1.0,
                     hits / len(expected) if expected else 1.0)
    return out


def run(args: argparse.Namespace, validators: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="crawler-recrawl-") as tmp_name:
        tmp = Path(tmp_name)
        site, project, log = tmp / "site", tmp / "project", tmp / "access.log"
        generate(site, args.pages)
        spider_project(project, "recrawlbench", _SPIDER)
        with serve(site, access_log=log, log_format="$status $bytes_sent $request_uri",
                   extra="" if validators else NO_VALIDATORS) as (server, bases):
            time.sleep(0.2)
            first = crawl(project, bases[0], tmp / "changes-1.jsonl")
            requests1, bytes1 = sent_bytes(log)
            truth = mutate(site, args.pages, args.change, args.gone, args.new, args.seed)
            second = crawl(project, bases[0], tmp / "changes-2.jsonl", "--recrawl")
            requests2, bytes2 = sent_bytes(log)
        scores = score(tmp / "changes-2.jsonl", truth)
        kind = "ETag + Last-Modified" if validators else "no validators (digest only)"
        print(f"{kind}: {args.pages} pages, {len(truth['changed'])} changed, "
              f"{len(truth['gone'])} gone, {len(truth['new'])} new ({server})")
        print(f"  first crawl:  {requests1} requests, {bytes1 / 1e6:.1f} MB, {first:.1f} s, "
              f"{requests1 / first:.0f} pages/s")
        print(f"  recrawl:      {requests2} requests, {bytes2 / 1e6:.1f} MB "
              f"({100 * bytes2 / bytes1:.1f} % of the first), {second:.1f} s, "
              f"{requests2 / second:.0f} pages/s")
        for name, (precision, recall) in scores.items():
            print(f"  {name:8} precision {precision:.3f} recall {recall:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--change", type=float, default=0.10)
    parser.add_argument("--gone", type=float, default=0.02)
    parser.add_argument("--new", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-kb", type=float, default=4.0)
    args = parser.parse_args()
    global _FILLER
    _FILLER = _WORDS * max(1, int((args.page_kb * 1024 - 300) / len(_WORDS)))
    for validators in (True, False):
        run(args, validators)


if __name__ == "__main__":
    main()
