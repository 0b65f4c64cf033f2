"""How the crawl finds a host's addresses: `CachingResolver`, DNS through c-ares (aiodns)
with a bounded cache that honours each answer's TTL, and `OverrideResolver` in front of it
for the names the crawl gives addresses itself.

**The cache** (`CachingResolver`): an answer is kept for its TTL (the shortest of its
records), at least a second (a TTL of 0, which /etc/hosts entries have, would mean a
lookup per connection) and at most `dns_max_ttl`; a failed lookup (no such name, no
answer within `dns_timeout`) is kept `dns_negative_ttl`, so a dead domain costs one lookup
per period, not one per link; lookups of one name at once share one query; the cache holds
`dns_cache_size` names (least recently used first out). `dns_servers` asks those servers
instead of the system's (`/etc/resolv.conf`), `IP` or `IP:PORT`. c-ares reads /etc/hosts
first, as getaddrinfo does. Without aiodns (a platform without its wheel) the system's
getaddrinfo runs in a thread, its answers kept `dns_max_ttl` (it gives no TTL). aiohttp's
own cache, which keeps every answer 10 s whatever its TTL (Scrapy's keeps them forever),
is off. Failures are OSErrors: the request fails as `dns`.

**Overrides** (`resolve`, as curl's `--resolve HOST:PORT:ADDR`):

    resolve = ["example.com:443:127.0.0.1", "*.test:*:127.0.0.1", "[::1]" forms too]

HOST is a name, `*` (every name) or `*.suffix` (every name under suffix); PORT a number or
`*`; ADDR an IPv4 or IPv6 address (brackets optional). The first entry that matches
answers; other names are resolved as usual. An override is not a way around
`allow_private_addresses = false`: the guard (crawler/handlers/netguard.py) checks what it
answers like any lookup. The benchmarks and tests give many names to loopback with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp.abc import AbstractResolver, ResolveResult

if TYPE_CHECKING:
    from crawler.settings import Settings

__all__ = ["CachingResolver", "OverrideResolver", "answer", "build_resolver", "parse_resolve"]

_MIN_TTL = 1.0  # seconds an answer is kept at least


class _Failed(OSError):
    """A lookup that failed, as kept in the cache."""

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


def build_resolver(settings: Settings, counters: Counter[str] | None = None) -> AbstractResolver:
    """The crawl's resolver from its settings: the cache, the crawl's own names (`resolve`)
    in front of it. Made on the running loop."""
    s = settings
    resolver: AbstractResolver = CachingResolver(
        servers=s.dns_servers, timeout=s.dns_timeout, negative_ttl=s.dns_negative_ttl,
        max_ttl=s.dns_max_ttl, size=s.dns_cache_size, counters=counters)
    if s.resolve:
        resolver = OverrideResolver(parse_resolve(s.resolve), resolver)
    return resolver


def answer(host: str, address: str, port: int) -> ResolveResult:
    """What a resolver answers for `host`: one numeric `address` (IPv4 or IPv6)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(hostname=host, host=address, port=port, family=family, proto=0,
                         flags=socket.AI_NUMERICHOST)


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
        return [answer(host, address, port)]

    async def close(self) -> None:
        await self._inner.close()


_Answer = tuple[float, list[str] | OSError]  # expiry, the addresses or why there are none


class CachingResolver(AbstractResolver):
    """Usage: `CachingResolver(timeout=10, negative_ttl=60, max_ttl=3600, size=10_000)`,
    made on the running loop; see the module docstring."""

    def __init__(self, *, servers: tuple[str, ...] = (), timeout: float = 10.0,
                 negative_ttl: float = 60.0, max_ttl: float = 3600.0, size: int = 10_000,
                 counters: Counter[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout
        self._negative_ttl = negative_ttl
        self._max_ttl = max(max_ttl, _MIN_TTL)
        self._size = size
        self._clock = clock
        self._counters = counters if counters is not None else Counter()
        self._cache: OrderedDict[tuple[str, int], _Answer] = OrderedDict()
        self._pending: dict[tuple[str, int], asyncio.Future[_Answer]] = {}
        try:
            import aiodns
        except ImportError:  # the system's getaddrinfo, in a thread: no TTLs
            import aiohttp

            self._dns = None
            self._threaded: AbstractResolver | None = aiohttp.ThreadedResolver()
        else:
            self._threaded = None
            self._dns = aiodns.DNSResolver(nameservers=list(servers) or None,
                                           timeout=timeout, tries=2)

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        key = (host.lower().rstrip("."), int(family))
        kept = self._cache.get(key)
        if kept is not None and kept[0] > self._clock():
            self._cache.move_to_end(key)
            self._counters["dns/cache_hits"] += 1
        else:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = asyncio.ensure_future(self._look_up(key))
                pending.add_done_callback(lambda _: self._pending.pop(key, None))
            kept = await asyncio.shield(pending)
        found = kept[1]
        if isinstance(found, OSError):
            raise _Failed(found.errno, f"{host}: {found.strerror or found}")
        return [answer(host, address, port) for address in found]

    async def _look_up(self, key: tuple[str, int]) -> _Answer:
        host, family = key
        self._counters["dns/lookups"] += 1
        try:
            found, ttl = await asyncio.wait_for(self._query(host, family), self._timeout)
            if not found:
                raise OSError(socket.EAI_NONAME, "no address")
            kept: _Answer = (self._clock() + min(max(ttl, _MIN_TTL), self._max_ttl), found)
        except (OSError, TimeoutError) as exc:
            self._counters["dns/failures"] += 1
            why = exc if isinstance(exc, OSError) else OSError(
                socket.EAI_AGAIN, f"no answer within {self._timeout:g} s (dns_timeout)")
            kept = (self._clock() + self._negative_ttl, why)
        except Exception as exc:  # aiodns's DNSError, whatever it wraps
            self._counters["dns/failures"] += 1
            text = exc.args[1] if len(exc.args) > 1 else str(exc)
            kept = (self._clock() + self._negative_ttl, OSError(socket.EAI_NONAME, text))
        self._cache[key] = kept
        self._cache.move_to_end(key)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return kept

    async def _query(self, host: str, family: int) -> tuple[list[str], float]:
        """The addresses of `host` and the shortest TTL among them."""
        if self._dns is None:
            assert self._threaded is not None
            results = await self._threaded.resolve(host, 0, socket.AddressFamily(family))
            return [r["host"] for r in results], self._max_ttl
        result = await self._dns.getaddrinfo(host, family=socket.AddressFamily(family), port=0,
                                             type=socket.SOCK_STREAM)
        found: list[str] = []
        for node in result.nodes:
            address = node.addr[0]
            address = address.decode() if isinstance(address, bytes) else address
            if address not in found:
                found.append(address)
        ttl = min((node.ttl for node in result.nodes), default=0)
        return found, float(ttl)

    async def close(self) -> None:
        if self._dns is not None:
            await self._dns.close()
        if self._threaded is not None:
            await self._threaded.close()
