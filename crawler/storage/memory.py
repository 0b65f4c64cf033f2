"""The default storage mode: the crawl's state lives in this process and ends with it."""

from __future__ import annotations

from crawler.core.ratelimit import HostPolicy
from crawler.frontier import Frontier, MemoryFrontier
from crawler.storage.base import Storage, StorageContext

__all__ = ["MemoryStorage"]


class MemoryStorage(Storage):
    """Usage: `MemoryStorage(context)`, or with a frontier of the caller's:
    `MemoryStorage(context, frontier)`. Items are written as callbacks yield them; a
    request is complete when its callback ends."""

    def __init__(self, context: StorageContext, frontier: Frontier | None = None) -> None:
        s = context.settings
        super().__init__(context, frontier if frontier is not None else MemoryFrontier(
            HostPolicy.from_settings(s), dfs=s.crawl_order == "dfs"))
