"""The spider toolkit as a library: selectors, LinkExtractor, CrawlSpider, SitemapSpider,
model validation; against the demo bookshop and local servers."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web

from crawler import CrawlSpider, LinkExtractor, Request, Response, Rule, SitemapSpider, Spider
from crawler.commands.bookshop import BooksSpider, make_app
from crawler.sitemaps import SitemapError, parse_sitemap
from tests.conftest import crawl, make_site

FAST = {"per_host_concurrency": 8, "download_delay": 0.0, "autothrottle": False}


def page(body: str, url: str = "http://shop.test/dir/page.html") -> Response:
    return Response(url, 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode(),
                    Request(url))


# selectors ---------------------------------------------------------------------------------

def test_scrapy_selectors_and_text_helpers():
    r = page("<html><head><title> A  shop </title></head><body><h1>Hi <b>there</b></h1>"
             "<a class='next' href='p2.html'>next</a><a href='/x'>x</a><p data-n='3'>"
             "</p></body></html>")
    assert r.sel.css("h1::text").get() == "Hi "
    assert r.sel.css("a::attr(href)").getall() == ["p2.html", "/x"]
    assert r.xpath("//a[@class='next']/@href").get() == "p2.html"
    assert r.sel.css("title::text").re_first(r"\w+") == "A"
    assert r.css_text("h1") == "Hi there"  # descendants' text, whitespace collapsed
    assert r.css_text("title") == "A shop"
    assert r.css_text("h2") is None and r.css_text("h2", "") == ""
    assert r.css_texts("a") == ["next", "x"]
    assert r.css_attr("a", "href") == "p2.html"
    assert r.css_attr("p", "data-n") == "3" and r.css_attr("p", "nope") is None
    assert r.sel is r.sel  # parsed once


def test_scrapy_pseudo_elements_in_css_say_where_they_work():
    with pytest.raises(ValueError, match=r"::text and ::attr\(\) are Scrapy's.*response.sel"):
        page("<h1>x</h1>").css("h1::text")


def test_xml_responses_get_an_xml_selector():
    url = "http://shop.test/feed.xml"
    r = Response(url, 200, {"Content-Type": "application/xml"},
                 b"<feed><entry><id>1</id></entry><entry><id>2</id></entry></feed>",
                 Request(url))
    assert r.xpath("//entry/id/text()").getall() == ["1", "2"]


# LinkExtractor -----------------------------------------------------------------------------

LINKS = """<html><body>
<div id="nav"><a href="/cat/1">Cat 1</a><a href="/cat/2" rel="nofollow next">Cat 2</a></div>
<div class="list"><a href="/item/1.html">One</a><a href="item/2.html#x">Two</a>
<a href="/item/1.html">One again</a><a href="/files/a.pdf">PDF</a>
<a href="http://other.test/item/9.html">Other</a><a href="http://sub.shop.test/item/8">Sub</a>
<a href="mailto:a@b">mail</a><area href="/map/1"><img src="/img/1.png"></div></body></html>"""


def test_link_extractor_filters_as_scrapy_does():
    r = page(LINKS)
    urls = [link.url for link in LinkExtractor().extract_links(r)]
    assert urls == ["http://shop.test/cat/1", "http://shop.test/cat/2",
                    "http://shop.test/item/1.html", "http://shop.test/dir/item/2.html",
                    "http://other.test/item/9.html", "http://sub.shop.test/item/8",
                    "http://shop.test/map/1"]  # pdf, mailto and the repeat are gone
    items = LinkExtractor(allow=r"/item/", deny=r"/9\.html").extract_links(r)
    assert [link.text for link in items] == ["One", "Two", "Sub"]
    assert [link.url for link in LinkExtractor(allow_domains="shop.test",
                                               deny_domains=["sub.shop.test"],
                                               allow="item").extract_links(r)] == [
        "http://shop.test/item/1.html", "http://shop.test/dir/item/2.html"]
    nav = LinkExtractor(restrict_css="#nav").extract_links(r)
    assert [(link.url, link.nofollow) for link in nav] == [
        ("http://shop.test/cat/1", False), ("http://shop.test/cat/2", True)]
    assert [link.url for link in LinkExtractor(restrict_xpaths="//div[@id='nav']/a[2]")
            .extract_links(r)] == ["http://shop.test/cat/2"]
    assert len(LinkExtractor(deny_extensions=[], allow="pdf").extract_links(r)) == 1
    assert [link.url for link in LinkExtractor(tags="img", attrs="src",
                                               deny_extensions=[]).extract_links(r)] == [
        "http://shop.test/img/1.png"]
    assert len(LinkExtractor(allow="/item/1", unique=False).extract_links(r)) == 2
    assert [link.url for link in LinkExtractor(
        process_value=lambda v: None if "cat" in v else v.replace("/map/", "/m/"),
        allow="/m/").extract_links(r)] == ["http://shop.test/m/1"]
    assert [link.text for link in LinkExtractor(restrict_text=r"^Cat").extract_links(r)] == [
        "Cat 1", "Cat 2"]


# CrawlSpider ---------------------------------------------------------------------------------

class ShopRules(CrawlSpider):
    name = "shop_rules"
    custom_settings: ClassVar[dict[str, Any]] = FAST
    rules: ClassVar[list[Rule]] = [
        Rule(LinkExtractor(allow=r"/category/"), process_links="only_two_pages"),
        # (a link process_links dropped is free for the next rules, as in Scrapy: deny it)
        Rule(LinkExtractor(allow=r"/catalogue/", deny="/category/"), callback="parse_book",
             cb_kwargs={"source": "rule"}, process_request="tag"),
        # never reached: the rule above takes every /catalogue/ link first
        Rule(LinkExtractor(allow=r"/index\.html"), callback="never"),
    ]

    def parse_start_url(self, response):
        yield {"start": response.url}

    def only_two_pages(self, links):
        return [link for link in links if not link.url.endswith("page-3.html")]

    def tag(self, request, response):
        if "mystery" in response.url:
            return None  # books linked from mystery pages are dropped
        request.meta["from"] = response.url
        return request

    async def parse_book(self, response, source):
        yield {"title": response.css_text("article h1"), "source": source,
               "from": response.meta["from"], "text": response.meta["link_text"]}

    def never(self, response):
        raise AssertionError("a link goes to the first rule that extracts it")


async def test_crawl_spider_follows_rules_with_scrapy_semantics(aiohttp_server):
    server = await aiohttp_server(make_app())
    spider = ShopRules(start_urls=[str(server.make_url("/"))])
    stats, items = await crawl(spider)
    assert stats.errors == {}
    assert items[0] == {"start": str(server.make_url("/"))}
    books = items[1:]
    # 8 categories x pages 1-2 (page 3 cut by process_links) x 12 books, minus mystery's
    assert len(books) == 7 * 2 * 12
    assert all(b["source"] == "rule" and "/category/" in b["from"] and b["text"] for b in books)
    assert not any("mystery" in b["from"] for b in books)
    # follow defaults to False with a callback: the related links of book pages not followed
    assert stats.pages == 1 + 8 * 2 + 7 * 2 * 12


class BrokenRules(CrawlSpider):
    name = "broken"
    rules: ClassVar[list[Rule]] = [Rule(LinkExtractor(), callback="missing")]


def test_a_rule_naming_no_method_fails_at_start():
    with pytest.raises(ValueError, match="'missing' is not a method"):
        BrokenRules()


# SitemapSpider ---------------------------------------------------------------------------

class ShopSitemap(SitemapSpider):
    name = "shop_sitemap"
    custom_settings: ClassVar[dict[str, Any]] = FAST
    sitemap_rules: ClassVar[list[tuple[str, str]]] = [
        (r"/category/", "parse_category"), (r"/catalogue/", "parse_book")]

    async def parse_category(self, response):
        yield {"category": response.css_text("h1")}

    async def parse_book(self, response):
        yield {"book": response.css_text("article h1")}


async def test_sitemap_spider_reads_robots_index_and_gzip(aiohttp_server):
    server = await aiohttp_server(make_app())
    spider = ShopSitemap(sitemap_urls=[str(server.make_url("/robots.txt"))])
    stats, items = await crawl(spider)
    assert stats.errors == {}
    assert sum("category" in i for i in items) == 24  # categories.xml
    assert sum("book" in i for i in items) == 240  # books.xml.gz: gzipped, in the index


async def test_sitemap_follow_and_filter(aiohttp_server):
    server = await aiohttp_server(make_app())

    class OnlyCategories(ShopSitemap):
        sitemap_follow: ClassVar[list[str]] = [r"categories"]

        def sitemap_filter(self, entries):
            return (e for e in entries if "page-1" in e["loc"] or "sitemaps/" in e["loc"])

    spider = OnlyCategories(sitemap_urls=[str(server.make_url("/sitemap.xml"))])
    stats, items = await crawl(spider)
    assert sorted(i["category"] for i in items) == sorted(
        ["Travel", "Mystery", "Poetry", "History", "Science", "Fantasy", "Romance", "Humor"])


def _urlset(*entries: str) -> bytes:
    return ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
            ' xmlns:xhtml="http://www.w3.org/1999/xhtml">' + "".join(entries) +
            "</urlset>").encode()


async def test_sitemap_alternates_and_hostile_sitemaps(aiohttp_server, caplog):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><urlset><url><loc>&b;</loc>'
            b"</url></urlset>")
    files: dict[str, bytes] = {}

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=files[request.path], content_type="application/xml")

    app = make_site({"/en": "<h1>en</h1>", "/de": "<h1>de</h1>", "/s.xml": serve,
                     "/bomb.xml": serve, "/big.xml.gz": serve, "/junk.xml": serve})
    server = await aiohttp_server(app)
    base = str(server.make_url("/")).rstrip("/")
    files["/s.xml"] = _urlset(f'<url><loc>{base}/en</loc><xhtml:link rel="alternate" '
                              f'hreflang="de" href="{base}/de"/></url>')
    files["/bomb.xml"] = bomb
    files["/big.xml.gz"] = gzip.compress(_urlset(f"<url><loc>{base}/en</loc></url>" * 2000))
    files["/junk.xml"] = b"\x00\x01 not xml"

    class Alternates(SitemapSpider):
        name = "alternates"
        sitemap_alternate_links = True

        async def parse(self, response):
            yield {"h1": response.css_text("h1")}

    urls = [f"{base}{p}" for p in ("/s.xml", "/bomb.xml", "/big.xml.gz", "/junk.xml")]
    stats, items = await crawl(Alternates(sitemap_urls=urls), max_response_size=50_000)
    assert sorted(i["h1"] for i in items) == ["de", "en"]
    log = caplog.text
    assert "may not declare XML entities" in log
    assert "inflates to more than 50,000 bytes" in log
    assert "not a sitemap" in log


def test_parse_sitemap_keeps_what_precedes_a_break():
    sitemap = parse_sitemap(_urlset("<url><loc>http://a/1</loc><lastmod>2024-01-01</lastmod>"
                                    "</url><url><loc>http://a/2</loc></url>")[:-20])
    assert sitemap.type == "urlset"
    assert sitemap.entries == [{"loc": "http://a/1", "lastmod": "2024-01-01"}]
    with pytest.raises(SitemapError):
        parse_sitemap(b"<html></html>")


# a ported Scrapy spider ------------------------------------------------------------------

class PortedBooks(Spider):
    """The demo's books spider as Scrapy code would write it: ::text, ::attr(), XPath,
    .get()/.getall()/.re_first(), only `response.css(` renamed to `response.sel.css(`."""

    name = "ported_books"
    custom_settings: ClassVar[dict[str, Any]] = FAST

    def parse(self, response):
        for href in response.sel.css("ul.categories a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_category)

    def parse_category(self, response):
        for href in response.xpath("//li[@class='book']/a/@href").getall():
            yield response.follow(href, callback=self.parse_book)
        next_page = response.sel.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page, callback=self.parse_category)

    def parse_book(self, response):
        yield {
            "url": response.url,
            "title": response.sel.css("h1::text").get(),
            "price": response.xpath("//p[@class='price']/text()").get(),
            "rating": int(response.xpath("//p[@class='rating']/@data-stars").re_first(r"\d+")
                          or 0),
            "category": response.sel.css("p.category a::text").get(),
        }
        for href in response.sel.css("aside a.related::attr(href)").getall():
            yield response.follow(href, callback=self.parse_book)


SCRAPY_ORIGINAL = '''
import scrapy

class Books(scrapy.Spider):
    name = "books"
    custom_settings = {"ROBOTSTXT_OBEY": False, "LOG_LEVEL": "ERROR",
                       "TELNETCONSOLE_ENABLED": False,
                       "FEEDS": {__FEED__: {"format": "jsonlines"}}}
    start_urls = [__START__]

    def parse(self, response):
        for href in response.css("ul.categories a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_category)

    def parse_category(self, response):
        for href in response.xpath("//li[@class='book']/a/@href").getall():
            yield response.follow(href, callback=self.parse_book)
        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page, callback=self.parse_category)

    def parse_book(self, response):
        yield {
            "url": response.url,
            "title": response.css("h1::text").get(),
            "price": response.xpath("//p[@class='price']/text()").get(),
            "rating": int(response.xpath("//p[@class='rating']/@data-stars").re_first(r"\\d+")
                          or 0),
            "category": response.css("p.category a::text").get(),
        }
        for href in response.css("aside a.related::attr(href)").getall():
            yield response.follow(href, callback=self.parse_book)
'''


async def test_a_ported_scrapy_spider_yields_what_the_original_does(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_app())
    start = str(server.make_url("/"))
    _, ported = await crawl(PortedBooks(start_urls=[start]))
    native_stats, native = await crawl(BooksSpider(base_url=start), **FAST)
    assert len(ported) == 240
    key = lambda item: item["url"]  # noqa: E731
    assert sorted(ported, key=key) == sorted(native, key=key)
    pytest.importorskip("scrapy", reason="Scrapy itself (the bench extra) runs the original")
    import sys

    import orjson

    from tests.conftest import finish, spawn

    feed = tmp_path / "scrapy.jsonl"
    script = tmp_path / "original.py"
    script.write_text(SCRAPY_ORIGINAL.replace("__FEED__", repr(str(feed))).replace(
        "__START__", repr(start)))
    proc = await spawn(sys.executable, "-m", "scrapy", "runspider", str(script),
                       cwd=tmp_path)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    original = [orjson.loads(line) for line in feed.read_bytes().splitlines()]
    assert sorted(original, key=key) == sorted(ported, key=key)


# items that a model refuses ------------------------------------------------------------

async def test_a_model_validation_error_drops_the_item_naming_field_and_url(
        aiohttp_server, caplog):
    pydantic = pytest.importorskip("pydantic")

    class Book(pydantic.BaseModel):
        title: str
        price: float

    app = make_site({"/": "<a href='/a'>a</a><a href='/b'>b</a>",
                     "/a": "<h1>A</h1><p>1.5</p>", "/b": "<h1>B</h1><p>cheap</p>"})
    server = await aiohttp_server(app)

    class Models(Spider):
        name = "models"
        start_urls: ClassVar[list[str]] = [str(server.make_url("/"))]

        async def parse(self, response):
            for link in response.css("a"):
                yield response.follow(link, callback=self.parse_book)

        async def parse_book(self, response):
            yield Book(title=response.css_text("h1"), price=response.css_text("p"))

    stats, items = await crawl(Models())
    assert items == [{"title": "A", "price": 1.5}]
    assert stats.errors == {"invalid_item": 1} and stats.items_dropped == 1
    line = next(r.getMessage() for r in caplog.records if "item dropped" in r.getMessage())
    assert re.search(r"Book: price: .*valid number.*'cheap'", line)
    assert str(server.make_url("/b")) in line


def test_without_parsel_sel_says_which_extra_to_install():
    import subprocess
    import sys

    code = ("import sys; sys.modules['parsel'] = None\n"
            "from crawler import Request, Response\n"
            "r = Response('http://a/', 200, {}, b'<h1>x</h1>', Request('http://a/'))\n"
            "print(r.css_text('h1'))\n"
            "try:\n    r.sel\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent.parent).stdout
    assert out.splitlines() == [
        "x", "MissingParsel response.sel and response.xpath() need parsel: "
        "pip install 'crawler[selectors]'"]


FROM_CRAWLER = '''
from crawler import Spider
from crawler.signals import Signal


class Counting(Spider):
    name = "counting"
    custom_settings = {"log_interval": 0, "obey_robots": False}

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.timeout_seen = crawler.settings.timeout
        crawler.signals.connect(Signal.SPIDER_CLOSED, spider.on_closed)
        return spider

    def __init__(self, start, **kw):
        super().__init__(**kw)
        self.start_urls = [start]

    def parse(self, response):
        self.crawler.stats.inc_value("pages/seen_by_spider")
        self.crawler.stats.max_value("pages/longest_url", len(response.url))
        yield {"timeout": self.timeout_seen, "same": self.crawler.spider is self}

    def on_closed(self, reason):
        self.crawler.stats.set_value("closed_with", reason)
'''


async def test_from_crawler_builds_the_spider_with_its_crawler_and_the_stats_api(
        aiohttp_server, tmp_path):
    import json
    import sys

    from tests.conftest import finish, spawn

    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    app.router.add_get("/", page)
    site = await aiohttp_server(app)
    (tmp_path / "counting.py").write_text(FROM_CRAWLER)
    proc = await spawn(sys.executable, "-m", "crawler", "run", "counting.py", "-a",
                       f"start={site.make_url('/')}", "-s", "timeout=7", "-o", "out.jsonl",
                       "--stats", "stats.json", cwd=tmp_path)
    _, err = await finish(proc, 60)
    assert proc.returncode == 0, err.decode()
    item = json.loads((tmp_path / "out.jsonl").read_text())
    assert item == {"timeout": 7.0, "same": True}
    counters = json.loads((tmp_path / "stats.json").read_text())["counters"]
    assert counters["pages/seen_by_spider"] == 1 and counters["closed_with"] == "finished"
    assert counters["pages/longest_url"] == len(str(site.make_url("/")))


def test_the_stats_api_as_scrapy_names_it():
    from crawler.stats import Stats

    stats = Stats()
    stats.inc_value("pages")
    stats.inc_value("custom/count", 2)
    stats.inc_value("custom/count")
    stats.max_value("custom/max", 5)
    stats.max_value("custom/max", 3)
    stats.min_value("custom/min", 5)
    stats.min_value("custom/min", 3)
    stats.set_value("custom/when", "now")
    assert stats.pages == 1 and stats.get_value("pages") == 1
    assert stats.get_value("custom/count") == 3 and stats.get_value("missing", 9) == 9
    assert stats.get_value("custom/max") == 5 and stats.get_value("custom/min") == 3
    assert stats.get_stats()["counters"]["custom/when"] == "now"


def test_with_selectors_parsel_response_css_answers_as_scrapys():
    r = page("<html><body><h1>Hi <b>there</b></h1><a class='next' href='p2.html'>next</a>"
             "<a href='/x'>x</a></body></html>")
    r.use_parsel()
    assert r.css("h1::text").get() == "Hi "
    assert r.css("a::attr(href)").getall() == ["p2.html", "/x"]
    assert r.css("a")[0].attrib["class"] == "next"
    assert r.css_first("a.next").css("::text").get() == "next"
    assert r.css_first("nothing") is None
    # follow() takes a Selector: an element's href, or a selected attribute's value
    assert r.follow(r.css("a.next")[0]).url == "http://shop.test/dir/p2.html"
    assert r.follow(r.css("a::attr(href)")[1]).url == "http://shop.test/x"
    assert [q.url for q in r.follow_all(css="a")] == ["http://shop.test/dir/p2.html",
                                                      "http://shop.test/x"]
    assert r.css_text("h1") == "Hi there" and len(r.css_nodes("a")) == 2  # still there


async def test_selectors_setting_and_the_hint_on_nodes(aiohttp_server, tmp_path, caplog):
    from tests.conftest import crawl, links, make_site

    server = await aiohttp_server(make_site({"/": links("/a", title="home")}))

    class Scrapyish(Spider):
        name = "scrapyish"
        start_urls = [str(server.make_url("/"))]
        custom_settings: ClassVar[dict[str, Any]] = {"log_interval": 0}

        def parse(self, response):
            yield {"title": response.css("title::text").get(),
                   "links": response.css("a::attr(href)").getall()}

    _, items = await crawl(Scrapyish(), tmp_path, selectors="parsel", max_depth=0)
    assert items == [{"title": "home", "links": ["/a"]}]

    class Unported(Spider):
        name = "unported"
        start_urls = [str(server.make_url("/"))]
        custom_settings: ClassVar[dict[str, Any]] = {"log_interval": 0}

        def parse(self, response):
            yield {"links": response.css("a").getall()}

    stats, _ = await crawl(Unported(), tmp_path, max_depth=0)
    assert stats.errors["callback"] == 1
    (record,) = [r for r in caplog.records if "spider error" in r.getMessage()]
    assert "response.css() gives selectolax nodes" in record.getMessage()
    assert 'set selectors = "parsel"' in record.getMessage()


FORMS = """<html><body>
<form id="search" action="/search" method="get"><input name="q" value="old"></form>
<form name="login" action="/login" method="post">
  <input type="hidden" name="csrf" value="t0k3n">
  <input name="user"><input type="password" name="pass">
  <input type="checkbox" name="remember" value="1" checked>
  <select name="lang"><option value="en">en</option><option value="fr" selected>fr</option>
  </select>
  <input type="submit" name="go" value="Log in"><input type="submit" name="alt" value="SSO">
