"""What every storage mode is: the frontier it owns, where a page's items wait until the
page is complete, what completing a page means, and the background work it needs.

The engine, the processor and the scraper talk to a `Storage` and never ask which one it
is. The base class is the in-memory behaviour (items written as they come, nothing to
commit); the job directory and the fleet override what they keep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from crawler.http import Request, Response
from crawler.signals import Signal, Signals
from crawler.stats import Stats

if TYPE_CHECKING:
    from crawler.core.robots import SharedRules
    from crawler.frontier import Frontier
    from crawler.frontier.pagerecords import PageRecords
    from crawler.outputs.items import Record
    from crawler.outputs.outputs import Outputs
    from crawler.recrawl.history import Change
    from crawler.settings import Settings
    from crawler.spider import Spider

__all__ = ["PageItems", "Storage", "StorageContext", "WriteThrough"]


@dataclass(frozen=True, slots=True)
class StorageContext:
    """What a storage mode is built from."""

    spider: Spider
    settings: Settings
    stats: Stats
    signals: Signals
    outputs: Outputs
    fingerprint: Callable[[Request], bytes]
    restart: bool = False  # --restart: a job dir forgets its state first


class PageItems(Protocol):
    """Where the items of one page (or of start()) go as its callback yields them."""

    def __len__(self) -> int:
        """Items held, not yet written (0 when they are written as they come)."""

    async def add(self, record: Record, item: Any) -> None:
        """One item, serialised (`record`), and the object the callback yielded."""

    def close(self) -> None:
        """Release what is held (a spill file); called on every path."""


class WriteThrough:
    """Items written to the outputs as they come, counted and signalled at once."""

    __slots__ = ("_context", "_request")

    def __init__(self, context: StorageContext, request: Request | None) -> None:
        self._context = context
        self._request = request

    def __len__(self) -> int:
        return 0

    async def add(self, record: Record, item: Any) -> None:
        context = self._context
        await context.outputs.write(record)
        context.stats.items += 1
        if context.signals.wants(Signal.ITEM_SCRAPED):
            await context.signals.send(Signal.ITEM_SCRAPED, item=item, request=self._request,
                                       spider=context.spider)

    def close(self) -> None:
        return None


Task = tuple[str, Coroutine[Any, Any, None]]


class Storage:
    """A crawl's state, kept one way. Usage, by the engine: `await storage.prepare()`,
    `await storage.open()`, `await storage.started()`, `storage.tasks(...)` run beside the
    workers, `await storage.finish(...)`, `await storage.close()` on every path; by the
    processor: `page = storage.page(request)`, then `await storage.complete(request,
    page, keep)`."""

    frontier: Frontier
    robots_at_fetch = False  # robots.txt checked as each request is fetched, not queued
    resumed = False  # a stored crawl goes on: start() yields only what is new
    keeps_history = False  # revisit() and judge() do something (crawler/recrawl/)
    continuous = False  # the crawl does not end: await_due() brings the next pages

    def __init__(self, context: StorageContext, frontier: Frontier) -> None:
        self.context = context
        self.frontier = frontier
        self._open = False

    @property
    def shared_rules(self) -> SharedRules | None:
        """Where the crawl's processes share what each robots.txt said, if they do."""
        return None

    async def prepare(self) -> bool:
        """Before the start URLs are checked and any output is touched: restore what was
        stored. False: there is nothing to do (a finished job), said in the log."""
        return True

    async def open(self) -> None:
        """Open the frontier (a StartupError, before any output is touched, when it cannot
        be)."""
        await self.frontier.open(self.context.spider)
        self._open = True

    async def started(self) -> None:
        """The outputs are open and the workers about to start."""

    def tasks(self, changed: Callable[[], None]) -> list[Task]:
        """Background work beside the workers (named coroutines, cancelled at the end);
        `changed()` when what is pending may have changed."""
        return []

    def page(self, request: Request | None) -> PageItems:
        """Where the items of `request`'s page (None: start()'s) go until it completes."""
        return WriteThrough(self.context, request)

    async def complete(self, request: Request, page: PageItems, keep: bool) -> None:
        """`request`'s callback (or errback) ended; `keep`: it goes on under the same
        entry (a retry, a redirect). Owns `page` from here: closes it, or keeps it until
        its items are written."""
        page.close()
        if not keep:
            await self.frontier.ack(request)

    async def write_page(self, records: PageRecords) -> None:
        """Hand a complete page's held records to the outputs, counted (the modes that hold
        a page's items until it completes)."""
        held, write = records.in_memory(), self.context.outputs.write
        if held is not None:  # the common case: a few items, in memory
            for record, _ in held:
                await write(record)
        else:
            async for record, _ in records.replay():
                await write(record)
        self.context.stats.items += len(records)

    async def signal_page(self, request: Request, records: PageRecords) -> None:
        """item_scraped for each of a page's records, now that they are written."""
        context = self.context
        if len(records) and context.signals.wants(Signal.ITEM_SCRAPED):
            async for _, item in records.replay():
                await context.signals.send(Signal.ITEM_SCRAPED, item=item, request=request,
                                           spider=context.spider)

    async def revisit(self, request: Request) -> None:
        """Before `request` is fetched: what the page's history asks of it (conditional
        headers). Called only when `keeps_history`."""

    def judge(self, request: Request, response: Response) -> Change | None:
        """What `response` (before its callback, or failing) shows of its page against its
        history, kept to be stored when the page completes. Only when `keeps_history`."""
        return None

    async def await_due(self) -> None:
        """Nothing is left: wait until pages are due again and queue them (`continuous`
        only; the engine cancels it on a stop)."""

    def fetched(self, request: Request) -> None:
        """A response was received for `request` (from the network or a cache)."""

    def idle(self) -> None:
        """No worker is busy: what waits for a quiet moment may go now."""

    async def finish(self, finished: Callable[[], Awaitable[bool]]) -> None:
        """The workers stopped: store what is left; `finished()` says whether the crawl
        ran to its end. JobFailed when that cannot be stored."""

    def seeding_done(self) -> None:
        """start() ran to its end."""

    def seeded(self) -> bool:
        """On a resume: whether start() had reached its end (its items were written)."""
        return False

    async def snapshot(self) -> dict[str, Any]:
        """This mode's part of the crawl's status (the status page, `crawl status`)."""
        return {}

    async def close(self) -> None:
        """Release the frontier and whatever else is held; on every path."""
        if self._open:
            self._open = False
            await self.frontier.close()
