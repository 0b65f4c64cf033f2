"""End-to-end crawls against local aiohttp servers."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler import (
    CloseSpider,
    DropItem,
    Failure,
    HttpError,
    IgnoreRequest,
    Request,
    Response,
    Spider,
)
from tests.conftest import HITS, crawl, links, make_site

# -- callback kinds ---------------------------------------------------------------------------


class KindsSpider(Spider):
    name = "kinds"

    async def start(self):
        base = self.base
        yield Request(base + "a", callback=self.async_gen)
        yield Request(base + "b", callback=self.coroutine_list)
        yield Request(base + "c", callback=self.coroutine_none)
        yield Request(base + "d", callback=self.plain_gen)
        yield Request(base + "e", callback=self.plain_func)
        yield Request(base + "f", callback=self.returns_one)

    async def async_gen(self, response):
        yield {"kind": "async_gen"}

    async def coroutine_list(self, response):
        await asyncio.sleep(0)
        return [{"kind": "coroutine_list"}]

    async def coroutine_none(self, response):
        return None

    def plain_gen(self, response):
        yield {"kind": "plain_gen"}

    def plain_func(self, response):
        return [{"kind": "plain_func"}]

    def returns_one(self, response):
        return {"kind": "single_dict"}


async def test_every_callback_kind(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({p: links() for p in "/a /b /c /d /e /f".split()}))
    spider = KindsSpider(base=str(server.make_url("/")))
    stats, items = await crawl(spider, tmp_path)
    assert sorted(i["kind"] for i in items) == [
        "async_gen", "coroutine_list", "plain_func", "plain_gen", "single_dict"]
    assert stats.pages == 6
    assert stats.errors == {}


@dataclass
class Book:
    title: str
    price: float


class DataclassSpider(Spider):
    name = "dc"

    def parse(self, response):
        yield Book(title=response.css_first("title").text(), price=1.5)


async def test_dataclass_items(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({"/": links(title="T")}))
    spider = DataclassSpider()
    spider.start_urls = [str(server.make_url("/"))]
    _, items = await crawl(spider, tmp_path)
    assert items == [{"title": "T", "price": 1.5}]


# -- following links ----------------------------------------------------------------------------


class FollowSpider(Spider):
    name = "follow"

    def __init__(self, start: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.start_urls = [start]

    async def parse(self, response):
        yield {"url": response.url, "depth": response.depth}
        for link in response.css("a[href]"):
            yield response.follow(link)


async def test_follow_relative_links_and_base_href(aiohttp_server, tmp_path):
    pages = {
        "/": links("dir/page.html", "/abs", "?q=1", "#frag"),
        "/dir/page.html": links("../up", "sibling.html"),
        "/dir/sibling.html": links(),
        "/up": '<html><head><base href="/based/"></head><body><a href="x">x</a></body></html>',
        "/based/x": links(),
        "/abs": links(),
        "/?q=1": links(),
    }
    server = await aiohttp_server(make_site(pages))
    stats, items = await crawl(FollowSpider(str(server.make_url("/"))), tmp_path)
    paths = sorted(i["url"].split(str(server.port), 1)[1] for i in items)
    assert paths == sorted(["/", "/dir/page.html", "/dir/sibling.html", "/up", "/based/x",
                            "/abs", "/?q=1"])
    depths = {i["url"].split(str(server.port), 1)[1]: i["depth"] for i in items}
    assert depths["/"] == 0 and depths["/dir/page.html"] == 1 and depths["/based/x"] == 3
    assert stats.duplicates_filtered >= 1  # "#frag" is the start page again


async def test_bad_links_are_dropped_and_counted_not_raised(aiohttp_server, tmp_path):
    long = "/" + "x" * 9000
    pages = {"/": links("http://[::1", "mailto:a@b.c", "javascript:void(0)", "tel:123",
                        "data:text/plain,hi", "ftp://x.org/f", long, "/ok"),
             "/ok": links()}
    server = await aiohttp_server(make_site(pages))
    stats, items = await crawl(FollowSpider(str(server.make_url("/"))), tmp_path)
    assert len(items) == 2  # the good link was not lost to the bad ones
    assert stats.unsupported_scheme == 5
    assert stats.invalid_url == 1 and stats.url_too_long == 1
    assert stats.errors == {}


async def test_dedup_and_dont_filter(aiohttp_server, tmp_path):
    class Spider2(Spider):
        name = "dedup"

        async def start(self):
            for _ in range(3):
                yield Request(self.url + "same")
            yield Request(self.url + "SAME/../same#x")  # canonicalises to /same
            for _ in range(2):
                yield Request(self.url + "again", dont_filter=True)

        def parse(self, response):
            return None

    site = make_site({"/same": links(), "/again": links()})
    server = await aiohttp_server(site)
    stats, _ = await crawl(Spider2(url=str(server.make_url("/"))), tmp_path)
    hits = [p for p, _ in site[HITS]]
    assert hits.count("/same") == 1
    assert hits.count("/again") == 2
    assert stats.duplicates_filtered == 3


async def test_same_url_different_body_is_not_a_duplicate(aiohttp_server, tmp_path):
    class PostSpider(Spider):
        name = "post"

        async def start(self):
            for body in (b"a", b"b", b"a"):
                yield Request(self.url, method="POST", body=body)

        def parse(self, response):
            return None

    site = make_site({"/": links()})
    server = await aiohttp_server(site)
    stats, _ = await crawl(PostSpider(url=str(server.make_url("/"))), tmp_path)
    assert len(site[HITS]) == 2
    assert stats.duplicates_filtered == 1


# -- allowed_domains and redirects ----------------------------------------------------------


async def test_allowed_domains_filters_links_and_redirects(aiohttp_server, tmp_path):
    other = make_site({"/": links(), "/landing": links()})
    other_server = await aiohttp_server(other, host="localhost")
    off = str(other_server.make_url("/landing"))

    async def to_offsite(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(off)

    async def to_local(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("/target")

    home = make_site({"/": links(str(other_server.make_url("/")), "/go-away", "/go-home"),
                      "/go-away": to_offsite, "/go-home": to_local, "/target": links()})
    server = await aiohttp_server(home)

    class Allowed(FollowSpider):
        allowed_domains = ["127.0.0.1"]

    stats, items = await crawl(Allowed(str(server.make_url("/"))), tmp_path)
    assert other[HITS] == []  # never contacted the off-site host
    assert stats.offsite_dropped == 2  # one link, one redirect
    assert stats.redirects == 2
    urls = sorted(i["url"].rsplit("/", 1)[1] for i in items)
    assert urls == ["", "target"]


async def test_redirect_loop_and_chain_limit(aiohttp_server, tmp_path):
    async def loop_a(request):
        raise web.HTTPFound("/loop-b")

    async def loop_b(request):
        raise web.HTTPFound("/loop-a")

    async def chain(request):
        n = int(request.query.get("n", "0"))
        raise web.HTTPFound(f"/chain?n={n + 1}")

    site = make_site({"/loop-a": loop_a, "/loop-b": loop_b, "/chain": chain})
    server = await aiohttp_server(site)
    failures: list[str] = []

    class Redirects(Spider):
        name = "redirects"

        async def start(self):
            for path in ("/loop-a", "/chain"):
                yield Request(str(server.make_url(path)), errback=self.failed)

        def failed(self, failure: Failure):
            failures.append(failure.kind)

    stats, _ = await crawl(Redirects(), tmp_path, max_redirects=4)
    assert sorted(failures) == ["redirect_loop", "too_many_redirects"]
    assert sum(1 for p, _ in site[HITS] if p.startswith("/chain")) == 5  # first try + 4 hops


# -- HTTP statuses and errbacks -----------------------------------------------------------


async def test_non_2xx_dropped_unless_handled(aiohttp_server, tmp_path):
    async def gone(request):
        return web.Response(status=410, text="gone")

    site = make_site({"/gone": gone, "/gone2": gone})
    server = await aiohttp_server(site)
    seen: list[tuple[str, Any]] = []

    class Statuses(Spider):
        name = "statuses"
        handle_httpstatus_list = [404]

        async def start(self):
            yield Request(str(server.make_url("/missing")))
            yield Request(str(server.make_url("/gone")), errback=self.failed)
            yield Request(str(server.make_url("/gone2")),
                          meta={"handle_httpstatus_all": True})

        def parse(self, response):
            seen.append(("parse", response.status))

        def failed(self, failure):
            assert failure.check(HttpError)
            seen.append(("errback", failure.response.status))
            yield {"failed": failure.request.url}

    stats, items = await crawl(Statuses(), tmp_path)
    assert sorted(seen) == [("errback", 410), ("parse", 404), ("parse", 410)]
    assert stats.status_counts == {404: 1, 410: 2}
    assert stats.errors == {"http_410": 1}
    assert stats.requests_failed == 1
    assert len(items) == 1


async def test_dead_host_fails_cleanly(tmp_path):
    class Dead(Spider):
        name = "dead"
        start_urls = ["http://127.0.0.1:1/"]

    stats, _ = await crawl(Dead(), tmp_path, retry_backoff_base=0.01)
    assert stats.errors == {"connection": 1}  # robots.txt, then the page: refused
    assert stats.finish_reason == "finished"


async def test_callback_exception_is_counted_and_crawl_goes_on(aiohttp_server, tmp_path):
    class Raises(FollowSpider):
        async def parse(self, response):
            if response.url.endswith("/bad"):
                raise ValueError("boom")
            async for obj in super().parse(response):
                yield obj

    server = await aiohttp_server(make_site({"/": links("/bad", "/good"), "/bad": links(),
                                             "/good": links()}))
    stats, items = await crawl(Raises(str(server.make_url("/"))), tmp_path)
    assert stats.errors == {"callback": 1}
    assert len(items) == 2


async def test_close_spider_from_callback(aiohttp_server, tmp_path):
    class Closes(FollowSpider):
        async def parse(self, response):
            raise CloseSpider("enough")
            yield  # pragma: no cover

    server = await aiohttp_server(make_site({"/": links("/a"), "/a": links()}))
    stats, _ = await crawl(Closes(str(server.make_url("/"))), tmp_path)
    assert stats.finish_reason == "enough"
    assert stats.pages == 1


# -- limits -------------------------------------------------------------------------------------


def _chain_site(n: int) -> web.Application:
    return make_site({f"/p{i}": links(f"/p{i + 1}", f"/q{i}") for i in range(n)}
                     | {f"/q{i}": links() for i in range(n)})


async def test_max_depth(aiohttp_server, tmp_path):
    server = await aiohttp_server(_chain_site(20))
    stats, items = await crawl(FollowSpider(str(server.make_url("/p0"))), tmp_path, max_depth=3)
    assert max(i["depth"] for i in items) == 3
    assert len(items) == 7  # p0..p3 and q0..q2
    assert stats.depth_limited == 2


async def test_max_pages_is_exact(aiohttp_server, tmp_path):
    site = make_site({f"/{i}": links(*(f"/{j}" for j in range(100))) for i in range(100)})
    server = await aiohttp_server(site)
    stats, items = await crawl(FollowSpider(str(server.make_url("/0"))), tmp_path,
                               max_pages=10, concurrency=8)
    assert stats.pages == 10
    assert len(site[HITS]) == 10
    assert stats.finish_reason == "max_pages"


async def test_max_items_is_exact(aiohttp_server, tmp_path):
    site = make_site({f"/{i}": links(*(f"/{j}" for j in range(100))) for i in range(100)})
    server = await aiohttp_server(site)
    stats, items = await crawl(FollowSpider(str(server.make_url("/0"))), tmp_path,
                               max_items=5, concurrency=8)
    assert len(items) == 5
    assert stats.items == 5
    assert stats.finish_reason == "max_items"


async def test_max_duration(aiohttp_server, tmp_path):
    async def slow(request):
        await asyncio.sleep(0.2)
        n = int(request.path.strip("/") or 0)
        return web.Response(text=links(f"/{n + 1}"), content_type="text/html")

    server = await aiohttp_server(make_site({f"/{i}": slow for i in range(1000)}))
    started = time.monotonic()
    stats, items = await crawl(FollowSpider(str(server.make_url("/0"))), tmp_path,
                               max_duration=0.5)
    assert stats.finish_reason == "max_duration"
    assert time.monotonic() - started < 5
    assert 1 <= len(items) <= 5


# -- per-host politeness, measured at the server -------------------------------------------


def _concurrency_app(delay: float) -> tuple[web.Application, dict[str, int]]:
    state = {"now": 0, "peak": 0}

    async def page(request):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        try:
            await asyncio.sleep(delay)
        finally:
            state["now"] -= 1
        return web.Response(text=links(), content_type="text/html")

    return make_site({f"/{i}": page for i in range(40)}), state


class ManySpider(Spider):
    name = "many"

    def __init__(self, bases: list[str], n: int = 40, **kw: Any) -> None:
        super().__init__(**kw)
        self.bases, self.n = bases, n

    async def start(self):
        for i in range(self.n):
            for base in self.bases:
                yield Request(f"{base}{i}")

    def parse(self, response):
        yield {"url": response.url, "t": time.monotonic()}


@pytest.mark.parametrize("limit", [1, 3])
async def test_per_host_concurrency(aiohttp_server, tmp_path, limit):
    app, state = _concurrency_app(0.02)
    server = await aiohttp_server(app)
    await crawl(ManySpider([str(server.make_url("/"))], n=30), tmp_path,
                concurrency=16, per_host_concurrency=limit)
    assert state["peak"] == limit


async def test_per_host_limit_does_not_cap_other_hosts(aiohttp_server, tmp_path):
    app_a, state_a = _concurrency_app(0.05)
    app_b, state_b = _concurrency_app(0.05)
    a = await aiohttp_server(app_a)
    b = await aiohttp_server(app_b)
    await crawl(ManySpider([str(a.make_url("/")), str(b.make_url("/"))], n=20), tmp_path,
                concurrency=16, per_host_concurrency=4)
    assert state_a["peak"] == 4 and state_b["peak"] == 4  # both hosts ran in parallel


def _gaps(app: web.Application) -> list[float]:
    times = sorted(t for _, t in app[HITS])
    return [b - a for a, b in itertools.pairwise(times)]


async def test_download_delay_spacing_with_control(aiohttp_server, tmp_path):
    fast = make_site({f"/{i}": links() for i in range(6)})
    server = await aiohttp_server(fast)
    await crawl(ManySpider([str(server.make_url("/"))], n=6), tmp_path, download_delay=0.0)
    assert min(_gaps(fast)) < 0.1  # control: without a delay requests bunch up

    spaced = make_site({f"/{i}": links() for i in range(6)})
    server2 = await aiohttp_server(spaced)
    await crawl(ManySpider([str(server2.make_url("/"))], n=6), tmp_path, download_delay=0.2,
                per_host_concurrency=8, randomize_download_delay=False)
    assert min(_gaps(spaced)) >= 0.19


async def test_randomized_delay_stays_within_half_and_one_and_a_half(aiohttp_server, tmp_path):
    site = make_site({f"/{i}": links() for i in range(12)})
    server = await aiohttp_server(site)
    await crawl(ManySpider([str(server.make_url("/"))], n=12), tmp_path, download_delay=0.1)
    gaps = _gaps(site)
    assert min(gaps) >= 0.049
    assert max(gaps) - min(gaps) > 0.01  # not a fixed delay


async def test_delayed_or_slow_host_does_not_slow_another(aiohttp_server, tmp_path):
    async def slow(request):
        await asyncio.sleep(1.0)
        return web.Response(text=links(), content_type="text/html")

    slow_app = make_site({f"/{i}": slow for i in range(10)})
    fast_app = make_site({f"/{i}": links() for i in range(30)})
    slow_server = await aiohttp_server(slow_app)
    fast_server = await aiohttp_server(fast_app)

    class Mixed(Spider):
        name = "mixed"

        async def start(self):
            for i in range(10):  # the slow host's requests come first in the frontier
                yield Request(str(slow_server.make_url(f"/{i}")))
            for i in range(30):
                yield Request(str(fast_server.make_url(f"/{i}")))

        def parse(self, response):
            return None

    started = time.monotonic()
    await crawl(Mixed(), tmp_path, concurrency=4, per_host_concurrency=1)
    fast_times = sorted(t for _, t in fast_app[HITS])
    assert len(fast_times) == 30
    # 30 fast pages finish while the slow host is still on its first response or two
    assert fast_times[-1] - started < 1.0
    assert len(slow_app[HITS]) == 10


# -- pipelines ----------------------------------------------------------------------------


class Upper:
    async def process_item(self, item, spider):
        return {**item, "url": item["url"].upper()}


class DropOdd:
    def process_item(self, item, spider):
        if item["url"].endswith(("/1", "/3")):
            raise DropItem("odd")
        if item["url"].endswith("/5"):
            return None
        return item


async def test_pipelines_in_order_and_drop(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({f"/{i}": links() for i in range(6)}))
    built: list[Any] = []

    class Trail:
        """Adds its name to the item's trail; records what it saw and its hooks."""

        def __init__(self, name: str) -> None:
            self.name, self.seen, self.hooks = name, [], []
            built.append(self)

        def open_spider(self, spider):
            self.hooks.append("open")

        async def close_spider(self, spider):
            self.hooks.append("close")

        async def process_item(self, item, spider):
            self.seen.append(item["url"].rsplit("/", 1)[1])
            return {**item, "trail": [*item.get("trail", []), self.name]}

    class First(Trail):
        def __init__(self) -> None:
            super().__init__("first")

    class Last(Trail):
        def __init__(self) -> None:
            super().__init__("last")

    spider = ManySpider([str(server.make_url("/"))], n=6)
    stats, items = await crawl(spider, tmp_path, item_pipelines=[First, DropOdd, Last])
    first, last = built
    assert sorted(first.seen) == ["0", "1", "2", "3", "4", "5"]
    assert sorted(last.seen) == ["0", "2", "4"]  # DropOdd ran between them
    assert sorted(i["url"].rsplit("/", 1)[1] for i in items) == ["0", "2", "4"]
    assert all(i["trail"] == ["first", "last"] for i in items)
    assert first.hooks == last.hooks == ["open", "close"]
    assert stats.items_dropped == 3 and stats.items == 3


