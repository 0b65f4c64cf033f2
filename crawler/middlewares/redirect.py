"""Follow 3xx responses with a Location as new requests (Scrapy's RedirectMiddleware).

Redirects are not followed by the HTTP client: each hop is a request of its own, so it
passes the same admission checks (off-site, robots.txt, duplicates) and politeness as any
other. 301/302 turn a POST into a GET (as browsers do), 303 anything into a GET, 307/308
keep the method and body. `meta["redirect_urls"]` holds the chain; a loop, a chain longer
than `max_redirects` or a Location that is not an http(s) URL fails the request with its
kind. `meta["dont_redirect"]`, or a status the spider handles, passes the response on.

Credentials stay with their origin: a redirect to another scheme, host or port drops the
request's `Authorization`, `Cookie` and cookies, and every header whose name says it
carries a secret (`X-Api-Key`, `X-Auth-Token`, `X-Session-Id`, ...), as browsers, curl
and Scrapy drop theirs; the cookie jar then adds the target's own cookies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from yarl import URL

from crawler.exceptions import DownloadError, Kind
from crawler.http import Request, Response
from crawler.http.urls import parse_url
from crawler.middlewares.httperror import handles
from crawler.redact import carries_secret

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["RedirectMiddleware"]


class RedirectMiddleware:
    def __init__(self, crawler: CrawlerProtocol) -> None:
        self._max = crawler.settings.max_redirects
        self._handled = frozenset(crawler.spider.handle_httpstatus_list)
        self._stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> RedirectMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Response,
                               ) -> Response | Request:
        status = response.status
        if not 300 <= status < 400 or "Location" not in response.headers \
                or request.meta.get("dont_redirect") or handles(self._handled, request, status):
            return response
        return self._redirected(request, response)

    def _redirected(self, request: Request, response: Response) -> Request:
        times = request.meta.get("redirect_times", 0) + 1
        chain: list[str] = [*request.meta.get("redirect_urls", ()), request.url]
        location = response.headers["Location"]
        if times > self._max:
            raise DownloadError(Kind.TOO_MANY_REDIRECTS, f"more than {self._max} redirects",
                                request)
        try:
            joined = URL(response.url).join(URL(location.strip())).with_fragment(None)
        except (ValueError, TypeError):
            joined = None
        parsed = parse_url(joined) if joined is not None else Kind.INVALID_URL
        if isinstance(parsed, str):  # javascript:, mailto:, a broken Location
            raise DownloadError(
                parsed, f"redirect to {location[:200]!r}: {parsed.replace('_', ' ')}", request)
        target = str(parsed)
        if target in chain:
            raise DownloadError(Kind.REDIRECT_LOOP, f"redirect loop back to {target}", request)
        keep_method = response.status in (307, 308) or (
            response.status in (301, 302) and request.method in ("GET", "HEAD"))
        self._stats.redirects += 1
        changes: dict[str, Any] = {}
        if _origin(parsed) != _origin(request.yurl):  # credentials stay with their origin
            changes["cookies"] = None
            if request.headers:
                kept = [(k, v) for k, v in request.headers.items()
                        if k.lower() == "proxy-authorization" or not carries_secret(k)]
                changes["headers"] = kept + [(name, None) for name in request.dropped_headers]
        return request.replace(
            url=target,
            method=request.method if keep_method else "GET",
            body=request.body if keep_method else b"",
            meta={**request.meta, "redirect_times": times, "redirect_urls": chain},
            **changes,
        )


def _origin(url: URL) -> tuple[str, str, int | None]:
    return url.scheme, (url.host or "").lower(), url.port
