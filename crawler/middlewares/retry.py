"""Try failed requests again (Scrapy's RetryMiddleware), after an exponential backoff.

Transport failures of a retryable kind (timeout, connection, dns, payload) and responses
whose status is in `retry_http_codes` are queued again through the frontier with a
not-before time, so a backoff never holds a worker; `meta["dont_retry"]` opts a request
out, and `retries` bounds the tries. What is not retried goes on down the chain.

`get_retry_request(request, spider=..., reason=...)` is Scrapy's helper for a spider or a
middleware that decides itself that a page must be fetched again (a captcha, an empty
page): the request to yield or return, or None when its tries are used up (logged and
counted). A `Retry` a middleware returns is bounded the same way (crawler/core/processor.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from crawler.core.retry import RetryPolicy
from crawler.exceptions import RequestFailed
from crawler.http import Request, Response
from crawler.middlewares import Retry
from crawler.redact import redact

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["RetryMiddleware", "get_retry_request"]

logger = logging.getLogger(__name__)


class RetryMiddleware:
    def __init__(self, crawler: CrawlerProtocol) -> None:
        self._policy = RetryPolicy.from_settings(crawler.settings)
        self._crawler = crawler
        self._stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> RetryMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Response,
                               ) -> Response | Retry:
        if self._policy.retryable_status(response.status):
            return self._retry(request, response) or response
        return response

    def process_exception(self, request: Request, exc: Exception) -> Retry | None:
        if isinstance(exc, RequestFailed) and self._policy.retryable(exc.kind):
            return self._retry(request, None)
        return None

    def _retry(self, request: Request, response: Response | None) -> Retry | None:
        """Another try after its backoff; None when the tries are used up or the crawl
        is stopping."""
        wait = self._policy.delay(request, response)
        if wait is None or not self._crawler.running():
            return None
        attempt = request.meta.get("retry_times", 0) + 1  # (counted where every Retry is)
        logger.debug("retrying %s (try %d) in %.2fs", request.url, attempt + 1, wait)
        return Retry(request.replace(meta={**request.meta, "retry_times": attempt}), wait)


def get_retry_request(request: Request, *, spider: Any = None,
                      reason: str | Exception = "unspecified",
                      max_retry_times: int | None = None, priority_adjust: int | None = None,
                      logger: logging.Logger = logger, stats_base_key: str = "retry",
                      ) -> Request | None:
    """A copy of `request` to fetch again (`retry_times` one more, `dont_filter`, priority
    lowered by 1 unless `priority_adjust` says otherwise), or None when it was tried
    `max_retry_times` times already (default: `meta["max_retry_times"]`, else the
    `retries` setting). Counted in the spider's crawler's stats as Scrapy counts them
    (`retries`, `retry/reason_count/REASON`, `retry/max_reached`).

    Usage (in a callback): `yield get_retry_request(response.request, spider=self,
    reason="captcha") or {"url": response.url, "blocked": True}`."""
    crawler = getattr(spider, "crawler", None)
    stats = getattr(crawler, "stats", None)
    settings = getattr(crawler, "settings", None) or getattr(spider, "settings", None)
    if max_retry_times is None:
        max_retry_times = request.meta.get("max_retry_times")
    if max_retry_times is None:
        max_retry_times = settings.retries if settings is not None else 3
    tries = int(request.meta.get("retry_times", 0)) + 1
    why = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
    if tries > max_retry_times:
        logger.error("gave up retrying %s (failed %d times): %s", redact(request.url),
                     tries, why)
        if stats is not None:
            stats.counters[f"{stats_base_key}/max_reached"] += 1
        return None
    logger.debug("retrying %s (failed %d times): %s", redact(request.url), tries, why)
    if stats is not None:
        if stats_base_key == "retry":
            stats.retries += 1
        else:
            stats.counters[f"{stats_base_key}/count"] += 1
        stats.counters[f"{stats_base_key}/reason_count/{why}"] += 1
    return request.replace(meta={**request.meta, "retry_times": tries}, dont_filter=True,
                           priority=request.priority + (-1 if priority_adjust is None
                                                        else priority_adjust))
