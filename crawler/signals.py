"""Named signals a crawl sends, and the handlers extensions connect to them.

Usage (in an extension's `from_crawler`):
    crawler.signals.connect(Signal.ITEM_SCRAPED, self.item_scraped)

    async def item_scraped(self, item, request, spider): ...

Handlers are called with keyword arguments (each signal's are listed below; a handler may
take only those it needs, or `**kwargs`). Sync handlers run on the event loop and must be
quick; async ones are awaited in turn. A handler that raises is logged and counted
(`errors.signal_handler`), and the crawl goes on. A signal nobody listens to costs one
dictionary lookup.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Callable
from typing import Any

from crawler.stats import Stats

__all__ = ["Signal", "Signals"]

logger = logging.getLogger(__name__)


class Signal(enum.StrEnum):
    """The signals, with the keyword arguments their handlers get."""

    SPIDER_OPENED = "spider_opened"  # spider; outputs open, before the first request
    SPIDER_CLOSED = "spider_closed"  # spider, reason; outputs closed, before
    # close_spider and spider.closed()
    REQUEST_SCHEDULED = "request_scheduled"  # request, spider; a request (start or link)
    # is handed to the scheduler
    RESPONSE_RECEIVED = "response_received"  # response, request, spider; a response
    # arrives (network or cache), any status, before process_response
    ITEM_SCRAPED = "item_scraped"  # item, request, spider; written to every output
    ITEM_DROPPED = "item_dropped"  # item, request, exception, spider; a pipeline dropped it
    REQUEST_FAILED = "request_failed"  # request, failure, spider; after its last try
    ENGINE_IDLE = "engine_idle"  # spider; nothing queued or in flight: the crawl ends when
    # the handlers return unless they called crawler.schedule() (Scrapy's spider_idle)


class Signals:
    """Handlers by signal, called in the order they were connected."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._handlers: dict[Signal, list[tuple[Callable[..., Any], frozenset[str] | None]]] \
            = {}

    def connect(self, signal: Signal | str, handler: Callable[..., Any]) -> None:
        signal = Signal(signal)
        self._handlers.setdefault(signal, []).append((handler, _accepted(handler)))

    def disconnect(self, signal: Signal | str, handler: Callable[..., Any]) -> None:
        handlers = self._handlers.get(Signal(signal), [])
        handlers[:] = [(h, a) for h, a in handlers if h != handler]
        if not handlers:
            self._handlers.pop(Signal(signal), None)

    def wants(self, signal: Signal) -> bool:
        """Whether anyone listens: callers skip building the arguments when not."""
        return signal in self._handlers

    async def send(self, signal: Signal, **kwargs: Any) -> None:
        for handler, accepted in list(self._handlers.get(signal, ())):
            args = kwargs if accepted is None else \
                {k: v for k, v in kwargs.items() if k in accepted}
            try:
                result = handler(**args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("error in %s handler %s", signal,
                                 getattr(handler, "__qualname__", handler))
                self._stats.errors["signal_handler"] += 1


def _accepted(handler: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword arguments `handler` takes; None when it takes any (`**kwargs`)."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
