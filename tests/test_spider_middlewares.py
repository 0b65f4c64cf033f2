"""Spider middlewares around the callbacks (Scrapy's process_spider_input/output/exception
and process_start), and the Referer every followed link is sent with."""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from crawler import Request, Spider
from crawler.frontier.codec import RequestCodec
from crawler.http.referer import page_referer, referer_header
from tests.conftest import HITS, crawl, links, make_site

REFERERS = web.AppKey("referers", list)  # (path, its Referer header) per request


def _referers(app: web.Application) -> dict[str, str | None]:
    return {path: referer for path, referer in app[REFERERS] if path != "/robots.txt"}


def _site(pages: dict[str, str]) -> web.Application:
    """make_site, recording each request's Referer header."""
    app = make_site(pages)
    app[REFERERS] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        app[REFERERS].append((request.path, request.headers.get("Referer")))
        return await handler(request)

    app.middlewares.append(record)
    return app


class Follow(Spider):
    name = "follow"

    async def parse(self, response):
        yield {"url": response.url}
        for a in response.css("a"):
            yield response.follow(a)


class DropOdd:
    """Scrapy's signature, spider included; an async generator."""

    async def process_spider_output(self, response, result, spider):
        assert spider.name == "follow"
        async for obj in result:
            if isinstance(obj, dict) and obj["url"].endswith("/1"):
                continue  # filtered
            if isinstance(obj, Request) and obj.url.endswith("/2"):
                obj = obj.replace(url=obj.url.replace("/2", "/3"))  # rewritten
            yield obj


class Tag:
    """A plain generator: it gets the outputs as a list."""

    def process_spider_output(self, response, result):
        for obj in result:
            if isinstance(obj, dict):
                obj = {**obj, "tag": "seen"}
            yield obj


async def test_output_middlewares_filter_and_rewrite_what_callbacks_yield(aiohttp_server,
                                                                        tmp_path):
    app = make_site({"/": links("/1", "/2"), "/1": links(), "/2": links(), "/3": links()})
    server = await aiohttp_server(app)
    spider = Follow()
    spider.start_urls = [str(server.make_url("/"))]
    stats, items = await crawl(spider, tmp_path, spider_middlewares={
        "tests.test_spider_middlewares.DropOdd": 100, Tag: 200})
    paths = sorted(p for p, _ in app[HITS])
    assert paths == ["/", "/1", "/3"]  # /2 became /3
    assert sorted(i["url"].rsplit("/", 1)[1] for i in items) == ["", "3"]  # /1 dropped
    assert all(i["tag"] == "seen" for i in items)


class Broken(Spider):
    name = "broken"

    async def parse(self, response):
        yield {"before": 1}
        raise ValueError("the page changed")


class Recover:
    def process_spider_exception(self, response, exception, spider):
        return [{"recovered": type(exception).__name__, "url": response.url}]


async def test_an_exception_middleware_yields_in_place_of_a_failed_callback(aiohttp_server,
                                                                           tmp_path):
    server = await aiohttp_server(make_site({"/": links()}))
    spider = Broken()
    spider.start_urls = [str(server.make_url("/"))]
    stats, items = await crawl(spider, tmp_path, spider_middlewares=[Recover])
    assert [sorted(i) for i in items] == [["before"], ["recovered", "url"]]
    assert items[1]["recovered"] == "ValueError" and stats.errors.get("callback", 0) == 0
    stats, items = await crawl(Broken(start_urls=[str(server.make_url("/"))]), tmp_path)
    assert items == [{"before": 1}] and stats.errors["callback"] == 1  # without it


class RefuseInput:
    async def process_spider_input(self, response):
        if "refuse" in response.url:
            raise ValueError("not this one")


class WithErrback(Spider):
    name = "errback"
    failures: ClassVar[list[str]] = []

    async def start(self):
        yield Request(self.base + "refuse", errback=self.failed)
        yield Request(self.base + "take")

    async def parse(self, response):
        yield {"url": response.url}

    async def failed(self, failure):
        self.failures.append(f"{failure.kind}:{failure.exception}:{failure.response.status}")
        yield {"failed": failure.request.url}


async def test_an_input_middleware_sends_a_refused_response_to_the_errback(aiohttp_server,
                                                                          tmp_path):
    server = await aiohttp_server(make_site({"/refuse": links(), "/take": links()}))
    spider = WithErrback()
    spider.base = str(server.make_url("/"))
    stats, items = await crawl(spider, tmp_path, spider_middlewares=[RefuseInput])
    assert WithErrback.failures == ["spider_input:not this one:200"]
    assert sorted(next(iter(i)) for i in items) == ["failed", "url"]


