"""Names given addresses by the crawl (`resolve`, as curl's `--resolve HOST:PORT:ADDR`):
a resolver in front of aiohttp's that answers those names itself.

    resolve = ["example.com:443:127.0.0.1", "*.test:*:127.0.0.1", "[::1]" forms too]

HOST is a name, `*` (every name) or `*.suffix` (every name under suffix); PORT a number or
`*`; ADDR an IPv4 or IPv6 address (brackets optional). The first entry that matches
answers; other names are resolved as usual. An override is not a way around
`allow_private_addresses = false`: the guard (crawler/handlers/netguard.py) checks what it
answers like any lookup. The benchmarks and tests give many names to loopback with it.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = ["OverrideResolver", "parse_resolve"]

Override = tuple[str, int | None, str]  # host pattern, port (None: any), address


def parse_resolve(entries: tuple[str, ...] | list[str]) -> list[Override]:
    """The `resolve` setting's entries; ValueError naming a bad one."""
    parsed = []
    for entry in entries:
        host, sep, rest = entry.strip().partition(":")
        port, sep2, address = rest.partition(":")
        address = address.strip().strip("[]")
        if not (sep and sep2 and host and address):
            raise ValueError(f"{entry!r} is not HOST:PORT:ADDRESS")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"{entry!r}: {address!r} is not an IP address") from None
        if port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"{entry!r}: the port must be a number or *")
        parsed.append((host.lower().rstrip("."), None if port == "*" else int(port),
                       address))
    return parsed


def _matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


class OverrideResolver(AbstractResolver):
    """Usage: `OverrideResolver(parse_resolve(settings.resolve), aiohttp.ThreadedResolver())`."""

    def __init__(self, overrides: list[Override], inner: AbstractResolver) -> None:
        self._overrides = overrides
        self._inner = inner

    def lookup(self, host: str, port: int) -> str | None:
        """The address the crawl gives `host`:`port`, if it gives one."""
        name = host.lower().rstrip(".")
        for pattern, wanted, address in self._overrides:
            if (wanted is None or wanted == port) and _matches(pattern, name):
                return address
        return None

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        address = self.lookup(host, port)
        if address is None:
            return await self._inner.resolve(host, port, family)
        v6 = ":" in address
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if v6 else socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        await self._inner.close()
