"""A small bookshop site, generated deterministically and served on 127.0.0.1, and the
spider that crawls it.

Home -> 8 category pages (paginated, 12 books a page) -> 240 book pages, each linking back
to its category and to two related books. robots.txt names a sitemap index of two
sitemaps (the category pages; the books, gzipped). `python -m crawler demo` crawls it offline, from
any directory: the spider ships in the package (`spiders/books.py` is the same spider as a
project example).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import html
import random
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from aiohttp import web

from crawler.http import Request, Response
from crawler.spider import Spider

__all__ = ["BooksSpider", "build_site", "make_app", "serve_forever", "serving", "sitemaps"]

CATEGORIES = ("Travel", "Mystery", "Poetry", "History", "Science", "Fantasy", "Romance", "Humor")
BOOKS_PER_CATEGORY = 30
PER_PAGE = 12
_WORDS = ("river", "night", "glass", "empire", "garden", "silent", "winter", "code", "map",
          "storm", "letter", "island", "mirror", "clock", "forest", "voyage", "secret", "salt")


def _slug(text: str) -> str:
    return "-".join(text.lower().split())


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f" | Demo Books</title></head><body><nav><a href=\"/\">Home</a></nav>"
            f"<main>{body}</main></body></html>")


def build_site(seed: int = 7) -> dict[str, str]:
    """Every page of the site by path; the same seed gives the same site."""
    rng = random.Random(seed)
    pages: dict[str, str] = {}
    books: list[tuple[str, str, str]] = []  # (slug, title, category)
    for category in CATEGORIES:
        for _ in range(BOOKS_PER_CATEGORY):
            title = " ".join(rng.choice(_WORDS) for _ in range(3)).title()
            slug = f"{_slug(title)}-{len(books) + 1}"
            books.append((slug, title, category))
    links = "".join(
        f'<li><a href="catalogue/category/{_slug(c)}/page-1.html">{c}</a></li>'
        for c in CATEGORIES)
    pages["/"] = _page("Home", f"<h1>Demo Books</h1><ul class=\"categories\">{links}</ul>")
    for category in CATEGORIES:
        in_cat = [b for b in books if b[2] == category]
        n_pages = -(-len(in_cat) // PER_PAGE)
        for number in range(1, n_pages + 1):
            chunk = in_cat[(number - 1) * PER_PAGE : number * PER_PAGE]
            items = "".join(
                f'<li class="book"><a href="../../{slug}/index.html">{html.escape(t)}</a></li>'
                for slug, t, _ in chunk)
            nav = f'<a class="next" href="page-{number + 1}.html">next</a>' \
                if number < n_pages else ""
            pages[f"/catalogue/category/{_slug(category)}/page-{number}.html"] = _page(
                f"{category} - page {number}",
                f"<h1>{category}</h1><ol>{items}</ol>{nav}")
    for i, (slug, title, category) in enumerate(books):
        price = rng.randint(500, 6000) / 100
        rating = rng.randint(1, 5)
        related = "".join(
            f'<a class="related" href="/catalogue/{books[j][0]}/index.html">'
            f"{html.escape(books[j][1])}</a>"
            for j in ((i + 1) % len(books), (i + 7) % len(books)))
        pages[f"/catalogue/{slug}/index.html"] = _page(title, (
            f'<article class="product"><h1>{html.escape(title)}</h1>'
            f'<p class="price">£{price:.2f}</p><p class="rating" data-stars="{rating}"></p>'
            f'<p class="category"><a href="/catalogue/category/{_slug(category)}/page-1.html">'
            f"{category}</a></p><p class=\"description\">A book about "
            f"{html.escape(title.lower())}.</p></article><aside>{related}</aside>"))
    return pages


def sitemaps(pages: dict[str, str], origin: str) -> dict[str, bytes]:
    """robots.txt (with a Sitemap: line), a sitemap index, the category pages' sitemap and
    the books' sitemap, gzipped, all with absolute URLs on `origin`."""
    def urlset(paths: list[str]) -> bytes:
        entries = "".join(f"<url><loc>{origin}{html.escape(p)}</loc></url>" for p in paths)
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns='
                f'"http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>').encode()

    books = sorted(p for p in pages if p.endswith("/index.html"))
    categories = sorted(p for p in pages if "/category/" in p)
    index = "".join(f"<sitemap><loc>{origin}/sitemaps/{name}</loc></sitemap>"
                    for name in ("categories.xml", "books.xml.gz"))
    return {
        "/robots.txt": f"User-agent: *\nDisallow: /private/\n\nSitemap: {origin}/sitemap.xml\n"
                       .encode(),
        "/sitemap.xml": (f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns='
                         f'"http://www.sitemaps.org/schemas/sitemap/0.9">{index}'
                         "</sitemapindex>").encode(),
        "/sitemaps/categories.xml": urlset(categories),
        "/sitemaps/books.xml.gz": gzip.compress(urlset(books), mtime=0),
    }


