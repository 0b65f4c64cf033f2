"""The Spider base class users subclass."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from crawler.http import Request

if TYPE_CHECKING:
    from crawler.http import Response
    from crawler.settings import Settings


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
    # instance attributes too: a spider may set them in __init__ from its arguments
    start_urls: Sequence[str] = ()
    allowed_domains: Sequence[str] = ()
    custom_settings: ClassVar[dict[str, Any]] = {}
    handle_httpstatus_list: Sequence[int] = ()
    settings: Settings

    def __init__(self, **kwargs: Any) -> None:
        """Spider arguments (`-a key=value`) arrive here and become attributes."""
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.logger = logging.getLogger(f"crawler.spider.{self.name or type(self).__name__}")

    async def start(self) -> AsyncIterator[Any]:
        """Seed the crawl with Requests (and items). Defaults to `start_requests()`."""
        for request in self.start_requests():
            yield request

    def start_requests(self) -> Iterable[Request]:
        """Scrapy's synchronous seeding hook: one Request per `start_urls` entry."""
        for url in self.start_urls:
            yield Request(url, dont_filter=True)

    def parse(self, response: Response) -> Any:
        """The default callback; override it."""
        raise NotImplementedError(f"{type(self).__name__}.parse is not defined")

    def closed(self, reason: str) -> Any:
        """Called once when the crawl ends, with the finish reason."""
        return None
