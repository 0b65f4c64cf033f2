"""Type aliases shared across modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from crawler.http import Failure

Item: TypeAlias = Any
"""A scraped item: a dict, a dataclass instance, or anything the exporters can serialise."""

CallbackResult: TypeAlias = (
    AsyncIterator[Any] | Awaitable[Iterable[Any] | None] | Iterable[Any] | None
)
Callback: TypeAlias = Callable[..., CallbackResult]
"""A spider callback: async generator, coroutine, generator or plain function."""

Errback: TypeAlias = Callable[["Failure"], CallbackResult]
"""Called with a Failure when a request finally fails; may yield items and requests."""
