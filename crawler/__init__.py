"""crawler: an asyncio-native web crawling and scraping framework."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler._version import __version__
from crawler.core.crawler import Crawler, CrawlResult
from crawler.core.state import CrawlerProtocol
from crawler.exceptions import (
    CloseSpider,
    CrawlerError,
    DownloadError,
    DropItem,
    HttpError,
    IgnoreRequest,
    Kind,
    NotConfigured,
    OutputError,
    RequestFailed,
    SettingsError,
    StartupError,
    UsageError,
)
from crawler.frontier import Frontier
from crawler.frontier.memory import MemoryFrontier
from crawler.handlers.http import Downloader, HttpDownloader
from crawler.http import Failure, FormRequest, JsonRequest, Request, Response
from crawler.http.links import Link, LinkExtractor
from crawler.middlewares import Retry
from crawler.middlewares.retry import get_retry_request
from crawler.outputs.files import Exporter
from crawler.outputs.formats import make_exporter
from crawler.outputs.sinks import Sink
from crawler.rules import CrawlSpider, Rule
from crawler.settings import Settings
from crawler.signals import Signal
from crawler.sitemaps import SitemapSpider
from crawler.spider import Spider
from crawler.stats import Stats

if TYPE_CHECKING:
    from crawler.extract.loader import ItemLoader


def __getattr__(name: str) -> object:
    """`ItemLoader` is imported when first asked for: it needs the `extract` extra."""
    if name == "ItemLoader":
        from crawler.extract.loader import ItemLoader

        return ItemLoader
    raise AttributeError(f"module 'crawler' has no attribute {name!r}")

__all__ = [
    "CloseSpider",
    "CrawlResult",
    "CrawlSpider",
    "Crawler",
    "CrawlerError",
    "CrawlerProtocol",
    "DownloadError",
    "Downloader",
    "DropItem",
    "Exporter",
    "Failure",
    "FormRequest",
    "Frontier",
    "HttpDownloader",
    "HttpError",
    "IgnoreRequest",
    "ItemLoader",
    "JsonRequest",
    "Kind",
    "Link",
    "LinkExtractor",
    "MemoryFrontier",
    "NotConfigured",
    "OutputError",
    "Request",
    "RequestFailed",
    "Response",
    "Retry",
    "Rule",
    "Settings",
    "SettingsError",
    "Signal",
    "Sink",
    "SitemapSpider",
    "Spider",
    "StartupError",
    "Stats",
    "UsageError",
    "__version__",
    "get_retry_request",
    "make_exporter",
]
