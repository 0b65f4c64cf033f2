"""The Scraper, alone: what a callback yields goes on (links to the scheduler with their
depth and referer, items through the pipelines to the page), mistakes are counted."""

from __future__ import annotations

from crawler import DropItem, Request, Response, Settings
from crawler.core.plugins import PluginThread
from crawler.core.scraper import Scraper
from crawler.extensions.monitor import LoopWatch
from crawler.storage.base import WriteThrough
from tests.core_fakes import Parts, _Held


def _response(url: str, body: str = "") -> Response:
    return Response(url, 200, {"Content-Type": "text/html"}, body.encode(), Request(url))


async def test_links_get_their_depth_and_referer_and_reach_the_scheduler():
    parts = Parts(Settings(obey_robots=False))
    page = _Held([])
    request = Request("http://u:p@a.test/x", depth=2)
    response = _response("http://u:p@a.test/x", '<a href="/y">y</a><a href="/z">z</a>')

    async def parse(response):
        for a in response.css("a"):
            yield response.follow(a)
        yield Request("http://a.test/own", referer="http://elsewhere.test/")

    await parts.scraper.run_callback(parse, response, {}, request, page)
    frontier = parts.scheduler.frontier
    queued = await frontier.pop_many(10)
    assert sorted((r.url.rsplit("/", 1)[1], r.depth, r.referer) for r in queued) == [
        ("own", 3, "http://elsewhere.test/"), ("y", 3, "http://a.test/x"),
        ("z", 3, "http://a.test/x")]  # the page's credentials are not in its referer


async def test_items_pass_the_pipelines_and_go_to_the_page():
    class Price:
        def process_item(self, item, spider):
            if item["price"] < 0:
                raise DropItem("negative price")
            return {**item, "checked": True}

    parts = Parts(Settings(obey_robots=False))
    scraper = Scraper(parts.context, pipelines=[Price()], watch=LoopWatch(parts.stats),
                      thread=PluginThread())
    held: list = []

    def parse(response):  # a plain function returning a list
        return [{"price": 1}, {"price": -1}, "not an item"]

    await scraper.run_callback(parse, _response("http://a.test/"), {},
                               Request("http://a.test/"), _Held(held))
    assert held == [{"price": 1, "checked": True}]
    assert parts.stats.items_dropped == 1 and parts.stats.errors["invalid_item"] == 1


async def test_a_callback_that_raises_keeps_what_came_before_and_is_counted():
    parts = Parts(Settings(obey_robots=False))
    held: list = []

    async def parse(response):
        yield {"n": 1}
        yield Request("http://a.test/next")
        raise KeyError("missing")

    await parts.scraper.run_callback(parse, _response("http://a.test/"), {},
                                     Request("http://a.test/"), _Held(held))
    assert held == [{"n": 1}] and parts.stats.errors["callback"] == 1
    assert await parts.scheduler.queued() == 1


async def test_max_items_stops_the_crawl_counting_what_the_page_holds():
    parts = Parts(Settings(obey_robots=False, max_items=2))
    held: list = []

    async def parse(response):
        for n in range(5):
            yield {"n": n}

    await parts.scraper.run_callback(parse, _response("http://a.test/"), {},
                                     Request("http://a.test/"), _Held(held))
    assert held == [{"n": 0}, {"n": 1}] and parts.stopped[:1] == ["max_items"]


async def test_write_through_counts_and_signals_each_item():
    parts = Parts(Settings(obey_robots=False))
    seen = []
    from crawler import Signal

    parts.signals.connect(Signal.ITEM_SCRAPED, lambda item, request: seen.append(
        (item["n"], request)))
    page = WriteThrough(parts.storage.context, None)
    await parts.scraper.handle_output({"n": 1}, 0, None, "start()", page)
    assert parts.stats.items == 1 and seen == [(1, None)] and len(page) == 0
