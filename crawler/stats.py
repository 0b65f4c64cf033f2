"""Crawl counters, reported at the end and written by `--stats PATH`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Stats:
    """What happened during a crawl. Every dropped or failed request lands in one counter."""

    pages: int = 0  # responses received, any status
    items: int = 0  # items written to the outputs
    items_dropped: int = 0  # by pipelines (DropItem or None)
    requests_scheduled: int = 0
    requests_failed: int = 0  # final failures; `errors` says why
    duplicates_filtered: int = 0
    offsite_dropped: int = 0
    invalid_url: int = 0  # unparseable, relative without a base, or longer than 8 KiB
    unsupported_scheme: int = 0  # mailto:, javascript:, ftp:, ...
    depth_limited: int = 0
    redirects: int = 0
    status_counts: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_seconds: float = 0.0
    finish_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "items": self.items,
            "items_dropped": self.items_dropped,
            "requests_scheduled": self.requests_scheduled,
            "requests_failed": self.requests_failed,
            "duplicates_filtered": self.duplicates_filtered,
            "offsite_dropped": self.offsite_dropped,
            "invalid_url": self.invalid_url,
            "unsupported_scheme": self.unsupported_scheme,
            "depth_limited": self.depth_limited,
            "redirects": self.redirects,
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
            "errors": dict(sorted(self.errors.items())),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "pages_per_second": round(self.pages / self.elapsed_seconds, 1)
            if self.elapsed_seconds
            else 0.0,
            "finish_reason": self.finish_reason,
        }
