"""SitemapSpider: crawl the pages a site lists in its sitemaps, with Scrapy's semantics.

Usage:
    class ShopSpider(SitemapSpider):
        name = "shop"
        sitemap_urls = ["https://shop.example/robots.txt"]  # or sitemap URLs
        sitemap_rules = [(r"/product/", "parse_product")]  # first match wins
        sitemap_follow = [r"products"]  # which sitemaps of an index to read

Sitemaps are XML (https://www.sitemaps.org/protocol.html), gzipped or not, or sitemap
indexes; robots.txt `Sitemap:` lines are followed. XML is read with the stdlib's expat,
refusing any DTD entity (no billion laughs, no external entities), and a gzipped sitemap
is inflated up to `max_response_size`, so a hostile sitemap costs bounded memory.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar
from xml.parsers import expat

from protego import Protego

from crawler.exceptions import CrawlerError
from crawler.http import Request, Response
from crawler.http.compression import DecodingError, Inflater
from crawler.spider import Spider

__all__ = ["Sitemap", "SitemapError", "SitemapSpider", "parse_sitemap", "sitemaps_in_robots"]

logger = logging.getLogger(__name__)

_THREAD_BYTES = 256 * 1024  # larger sitemaps are parsed in a thread, off the event loop


class SitemapError(CrawlerError):
    """A body that is not a sitemap, or one that breaks the limits."""


class Sitemap:
    """A parsed sitemap: its `type` ("urlset" or "sitemapindex") and its entries, dicts with
    "loc" and whatever else each entry gives ("lastmod", "priority", "alternate": [URLs])."""

    def __init__(self, kind: str, entries: list[dict[str, Any]]) -> None:
        self.type = kind
        self.entries = entries

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.entries)


def parse_sitemap(body: bytes, max_size: int = 32 * 1024 * 1024) -> Sitemap:
    """Parse a sitemap or sitemap index, gzipped or not. Raises SitemapError for what is not
    one (a truncated sitemap gives the entries before the break)."""
    if body[:2] == b"\x1f\x8b":
        body = _gunzip(body, max_size)
    reader = _Reader()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    parser.EntityDeclHandler = _refuse_entities
    parser.ExternalEntityRefHandler = _refuse_external
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        if reader.kind is None:
            raise SitemapError(f"not a sitemap: {exc}") from None
        logger.warning("sitemap broken after %d entries (%s): kept those", len(reader.entries),
                       exc)
    if reader.kind not in ("urlset", "sitemapindex"):
        raise SitemapError(f"not a sitemap: the root element is <{reader.kind}>")
    return Sitemap(reader.kind, reader.entries)


def sitemaps_in_robots(text: str, base_url: str) -> list[str]:
    """The `Sitemap:` URLs of a robots.txt, absolute."""
    from yarl import URL

    base = URL(base_url)
    urls = []
    for url in Protego.parse(text).sitemaps:
        try:
            urls.append(str(base.join(URL(url.strip()))))
        except ValueError:
            logger.warning("bad Sitemap: line in %s: %r", base_url, url)
    return urls


class _Reader:
    """expat handlers collecting <url>/<sitemap> entries, namespace prefixes ignored."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.entries: list[dict[str, Any]] = []
        self._entry: dict[str, Any] | None = None
        self._field: str | None = None
        self._text: list[str] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rpartition(":")[2]
        if self.kind is None:
            self.kind = local
        elif self._entry is None:
            if local in ("url", "sitemap"):
                self._entry = {}
        elif local == "link":  # <xhtml:link rel="alternate" href="...">
            if attrs.get("rel") == "alternate" and attrs.get("href"):
                self._entry.setdefault("alternate", []).append(attrs["href"].strip())
        else:
            self._field = local
            self._text = []

    def data(self, text: str) -> None:
        if self._field is not None:
            self._text.append(text)

    def end(self, name: str) -> None:
        local = name.rpartition(":")[2]
        if self._entry is None:
            return
        if self._field is not None and local == self._field:
            self._entry[local] = "".join(self._text).strip()
            self._field = None
        elif local in ("url", "sitemap"):
            if self._entry.get("loc"):
                self.entries.append(self._entry)
            self._entry = None


def _refuse_entities(*args: Any) -> None:
    raise SitemapError("a sitemap may not declare XML entities (refused as a possible "
                       "entity-expansion attack)")


def _refuse_external(*args: Any) -> int:
    raise SitemapError("a sitemap may not reference external entities")


def _gunzip(body: bytes, max_size: int) -> bytes:
    """The bodies' bounded inflater (at most one byte past `max_size`); a gzip cut short
    gives what precedes the cut, as a broken sitemap keeps its entries before a break."""
    try:
        out = b"".join(Inflater(True, max_size).feed(body))
    except DecodingError as exc:
        raise SitemapError(f"bad gzip data: {exc}") from None
    if len(out) > max_size:
        raise SitemapError(f"the sitemap inflates to more than {max_size:,} bytes "
                           "(max_response_size)")
    return out


class SitemapSpider(Spider):
    """A spider fed by sitemaps (see the module docstring).

    sitemap_urls: sitemaps, sitemap indexes or robots.txt URLs; sitemap_rules: (regex,
    callback or its name) pairs, the first regex found in a page's URL picks its callback;
    sitemap_follow: regexes choosing which sitemaps of an index to read (all by default);
    sitemap_alternate_links: also crawl an entry's <xhtml:link rel="alternate"> URLs;
    sitemap_filter(entries): override to drop entries (by "lastmod", say)."""

    sitemap_urls: Sequence[str] = ()
    sitemap_rules: ClassVar[Sequence[tuple[str | re.Pattern[str], Any]]] = [("", "parse")]
    sitemap_follow: ClassVar[Sequence[str | re.Pattern[str]]] = [""]
    sitemap_alternate_links: bool = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cbs: list[tuple[re.Pattern[str], Callable[..., Any]]] = []
        for pattern, callback in self.sitemap_rules:
            method = callback if callable(callback) else getattr(self, callback, None)
            if not callable(method):
                raise ValueError(f"{type(self).__name__}: the sitemap rule callback "
                                 f"{callback!r} is not a method of the spider")
            self._cbs.append((_regex(pattern), method))
        self._follow = [_regex(pattern) for pattern in self.sitemap_follow]

    def start_requests(self) -> Iterable[Request]:
        """One request per sitemap URL (robots.txt URLs included)."""
        for url in (self.sitemap_urls.split() if isinstance(self.sitemap_urls, str)
                    else self.sitemap_urls):
            yield Request(url, callback=self._parse_sitemap, dont_filter=True)

    def sitemap_filter(self, entries: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        """Override to drop or change sitemap entries before they are followed."""
        return entries

    async def _parse_sitemap(self, response: Response) -> AsyncIterator[Request]:
        if response.url.endswith("/robots.txt"):
            for url in sitemaps_in_robots(response.text, response.url):
                yield Request(url, callback=self._parse_sitemap)
            return
        settings = getattr(self, "settings", None)
        limit = settings.max_response_size if settings is not None else 32 * 1024 * 1024
        try:
            if len(response.body) > _THREAD_BYTES:
                sitemap = await asyncio.to_thread(parse_sitemap, response.body, limit)
            else:
                sitemap = parse_sitemap(response.body, limit)
        except SitemapError as exc:
            logger.warning("ignoring %s: %s", response.url, exc)
            return
        entries = self.sitemap_filter(sitemap.entries)
        if sitemap.type == "sitemapindex":
            for loc in self._locations(entries):
                if any(pattern.search(loc) for pattern in self._follow):
                    yield Request(loc, callback=self._parse_sitemap)
            return
        for entry in entries:
            # what the entry says of its page's changes: a recrawl's first hints
            hints = {f"sitemap_{key}": entry[key] for key in ("changefreq", "lastmod")
                     if entry.get(key)}
            for loc in self._locations((entry,)):
                for pattern, callback in self._cbs:
                    if pattern.search(loc):
                        yield Request(loc, callback=callback, meta=hints or None)
                        break

    def _locations(self, entries: Iterable[dict[str, Any]]) -> Iterator[str]:
        for entry in entries:
            yield entry["loc"]
            if self.sitemap_alternate_links:
                yield from entry.get("alternate", ())


def _regex(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(pattern) if isinstance(pattern, str) else pattern
