"""Every error the crawler raises, under one root::

    CrawlerError
     ├── UsageError            bad command line, unknown spider
     │    └── SettingsError    unknown setting or a value of the wrong type
     ├── StartupError          the crawl could not start: a plugin failed to build or open
     │    └── OutputError      an output that cannot be written (a directory, read-only, ...)
     ├── NotConfigured         raised by a plugin's from_crawler to leave itself out
     ├── DropItem              raised by a pipeline to discard an item (Scrapy's name)
     ├── IgnoreRequest         raised anywhere to drop a request silently (Scrapy's name)
     ├── CloseSpider           raised in a callback to end the crawl with `reason`
     ├── FrontierUnavailable   a shared frontier gone for longer than frontier_outage
     ├── JobFailed             a job dir whose progress cannot be stored (a full disk)
     └── RequestFailed         a request that produced no usable response; `kind` says why
          ├── DownloadError    transport: timeout, connection, dns, too_large, payload, ...
          └── HttpError        a response whose status the spider does not handle

`Kind` names why a request failed: the key it is counted under in the stats.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.http import Request, Response


__all__ = [
    "CloseSpider", "CrawlerError", "DownloadError", "DropItem", "FrontierUnavailable",
    "HttpError", "IgnoreRequest", "JobFailed",
    "Kind", "NotConfigured", "OutputError", "RequestFailed", "SettingsError", "StartupError",
    "UsageError", "http_kind",
]


class Kind(enum.StrEnum):
    """Why a request failed or was refused: the stats key it is counted under (`errors`).

    A member equals its string (`Kind.TIMEOUT == "timeout"`); HTTP statuses are
    `http_kind(404) == "http_404"`.
    """

    TIMEOUT = "timeout"  # no complete response within `timeout` (retried)
    CONNECTION = "connection"  # refused, reset, unreachable (retried)
    DNS = "dns"  # the name did not resolve, or not within dns_timeout (retried)
    TLS = "tls"  # certificate or handshake failure: not retried
    PAYLOAD = "payload"  # a body cut short or broken, a truncated gzip stream (retried)
    TOO_LARGE = "too_large"  # a body past max_response_size (meta["download_maxsize"])
    CONTENT_ENCODING = "content_encoding"  # an unknown Content-Encoding
    PROTOCOL = "protocol"  # broken HTTP framing
    INVALID_URL = "invalid_url"  # a URL that cannot be parsed (a link, a redirect)
    UNSUPPORTED_SCHEME = "unsupported_scheme"  # mailto:, ftp:, ... (a link, a redirect)
    INVALID_REQUEST = "invalid_request"  # a request the HTTP client refuses to send
    REDIRECT_LOOP = "redirect_loop"  # a redirect back to a URL of its own chain
    TOO_MANY_REDIRECTS = "too_many_redirects"  # a chain longer than max_redirects
    TOO_COMPLEX = "too_complex"  # HTML that would take seconds to parse
    ROBOTS_DISALLOWED = "robots_disallowed"  # robots.txt disallows it (IgnoreRequest)
    FORBIDDEN_ADDRESS = "forbidden_address"  # not public, and allow_private_addresses=false
    TOO_MANY_RETRIES = "too_many_retries"  # a middleware's Retry past the retries setting
    INTERNAL = "internal"  # a bug in the crawler or a plugin; the request is released
    BROWSER_TIMEOUT = "browser_timeout"  # a rendered page did not load (or settle) in time
    BROWSER_CRASH = "browser_crash"  # the browser or the page's renderer died: retried
    BROWSER_ERROR = "browser_error"  # the browser refused the navigation (a download, ...)


RETRYABLE = frozenset({Kind.TIMEOUT, Kind.CONNECTION, Kind.DNS, Kind.PAYLOAD,
                       Kind.BROWSER_CRASH})


def http_kind(status: int) -> str:
    """The kind of a response whose status is not handled: `http_<status>`."""
    return f"http_{status}"


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


class NotConfigured(CrawlerError):
    """Raised by a plugin's `from_crawler` when its settings leave it off (Scrapy's name):
    the plugin is left out of the crawl."""


class DropItem(CrawlerError):
    """Raised by an item pipeline to discard the item."""


class IgnoreRequest(CrawlerError):
    """Raised to drop a request without counting it as a failure."""


class CloseSpider(CrawlerError):
    """Raised from a callback to stop the crawl cleanly with `reason`."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class FrontierUnavailable(CrawlerError):
    """A shared frontier that stayed unreachable past `frontier_outage`: the crawl stops
    (finish reason frontier_unreachable); what was not acknowledged is redone on resume."""


class JobFailed(CrawlerError):
    """A job dir could not store the crawl's progress (a full disk, a read-only file): the
    crawl stops (finish reason job_failed) and resumes from its last commit."""


class RequestFailed(CrawlerError):
    """A request ended without a response the spider handles.

    `kind` is the stats key the failure is counted under (``timeout``, ``http_404``, ...).
    """

    def __init__(self, kind: str, message: str, request: Request | None = None) -> None:
        super().__init__(message)
        self.kind = str(kind)  # a plain string: the stats key
        self.request = request


class DownloadError(RequestFailed):
    """The transport failed: timeout, refused connection, DNS, oversized or broken body."""


class HttpError(RequestFailed):
    """The server answered with a status the spider did not ask to handle."""

    def __init__(self, response: Response) -> None:
        super().__init__(
            http_kind(response.status),
            f"ignoring response <{response.status} {response.url}>: HTTP status code is not "
            "handled or not allowed (handle_httpstatus_list)",
            response.request,
        )
        self.response = response
