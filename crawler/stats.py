"""Crawl counters, reported at the end and written by `--stats PATH`."""

from __future__ import annotations

import resource
import sys
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CURRENT", "Stats", "count", "failed_monitors", "nothing_done", "summary"]

_HOSTS_REPORTED = 100  # the busiest hosts listed in the stats
_HOSTS_TRACKED = 10_000  # hosts counted at once; past twice that, the least busy are let go


@dataclass(slots=True)
class Stats:
    """What happened during a crawl. Every dropped or failed request lands in one counter."""

    start_requests: int = 0  # requests seeded by the spider's start()
    pages: int = 0  # responses received, any status
    pages_before: int = 0  # ... of those, by earlier runs of the same job (--job-dir)
    items: int = 0  # items written to the outputs
    items_dropped: int = 0  # by pipelines (DropItem or None)
    requests_scheduled: int = 0
    requests_failed: int = 0  # final failures; `errors` says why
    duplicates_filtered: int = 0
    offsite_dropped: int = 0
    invalid_url: int = 0  # unparseable, relative without a base, or longer than 8 KiB
    unsupported_scheme: int = 0  # mailto:, javascript:, ftp:, ...
    depth_limited: int = 0
    url_too_long: int = 0  # over max_url_length
    host_limited: int = 0  # over max_requests_per_host
    query_variants_limited: int = 0  # over max_query_variants
    queue_full: int = 0  # new requests refused while the frontier held max_queued
    redirects: int = 0
    retries: int = 0
    robots_disallowed: int = 0
    slow_callbacks: int = 0  # callback steps that blocked the event loop
    status_counts: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)  # plugins' ("httpcache/hit")
    elapsed_seconds: float = 0.0
    max_loop_stall: float = 0.0  # longest time the event loop was unresponsive
    finish_reason: str = ""
    hosts: dict[str, list[float]] = field(default_factory=dict)  # host -> [requests, latency]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # per output, at close
    monitors: list[dict[str, Any]] = field(default_factory=list)  # their latest results

    # Scrapy's stats API (crawler.stats.inc_value("my/key")): names of our own counters
    # ("pages", "items", "retries", ...) are those; any other name is a counter of its own

    def get_value(self, key: str, default: Any = None) -> Any:
        if key in _FIELDS:
            return getattr(self, key)
        return self.counters.get(key, default)

    def set_value(self, key: str, value: Any) -> None:
        if key in _FIELDS:
            setattr(self, key, value)
        else:
            self.counters[key] = value

    def inc_value(self, key: str, count: int | float = 1, start: int | float = 0) -> None:
        self.set_value(key, self.get_value(key, start) + count)

    def max_value(self, key: str, value: Any) -> None:
        current = self.get_value(key)
        self.set_value(key, value if current is None else max(current, value))

    def min_value(self, key: str, value: Any) -> None:
        current = self.get_value(key)
        self.set_value(key, value if current is None else min(current, value))

    def get_stats(self) -> dict[str, Any]:
        return self.as_dict()

    def record_host(self, key: str, latency: float) -> None:
        entry = self.hosts.get(key)
        if entry is None:
            if len(self.hosts) >= 2 * _HOSTS_TRACKED:  # bounded: keep the busiest
                busiest = sorted(self.hosts.items(), key=lambda kv: -kv[1][0])
                self.hosts = dict(busiest[:_HOSTS_TRACKED])
            self.hosts[key] = [1, latency]
        else:
            entry[0] += 1
            entry[1] += latency

    def as_dict(self) -> dict[str, Any]:
        return {
            "start_requests": self.start_requests,
            "pages": self.pages,
            "pages_before": self.pages_before,
            "items": self.items,
            "items_dropped": self.items_dropped,
            "requests_scheduled": self.requests_scheduled,
            "requests_failed": self.requests_failed,
            "duplicates_filtered": self.duplicates_filtered,
            "offsite_dropped": self.offsite_dropped,
            "invalid_url": self.invalid_url,
            "unsupported_scheme": self.unsupported_scheme,
            "depth_limited": self.depth_limited,
            "url_too_long": self.url_too_long,
            "host_limited": self.host_limited,
            "query_variants_limited": self.query_variants_limited,
            "queue_full": self.queue_full,
            "redirects": self.redirects,
            "retries": self.retries,
            "robots_disallowed": self.robots_disallowed,
            "slow_callbacks": self.slow_callbacks,
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
            # str(): a Kind key (a StrEnum) is its text; JSON encoders take plain str keys
            "errors": {str(k): v for k, v in sorted(self.errors.items())},
            "counters": {str(k): v for k, v in sorted(self.counters.items())},
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "max_loop_stall_seconds": round(self.max_loop_stall, 4),
            "peak_rss_mb": _peak_rss_mb(),
            # this run's pages over this run's time (a resumed job counts earlier runs' too)
            "pages_per_second": round((self.pages - self.pages_before)
                                      / self.elapsed_seconds, 1)
            if self.elapsed_seconds
            else 0.0,
            "finish_reason": self.finish_reason,
            "outputs": self.outputs,
            "monitors": self.monitors,
            "hosts": {
                host: {"requests": int(n), "mean_latency": round(total / n, 4)}
                for host, (n, total) in sorted(
                    self.hosts.items(), key=lambda kv: -kv[1][0])[:_HOSTS_REPORTED]
            },
        }