_TYPES = {".txt": "text/plain", ".xml": "application/xml", ".gz": "application/gzip"}


def make_app(pages: dict[str, str] | None = None) -> web.Application:
    """An aiohttp app serving the site, its robots.txt and sitemaps (and a 404 for anything
    else)."""
    site = pages if pages is not None else build_site()
    extra: dict[str, dict[str, bytes]] = {}  # by origin: sitemaps name absolute URLs

    async def handle(request: web.Request) -> web.Response:
        body = site.get(request.path)
        if body is not None:
            return web.Response(text=body, content_type="text/html")
        origin = f"{request.scheme}://{request.host}"
        files = extra.get(origin)
        if files is None:
            if len(extra) >= 8:  # a Host header per request must not grow this
                extra.clear()
            files = extra[origin] = sitemaps(site, origin)
        data = files.get(request.path)
        if data is None:
            raise web.HTTPNotFound(text="not found")
        suffix = request.path[request.path.rfind("."):]
        return web.Response(body=data, content_type=_TYPES[suffix])

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


@contextlib.asynccontextmanager
async def serving(port: int = 0) -> AsyncIterator[str]:
    """Serve the site on 127.0.0.1 for the duration of the block; yields its base URL."""
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        actual = runner.addresses[0][1]
        yield f"http://127.0.0.1:{actual}/"
    finally:
        await runner.cleanup()


async def serve_forever(port: int = 0) -> None:
    async with serving(port) as base_url:
        print(f"demo bookshop at {base_url} (Ctrl-C to stop)", flush=True)
        await asyncio.Event().wait()


class BooksSpider(Spider):
    """Every book: title, price, rating and category, through categories and pagination."""

    name = "books"
    custom_settings: ClassVar[dict[str, Any]] = {"per_host_concurrency": 16, "concurrency": 16}

    def __init__(self, base_url: str = "http://127.0.0.1:8000/", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.base_url, callback=self.parse)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for link in response.css("ul.categories a"):
            yield response.follow(link, callback=self.parse_category)

    async def parse_category(self, response: Response) -> AsyncIterator[Any]:
        for link in response.css("li.book a"):
            yield response.follow(link, callback=self.parse_book)
        next_page = response.css_first("a.next")
        if next_page is not None:
            yield response.follow(next_page, callback=self.parse_category)

    async def parse_book(self, response: Response) -> AsyncIterator[Any]:
        def text(selector: str) -> str | None:
            node = response.css_first(selector)
            return node.text(strip=True) if node is not None else None

        rating = response.css_first("p.rating")
        yield {
            "url": response.url,
            "title": text("h1"),
            "price": text("p.price"),
            "rating": int(rating.attributes.get("data-stars") or 0) if rating else None,
            "category": text("p.category a"),
        }
        for link in response.css("aside a.related"):
            yield response.follow(link, callback=self.parse_book)