async def test_sync_pipelines_run_off_the_loop_in_order(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({f"/{i}": links() for i in range(4)}))
    threads: set[str] = set()

    class Blocking:
        def open_spider(self, spider):
            time.sleep(0.3)  # a blocking connect
            threads.add(threading.current_thread().name)

        def process_item(self, item, spider):
            time.sleep(0.3)  # a blocking driver
            threads.add(threading.current_thread().name)
            return item

        def close_spider(self, spider):
            time.sleep(0.3)

    spider = ManySpider([str(server.make_url("/"))], n=4)
    stats, items = await crawl(spider, tmp_path, item_pipelines=[Blocking])
    assert len(items) == 4
    assert threads == {"crawler-plugins"}
    assert stats.max_loop_stall < 0.2  # each call held a thread, not the loop
    assert stats.slow_callbacks == 0


async def test_pipeline_by_dotted_path(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({"/0": links()}))
    spider = ManySpider([str(server.make_url("/"))], n=1)
    _, items = await crawl(spider, tmp_path, item_pipelines=["tests.test_crawl.Upper"])
    assert items[0]["url"].startswith("HTTP://")


# -- responses -------------------------------------------------------------------------------


async def test_response_json_and_non_html(aiohttp_server, tmp_path):
    async def data(request):
        return web.json_response({"n": 1})

    async def png(request):
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\0" * 100, content_type="image/png")

    server = await aiohttp_server(make_site({"/data": data, "/img": png}))

    class Mixed(Spider):
        name = "mixed"

        async def start(self):
            yield Request(str(server.make_url("/data")))
            yield Request(str(server.make_url("/img")))

        def parse(self, response: Response):
            yield {"css": len(response.css("a")),
                   "json": response.json() if "json" in response.content_type else None}

    _, items = await crawl(Mixed(), tmp_path)
    assert sorted(items, key=str) == sorted([{"css": 0, "json": {"n": 1}},
                                             {"css": 0, "json": None}], key=str)


