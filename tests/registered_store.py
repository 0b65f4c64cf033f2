"""A storage mode defined outside the package, as a user would: a frontier of its own
(an in-memory one that keeps the order in which pages completed) and a storage that holds
each page's items in a list until the page completes. Registered under `held://`."""

from __future__ import annotations

from typing import Any

from crawler import Request
from crawler.core.ratelimit import HostPolicy
from crawler.frontier import MemoryFrontier
from crawler.outputs.items import Record
from crawler.storage import register_storage
from crawler.storage.base import PageItems, Storage, StorageContext

STORES: list[HeldStorage] = []  # every one built, for the tests to look at


class ListFrontier(MemoryFrontier):
    """The memory frontier, remembering each request completed, in order."""

    def __init__(self, policy: HostPolicy | None = None, **kwargs: Any) -> None:
        super().__init__(policy, **kwargs)
        self.completed: list[str] = []

    async def ack(self, request: Request) -> None:
        self.completed.append(request.url)


class ListPage:
    """A page's items, held until the page completes."""

    def __init__(self) -> None:
        self.held: list[tuple[Record, Any]] = []

    def __len__(self) -> int:
        return len(self.held)

    async def add(self, record: Record, item: Any) -> None:
        self.held.append((record, item))

    def close(self) -> None:
        self.held = []


class HeldStorage(Storage):
    """Usage: `-s frontier=held://anything` once this module is imported."""

    def __init__(self, context: StorageContext, url: str) -> None:
        s = context.settings
        super().__init__(context, ListFrontier(HostPolicy.from_settings(s),
                                               dfs=s.crawl_order == "dfs"))
        self.url = url
        self.pages_written = 0
        STORES.append(self)

    def page(self, request: Request | None) -> PageItems:
        return ListPage() if request is not None else super().page(request)

    async def complete(self, request: Request, page: PageItems, keep: bool) -> None:
        assert isinstance(page, ListPage)
        outputs, stats = self.context.outputs, self.context.stats
        for record, _ in page.held:
            await outputs.write(record)
            stats.items += 1
        self.pages_written += bool(page.held)
        page.close()
        if not keep:
            await self.frontier.ack(request)


register_storage("held", HeldStorage)
