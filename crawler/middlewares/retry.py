"""Try failed requests again (Scrapy's RetryMiddleware), after an exponential backoff.

Transport failures of a retryable kind (timeout, connection, dns, payload) and responses
whose status is in `retry_http_codes` are queued again through the frontier with a
not-before time, so a backoff never holds a worker; `meta["dont_retry"]` opts a request
out, and `retries` bounds the tries. What is not retried goes on down the chain.
"""

from __future__ import annotations

import logging
from typing import Any

from crawler.exceptions import RequestFailed
from crawler.http import Request, Response
from crawler.middlewares import Retry
from crawler.retry import RetryPolicy

__all__ = ["RetryMiddleware"]

logger = logging.getLogger("crawler.engine")


class RetryMiddleware:
    def __init__(self, crawler: Any) -> None:
        self._policy = RetryPolicy.from_settings(crawler.settings)
        self._crawler = crawler
        self._stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> RetryMiddleware:
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
        attempt = request.meta.get("retry_times", 0) + 1
        self._stats.retries += 1
        logger.debug("retrying %s (try %d) in %.2fs", request.url, attempt + 1, wait)
        return Retry(request.replace(meta={**request.meta, "retry_times": attempt}), wait)