async def test_spider_arguments_and_start_requests(aiohttp_server, tmp_path):
    site = make_site({"/x": links()})
    server = await aiohttp_server(site)

    class Legacy(Spider):
        name = "legacy"

        def start_requests(self):
            yield Request(self.base + self.page)

        def parse(self, response):
            yield {"page": self.page}

    _, items = await crawl(Legacy(base=str(server.make_url("/")), page="x"), tmp_path)
    assert items == [{"page": "x"}]


async def test_outputs_in_every_format(aiohttp_server, tmp_path: Path):
    import csv
    import json

    from crawler import Crawler, Settings
    from crawler.outputs.formats import make_exporter

    server = await aiohttp_server(make_site({f"/{i}": links() for i in range(5)}))
    spider = ManySpider([str(server.make_url("/"))], n=5)
    paths = [tmp_path / "o.jsonl", tmp_path / "o.json", tmp_path / "o.csv"]
    outputs = [make_exporter(p, overwrite=True) for p in paths]
    await Crawler(spider, settings=Settings(), outputs=outputs).run()
    jl = [json.loads(line) for line in paths[0].read_text().splitlines()]
    arr = json.loads(paths[1].read_text())
    rows = list(csv.DictReader(paths[2].read_text().splitlines()))
    assert len(jl) == len(arr) == len(rows) == 5
    assert {r["url"] for r in rows} == {i["url"] for i in arr} == {i["url"] for i in jl}


