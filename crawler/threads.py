"""One thread of our own for work that must leave the event loop and keep its order: a
SQLite connection's calls (a job, the HTTP cache), an output file's writes.

`submit` hands a call over at once, in the caller's order, and returns the thread's own
future: another such thread may wait for it (a job's commit waits there for the output
writes of its cut, without a trip through the loop). `run` is the same, awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["OrderedThread"]


class OrderedThread:
    """Calls run in one thread, one at a time, in the order they were handed over.

    Usage: `thread = OrderedThread("job"); rows = await thread.run(db.execute, sql)`.
    """

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Hand `fn(*args)` over now; its future is the thread's (wrap it for the loop)."""
        return self._pool.submit(fn, *args)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def stop(self) -> None:
        """Let the thread end once what was handed over has run."""
        self._pool.shutdown(wait=False)
