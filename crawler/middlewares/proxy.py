"""Send requests through a proxy (Scrapy's HttpProxyMiddleware).

A request's `meta["proxy"]` ("http://user:pass@host:port") always wins; None there sends it
directly. Without it, the usual environment variables are honoured: `http_proxy`,
`https_proxy` (per scheme, either case) and `no_proxy` (hosts that go directly). The
downloader sends the credentials of a proxy URL as Proxy-Authorization.
"""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING

from crawler.exceptions import NotConfigured
from crawler.http import Request

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["ProxyMiddleware"]


class ProxyMiddleware:
    def __init__(self, proxies: dict[str, str]) -> None:
        self._proxies = {k: v for k, v in proxies.items() if k in ("http", "https")}
        self._bypass = proxies.get("no", "")

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> ProxyMiddleware:
        proxies = urllib.request.getproxies_environment()
        if not any(proxies.get(scheme) for scheme in ("http", "https")):
            raise NotConfigured  # meta["proxy"] still works: the downloader reads it
        return cls(proxies)

    def process_request(self, request: Request) -> None:
        meta = request.meta
        if "proxy" in meta:
            return
        url = request.yurl
        proxy = self._proxies.get(url.scheme)
        if proxy and not self._bypassed(url.host or ""):
            meta["proxy"] = proxy

    def _bypassed(self, host: str) -> bool:
        if not self._bypass:
            return False
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        return bool(bypass(host, {"no": self._bypass}))