# -- never hang, never lose a word (issue 7) ------------------------------------------------


class Recorder(Spider):
    """Requests given up front; records every errback's kind and every page."""

    name = "recorder"

    def __init__(self, requests: list[Request], **kw: Any) -> None:
        super().__init__(**kw)
        self.requests = requests
        self.failures: list[tuple[str, str, type]] = []
        self.pages: list[str] = []

    async def start(self):
        for request in self.requests:
            request.errback = self.failed
            yield request

    def parse(self, response):
        self.pages.append(response.url)
        yield {"url": response.url}

    def failed(self, failure: Failure):
        self.failures.append((failure.request.url, failure.kind, type(failure.exception)))


async def test_headers_scrapy_accepts_reach_the_server(aiohttp_server, tmp_path):
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append({k: request.headers.getall(k) for k in ("X-Page", "X-L", "User-Agent")
                     if k in request.headers})
        return web.Response(text=links(), content_type="text/html")

    server = await aiohttp_server(make_site({"/": echo}))
    spider = Recorder([Request(str(server.make_url("/")), headers={
        "X-Page": 1, "X-L": ["a", b"b"], "Referer": None, "User-Agent": None})])
    stats, _ = await asyncio.wait_for(crawl(spider, tmp_path), 20)
    assert seen == [{"X-Page": ["1"], "X-L": ["a", "b"]}]  # None dropped even a default
    assert stats.pages == 1


