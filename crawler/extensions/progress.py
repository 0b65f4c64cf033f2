"""The live progress display on a terminal (rich), and the stats table at the end.

On when the `progress` setting is (the CLI sets it when stderr is a terminal and
`--no-progress` is not given); the periodic log line is used otherwise.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from crawler.signals import Signal
from crawler.stats import Stats
from crawler.tasks import cancel_and_wait

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["LiveProgress", "stats_table"]

_REFRESH = 0.5  # seconds between redraws
_HOSTS_SHOWN = 5


class LiveProgress:
    """An extension drawing pages, items, pages/s, in flight, queued, failed, retries,
    errors by kind and the busiest hosts, from spider_opened to spider_closed."""

    def __init__(self, crawler: CrawlerProtocol, console: Console) -> None:
        self._crawler = crawler
        self._console = console
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> LiveProgress | None:
        if not crawler.settings.progress:
            return None
        ext = cls(crawler, progress_console())
        crawler.signals.connect(Signal.SPIDER_OPENED, ext.spider_opened)
        crawler.signals.connect(Signal.SPIDER_CLOSED, ext.spider_closed)
        return ext

    def spider_opened(self) -> None:
        self._task = asyncio.create_task(self._draw(), name="live progress")

    async def spider_closed(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _draw(self) -> None:
        c = self._crawler
        loop = asyncio.get_running_loop()
        name = c.spider.name
        started = loop.time()
        last_pages, last_time, rate = c.stats.pages, started, 0.0
        with Live(console=self._console, auto_refresh=False, transient=True) as live:
            while True:
                await asyncio.sleep(_REFRESH)
                now = loop.time()
                stats: Stats = c.stats
                # pages/s over the last few seconds, smoothed
                current = (stats.pages - last_pages) / max(now - last_time, 1e-6)
                rate = current if not rate else 0.7 * rate + 0.3 * current
                last_pages, last_time = stats.pages, now
                now_ = await c.snapshot(hosts=0)
                in_flight, queued = now_["in_flight"], now_["queued"]
                live.update(_panel(name, stats, rate, in_flight, queued, now - started),
                            refresh=True)


_console: Console | None = None


def progress_console() -> Console:
    """The one stderr console the live display and the log lines share (rich prints log
    lines above the display instead of through it)."""
    global _console
    if _console is None:
        _console = Console(stderr=True)
    return _console


def _panel(name: str, stats: Stats, rate: float, in_flight: int, queued: int,
           elapsed: float) -> Group:
    counts = Table.grid(padding=(0, 2))
    for _ in range(8):
        counts.add_column(justify="right")
    counts.add_row("[bold]pages[/]", str(stats.pages), "[bold]items[/]", str(stats.items),
                   "[bold]pages/s[/]", f"{rate:.1f}", "[bold]elapsed[/]",
                   f"{elapsed:.0f}s")
    counts.add_row("[bold]in flight[/]", str(in_flight), "[bold]queued[/]", str(queued),
                   "[bold]failed[/]", str(stats.requests_failed), "[bold]retries[/]",
                   str(stats.retries))
    parts: list[Any] = [f"[bold cyan]{name}[/]", counts]
    if stats.errors:
        parts.append("errors: " + ", ".join(f"{k}={v}" for k, v in stats.errors.most_common(6)))
    hosts = sorted(stats.hosts.items(), key=lambda kv: -kv[1][0])[:_HOSTS_SHOWN]
    if hosts:
        table = Table("host", "requests", "mean latency", box=None, padding=(0, 2))
        for host, (requests, total) in hosts:
            table.add_row(host, str(int(requests)), f"{total / requests * 1000:.1f} ms")
        parts.append(table)
    return Group(*parts)


def stats_table(stats: dict[str, Any]) -> Table:
    """The final stats (those with something to say) as a two-column table."""
    table = Table(title=f"crawl {stats['finish_reason']}", show_header=False, box=None,
                  padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key in ("pages", "items", "requests_failed", "retries", "redirects",
                "duplicates_filtered", "offsite_dropped", "robots_disallowed", "items_dropped",
                "elapsed_seconds", "pages_per_second", "max_loop_stall_seconds",
                "peak_rss_mb"):
        value = stats.get(key)
        if value or key in ("pages", "items", "requests_failed"):
            table.add_row(key.replace("_", " "), str(value))
    for kind, count in stats["errors"].items():
        table.add_row(f"error: {kind}", str(count))
    for status, count in stats["status_counts"].items():
        table.add_row(f"status {status}", str(count))
    return table
