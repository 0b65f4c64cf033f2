"""Spider templates for `python -m crawler new NAME URL`: each runs as it is written, with
settings that are gentle with someone else's site (Scrapy's project template since 2.13
does the same: one request at a time per host, a delay, robots.txt, autothrottle)."""

from __future__ import annotations

import importlib.util
import keyword
import re
from pathlib import Path

from yarl import URL

from crawler.exceptions import UsageError

__all__ = ["TEMPLATES", "new_spider", "render"]

_POLITE = '''\
    # gentle with a site that is not yours: raise these only for one you run
    custom_settings: ClassVar[dict[str, Any]] = {{
        "per_host_concurrency": 1,  # one request at a time per host
        "download_delay": 1.0,  # seconds between requests to a host (randomised 0.5-1.5x)
        "obey_robots": True,  # never fetch what robots.txt disallows
        "autothrottle": True,  # slow down further when the server slows down{selectors}
    }}
'''

_BASIC = '''\
"""{name}: every page of {host}, its title and URL.

Run it: python -m crawler run {name} -o output/{name}.jsonl
"""

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from crawler import Response, Spider


class {cls}(Spider):
    name = "{name}"
    allowed_domains = ["{host}"]  # links to other hosts are not followed
    start_urls = ["{url}"]
''' + _POLITE + '''
    async def parse(self, response: Response) -> AsyncIterator[Any]:
        """Yield the page's title, then follow its links.

        @url {url}
        @returns items 1 1
        @scrapes url title
        """
        yield {{"url": response.url, "title": response.css_text("title")}}
        for link in response.css("a[href]"):
            yield response.follow(link, callback=self.parse)
'''

_CRAWL = '''\
"""{name}: follows the links of {host} by rules; pages matching a rule with a callback
become items.

Run it: python -m crawler run {name} -o output/{name}.jsonl
"""

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from crawler import CrawlSpider, LinkExtractor, Response, Rule


class {cls}(CrawlSpider):
    name = "{name}"
    allowed_domains = ["{host}"]
    start_urls = ["{url}"]
''' + _POLITE + '''
    # the first rule that extracts a link decides what happens to it
    rules: ClassVar[list[Rule]] = [
        # pages to parse (and to follow the links of): narrow allow= to your item pages
        Rule(LinkExtractor(allow=r"/"), callback="parse_item", follow=True),
    ]

    async def parse_item(self, response: Response) -> AsyncIterator[Any]:
        """One item per page a rule sends here.

        @url {url}
        @returns items 1 1
        @returns requests 0 0
        @scrapes url title
        """
        yield {{"url": response.url, "title": response.css_text("title")}}
'''

_SITEMAP = '''\
"""{name}: the pages {host} lists in its sitemaps.

Run it: python -m crawler run {name} -o output/{name}.jsonl
"""

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from crawler import Response, SitemapSpider


class {cls}(SitemapSpider):
    name = "{name}"
    allowed_domains = ["{host}"]
    # a robots.txt (its Sitemap: lines are read), a sitemap or a sitemap index
    sitemap_urls = ["{sitemap}"]
    # (regular expression searched in the page URL, callback): the first match wins
    sitemap_rules: ClassVar[list[tuple[str, str]]] = [("", "parse_item")]
''' + _POLITE + '''
    async def parse_item(self, response: Response) -> AsyncIterator[Any]:
        """One item per page listed.

        @url {url}
        @returns items 1 1
        @scrapes url title
        """
        yield {{"url": response.url, "title": response.css_text("title")}}
'''

TEMPLATES = {"basic": _BASIC, "crawl": _CRAWL, "sitemap": _SITEMAP}
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")


def render(name: str, url: str, template: str = "basic") -> str:
    """The source of spider `name` for `url` from `template`; UsageError for a bad name,
    URL or template."""
    if template not in TEMPLATES:
        raise UsageError(f"unknown template {template!r}; choose from {', '.join(TEMPLATES)}")
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise UsageError(f"spider name {name!r}: use lower-case letters, digits and _, "
                         "starting with a letter (it is also the module's name)")
    parsed = _url(url)
    origin = f"{parsed.scheme}://{parsed.authority}"
    sitemap = str(parsed) if parsed.path.endswith((".xml", ".xml.gz", "/robots.txt")) \
        else f"{origin}/robots.txt"
    cls = "".join(part.capitalize() for part in name.split("_") if part) + "Spider"
    # with parsel installed, response.css() answers as Scrapy's (.get(), ::text)
    selectors = '\n        "selectors": "parsel",  # response.css() as in Scrapy: .get(), ' \
        '::text' if importlib.util.find_spec("parsel") is not None else ""
    return TEMPLATES[template].format(name=name, cls=cls, url=str(parsed), host=parsed.host,
                                      sitemap=sitemap, selectors=selectors)


def new_spider(root: Path, name: str, url: str, template: str = "basic",
               existing: frozenset[str] = frozenset()) -> Path:
    """Write `root/spiders/NAME.py` (and `spiders/__init__.py` when missing); never
    overwrites a file or reuses a spider name in `existing`."""
    source = render(name, url, template)
    if name in existing:
        raise UsageError(f"a spider named {name!r} exists already: choose another name")
    package = root / "spiders"
    path = package / f"{name}.py"
    if path.exists():
        raise UsageError(f"{path} exists already: not overwritten")
    package.mkdir(exist_ok=True)
    init = package / "__init__.py"
    if not init.exists():
        init.write_text('"""The project\'s spiders."""\n', encoding="utf-8")
    with open(path, "x", encoding="utf-8") as file:  # "x": a file made meanwhile is kept
        file.write(source)
    return path


def _url(url: str) -> URL:
    text = url.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        parsed = URL(text)
    except ValueError as exc:
        raise UsageError(f"bad URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"bad URL {url!r}: give an http(s) URL or a domain")
    if not parsed.path:
        parsed = parsed.with_path("/")
    return parsed
