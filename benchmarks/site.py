"""A deterministic benchmark site: N static pages of about 4 KB with 15 same-host links each.

Page i links to pages 15*i+1 .. 15*i+15 (mod N), so every page is reachable from page 0 and
most links late in the crawl point at pages already seen, as on a real site.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crawler.commands.benchsite import FANOUT, page


def generate(root: Path, n: int, size: int = 4096, fanout: int = FANOUT) -> Path:
    """Write the site under root/p/ (skipped when it is already there)."""
    target = root / "p"
    marker = root / f".complete-{n}-{size}-{fanout}"
    if marker.exists():
        return root
    target.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (target / f"{i}.html").write_text(page(i, n, size, fanout))
    marker.write_text("ok")
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--pages", type=int, default=20_000)
    args = parser.parse_args()
    generate(args.root, args.pages)
