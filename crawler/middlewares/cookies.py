"""A cookie jar per crawl (Scrapy's CookiesMiddleware), on unless `cookies_enabled=False`.

Set-Cookie answers are stored and sent back to the URLs they match, as a browser does
(aiohttp's CookieJar decides: domain, path, expiry, Secure). A request's own
`Request(cookies={...})` are stored too, for its host; `meta["cookiejar"]` keeps separate
sessions in separate jars (Scrapy's key), and `meta["dont_merge_cookies"]` sends a request
with only its own cookies. With cookies off, a request's own cookies are still sent, by the
downloader, and nothing is stored. The jars are bounded: past `_MAX_COOKIES` cookies or
`_MAX_JARS` sessions new ones are refused, logged once and counted.
"""

from __future__ import annotations

import logging
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any

from aiohttp import CookieJar
from multidict import CIMultiDict

from crawler.exceptions import NotConfigured
from crawler.http import Request, Response

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["CookiesMiddleware", "cookie_header", "set_cookies"]

logger = logging.getLogger(__name__)

_MAX_COOKIES = 100_000  # cookies kept in all jars
_MAX_JARS = 10_000  # meta["cookiejar"] sessions


class CookiesMiddleware:
    def __init__(self, counters: Any) -> None:
        self._jars: dict[Any, CookieJar] = {}
        self._used: set[CookieJar] = set()  # jars that were given a cookie
        self._counters = counters
        self._warned = False

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> CookiesMiddleware:
        if not crawler.settings.cookies_enabled:
            raise NotConfigured
        return cls(crawler.stats.counters)

    def _jar(self, request: Request) -> CookieJar | None:
        meta = request._meta
        if meta and "session_id" in meta:
            return None  # the session's own jar (crawler/middlewares/sessions.py)
        key = meta.get("cookiejar") if meta else None
        jar = self._jars.get(key)
        if jar is None:
            if len(self._jars) >= _MAX_JARS:
                self._full("sessions")
                return None
            # unsafe: hosts given as IP addresses keep their cookies too
            jar = self._jars[key] = CookieJar(unsafe=True)
        return jar

    def process_request(self, request: Request) -> Request | None:
        meta = request._meta
        if meta and meta.get("dont_merge_cookies"):
            return None
        jar = self._jar(request)
        if jar is None:
            return None
        url = request.yurl
        if request.cookies:
            self._store(jar, SimpleCookie(request.cookies), url)
        if jar not in self._used:
            return None  # most crawls: no cookie at all, and nothing to look up
        cookie_header(jar, request)
        request.cookies = None  # now in the jar and the header: the downloader adds none
        return None

    def process_response(self, request: Request, response: Response) -> Response:
        meta = request._meta
        if meta and meta.get("dont_merge_cookies"):
            return response
        if "Set-Cookie" in response.headers:
            jar = self._jar(request)
            if jar is not None:
                self._store(jar, set_cookies(response, self._counters), response.request.yurl)
        return response

    def _store(self, jar: CookieJar, cookie: SimpleCookie, url: Any) -> None:
        if len(jar) >= _MAX_COOKIES // max(1, len(self._jars)):
            self._full("cookies")
            return
        jar.update_cookies(cookie, url)
        self._used.add(jar)

    def _full(self, what: str) -> None:
        self._counters["cookies/dropped"] += 1
        if not self._warned:
            self._warned = True
            logger.warning("the cookie jars are full (%d %s): new cookies are not stored "
                           "(counted as cookies/dropped)",
                           _MAX_JARS if what == "sessions" else _MAX_COOKIES, what)


def cookie_header(jar: CookieJar, request: Request) -> None:
    """Send the cookies of `jar` that match `request`'s URL (its Cookie header)."""
    cookies = jar.filter_cookies(request.yurl)
    if cookies:
        headers = CIMultiDict(request.headers or ())
        headers["Cookie"] = "; ".join(f"{m.key}={m.coded_value}" for m in cookies.values())
        request.headers = headers


def set_cookies(response: Response, counters: Any) -> SimpleCookie:
    """The cookies `response` sets (a malformed one is counted as cookies/invalid)."""
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", ()):
        try:
            cookie.load(header)
        except CookieError:
            counters["cookies/invalid"] += 1
    return cookie
