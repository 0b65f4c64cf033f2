"""The markdown spider on two real documentation sites: what extraction costs, whether it
keeps the event loop free, and whether the Markdown holds the text and not the navigation.

    python -m benchmarks.markdown [--rounds 2] [--concurrency 32]

The sites are the benchmarks' `pydocs` and `pgdocs` shapes (benchmarks/shapes.py: the
Python 3.11 documentation and the PostgreSQL 15 manual as Debian ships them, 528 and 1,169
pages; `apt-get install -y python3.11-doc postgresql-doc-15`), served by nginx on
127.0.0.1. Each round runs, alternated, a plain crawl (the markdown spider without its
extraction: the same links found and followed the same way, an item of the URL and links
per page) and `python -m crawler run markdown -a start=...`, with the same settings (no
delay, robots.txt off, `--concurrency`). Measured, from each run's stats: pages/s of each
(median of rounds) and their ratio, the largest event-loop stall. Quality, on 20 pages
spread over each site: the page's first heading and the first 60 characters of its first
paragraph (read from the HTML file) are in the Markdown, and no navigation text is (the
sites' own: "Show Source", "Quick search", "[next](", ...).

Then the converters alone, on 80 pages of each site (ms per page): html-to-markdown (ours),
markdownify and trafilatura (the `bench` extra), and our main-content step.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from benchmarks.servers import serve, spider_project
from benchmarks.shapes import shape

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "markdown.txt"

NAVIGATION = {  # each site's own navigation text, never to be kept (benchmarks/shapes.py)
    "pydocs": ("Show Source", "Quick search", "Report a Bug", "Previous topic", "Next topic",
               "[next](", "[previous](", "[modules](", "[index]("),
    "pgdocs": ("[Prev](", "[Up](", "[Home](", "Submit correction"),
}

_PLAIN = '''
import asyncio

from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from crawler import Request
from crawler.extract.content import page_links
from crawler.spiders.markdown import MarkdownSpider


class Plain(MarkdownSpider):
    """The markdown spider without the extraction: the same links followed the same way
    (found in a thread for a page over 16 KB), an item of the URL and links per page."""
    name = "plain"

    async def links(self, response):
        base = str(response.base_url)
        links = lambda: page_links(LexborHTMLParser(response.body), base)  # noqa: E731
        found = await asyncio.to_thread(links) if len(response.body) > 16384 else links()
        return found

    async def parse(self, response):
        links = await self.links(response)
        yield {"url": response.url, "links": links}
        for link in links:
            if URL(link).path.startswith(self._prefixes):
                yield Request(link, callback=self.parse)
'''


def crawl(project: Path, args: list[str], tmp: Path, concurrency: int) -> dict[str, Any]:
    stats, out = tmp / "stats.json", tmp / "out.jsonl"
    cmd = [sys.executable, "-m", "crawler", "run", *args, "-O", str(out), "--stats",
           str(stats), "--nolog", "-s", "download_delay=0", "-s", "obey_robots=false",
           "-s", f"concurrency={concurrency}", "-s", f"per_host_concurrency={concurrency}",
           "-s", "allow_private_addresses=true"]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=project, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    data = json.loads(stats.read_text())
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return {"pages": data["pages"], "pages_per_second": data["pages"] / wall,
            "stall": data["max_loop_stall_seconds"], "records": records}


def _norm(text: str) -> str:
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets out
    text = re.sub(r"[*_`\[\]#|>\\]", "", text)
    return re.sub(r"\s+", " ", text).replace("\u00b6", "").strip()


def spot_check(site: Path, base: str, records: list[dict[str, Any]],
               navigation: tuple[str, ...], count: int = 20) -> dict[str, Any]:
    """The first heading and paragraph of `count` pages in their Markdown; no navigation."""
    by_url = {r["url"]: r["markdown"] for r in records}
    urls = sorted(u for u in by_url if u.endswith(".html"))
    sample = urls[:: max(1, len(urls) // count)][:count]
    checked, missing, navs = 0, [], []
    for url in sample:
        path = site / url[len(base):].lstrip("/")
        tree = LexborHTMLParser(path.read_bytes())
        heading = tree.css_first("h1")
        after = False
        paragraph = None
        for node in tree.css("h1, p"):  # the first paragraph of text after the heading
            if node.tag == "h1":
                after = True
            elif after and len(node.text(deep=True).strip()) >= 40:
                paragraph = node
                break
        markdown = _norm(by_url[url])
        checked += 1
        for what, node in (("heading", heading), ("paragraph", paragraph)):
            if node is None:
                continue
            want = _norm(node.text(deep=True))[:60]
            if want not in markdown:
                missing.append(f"{url[len(base):]}: {what} {want!r}")
        navs += [f"{url[len(base):]}: {n!r}" for n in navigation if n in by_url[url]]
    return {"pages": checked, "missing": missing, "navigation": navs}


def converters(site: Path, pages: int = 80) -> dict[str, float]:
    """ms per page of each converter on `pages` pages of the site."""
    from crawler.extract.content import extract_content

    files = sorted(site.rglob("*.html"))[:pages]
    htmls = [f.read_bytes() for f in files]
    out: dict[str, float] = {}

    def timed(name: str, fn: Any) -> None:
        started = time.perf_counter()
        for html in htmls:
            fn(html)
        out[name] = (time.perf_counter() - started) / len(htmls) * 1000

    import html_to_markdown

    timed("html-to-markdown (whole page)", lambda h: html_to_markdown.convert(h.decode()))
    timed("ours: main content + html-to-markdown",
          lambda h: extract_content(h, formats=("markdown",)))
    try:
        import markdownify

        timed("markdownify (whole page)", lambda h: markdownify.markdownify(h.decode()))
    except ImportError:
        pass
    try:
        import trafilatura

        timed("trafilatura (main content, markdown)",
              lambda h: trafilatura.extract(h.decode(), output_format="markdown",
                                            include_formatting=True, include_links=True))
    except ImportError:
        pass
    return out


def run(rounds: int = 2, concurrency: int = 32) -> str:
    lines = [f"# Markdown spider, {time.strftime('%Y-%m-%d')}: "
             f"`python -m benchmarks.markdown --rounds {rounds} --concurrency {concurrency}`",
             "", "(The plain crawl finds a page's links with asyncio.to_thread, the default "
             "executor's threads; the markdown spider takes pages apart in the crawler's one "
             "extraction thread: see crawler/http/_response.py `_extractor`.)", ""]
    for name, navigation in NAVIGATION.items():
        try:
            docs = shape(name)
        except LookupError as exc:
            lines += [f"{name}: skipped: {exc}", ""]
            continue
        site, start = docs.root, docs.start
        assert site is not None
        with tempfile.TemporaryDirectory() as tmpdir, serve(site) as (_, bases):
            tmp = Path(tmpdir)
            project = spider_project(tmp / "project", "plain", _PLAIN)
            url = f"{bases[0].rstrip('/')}/{start}"
            plain, extracted = [], []
            for _ in range(rounds):
                plain.append(crawl(project, ["plain", "-a", f"start={url}"], tmp, concurrency))
                extracted.append(crawl(project, ["markdown", "-a", f"start={url}"], tmp,
                                       concurrency))
            rate = statistics.median(r["pages_per_second"] for r in plain)
            md_rate = statistics.median(r["pages_per_second"] for r in extracted)
            check = spot_check(site, bases[0].rstrip("/"), extracted[-1]["records"],
                               navigation)
            lines += [
                f"## {docs.title}: {extracted[-1]['pages']} pages", "",
                "| crawl | pages/s | largest loop stall |", "|---|---|---|",
                f"| plain | {rate:,.0f} | {max(r['stall'] for r in plain):.3f} s |",
                f"| markdown spider | {md_rate:,.0f} ({md_rate / rate:.2f}x plain) | "
                f"{max(r['stall'] for r in extracted):.3f} s |", "",
                f"Spot check of {check['pages']} pages: first heading and paragraph missing "
                f"{len(check['missing'])} times, navigation text found "
                f"{len(check['navigation'])} times.",
                *[f"- missing: {m}" for m in check["missing"]],
                *[f"- navigation: {n}" for n in check["navigation"]], ""]
            lines += ["| converter | ms per page |", "|---|---|"]
            lines += [f"| {conv} | {ms:.1f} |" for conv, ms in converters(site).items()]
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    report = run(args.rounds, args.concurrency)
    RESULTS.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