class OnlyOne:
    async def process_start(self, start):
        async for obj in start:
            if isinstance(obj, Request) and obj.url.endswith("/b"):
                yield obj


async def test_a_start_middleware_filters_the_start_requests(aiohttp_server, tmp_path):
    app = make_site({"/a": links(), "/b": links()})
    server = await aiohttp_server(app)
    spider = Follow(start_urls=[str(server.make_url("/a")), str(server.make_url("/b"))])
    stats, items = await crawl(spider, tmp_path, spider_middlewares=[OnlyOne])
    assert [p for p, _ in app[HITS]] == ["/b"] and stats.start_requests == 1


async def test_followed_links_carry_the_page_as_referer_without_its_credentials(
        aiohttp_server, tmp_path):
    app = _site({"/": links("/a"), "/a": links("/b"), "/b": links()})
    server = await aiohttp_server(app)
    root = str(server.make_url("/"))
    secret = root.replace("http://", "http://user:pw@")
    stats, items = await crawl(Follow(start_urls=[secret]), tmp_path)
    assert _referers(app) == {"/": None, "/a": root, "/b": root + "a"}
    app[REFERERS].clear()
    await crawl(Follow(start_urls=[root]), tmp_path, referer_policy="origin")
    assert _referers(app) == {"/": None, "/a": root, "/b": root}
    app[REFERERS].clear()
    await crawl(Follow(start_urls=[root]), tmp_path, referer_policy="no-referrer")
    assert set(_referers(app).values()) == {None}
    app[REFERERS].clear()
    await crawl(Follow(start_urls=[root]), tmp_path, referer_enabled=False)
    assert set(_referers(app).values()) == {None}


async def test_a_requests_own_referer_and_policy_win(aiohttp_server, tmp_path):
    app = _site({"/": links(), "/own": links(), "/none": links(), "/policy": links()})
    server = await aiohttp_server(app)
    root = str(server.make_url("/"))

    class Own(Spider):
        name = "own"
        start_urls: ClassVar[list[str]] = [root]

        async def parse(self, response):
            if response.url != root:
                return
            yield Request(root + "own", headers={"Referer": "https://example.com/x"})
            yield Request(root + "none", headers={"Referer": None})
            yield Request(root + "policy", meta={"referrer_policy": "origin"})

    await crawl(Own(), tmp_path)
    assert _referers(app) == {"/": None, "/own": "https://example.com/x", "/none": None,
                              "/policy": root}


def test_the_referrer_policies():
    page, same, other, plain = ("https://a.test/p?q=1", "https://a.test/x", "https://b.test/y",
                                "http://a.test/z")
    expect = {
        "no-referrer": (None, None, None),
        "no-referrer-when-downgrade": (page, page, None),
        "same-origin": (page, None, None),
        "origin": ("https://a.test/",) * 3,
        "strict-origin": ("https://a.test/", "https://a.test/", None),
        "origin-when-cross-origin": (page, "https://a.test/", "https://a.test/"),
        "strict-origin-when-cross-origin": (page, "https://a.test/", None),
        "unsafe-url": (page, page, page),
    }
    for policy, wanted in expect.items():
        got = tuple(referer_header(page, target, policy) for target in (same, other, plain))
        assert got == wanted, policy
    assert page_referer("http://u:p@a.test/x#frag") == "http://a.test/x"
    assert page_referer("memo://site/") is None


def test_a_queued_request_keeps_its_referer_in_every_packed_form():
    spider = Follow()
    codec = RequestCodec(spider, "_store_id")
    request = Request("http://a.test/x", spider.parse, depth=2, referer="http://a.test/",
                      meta={"_store_id": 7})
    packed = codec.pack(request, 1)
    assert isinstance(packed, tuple)
    back = codec.unpack(packed, 0, "http://a.test:80")
    assert (back.url, back.referer, back.depth, back.meta) == (
        "http://a.test/x", "http://a.test/", 2, {"_store_id": 7})
    stored = codec.decode(codec.encode(request), 9)
    assert (stored.referer, stored.callback, stored.meta) == (
        "http://a.test/", spider.parse, {"_store_id": 9})
    assert codec.decode('["http://a.test/old", null, 0, 0]', 3).referer is None  # older jobs