class _Exploding:
    """A downloader whose fetch raises what no transport error maps to (a bug of ours)."""

    async def fetch(self, request: Request) -> Response:
        raise TypeError("unexpected header value")


async def test_any_exception_in_a_fetch_releases_the_slot_and_fails_the_request(tmp_path):
    from crawler import Crawler, Settings

    spider = Recorder([Request(f"http://127.0.0.1:9/{i}") for i in range(3)])
    result = await asyncio.wait_for(Crawler(
        spider, settings=Settings(obey_robots=False, per_host_concurrency=1, log_interval=0),
        downloader=_Exploding()).run(), 10)
    assert sorted(k for _, k, _ in spider.failures) == ["internal"] * 3  # errbacks called
    assert result.stats.errors == {"internal": 3}
    assert result.finish_reason == "finished"


async def test_robots_disallowed_requests_reach_their_errback(aiohttp_server, tmp_path):
    site = make_site({"/robots.txt": "User-agent: *\nDisallow: /private/\n",
                      "/ok": links(), "/private/a": links()})
    server = await aiohttp_server(site)
    private = str(server.make_url("/private/a"))
    spider = Recorder([Request(str(server.make_url("/ok"))), Request(private),
                       Request(private)])
    stats, _ = await crawl(spider, tmp_path)
    assert spider.failures == [(private, "robots_disallowed", IgnoreRequest)]
    assert stats.robots_disallowed == 1 and stats.duplicates_filtered == 1
    assert stats.requests_failed == 0  # refused by policy: not a failure


