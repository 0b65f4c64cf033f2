"""robots.txt under load: many hosts, each with a large robots.txt of its own.

    python -m benchmarks.robots                        # 300 hosts x 517 KB, 10 pages each
    python -m benchmarks.robots --hosts 50 --lines 5000

Every host (one nginx port each) serves its own robots.txt of `--lines` Disallow rules (20,000
lines is about 517 KB), an index page linking to `--pages` pages and to a disallowed one.
Reports peak RSS, pages/s, the longest loop stall, and checks that no disallowed page was
fetched and every allowed one was. Robots rules are kept bounded (crawler/core/robots.py): the
parsed rules of a host live in an LRU sized in bytes, the raw text compressed beside it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.run import command, measure
from benchmarks.servers import serve


def build(root: Path, lines: int, pages: int, hosts: int) -> list[Path]:
    """The site's pages in `root`, and one root per host with its own robots.txt (the
    pages linked in): distinct files, as distinct hosts would serve."""
    roots = []
    for h in range(hosts):
        rules = "".join(f"Disallow: /priv{h:03d}/{i:06d}\n" for i in range(lines - 1))
        host_root = root / f"host{h}"
        host_root.mkdir()
        (host_root / "robots.txt").write_text(f"User-agent: *\nDisallow: /secret\n{rules}")
        for name in ("index.html", "secret", *(f"p{k}.html" for k in range(pages))):
            (host_root / name).symlink_to(root / name)
        roots.append(host_root)
    links = "".join(f'<a href="/p{k}.html">{k}</a>' for k in range(pages))
    (root / "index.html").write_text(f"<html><body>{links}<a href='/secret'>x</a></body></html>")
    for k in range(pages):
        (root / f"p{k}.html").write_text(f"<html><body><a href='/'>home</a> page {k}</body></html>")
    (root / "secret").write_text("<html><body>must not be fetched</body></html>")
    return roots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=300)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)  # nginx's workers run as another user
        root = Path(tmp) / "site"
        root.mkdir()
        roots = build(root, args.lines, args.pages, args.hosts)
        size = (roots[0] / "robots.txt").stat().st_size
        with serve(roots, args.hosts) as (server, bases):
            out = Path(tmp) / "ours.jsonl"
            cmd = command("ours", bases, out, args.concurrency)
            run = measure("ours", cmd, out)
        urls = [json.loads(line)["url"] for line in out.read_bytes().splitlines()]
    secret = sum(u.endswith("/secret") for u in urls)
    expected = args.hosts * (args.pages + 1)
    print(f"{args.hosts} hosts x robots.txt of {size / 1000:.0f} KB ({args.lines} lines), "
          f"server: {server}")
    print(f"pages {run.pages} of {expected} expected, disallowed fetched {secret}; "
          f"{run.rate:.0f} pages/s, wall {run.wall:.1f} s, cpu {run.cpu:.1f} s, "
          f"peak RSS {run.rss_mb:.0f} MB, longest loop stall {run.loop_stall:.3f} s")
    if secret or run.unique != expected:
        raise SystemExit("robots.txt was not obeyed exactly")


if __name__ == "__main__":
    main()
