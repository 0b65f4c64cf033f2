"""`python -m crawler bench`: how many pages per second this machine crawls.

A generated site (N pages of ~4 KB, 15 same-host links each) is served by aiohttp in a
separate process on 127.0.0.1; this process crawls it with `BenchSpider`, writing every item
to a temporary .jsonl file, and reports pages/s, like `scrapy bench`. The full comparison
with the bare-stack floor and Scrapy lives in the repository's benchmarks/.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from crawler.core.crawler import Crawler
from crawler.http import Response
from crawler.outputs.formats import make_exporter
from crawler.settings import Settings
from crawler.spider import Spider
from crawler.stats import Stats

__all__ = ["BenchSpider", "main", "page", "report", "run_bench"]

FANOUT = 15
_FILLER = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
           "incididunt ut labore et dolore magna aliqua. ")


def page(i: int, n: int, size: int = 4096, fanout: int = FANOUT) -> str:
    """Page i of an n-page site: links to pages fanout*i+1 .. fanout*i+fanout (mod n), so
    every page is reachable from page 0 and most late links point at pages already seen."""
    links = "".join(f'<li><a href="/p/{(fanout * i + k) % n}.html">page {(fanout * i + k) % n}'
                    f"</a></li>" for k in range(1, fanout + 1))
    head = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Page {i}</title></head>"
            f"<body><h1>Heading {i}</h1><ul>{links}</ul><p>")
    tail = "</p></body></html>\n"
    filler_len = max(0, size - len(head) - len(tail))
    filler = (_FILLER * (filler_len // len(_FILLER) + 1))[:filler_len]
    return head + filler + tail


class BenchSpider(Spider):
    """Title and h1 of every page; follows every link on the same host."""

    name = "bench"
    custom_settings: ClassVar[dict[str, Any]] = {
        "concurrency": 64, "per_host_concurrency": 64, "log_level": "WARNING"}

    def __init__(self, start: str = "http://127.0.0.1:8080/p/0.html", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = start.split(",")
        self.allowed_domains = ["127.0.0.1"]

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        title, h1 = response.css_first("title"), response.css_first("h1")
        yield {"url": response.url, "title": title.text() if title else None,
               "h1": h1.text() if h1 else None}
        for link in response.css("a[href]"):
            yield response.follow(link)


def _serve(pages: int, ports: Any) -> None:  # pragma: no cover - runs in a child process
    from aiohttp import web

    body = {f"/p/{i}.html": page(i, pages).encode() for i in range(pages)}

    async def handle(request: web.Request) -> web.Response:
        data = body.get(request.path)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="text/html")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def run_bench(pages: int = 5000, concurrency: int = 64) -> Stats:
    """Serve a `pages`-page site from a child process and crawl all of it; the stats."""
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_serve, args=(pages, ports), daemon=True)
    server.start()
    try:
        port = await asyncio.to_thread(ports.get, True, 60)
        settings = Settings().merge(BenchSpider.custom_settings).merge(
            {"concurrency": concurrency, "log_interval": 0.0})
        with tempfile.TemporaryDirectory() as tmp:
            out = make_exporter(Path(tmp) / "bench.jsonl", overwrite=True)
            spider = BenchSpider(start=f"http://127.0.0.1:{port}/p/0.html")
            result = await Crawler(spider, settings=settings, outputs=[out]).run()
        return result.stats
    finally:
        server.terminate()
        server.join(10)


def report(stats: Stats, pages: int, seconds: float) -> str:
    missing = pages - stats.items
    note = "" if not missing else f" ({missing} pages missing!)"
    rate = stats.pages / stats.elapsed_seconds
    return (f"crawled {stats.pages} pages, wrote {stats.items} items in "
            f"{stats.elapsed_seconds:.2f}s: {rate:,.0f} pages/s{note} "
            f"(server: aiohttp in a child process; {seconds:.1f}s in all)")


def main(pages: int, concurrency: int) -> Stats:
    started = time.perf_counter()
    stats = asyncio.run(run_bench(pages, concurrency))
    print(report(stats, pages, time.perf_counter() - started))
    return stats
