"""Every error the crawler raises, under one root.

CrawlerError
 ├── UsageError            bad command line, unknown spider
 │    └── SettingsError    unknown setting or a value of the wrong type
 ├── StartupError          the crawl could not start: a plugin failed to build or open
 │    └── OutputError      an output that cannot be written (a directory, read-only, ...)
 ├── DropItem              raised by a pipeline to discard an item (Scrapy's name)
 ├── IgnoreRequest         raised anywhere to drop a request silently (Scrapy's name)
 ├── CloseSpider           raised in a callback to end the crawl with `reason`
 └── RequestFailed         a request that produced no usable response; `kind` says why
      ├── DownloadError    transport: timeout, connection, dns, too_large, payload, ...
      └── HttpError        a response whose status the spider does not handle
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.http import Request, Response


class CrawlerError(Exception):
    """Root of every error raised by the crawler."""


class UsageError(CrawlerError):
    """The command line or a spider lookup was wrong; the CLI exits with code 2."""


class SettingsError(UsageError):
    """An unknown setting name or a value that does not fit the setting's type."""


class StartupError(CrawlerError):
    """The crawl could not start as configured; nothing was fetched and no output was
    truncated. The CLI exits with code 2."""


class OutputError(StartupError):
    """An output cannot be written: checked before any file is opened for writing."""


class DropItem(CrawlerError):
    """Raised by an item pipeline to discard the item."""


class IgnoreRequest(CrawlerError):
    """Raised to drop a request without counting it as a failure."""


class CloseSpider(CrawlerError):
    """Raised from a callback to stop the crawl cleanly with `reason`."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class RequestFailed(CrawlerError):
    """A request ended without a response the spider handles.

    `kind` is the stats key the failure is counted under (``timeout``, ``http_404``, ...).
    """

    def __init__(self, kind: str, message: str, request: Request | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.request = request


class DownloadError(RequestFailed):
    """The transport failed: timeout, refused connection, DNS, oversized or broken body."""


class HttpError(RequestFailed):
    """The server answered with a status the spider did not ask to handle."""

    def __init__(self, response: Response) -> None:
        super().__init__(
            f"http_{response.status}",
            f"ignoring response <{response.status} {response.url}>: status not handled",
            response.request,
        )
        self.response = response
