"""Limits on the connections a server of ours accepts (the status page): a crawl's file
descriptors must not go to a flood of connections or to clients that send a request's
headers a byte at a time (slowloris).

`Guarded` wraps each connection's protocol (aiohttp's request handler): past
`max_connections` open at once a new connection is closed at once; a request whose
headers have not arrived whole `header_timeout` seconds after its first byte (or after
the connection opened) is cut. Idle keep-alive connections are aiohttp's own
`keepalive_timeout`. Each kind of refusal is logged once, then counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["ConnectionLimits", "Guarded", "guarded_factory"]

logger = logging.getLogger(__name__)

_HEADERS_END = b"\r\n\r\n"


class ConnectionLimits:
    """What every connection of one server shares.

    Usage: `limits = ConnectionLimits(max_connections=64, header_timeout=10.0)`, then
    `loop.create_server(lambda: Guarded(handler_factory(), limits), sock=sock)`.
    """

    def __init__(self, *, max_connections: int = 64, header_timeout: float = 10.0,
                 what: str = "server") -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.what = what
        self.open = 0
        self.refused: Counter[str] = Counter()  # "full", "slow"

    def refuse(self, why: str, message: str) -> None:
        if not self.refused[why]:
            logger.warning("%s: %s (further ones are only counted)", self.what, message)
        self.refused[why] += 1


class Guarded(asyncio.Protocol):
    """One connection, handed to `inner` unless the limits refuse it."""

    def __init__(self, inner: Any, limits: ConnectionLimits) -> None:
        self._inner = inner
        self._limits = limits
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_headers = True  # a request's headers are being received
        self._last = b""  # the end of the data so far (a header end split across reads)
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self._limits
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if limits.open >= limits.max_connections:
            limits.refuse("full", f"{limits.max_connections} connections open: refusing more")
            transport.abort()
            return
        limits.open += 1
        self._counted = True
        self._arm()
        self._inner.connection_made(transport)

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._limits.header_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None:
            limits = self._limits
            limits.refuse("slow", f"a request's headers took longer than "
                                  f"{limits.header_timeout:g} s: closing its connection")
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._counted:
            return
        if not self._waiting_headers:  # the next request on a kept-alive connection
            self._waiting_headers = True
            self._last = b""
            self._arm()
        seen = self._last + data
        if _HEADERS_END in seen:
            self._waiting_headers = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._last = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if not self._counted:
            return None
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        if self._counted:
            self._counted = False
            self._limits.open -= 1
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._counted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._counted:
            self._inner.resume_writing()


def guarded_factory(factory: Callable[[], Any], limits: ConnectionLimits,
                    ) -> Callable[[], Guarded]:
    """A protocol factory for `loop.create_server` that wraps `factory`'s protocols."""
    return lambda: Guarded(factory(), limits)
