"""Extensions: objects built once per crawl that connect to its signals.

An extension is any class, built with `from_crawler(crawler)` when it defines one (or with
no arguments), that subscribes to `crawler.signals` there. The built-in ones come first,
then the `extensions` setting's, in order:

    class CountPages:
        @classmethod
        def from_crawler(cls, crawler):
            ext = cls()
            crawler.signals.connect(Signal.RESPONSE_RECEIVED, ext.seen)
            return ext

        def seen(self, response):
            ...

    custom_settings = {"extensions": [CountPages]}   # or "myproject.ext.CountPages"
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from crawler.core.plugins import build
from crawler.exceptions import NotConfigured
from crawler.extensions.monitor import log_progress
from crawler.signals import Signal
from crawler.tasks import cancel_and_wait

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["BUILTIN", "LogStats", "load_extensions"]


class LogStats:
    """The progress line (pages, pages/s, items, in flight, queued, failed, retries) every
    `log_interval` seconds, from spider_opened to spider_closed; off with 0."""

    def __init__(self, crawler: CrawlerProtocol) -> None:
        self._crawler = crawler
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> LogStats:
        ext = cls(crawler)
        if crawler.settings.log_interval and not crawler.settings.progress:
            crawler.signals.connect(Signal.SPIDER_OPENED, ext.spider_opened)
            crawler.signals.connect(Signal.SPIDER_CLOSED, ext.spider_closed)
        return ext

    def spider_opened(self) -> None:
        c = self._crawler
        self._task = asyncio.create_task(log_progress(
            c.stats, c.settings.log_interval, c.snapshot),
            name="progress")

    async def spider_closed(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


class _OnDemand:
    """A built-in extension whose module (rich, aiohttp.web: ~35 ms to import) is loaded
    only when its setting turns it on, not by every crawl and every `import crawler`."""

    path: ClassVar[str]

    @staticmethod
    def enabled(settings: Any) -> bool:
        raise NotImplementedError

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> Any:
        if not cls.enabled(crawler.settings):
            raise NotConfigured
        return build(cls.path, crawler, "extension")


class _LiveProgress(_OnDemand):
    path = "crawler.extensions.progress.LiveProgress"

    @staticmethod
    def enabled(settings: Any) -> bool:
        return bool(settings.progress)


class _StatusPage(_OnDemand):
    path = "crawler.extensions.status.StatusPage"

    @staticmethod
    def enabled(settings: Any) -> bool:
        return settings.status_port is not None


class _Monitors(_OnDemand):
    path = "crawler.extensions.monitors.Monitors"

    @staticmethod
    def enabled(settings: Any) -> bool:
        from crawler.extensions.monitors import declared

        return declared(settings)


BUILTIN: tuple[Any, ...] = (LogStats, _LiveProgress, _StatusPage, _Monitors)


def load_extensions(specs: tuple[Any, ...], crawler: CrawlerProtocol) -> list[Any]:
    """The built-in extensions, then those `specs` name (classes, instances, dotted paths)."""
    built = (build(spec, crawler, "extension") for spec in (*BUILTIN, *specs))
    return [extension for extension in built if extension is not None]
