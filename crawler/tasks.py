"""Background tasks an extension or a store starts and must end: one way to end them."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (None: nothing) and return once it has ended. Its cancellation is not
    raised here, but the caller's own is (awaiting the task under suppress(CancelledError)
    would swallow both); an exception the task ended with is raised."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.result()