async def test_redirect_to_an_unsupported_scheme_fails_with_its_kind(aiohttp_server, tmp_path):
    async def to_js(request):
        raise web.HTTPFound("javascript:alert(1)")

    async def to_nowhere(request):
        return web.Response(status=302, headers={"Location": "http://[::1"})

    server = await aiohttp_server(make_site({"/js": to_js, "/bad": to_nowhere}))
    spider = Recorder([Request(str(server.make_url("/js"))),
                       Request(str(server.make_url("/bad")))])
    stats, _ = await crawl(spider, tmp_path)
    assert sorted(k for _, k, _ in spider.failures) == ["invalid_url", "unsupported_scheme"]
    assert stats.errors == {"invalid_url": 1, "unsupported_scheme": 1}


async def test_duplicates_to_a_dead_host_fail_once(aiohttp_server, tmp_path):
    dead = "http://127.0.0.1:9/dead"
    site = make_site({f"/{i}": links(dead) for i in range(20)})
    server = await aiohttp_server(site)
    spider = Recorder([Request(dead) for _ in range(5)]
                      + [Request(str(server.make_url(f"/{i}"))) for i in range(20)])
    spider.parse = lambda response: [response.follow(dead, errback=spider.failed)]
    stats, _ = await crawl(spider, tmp_path, retry_backoff_base=0.01)
    assert [k for _, k, _ in spider.failures] == ["connection"]
    assert stats.requests_failed == 1 and stats.errors == {"connection": 1}
    assert stats.duplicates_filtered == 24


async def test_allowed_domains_with_a_port(aiohttp_server, tmp_path):
    site = make_site({"/": links("/a"), "/a": links()})
    server = await aiohttp_server(site)

    class Ported(FollowSpider):
        allowed_domains = [f"127.0.0.1:{server.port}"]

    _, items = await crawl(Ported(str(server.make_url("/"))), tmp_path)
    assert len(items) == 2


class Counting:
    """A pipeline built with from_crawler: reads settings, stats and the spider."""

    def __init__(self, agent: str, stats: Any, spider_name: str) -> None:
        self.agent, self.stats, self.spider_name = agent, stats, spider_name

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings.user_agent, crawler.stats, crawler.spider.name)

    def process_item(self, item, spider):
        return {**item, "agent": self.agent, "spider": self.spider_name,
                "pages_so_far": self.stats.pages}


