"""`python -m crawler run markdown -a start=URL`: a site as LLM-ready text.

It crawls the start URL's site politely (robots.txt, the per-host delay and concurrency,
the usual limits) and writes one record per HTML page, ready for chunking:

    {"url": ..., "title": ..., "headings": [{"level": 1, "text": ...}, ...],
     "markdown": ..., "links": [...], "language": "en", "content_hash": "sha256 hex"}

`markdown` is the page's main content, boilerplate out (crawler/extract/content.py);
`links` every http(s) link on the page, absolute, without fragments, once each.
Arguments: `start` (URLs, space-separated), `scope` (`host`, the default: the start URLs'
hosts; `path`: also under each start URL's directory), `max_pages` (a setting: `-s`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from yarl import URL

from crawler.exceptions import UsageError
from crawler.extract.content import MainContent
from crawler.http import Request, Response
from crawler.http.urls import FETCHABLE_SCHEMES
from crawler.spider import Spider, start_url_list

__all__ = ["MarkdownSpider"]

_SCOPES = ("host", "path")


class MarkdownSpider(Spider):
    """Crawl a site and write each page's main content as Markdown (for search and LLMs)."""

    name = "markdown"

    def __init__(self, start: str, scope: str = "host", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = start_url_list(start)
        if not self.start_urls:
            raise UsageError("markdown: give a start URL: -a start=https://example.com/")
        if scope not in _SCOPES:
            raise UsageError(f"markdown: scope must be one of {', '.join(_SCOPES)}, got "
                             f"{scope!r}")
        urls = [URL(u) for u in self.start_urls]
        bad = next((u for u in urls if u.scheme not in FETCHABLE_SCHEMES or not u.host), None)
        if bad is not None:
            raise UsageError(f"markdown: not an http(s) URL: {bad}")
        self.allowed_domains = sorted({u.host for u in urls if u.host})
        # scope=path: under the start URL's directory ("/docs/" of "/docs/index.html")
        self._prefixes = tuple(u.path.rsplit("/", 1)[0] + "/" for u in urls) \
            if scope == "path" else ("/",)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        if not response.is_html or not response.body:
            self.crawler.stats.inc_value("markdown/not_html")
            return
        content = await response.main_content(text=False)  # in a thread past 16 KB
        record = self.record(response, content)
        if record is not None:
            yield record
        for link in content.links:
            if URL(link).path.startswith(self._prefixes):
                yield Request(link, callback=self.parse)

    def record(self, response: Response, content: MainContent) -> dict[str, Any] | None:
        """The page's record; None (counted) when it has no main content."""
        if not content.markdown:
            self.crawler.stats.inc_value("markdown/empty")
            self.logger.debug("no main content in %s: no record", response.url)
            return None
        return {"url": response.url, "title": content.title, "headings": content.headings,
                "markdown": content.markdown, "links": content.links,
                "language": content.language, "content_hash": content.content_hash}
