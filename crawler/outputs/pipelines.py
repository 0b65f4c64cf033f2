"""Item pipelines: ordered steps every item passes before it is written.

Usage:
    class RequirePrice:
        async def process_item(self, item, spider):
            if not item.get("price"):
                raise DropItem("no price")
            return item

    custom_settings = {"item_pipelines": [RequirePrice]}   # or "myproject.pipelines.RequirePrice"

A pipeline class with a `from_crawler(crawler)` classmethod is built with it, and reads
`crawler.settings`, `crawler.stats` and `crawler.spider` there (Scrapy's convention).
A plain (sync) `process_item`, `open_spider` or `close_spider` runs in the crawl's plugin
thread, one call at a time, so blocking code there never holds the event loop.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Protocol

from crawler.core.plugins import PluginThread, build, start
from crawler.exceptions import DropItem, StartupError

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol
    from crawler.spider import Spider


__all__ = ["Pipeline", "load_pipelines", "process"]


class Pipeline(Protocol):
    """`process_item` is required; `open_spider` and `close_spider` are optional."""

    def process_item(self, item: Any, spider: Spider) -> Any:
        """Return the item (possibly changed), or None / raise DropItem to drop it."""


def load_pipelines(specs: tuple[Any, ...], crawler: CrawlerProtocol) -> list[Any]:
    """Build pipelines from classes, instances or dotted 'module.Class' paths."""
    pipelines = []
    for spec in specs:
        instance = build(spec, crawler, "item pipeline")
        if instance is None:  # NotConfigured
            continue
        if not callable(getattr(instance, "process_item", None)):
            raise StartupError(f"item pipeline {spec!r} has no process_item() method")
        pipelines.append(instance)
    return pipelines


async def process(pipelines: list[Any], item: Any, spider: Spider,
                  thread: PluginThread | None = None) -> Any:
    """Pass `item` through every pipeline; raises DropItem when one drops it. A sync
    `process_item` runs in `thread` (inline without one)."""
    for pipeline in pipelines:
        result = start(pipeline.process_item, item, spider, thread=thread)
        for _ in range(2):  # the thread's future, then a coroutine a sync method returned
            if inspect.isawaitable(result):
                result = await result
        if result is None:
            raise DropItem(f"{type(pipeline).__name__} returned None")
        item = result
    return item
