"""Traps and frontiers within bounds (issue 8.6): every guard counted, start() under
backpressure."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from crawler import Request, Spider
from tests.conftest import crawl, links


def _trap_app() -> web.Application:
    """/t?i=N links to 100 new query URLs; /h/N to 100 new paths; everything else a page."""
    app = web.Application()

    async def trap(request: web.Request) -> web.Response:
        i = int(request.query.get("i", "0"))
        return web.Response(text=links(*(f"/t?i={i * 100 + k}" for k in range(1, 101))),
                            content_type="text/html")

    async def deep(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(text=links(*(f"/h/{n * 100 + k}" for k in range(1, 101))),
                            content_type="text/html")

    app.router.add_get("/t", trap)
    app.router.add_get("/h/{n}", deep)
    return app


class Follow(Spider):
    name = "follow"

    def __init__(self, start: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.start_urls = [start]

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all(css="a")


async def test_query_variants_of_one_path_are_capped(aiohttp_server, tmp_path, caplog):
    server = await aiohttp_server(_trap_app())
    stats, _ = await crawl(Follow(str(server.make_url("/t?i=0"))), tmp_path,
                           max_query_variants=150, max_pages=50)
    assert stats.requests_scheduled == 150  # variants, the start page among them
    assert stats.query_variants_limited > 0
    warnings = [r.getMessage() for r in caplog.records if "max_query_variants" in r.message]
    assert len(warnings) == 1  # warned once, counted always


async def test_requests_per_host_are_capped(aiohttp_server, tmp_path):
    server = await aiohttp_server(_trap_app())
    stats, _ = await crawl(Follow(str(server.make_url("/h/0"))), tmp_path,
                           max_requests_per_host=120, max_pages=30)
    assert stats.requests_scheduled == 120 and stats.host_limited > 0


async def test_a_full_frontier_refuses_and_counts(aiohttp_server, tmp_path, caplog):
    server = await aiohttp_server(_trap_app())
    stats, _ = await crawl(Follow(str(server.make_url("/h/0"))), tmp_path,
                           max_queued=250, max_pages=20, concurrency=1)
    assert stats.queue_full > 0
    assert stats.requests_scheduled <= 250 + 20
    assert sum("max_queued" in r.message for r in caplog.records) == 1


async def test_an_endless_start_waits_for_room(aiohttp_server, tmp_path):
    app = web.Application()
    app.router.add_get("/{n}", _page)
    server = await aiohttp_server(app)
    base = str(server.make_url("/"))
    peak = 0

    class Endless(Spider):
        name = "endless"

        async def start(self):
            nonlocal peak
            n = 0
            while True:
                n += 1
                yield Request(f"{base}{n}")
                peak = max(peak, await self.crawler_scheduler.queued())

        def parse(self, response):
            yield {"url": response.url}

    spider = Endless()
    from crawler import Crawler, Settings

    crawler = Crawler(spider, settings=Settings(max_queued=500, max_pages=2000,
                                                concurrency=4, log_interval=0))
    spider.crawler_scheduler = crawler.scheduler
    result = await asyncio.wait_for(crawler.run(), 60)
    assert result.stats.pages == 2000
    assert peak <= 250  # the seeder waited (at half of max_queued) instead of filling memory
    assert result.stats.queue_full == 0  # ...and so nothing was refused


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=links(), content_type="text/html")