async def test_pipelines_are_built_with_from_crawler(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({"/0": links()}))
    _, items = await crawl(ManySpider([str(server.make_url("/"))], n=1), tmp_path,
                           item_pipelines=[Counting], user_agent="ua/1")
    assert [(i["agent"], i["spider"], i["pages_so_far"]) for i in items] == [("ua/1", "many", 1)]


async def test_a_pipeline_needing_arguments_without_from_crawler_is_a_startup_error():
    from crawler import Crawler, Settings, StartupError

    class NeedsArgs:
        def __init__(self, uri: str) -> None: ...

        def process_item(self, item, spider): ...

    with pytest.raises(StartupError, match="from_crawler"):
        Crawler(ManySpider([]), settings=Settings(item_pipelines=(NeedsArgs,)))


async def test_failing_close_hooks_are_counted_and_the_close_goes_on(aiohttp_server, tmp_path):
    calls: list[str] = []

    class BadClose:
        def process_item(self, item, spider):
            return item

        async def close_spider(self, spider):
            calls.append("close_spider")
            raise RuntimeError("close failed")

    class ClosesBadly(ManySpider):
        def closed(self, reason):
            calls.append(f"closed:{reason}")
            raise ValueError("closed failed")

    server = await aiohttp_server(make_site({"/0": links()}))
    stats, items = await crawl(ClosesBadly([str(server.make_url("/"))], n=1), tmp_path,
                               item_pipelines=[BadClose])
    assert calls == ["close_spider", "closed:finished"]
    assert stats.errors == {"close_spider": 1, "spider_closed": 1}
    assert len(items) == 1


async def test_unwritable_and_bare_items_are_counted_and_the_callback_goes_on(
        aiohttp_server, tmp_path):
    class Mixed(FollowSpider):
        async def parse(self, response):
            yield {"bad": b"\xff"}  # cannot be written: dropped for every output
            yield "a bare string"  # not an item
            yield {"url": response.url}
            for link in response.css("a[href]"):
                yield response.follow(link)

    server = await aiohttp_server(make_site({"/": links("/a"), "/a": links()}))
    stats, items = await crawl(Mixed(str(server.make_url("/"))), tmp_path)
    assert len(items) == 2  # both pages: the links after the bad items were followed
    assert stats.errors == {"item_serialization": 2, "invalid_item": 2}
    assert stats.items == 2


async def test_a_blocking_callback_is_named_and_counted(aiohttp_server, tmp_path, caplog):
    class Blocking(ManySpider):
        async def parse(self, response):
            if response.url.endswith("/1"):
                time.sleep(0.4)  # noqa: ASYNC251 - the mistake under test
            else:
                await asyncio.sleep(0.4)  # control: awaiting is not blocking
            yield {"url": response.url}

    server = await aiohttp_server(make_site({f"/{i}": links() for i in range(2)}))
    stats, _ = await crawl(Blocking([str(server.make_url("/"))], n=2), tmp_path)
    assert stats.slow_callbacks == 1
    warnings = [r.getMessage() for r in caplog.records if "blocked the event loop" in r.message]
    assert len(warnings) == 1
    assert "Blocking.parse" in warnings[0] and warnings[0].endswith(
        "other requests may time out meanwhile") and "/1:" in warnings[0]


async def test_a_stall_at_the_very_end_is_measured(aiohttp_server, tmp_path):
    class BlocksLast(ManySpider):
        def parse(self, response):
            time.sleep(0.3)  # the last thing the crawl does
            return None

    server = await aiohttp_server(make_site({"/0": links()}))
    stats, _ = await crawl(BlocksLast([str(server.make_url("/"))], n=1), tmp_path)
    assert stats.max_loop_stall >= 0.25