</form></body></html>"""


def test_form_request_from_response_fills_the_form_as_scrapy_does():
    from urllib.parse import parse_qsl

    from crawler import FormRequest

    r = page(FORMS, url="http://shop.test/account/")
    login = FormRequest.from_response(r, formname="login",
                                      formdata={"user": "ann", "pass": "pw"})
    assert login.method == "POST" and login.url == "http://shop.test/login"
    assert login.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(login.body.decode())) == {
        "csrf": "t0k3n", "user": "ann", "pass": "pw", "remember": "1", "lang": "fr",
        "go": "Log in"}
    sso = FormRequest.from_response(r, formcss="input[name=user]", clickdata={"name": "alt"})
    assert dict(parse_qsl(sso.body.decode()))["alt"] == "SSO"
    search = FormRequest.from_response(r, formid="search", formdata={"q": "books"},
                                       callback=None, meta={"page": 1})
    assert (search.method, search.url, search.meta) == (
        "GET", "http://shop.test/search?q=books", {"page": 1})
    assert FormRequest.from_response(r, formnumber=1, dont_click=True).url.endswith("/login")
    with pytest.raises(ValueError, match="no form named 'nope'"):
        FormRequest.from_response(r, formname="nope")
    with pytest.raises(ValueError, match="no form number 5"):
        FormRequest.from_response(r, formnumber=5)