CURRENT: ContextVar[Stats | None] = ContextVar("crawler_stats", default=None)
"""The running crawl's stats, for code a crawl calls that is handed no crawler (a
response's extraction helpers): the engine sets it; its tasks inherit it."""


def count(key: str, n: int = 1) -> None:
    """Add to a counter of the running crawl, if any (on the event loop's thread)."""
    stats = CURRENT.get()
    if stats is not None:
        stats.counters[key] += n


_FIELDS = frozenset({
    "start_requests", "pages", "items", "items_dropped", "requests_scheduled",
    "requests_failed", "duplicates_filtered", "offsite_dropped", "invalid_url",
    "unsupported_scheme", "depth_limited", "url_too_long", "host_limited",
    "query_variants_limited", "queue_full", "redirects", "retries", "robots_disallowed",
    "slow_callbacks"})


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB: Linux's VmHWM, the high-water
    mark of this program's own memory. (getrusage's ru_maxrss survives exec(): a crawl
    started by a large process, a test runner or the crawl service, would report its
    parent's size.)"""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


_DROPPED = (("duplicates_filtered", "duplicates"), ("offsite_dropped", "off-site"),
            ("robots_disallowed", "robots.txt disallowed"), ("invalid_url", "invalid URL"),
            ("unsupported_scheme", "unsupported scheme"), ("depth_limited", "past max_depth"),
            ("url_too_long", "URL too long"), ("host_limited", "past max_requests_per_host"),
            ("query_variants_limited", "past max_query_variants"),
            ("queue_full", "frontier full"), ("items_dropped", "items dropped by pipelines"))


def summary(stats: dict[str, Any]) -> str:
    """The one-line report printed at the end of a crawl."""
    dropped = ", ".join(f"{stats[key]} {label}" for key, label in _DROPPED if stats[key])
    errors = ", ".join(f"{k}={v}" for k, v in stats["errors"].items()) or "none"
    resumed = f" ({stats['pages'] - stats['pages_before']} this run)" \
        if stats.get("pages_before") else ""
    counters = stats.get("counters", {})
    changes = ", ".join(f"{counters[f'recrawl/{kind}']} {kind}" for kind in
                        ("new", "changed", "unchanged", "gone")
                        if counters.get(f"recrawl/{kind}"))  # a job's pages, judged
    return (f"crawl {stats['finish_reason']}: {stats['pages']} pages{resumed}"
            f"{f' ({changes})' if changes else ''}, {stats['items']} items, "
            f"{stats['requests_failed']} failed in {stats['elapsed_seconds']:.1f}s "
            f"({stats['pages_per_second']} pages/s); dropped: {dropped or 'none'}; "
            f"errors: {errors}{_monitors(stats.get('monitors', []))}")


def _monitors(results: list[dict[str, Any]]) -> str:
    if not results:
        return ""
    failed = [r["name"] for r in results if not r["passed"]]
    if not failed:
        return f"; monitors: {len(results)} passed"
    return f"; monitors: {len(failed)} of {len(results)} failed ({', '.join(failed)})"


def failed_monitors(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The monitors that failed, from the stats."""
    return [r for r in stats.get("monitors", []) if not r["passed"]]


def nothing_done(stats: dict[str, Any]) -> str | None:
    """Why a crawl that fetched no page and wrote no item did nothing; None if it did work."""
    if stats["pages"] or stats["items"]:
        return None
    if not stats["start_requests"]:
        if stats["finish_reason"] != "finished":
            return f"nothing was crawled: stopped ({stats['finish_reason']}) before the " \
                   "first request"
        if stats["errors"].get("start"):
            return "nothing was crawled: the spider's start() raised before its first " \
                   "request (the error is logged above)"
        return "nothing was crawled: the spider's start() produced no request"
    reasons = [f"{stats[key]} {label}" for key, label in _DROPPED[:-1] if stats[key]]
    if stats["requests_failed"]:
        kinds = ", ".join(f"{k}={v}" for k, v in stats["errors"].items())
        reasons.insert(0, f"{stats['requests_failed']} failed ({kinds})")
    why = "; ".join(reasons) or f"finish reason {stats['finish_reason']}"
    return f"nothing was crawled: no page could be fetched of {stats['start_requests']} " \
           f"start request(s): {why}"
