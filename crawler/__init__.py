"""crawler: an asyncio-native web crawling and scraping framework."""

from __future__ import annotations

__version__ = "0.1.0"

from crawler.engine import Crawler, CrawlResult
from crawler.exceptions import (
    CloseSpider,
    CrawlerError,
    DownloadError,
    DropItem,
    HttpError,
    IgnoreRequest,
    OutputError,
    RequestFailed,
    SettingsError,
    StartupError,
    UsageError,
)
from crawler.http import Failure, FormRequest, JsonRequest, Request, Response
from crawler.settings import Settings
from crawler.spider import Spider

__all__ = [
    "CloseSpider",
    "CrawlResult",
    "Crawler",
    "CrawlerError",
    "DownloadError",
    "DropItem",
    "Failure",
    "FormRequest",
    "HttpError",
    "IgnoreRequest",
    "JsonRequest",
    "OutputError",
    "Request",
    "RequestFailed",
    "Response",
    "Settings",
    "SettingsError",
    "Spider",
    "StartupError",
    "UsageError",
    "__version__",
]
