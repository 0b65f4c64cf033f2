"""Crawl counters, reported at the end and written by `--stats PATH`."""

from __future__ import annotations

import resource
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_HOSTS_REPORTED = 100  # the busiest hosts listed in the stats


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
    retries: int = 0
    robots_disallowed: int = 0
    status_counts: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_seconds: float = 0.0
    max_loop_stall: float = 0.0  # longest time the event loop was unresponsive
    finish_reason: str = ""
    hosts: dict[str, list[float]] = field(default_factory=dict)  # host -> [requests, latency]

    def record_host(self, key: str, latency: float) -> None:
        entry = self.hosts.get(key)
        if entry is None:
            self.hosts[key] = [1, latency]
        else:
            entry[0] += 1
            entry[1] += latency

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
            "retries": self.retries,
            "robots_disallowed": self.robots_disallowed,
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
            "errors": dict(sorted(self.errors.items())),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "max_loop_stall_seconds": round(self.max_loop_stall, 4),
            "peak_rss_mb": _peak_rss_mb(),
            "pages_per_second": round(self.pages / self.elapsed_seconds, 1)
            if self.elapsed_seconds
            else 0.0,
            "finish_reason": self.finish_reason,
            "hosts": {
                host: {"requests": int(n), "mean_latency": round(total / n, 4)}
                for host, (n, total) in sorted(
                    self.hosts.items(), key=lambda kv: -kv[1][0])[:_HOSTS_REPORTED]
            },
        }


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
