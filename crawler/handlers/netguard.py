"""Which addresses a crawl may connect to: the guard for crawls of URLs that users submit
(`allow_private_addresses = false`), against server-side request forgery.

A target is refused when any address it resolves to is not a public one: loopback,
private (RFC 1918, unique local), link-local (169.254.0.0/16 with the cloud metadata
address, fe80::/10), shared (100.64.0.0/10), unspecified (0.0.0.0, ::), multicast,
reserved or documentation ranges, and IPv6 forms that embed one (IPv4-mapped, 6to4,
Teredo, NAT64). Host names are checked on what DNS answered for the very connection
(`GuardedResolver` filters aiohttp's lookups, so a name that rebinds between a check and
the connection cannot slip through), numeric hosts as they are written, including the
forms inet_aton accepts (`2130706433`, `0x7f000001`, `0177.1`). Through a proxy the
target is resolved here to be checked (the proxy resolves it again; the proxy itself is
the operator's choice and not checked). A refusal fails the request as
`forbidden_address`, before any packet is sent to the target.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from aiohttp.abc import AbstractResolver, ResolveResult

from crawler.handlers.dns import answer

__all__ = ["ForbiddenAddress", "GuardedResolver", "forbidden", "literal_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ForbiddenAddress(OSError):
    """A target whose address the crawl may not connect to (an OSError, so that the HTTP
    client passes it through as a failed lookup)."""


def forbidden(address: IPAddress) -> bool:
    """Whether `address` is anything but a public unicast address (see the module)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # a connection to the IPv4 address itself
            return forbidden(address.ipv4_mapped)
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and forbidden(embedded):
            return True
    return not address.is_global or address.is_multicast or address.is_unspecified \
        or address.is_loopback or address.is_link_local or address.is_private \
        or address.is_reserved


def literal_address(host: str) -> IPAddress | None:
    """The address a numeric host names (dotted, bracketed IPv6, or the integer, hex and
    octal forms inet_aton takes), else None (a name, for DNS)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c in "0123456789abcdefxABCDEFX." for c in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only allowed addresses: a name with none left fails its
    lookup with ForbiddenAddress. Hosts in `trusted` (the crawl's proxies) pass as they
    resolve."""

    def __init__(self, inner: AbstractResolver,
                 refuse: Callable[[IPAddress], bool] = forbidden) -> None:
        self._inner = inner
        self._refuse = refuse
        self.trusted: set[str] = set()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        literal = literal_address(host)
        if literal is not None:  # a numeric form that is not a plain IP: no lookup
            self.check(host, literal)
            return [answer(host, str(literal), port)]
        results = await self._inner.resolve(host, port, family)
        if host in self.trusted:
            return results
        allowed = [r for r in results if not self._refuse(ipaddress.ip_address(r["host"]))]
        if not allowed:
            shown = ", ".join(sorted({r["host"] for r in results}))
            raise ForbiddenAddress(f"{host} resolves to {shown}, which the crawl may not "
                                   "reach (allow_private_addresses is false)")
        return allowed

    def check(self, host: str, address: IPAddress) -> None:
        """ForbiddenAddress when `address` (which `host` names) may not be reached."""
        if self._refuse(address):
            raise ForbiddenAddress(f"{host} is {address}, which the crawl may not reach "
                                   "(allow_private_addresses is false)")

    async def check_target(self, host: str, port: int) -> None:
        """A target reached through a proxy: resolved here to be checked."""
        literal = literal_address(host)
        if literal is not None:
            self.check(host, literal)
            return
        await self.resolve(host, port, socket.AF_UNSPEC)

    async def close(self) -> None:
        await self._inner.close()

