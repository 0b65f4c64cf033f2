"""The Spider base class users subclass."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from crawler.http import Request

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol
    from crawler.http import Response
    from crawler.settings import Settings


__all__ = ["Spider", "start_url_list"]


class Spider:
    """Where to start, which hosts to stay on, and how to parse what comes back.

    Usage:
        class DocsSpider(Spider):
            name = "docs"
            start_urls = ["https://docs.python.org/3/"]
            allowed_domains = ["docs.python.org"]

            async def parse(self, response):
                yield {"url": response.url, "title": response.css_first("title").text()}
                for link in response.css("a[href]"):
                    yield response.follow(link, callback=self.parse)
    """

    name: ClassVar[str] = ""
    # instance attributes too: a spider may set them in __init__ from its arguments; a
    # string of start_urls (from -a start_urls=...) holds URLs separated by whitespace
    start_urls: Sequence[str] | str = ()
    allowed_domains: Sequence[str] = ()
    custom_settings: ClassVar[dict[str, Any]] = {}
    handle_httpstatus_list: Sequence[int] = ()
    settings: Settings
    crawler: CrawlerProtocol  # the Crawler running it (settings, stats, signals), once it runs

    def __init__(self, **kwargs: Any) -> None:
        """Spider arguments (`-a key=value`) arrive here and become attributes."""
        # what the spider keeps across a job's runs (JSON-serialisable; see --job-dir)
        self.state: dict[str, Any] = {}
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.logger = logging.getLogger(f"crawler.spider.{self.name or type(self).__name__}")

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol, *args: Any, **kwargs: Any) -> Spider:
        """Build the spider for `crawler` (Scrapy's hook): override it to read
        `crawler.settings`, connect to `crawler.signals` or keep `crawler.stats`, calling
        `super().from_crawler(crawler, *args, **kwargs)` first. Called when a crawl is
        given the spider's class (the CLI does when the class overrides it)."""
        spider = cls(*args, **kwargs)
        spider.crawler = crawler
        return spider

    async def start(self) -> AsyncIterator[Any]:
        """Seed the crawl with Requests (and items). Defaults to `start_requests()`."""
        for request in self.start_requests():
            yield request

    def start_requests(self) -> Iterable[Request]:
        """Scrapy's synchronous seeding hook: one Request per `start_urls` entry."""
        for url in start_url_list(self.start_urls):
            yield Request(url, dont_filter=True)

    @classmethod
    def uses_start_urls(cls) -> bool:
        """Whether seeding is the default one from `start_urls` (not overridden)."""
        return cls.start is Spider.start and cls.start_requests is Spider.start_requests

    def parse(self, response: Response) -> Any:
        """The default callback; override it."""
        raise NotImplementedError(f"{type(self).__name__}.parse is not defined")

    def is_blocked(self, response: Response) -> bool:
        """Whether `response` shows that its session was banned (a captcha page, a block
        notice served with 200). With `sessions`, a blocked session is retired and the
        request retried on another; statuses in `ban_statuses` count without this."""
        return False

    def closed(self, reason: str) -> Any:
        """Called once when the crawl ends, with the finish reason."""
        return None


def start_url_list(start_urls: Sequence[str] | str) -> list[str]:
    """`start_urls` as a list: a string is split on whitespace (URLs contain none), so
    `-a start_urls="URL1 URL2"` gives two URLs and never one per character."""
    if isinstance(start_urls, str):
        return start_urls.split()
    return list(start_urls)
