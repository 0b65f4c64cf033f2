"""Extraction helpers: ItemLoader against Scrapy's own (the original run by Scrapy),
structured data from fixture pages (broken JSON-LD counted), the main content as Markdown
and text, a 5 MB page within the loop-stall bound, and the built-in markdown spider."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from typing import Any, ClassVar

import pytest
from aiohttp import web

from crawler import ItemLoader, Request, Response, Spider
from crawler.commands.bookshop import make_app
from crawler.extract.loader import Join, MapCompose, TakeFirst
from tests.conftest import crawl, finish, make_site, spawn

FAST: dict[str, Any] = {"obey_robots": False, "log_interval": 0, "concurrency": 8}


def _response(body: str, url: str = "https://shop.example/p/1", **headers: str) -> Response:
    return Response(url, 200, {"Content-Type": "text/html; charset=utf-8", **headers},
                    body.encode(), Request(url))


# item loaders --------------------------------------------------------------------------

class BookLoader(ItemLoader):
    default_output_processor = TakeFirst()
    title_in = MapCompose(str.strip, str.upper)
    price_in = MapCompose(lambda v: v.replace("\u00a3", "").strip(), float)
    words_out = Join(" ")


class LoadedBooks(Spider):
    """Scrapy's ItemLoader example on the demo bookshop; only the imports differ."""

    name = "loaded_books"
    custom_settings: ClassVar[dict[str, Any]] = FAST

    def parse(self, response):
        for href in response.sel.css("ul.categories a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_category)

    def parse_category(self, response):
        for href in response.xpath("//li[@class='book']/a/@href").getall():
            yield response.follow(href, callback=self.parse_book)

    def parse_book(self, response):
        loader = BookLoader(item={}, response=response)
        loader.add_css("title", "h1::text")
        loader.add_xpath("price", "//p[@class='price']/text()")
        loader.add_xpath("stars", "//p[@class='rating']/@data-stars", re=r"\d+")
        loader.add_css("words", "p.description::text", MapCompose(str.split))
        loader.add_value("url", response.url)
        category = loader.nested_css("p.category")
        category.add_css("category", "a::text")
        yield loader.load_item()


SCRAPY_ORIGINAL = '''
import scrapy
from scrapy.loader import ItemLoader
from itemloaders.processors import Join, MapCompose, TakeFirst


class BookLoader(ItemLoader):
    default_output_processor = TakeFirst()
    title_in = MapCompose(str.strip, str.upper)
    price_in = MapCompose(lambda v: v.replace("\\u00a3", "").strip(), float)
    words_out = Join(" ")


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

    def parse_book(self, response):
        loader = BookLoader(item={}, response=response)
        loader.add_css("title", "h1::text")
        loader.add_xpath("price", "//p[@class='price']/text()")
        loader.add_xpath("stars", "//p[@class='rating']/@data-stars", re=r"\\d+")
        loader.add_css("words", "p.description::text", MapCompose(str.split))
        loader.add_value("url", response.url)
        category = loader.nested_css("p.category")
        category.add_css("category", "a::text")
        yield loader.load_item()
'''


async def test_item_loader_gives_the_items_scrapys_does(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_app())
    start = str(server.make_url("/"))
    _, ours = await crawl(LoadedBooks(start_urls=[start]), tmp_path)
    assert len(ours) == 96  # the first page of each of 8 categories: 12 books each
    first = min(ours, key=lambda item: item["url"])
    assert first["title"].isupper() and isinstance(first["price"], float)
    assert first["stars"] in "12345" and first["words"].startswith("A book about")
    pytest.importorskip("scrapy", reason="Scrapy itself runs the original")
    feed = tmp_path / "scrapy.jsonl"
    script = tmp_path / "original.py"
    script.write_text(SCRAPY_ORIGINAL.replace("__FEED__", repr(str(feed))).replace(
        "__START__", repr(start)))
    proc = await spawn(sys.executable, "-m", "scrapy", "runspider", str(script), cwd=tmp_path)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    original = [json.loads(line) for line in feed.read_text().splitlines()]
    key = lambda item: item["url"]  # noqa: E731
    assert sorted(original, key=key) == sorted(ours, key=key)


def test_item_loader_with_a_dataclass_and_without_a_response():
    from dataclasses import dataclass, field

    @dataclass
    class Book:
        title: list[str] = field(default_factory=list)

    loader = ItemLoader(item=Book(), response=_response("<h1> Dune </h1>"))
    loader.add_css("title", "h1::text", MapCompose(str.strip))
    assert loader.load_item() == Book(title=["Dune"])
    bare = ItemLoader()
    bare.add_value("n", [1, 2])
    assert bare.load_item() == {"n": [1, 2]}


# structured data -----------------------------------------------------------------------

STRUCTURED = """<html prefix="og: https://ogp.me/ns#"><head><title>Hat</title>
<meta property="og:title" content="A red hat"><meta property="og:type" content="product">
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "Product",
  "name": "Red hat", "offers": {"@type": "Offer", "price": "9.50"}}</script>
<script type="application/ld+json">[{"@type": "BreadcrumbList"}, {"@type": "Organization"}]
</script>
<script type="application/ld+json">
<!--
{"@type": "WebSite", "name": "Shop", // the site
 "url": "https://shop.example/",}
-->
</script>
<script type="application/ld+json">{"@type": "Broken", "name": "unterminated</script>
<script type="application/ld+json">  </script>
</head><body>
<div itemscope itemtype="https://schema.org/Review"><span itemprop="author">Ann</span>
  <span itemprop="reviewBody">Warm.</span></div>
<div vocab="https://schema.org/" typeof="Person"><span property="name">Bob</span></div>
</body></html>"""


async def test_structured_data_reads_each_syntax_and_skips_a_broken_block():
    data = await _response(STRUCTURED).structured_data()
    assert [item["@type"] for item in data["json-ld"]] == [
        "Product", "BreadcrumbList", "Organization", "WebSite"]
    assert data["json-ld"][0]["offers"]["price"] == "9.50"
    assert data["json-ld"][3]["url"] == "https://shop.example/"  # comments, trailing comma
    assert data["microdata"] == [{"@type": "Review", "@context": "https://schema.org",
                                  "author": "Ann", "reviewBody": "Warm."}]
    assert data["opengraph"][0]["og:title"] == "A red hat"
    assert data["opengraph"][0]["@type"] == "product"
    names = [v for item in data["rdfa"] for k, vs in item.items() if k.endswith("name")
             for v in vs]
    assert {"@value": "Bob"} in names
    only = await _response(STRUCTURED).structured_data(("json-ld",))
    assert list(only) == ["json-ld"]
    empty = await _response("<p>nothing</p>").structured_data()
    assert empty == {"json-ld": [], "microdata": [], "opengraph": [], "rdfa": []}
    with pytest.raises(ValueError, match="unknown structured data syntax 'jsonld'"):
        await _response("<p/>").structured_data(("jsonld",))


async def test_broken_json_ld_is_counted_in_a_crawl(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({"/": STRUCTURED}))

    class Structured(Spider):
        name = "structured"
        custom_settings: ClassVar[dict[str, Any]] = FAST
        start_urls: ClassVar[list[str]] = [str(server.make_url("/"))]

        async def parse(self, response):
            data = await response.structured_data()
            yield {"types": [item["@type"] for item in data["json-ld"]]}

    stats, items = await crawl(Structured(), tmp_path)
    assert items == [{"types": ["Product", "BreadcrumbList", "Organization", "WebSite"]}]
    assert stats.counters["structured_data/jsonld_broken"] == 1


# main content and Markdown ---------------------------------------------------------------

ARTICLE = """<!doctype html><html lang="en-GB"><head><title>Tuning asyncio | Blog</title>
<style>.x{color:red}</style><script>var tracking = 1;</script></head><body>
<header class="site-header"><a href="/">Home</a> <a href="/about">About us</a></header>
<nav class="menu"><ul><li><a href="/blog">Blog index</a></li></ul></nav>
<div class="layout"><aside class="sidebar"><h3>Popular posts</h3><p>Other things to read
here, for a long while, about other topics entirely.</p></aside>
<div class="content"><article>
<h1>Tuning asyncio <a class="headerlink" href="#t">\u00b6</a></h1>
<p>The <strong>event loop</strong> runs <em>one</em> callback at a time; see
<a href="/docs/loop.html">the loop</a> and <a href="https://python.org/">Python</a>.</p>
<h2>Steps</h2>
<ol><li>Measure first</li><li>Move work off the loop<ul><li>threads</li></ul></li></ol>
<pre><code class="language-python">async def main():
    await asyncio.sleep(1)</code></pre>
<table><tr><th>setting</th><th>default</th></tr><tr><td>concurrency</td><td>16</td></tr>
</table>
<div class="share-buttons">Share on social media</div>
</article></div></div>
<footer class="site-footer">Copyright 2026, cookie settings</footer></body></html>"""


async def test_markdown_of_the_main_content_keeps_structure_and_drops_boilerplate():
    response = _response(ARTICLE, url="https://blog.example/posts/asyncio.html")
    markdown = await response.markdown()
    assert markdown.startswith("# Tuning asyncio\n\nThe **event loop** runs *one* callback")
    assert "[the loop](https://blog.example/docs/loop.html)" in markdown  # made absolute
    assert "[Python](https://python.org/)" in markdown
    assert "## Steps" in markdown
    assert "1. Measure first\n2. Move work off the loop" in markdown
    assert "   - threads" in markdown or "  - threads" in markdown
    assert "```python\nasync def main():\n    await asyncio.sleep(1)\n```" in markdown
    assert re.search(r"\| setting +\| default \|\n\| -+ \| -+ \|\n\| concurrency \| 16 +\|",
                     markdown), markdown
    for boilerplate in ("Home", "About us", "Blog index", "Popular posts", "Share on",
                        "Copyright", "tracking", "color:red", "\u00b6"):
        assert boilerplate not in markdown, boilerplate
    content = await response.main_content()
    assert content.title == "Tuning asyncio | Blog"
    assert content.language == "en-GB"
    assert content.headings == [{"level": 1, "text": "Tuning asyncio"},
                                {"level": 2, "text": "Steps"}]
    assert content.content_hash == hashlib.sha256(markdown.encode()).hexdigest()
    text = await response.main_text()
    assert text.startswith("Tuning asyncio\n\nThe event loop runs one callback at a time")
    assert "**" not in text and "](" not in text
    whole = await response.markdown(main=False)
    assert "Popular posts" in whole and "tracking" not in whole


async def test_a_page_without_landmarks_is_followed_down_to_its_text():
    paragraphs = "".join(f"<p>Paragraph {i} of the story, long enough to count as text.</p>"
                         for i in range(8))
    page = (f"<html><body><div id=top><a href=/>Site</a> <a href=/x>X</a></div>"
            f"<div><div><div class=col>{paragraphs}</div></div><div class=links>"
            "<a href=/1>Elsewhere</a></div></div></body></html>")
    content = await _response(page, **{"Content-Language": "de, en"}).main_content()
    assert content.markdown.startswith("Paragraph 0 of the story")
    assert "Site" not in content.markdown and "Elsewhere" not in content.markdown
    assert content.language == "de"
    assert content.title == ""


async def test_extraction_of_what_is_not_html_is_empty():
    image = Response("https://x.example/a.png", 200, {"Content-Type": "image/png"}, b"\x89PNG",
                     Request("https://x.example/a.png"))
    assert await image.markdown() == "" and await image.main_text() == ""
    assert (await image.main_content()).title == ""


BIG_SPIDER = """
from crawler import Spider

class Big(Spider):
    name = "big"
    custom_settings = {"obey_robots": False, "log_interval": 0,
                       "max_response_size": 20_000_000}

    def __init__(self, url, **kw):
        super().__init__(**kw)
        self.start_urls = [url]

    async def parse(self, response):
        markdown = await response.markdown()
        yield {"length": len(markdown), "sections": markdown.count("\\n## Section ")}
"""


async def test_markdown_of_a_5_mb_page_keeps_the_loop_free(aiohttp_server, tmp_path):
    """In a crawl process of its own, as users run it: the loop stall measured is the
    crawl's, not a pause of the test runner's large heap."""
    rows = "".join(f"<h2>Section {i}</h2><p>Text {i} with <a href='/l{i}'>a link</a> and "
                   f"<code>code</code>.</p><ul><li>one</li><li>two</li></ul>"
                   for i in range(40_000))
    page = f"<html><body><main>{rows}</main></body></html>"
    assert len(page) > 5_000_000
    server = await aiohttp_server(make_site({"/": page}))
    (tmp_path / "big.py").write_text(BIG_SPIDER)
    proc = await spawn(sys.executable, "-m", "crawler", "run", "big.py", "-a",
                       f"url={server.make_url('/')}", "-O", "out.jsonl", "--stats",
                       "stats.json", cwd=tmp_path)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    [item] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert item["sections"] == 40_000 - 1  # the first one starts the text
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["max_loop_stall_seconds"] < 0.1, stats["max_loop_stall_seconds"]


# the markdown spider ---------------------------------------------------------------------

def _site() -> web.Application:
    def page(title: str, body: str, *links: str) -> str:
        anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
        return (f"<html lang=en><head><title>{title}</title></head><body>"
                f"<nav><ul>{anchors}</ul></nav><main><h1>{title}</h1><p>{body}</p>"
                f"</main><footer>Footer text</footer></body></html>")

    return make_site({
        "/docs/": page("Docs", "Start here.", "/docs/a.html", "/docs/b.html", "/blog/",
                       "https://elsewhere.example/", "/docs/a.html#part"),
        "/docs/a.html": page("A", "About A.", "/docs/", "/docs/b.html"),
        "/docs/b.html": page("B", "About B.", "/docs/file.pdf"),
        "/docs/file.pdf": lambda request: _pdf(),
        "/blog/": page("Blog", "Not docs."),
    })


async def _pdf() -> web.Response:
    return web.Response(body=b"%PDF-1.4", content_type="application/pdf")


async def test_the_markdown_spider_writes_one_record_per_page(aiohttp_server, tmp_path):
    server = await aiohttp_server(_site())
    start = str(server.make_url("/docs/"))
    for scope, expected in (("path", {"Docs", "A", "B"}), ("host", {"Docs", "A", "B", "Blog"})):
        out = tmp_path / f"{scope}.jsonl"
        proc = await spawn(sys.executable, "-m", "crawler", "run", "markdown", "-a",
                           f"start={start}", "-a", f"scope={scope}", "-O", str(out),
                           "--stats", str(tmp_path / "stats.json"), "-s", "download_delay=0",
                           cwd=tmp_path)
        _, err = await finish(proc, 60)
        assert proc.returncode == 0, err.decode()
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert {r["title"] for r in records} == expected
        docs = next(r for r in records if r["title"] == "Docs")
        assert set(docs) == {"url", "title", "headings", "markdown", "links", "language",
                             "content_hash"}
        assert docs["markdown"] == "# Docs\n\nStart here."
        assert docs["headings"] == [{"level": 1, "text": "Docs"}]
        assert docs["language"] == "en"
        base = start.rsplit("/docs/", 1)[0]
        assert docs["links"] == [f"{base}/docs/a.html", f"{base}/docs/b.html", f"{base}/blog/",
                                 "https://elsewhere.example/"]
        assert docs["content_hash"] == hashlib.sha256(b"# Docs\n\nStart here.").hexdigest()
        stats = json.loads((tmp_path / "stats.json").read_text())
        assert stats["counters"]["markdown/not_html"] == 1  # the PDF


async def test_the_markdown_spider_refuses_bad_arguments_in_one_line(tmp_path):
    for args, message in ((["-a", "start=ftp://x/"], "markdown: not an http(s) URL: ftp://x/"),
                          (["-a", "start=http://x/", "-a", "scope=site"],
                           "markdown: scope must be one of host, path, got 'site'"),
                          ([], "bad spider arguments for 'markdown'")):
        proc = await spawn(sys.executable, "-m", "crawler", "run", "markdown", *args,
                           cwd=tmp_path)
        _, err = await finish(proc, 60)
        assert proc.returncode == 2
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines


