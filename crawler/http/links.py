"""Link extraction with Scrapy's LinkExtractor arguments, on selectolax.

Usage:
    links = LinkExtractor(allow=r"/product/", deny_domains=["ads.example"]).extract_links(
        response)
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from yarl import URL

from crawler.http.urls import AllowedDomains

if TYPE_CHECKING:
    from crawler.http import Response

__all__ = ["IGNORED_EXTENSIONS", "Link", "LinkExtractor"]

# Scrapy's list: files a crawl for pages does not want to download
IGNORED_EXTENSIONS = frozenset(
    # archives
    "7z 7zip bz2 rar tar tar.gz xz zip "
    # images
    "mng pct bmp gif jpg jpeg png pst psp tif tiff ai drw dxf eps ps svg cdr ico webp avif "
    # audio
    "mp3 wma ogg wav ra aac mid au aiff "
    # video
    "3gp asf asx avi mov mp4 mpg qt rm swf wmv m4a m4v flv webm "
    # office suites
    "xls xlsx ppt pptx pps doc docx odt ods odg odp "
    # other
    "css pdf exe bin rss dmg iso apk jar sh rb js".split())

Patterns = str | re.Pattern[str] | Iterable[str | re.Pattern[str]]


@dataclass(frozen=True, slots=True)
class Link:
    """A link found on a page: its absolute URL (without fragment), text and rel=nofollow."""

    url: str
    text: str = ""
    nofollow: bool = False


class LinkExtractor:
    """Links of a response, filtered as Scrapy's `LinkExtractor` does.

    allow / deny: regular expressions searched in the absolute URL (none allowed: all);
    allow_domains / deny_domains: hosts, subdomains included; restrict_css /
    restrict_xpaths: only links inside the matching regions (XPath needs parsel); tags and
    attrs: where links are read from; deny_extensions: file extensions to skip (None:
    IGNORED_EXTENSIONS; [] for none); restrict_text: regular expressions the link text must
    match; process_value: maps each raw attribute value (None drops it); unique: one link
    per URL.
    """

    def __init__(self, allow: Patterns = (), deny: Patterns = (),
                 allow_domains: str | Iterable[str] = (), deny_domains: str | Iterable[str] = (),
                 restrict_css: str | Iterable[str] = (), restrict_xpaths: str | Iterable[str] = (),
                 tags: str | Iterable[str] = ("a", "area"), attrs: str | Iterable[str] = ("href",),
                 deny_extensions: Iterable[str] | None = None, restrict_text: Patterns = (),
                 process_value: Callable[[str], str | None] | None = None,
                 unique: bool = True, strip: bool = True, canonicalize: bool = False) -> None:
        self.allow = _patterns(allow)
        self.deny = _patterns(deny)
        # the spiders' allowed_domains rule: a host and its subdomains (a port if given)
        self.allow_domains = AllowedDomains(_strings(allow_domains))
        self.deny_domains = AllowedDomains(_strings(deny_domains))
        self.restrict_css = _strings(restrict_css)
        self.restrict_xpaths = _strings(restrict_xpaths)
        self.tags = frozenset(t.lower() for t in _strings(tags))
        self.attrs = _strings(attrs)
        self.deny_extensions = frozenset(
            "." + e.lower().lstrip(".") for e in (IGNORED_EXTENSIONS if deny_extensions is None
                                                  else deny_extensions))
        self.restrict_text = _patterns(restrict_text)
        self.process_value = process_value
        self.unique = unique
        self.strip = strip
        # canonicalize is accepted for Scrapy code: URLs are always canonical in the frontier
        self._selector = ", ".join(f"{t}[{a}]" for t in sorted(self.tags) for a in self.attrs)

    def extract_links(self, response: Response) -> list[Link]:
        """The links of `response` that pass every filter, in page order."""
        if not response.is_html or not self._selector:
            return []
        links: list[Link] = []
        seen: set[str] = set()
        for value, text, rel in self._raw_links(response):
            if self.strip:
                value = value.strip()
            if self.process_value is not None:
                processed = self.process_value(value)
                if processed is None:
                    continue
                value = processed
            url = response.urljoin(value)
            if (self.unique and url in seen) or not self._wanted(url, text):
                continue
            seen.add(url)
            links.append(Link(url, text, "nofollow" in rel.lower().split()))
        return links

    def matches(self, url: str) -> bool:
        """Whether a URL passes allow/deny and the domain filters (Scrapy's `matches`)."""
        return self._wanted(url, "", extensions=False)

    def _raw_links(self, response: Response) -> Iterator[tuple[str, str, str]]:
        """(attribute value, text, rel) for every link tag in the regions looked at."""
        if self.restrict_xpaths:
            yield from self._xpath_links(response)
            if not self.restrict_css:
                return
        if not self.restrict_css:
            nodes: Iterable[Any] = response.css_nodes(self._selector)
        else:
            nodes = self._css_regions(response)
        for node in nodes:
            attributes = node.attributes
            for attr in self.attrs:
                value = attributes.get(attr)
                if value is not None:
                    yield value, " ".join(node.text(deep=True).split()), \
                        attributes.get("rel") or ""

    def _css_regions(self, response: Response) -> Iterator[Any]:
        done: set[int] = set()
        for region_css in self.restrict_css:
            for region in response.css_nodes(region_css):
                inner = region.css(self._selector)
                for node in ([region] if region.tag in self.tags else []) + inner:
                    key = node.mem_id
                    if key not in done:
                        done.add(key)
                        yield node

    def _xpath_links(self, response: Response) -> Iterator[tuple[str, str, str]]:
        for query in self.restrict_xpaths:
            for region in response.xpath(query):
                root = region.root
                if not hasattr(root, "iter"):
                    continue  # a text or attribute result, not an element
                for element in root.iter(*self.tags):
                    for attr in self.attrs:
                        value = element.get(attr)
                        if value is not None:
                            text = " ".join(element.text_content().split())
                            yield value, text, element.get("rel") or ""

    def _wanted(self, url: str, text: str, *, extensions: bool = True) -> bool:
        if not url.startswith(("http://", "https://")):
            return False
        if self.allow and not any(p.search(url) for p in self.allow):
            return False
        if any(p.search(url) for p in self.deny):
            return False
        if self.allow_domains or self.deny_domains or (extensions and self.deny_extensions):
            try:
                parsed = URL(url)
            except ValueError:
                return False
            if self.allow_domains and not self.allow_domains.admits(parsed):
                return False
            if self.deny_domains and self.deny_domains.admits(parsed):
                return False
            if extensions and self.deny_extensions:
                path = parsed.path.lower()
                extension = posixpath.splitext(path)[1]
                if extension in self.deny_extensions or (path.endswith(".tar.gz") and \
                        ".tar.gz" in self.deny_extensions):
                    return False
        return not self.restrict_text or any(p.search(text) for p in self.restrict_text)


def _strings(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _patterns(value: Patterns) -> tuple[re.Pattern[str], ...]:
    items = [value] if isinstance(value, str | re.Pattern) else list(value)
    return tuple(re.compile(p) if isinstance(p, str) else p for p in items)
