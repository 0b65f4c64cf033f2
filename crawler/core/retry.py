"""When to try a request again, and how long to wait first.

Retries go back through the frontier with a not-before time, so a backoff never holds a
worker. Waits are exponential with full jitter; a Retry-After header on 429/503 is honoured
(up to `retry_backoff_max`) and also pauses the whole host.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

from crawler.core.ratelimit import BACKOFF_STATUSES
from crawler.exceptions import RETRYABLE, Kind
from crawler.http import Request, Response
from crawler.settings import Settings

__all__ = ["RetryPolicy", "backoff", "retry_after"]

_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Usage: `delay = RetryPolicy.from_settings(settings).delay(request)`."""

    # the defaults are Settings' own: one source for every default
    retries: int = _DEFAULTS.retries
    http_codes: frozenset[int] = frozenset(_DEFAULTS.retry_http_codes)
    base: float = _DEFAULTS.retry_backoff_base
    cap: float = _DEFAULTS.retry_backoff_max

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.retries, frozenset(settings.retry_http_codes),
                   settings.retry_backoff_base, settings.retry_backoff_max)

    def retryable(self, kind: Kind | str) -> bool:
        """Whether a failure of this kind is worth another try."""
        return kind in RETRYABLE

    def retryable_status(self, status: int) -> bool:
        return status in self.http_codes

    def delay(self, request: Request, response: Response | None = None) -> float | None:
        """Seconds to wait before the next try, or None when the tries are used up."""
        attempt = int(request.meta.get("retry_times", 0))
        if attempt >= self.retries or request.meta.get("dont_retry"):
            return None
        wait = backoff(attempt, self.base, self.cap)
        pause = self.host_pause(response)
        return max(wait, pause or 0.0)

    def host_pause(self, response: Response | None) -> float | None:
        """Seconds the response's Retry-After asks the whole host to wait, capped."""
        if response is None or response.status not in BACKOFF_STATUSES:
            return None
        seconds = retry_after(response.headers.get("Retry-After"))
        return None if seconds is None else min(seconds, self.cap)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0, min(cap, base * 2**attempt))


def retry_after(value: str | None) -> float | None:
    """Parse Retry-After: delta-seconds or an HTTP date; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())