async def test_start_urls_string_and_bad_start_urls(aiohttp_server, tmp_path):
    from crawler import Crawler, Settings, StartupError

    server = await aiohttp_server(make_site({"/a": links(), "/b": links()}))

    class Starts(Spider):
        name = "starts"

        def parse(self, response):
            yield {"url": response.url}

    both = Starts(start_urls=f"{server.make_url('/a')} {server.make_url('/b')}")
    stats, items = await crawl(both, tmp_path)
    assert len(items) == 2 and stats.start_requests == 2  # not one request per character
    for bad, message in [("example.com/x", "did you mean http://example.com/x"),
                         ("/relative", "not an absolute http(s) URL"),
                         ("htp://x.org/", "unsupported scheme"),
                         ("http://[::1", "invalid url")]:
        with pytest.raises(StartupError, match=re.escape(message)):
            await Crawler(Starts(start_urls=[bad]), settings=Settings()).run()
    offsite = Starts(start_urls=[str(server.make_url("/a"))], allowed_domains=["example.com"])
    with pytest.raises(StartupError, match="outside allowed_domains"):
        await Crawler(offsite, settings=Settings()).run()
    with pytest.raises(StartupError, match="no start URLs"):
        await Crawler(Starts(), settings=Settings()).run()


async def test_dropped_start_requests_and_links_are_logged(aiohttp_server, tmp_path, caplog):
    server = await aiohttp_server(make_site({"/": links("mailto:x@y.z", "/ok"),
                                             "/ok": links()}))
    spider = Recorder([Request("htp://nowhere/"), Request(str(server.make_url("/")))])
    spider.parse = lambda response: [response.follow(a) for a in response.css("a")]
    with caplog.at_level(logging.DEBUG, logger="crawler"):
        await crawl(spider, tmp_path)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["start request htp://nowhere/ dropped: unsupported scheme"]
    assert any(r.getMessage() == "dropped mailto:x@y.z: unsupported scheme"
               for r in caplog.records if r.levelno == logging.DEBUG)


async def test_an_ignored_status_and_a_dropped_item_are_said_for_every_request(
        aiohttp_server, tmp_path, caplog):
    async def forbidden(request: web.Request) -> web.Response:
        return web.Response(status=403, text="no")

    server = await aiohttp_server(make_site({"/": links("/a", "/no"), "/a": links(),
                                             "/no": forbidden}))

    class NoA:
        def process_item(self, item, spider):
            if item["url"].endswith("/a"):
                raise DropItem("no price")
            return item

    class Each(Spider):
        name = "each"
        start_urls = [str(server.make_url("/"))]
        custom_settings = {"log_interval": 0, "item_pipelines": [NoA]}

        def parse(self, response):
            yield {"url": response.url}
            yield from response.follow_all(css="a")

    caplog.set_level("INFO")
    stats, items = await crawl(Each(), tmp_path)
    assert len(items) == 1 and stats.items_dropped == 1
    said = {(r.levelname, r.getMessage()) for r in caplog.records}
    assert ("INFO", f"ignoring response <403 {server.make_url('/no')}>: HTTP status code is "
            "not handled or not allowed (handle_httpstatus_list)") in said
    assert ("WARNING", f"dropped item from {server.make_url('/a')}: no price") in said


@pytest.mark.parametrize(("order", "visits"), [
    ("bfs", ["/", "/a", "/b", "/a1", "/a2", "/b1"]),
    ("dfs", ["/", "/b", "/b1", "/a", "/a2", "/a1"]),
])
async def test_crawl_order_breadth_or_depth_first(aiohttp_server, tmp_path, order, visits):
    site = make_site({"/": links("/a", "/b"), "/a": links("/a1", "/a2"), "/b": links("/b1"),
                      "/a1": links(), "/a2": links(), "/b1": links()})
    server = await aiohttp_server(site)

    class Tree(Spider):
        name = "tree"
        start_urls = [str(server.make_url("/"))]

        def parse(self, response):
            yield from response.follow_all(css="a")

    await crawl(Tree(), tmp_path, crawl_order=order, concurrency=1, per_host_concurrency=1,
                log_interval=0)
    assert [path for path, _ in site[HITS]] == visits


async def test_an_internal_error_is_one_line_and_fails_the_crawl(aiohttp_server, tmp_path,
                                                                 caplog):
    """An internal task that dies (here the frontier's pop raises) ends the crawl with
    finish reason internal_error and one ERROR line (the traceback at DEBUG); the CLI
    exits 1 on a result with a problem."""
    from crawler import Crawler, MemoryFrontier, Settings

    class Broken(MemoryFrontier):
        async def pop_many(self, n):
            raise RuntimeError("the store broke")

    server = await aiohttp_server(make_site({"/": links()}))

    class One(Spider):
        name = "one"
        start_urls = [str(server.make_url("/"))]

    result = await asyncio.wait_for(Crawler(
        One(), settings=Settings().merge({"log_interval": 0}), frontier=Broken()).run(), 30)
    assert result.finish_reason == "internal_error"
    assert result.problem.startswith("internal error in dispatcher: RuntimeError: the store "
                                     "broke")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None
