"""Which requests share a politeness slot (`politeness_by`): the key the frontier queues a
request under, and so the unit its per-host concurrency, delay, Crawl-delay, autothrottle
and Retry-After pauses apply to.

- `host` (the default): scheme + host + port, robots.txt's own scope (RFC 9309).
- `domain`: the registrable domain from the Public Suffix List (`www.example.co.uk` and
  `shop.example.co.uk` share `example.co.uk`; `a.github.io` and `b.github.io` do not),
  read from the `publicsuffixlist` package, which ships the list: no network at run time.
  An IP address or a name with no registrable domain (`localhost`) is its own key.
- `ip`: the host's first address, so that the names of one shared server are one slot. The
  address is looked up when a request is admitted (`prepare`), through the crawl's own
  resolver settings (`resolve`, `dns_servers`); a name that does not resolve keeps its host
  key (its fetch fails as `dns`). A name keeps its first key for the crawl (bounded by
  `dns_cache_size`): a request in flight always frees the slot it took.

Keys are strings a store keeps as they are (the job dir's `host` column, the Redis fleet's
host keys): every process of a fleet derives the same key for the same URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from crawler.exceptions import StartupError

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

    from crawler.http import Request
    from crawler.settings import Settings

__all__ = ["POLITENESS_BY", "PolitenessKeys", "registrable_domain"]

logger = logging.getLogger(__name__)

POLITENESS_BY = ("host", "domain", "ip")
_KEPT = 100_000  # origins whose key is remembered (domain), names whose address is (ip)


def _hostname(origin: str) -> str:
    """`scheme://host:port` -> host (IPv6 without its brackets)."""
    return origin.partition("://")[2].rpartition(":")[0].strip("[]").lower()


@lru_cache(maxsize=1)
def _suffix_list() -> Any:
    try:
        from publicsuffixlist import PublicSuffixList
    except ImportError:
        raise StartupError("politeness_by = 'domain' needs the Public Suffix List: "
                           "pip install 'crawler[broad]' (publicsuffixlist)") from None
    return PublicSuffixList()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def registrable_domain(host: str) -> str:
    """`host`'s registrable domain (eTLD+1); the host itself when it has none (an IP
    address, `localhost`, a public suffix)."""
    host = host.lower().rstrip(".")
    if _is_address(host):
        return host
    domain: str | None = _suffix_list().privatesuffix(host)
    return domain or host


class PolitenessKeys:
    """Usage: `keys = PolitenessKeys("domain")`; `keys.of("https://www.example.com:443")`
    -> `"domain:example.com"`; with `ip`, `await keys.prepare(requests)` before queueing."""

    def __init__(self, by: str = "host", *,
                 resolver: Callable[[], AbstractResolver] | None = None,
                 size: int = _KEPT) -> None:
        if by not in POLITENESS_BY:
            raise ValueError(f"politeness_by must be one of {', '.join(POLITENESS_BY)}")
        self.by = by
        self._size = size
        self._make_resolver = resolver
        self._resolver: AbstractResolver | None = None
        self._addresses: OrderedDict[str, str] = OrderedDict()  # ip: name -> its key
        self._keys: OrderedDict[str, str] = OrderedDict()  # domain: origin -> its key
        if by == "domain":
            _suffix_list()  # the missing extra is a StartupError, not a failure per request
        # `of` is the frontier's hot path: host keys are their own
        self.of: Callable[[str], str] = _same if by == "host" else self._of

    @classmethod
    def from_settings(cls, settings: Settings) -> PolitenessKeys:
        def resolver() -> AbstractResolver:
            from crawler.handlers.dns import build_resolver
            return build_resolver(settings)
        return cls(settings.politeness_by, resolver=resolver,
                   size=max(settings.dns_cache_size, 1))

    @property
    def grouped(self) -> bool:
        """Whether one key may stand for several origins."""
        return self.by != "host"

    def key(self, request: Request) -> str:
        """The slot `request` is queued under."""
        return self.of(request._host or request.host)

    def _of(self, origin: str) -> str:
        if self.by == "ip":
            return self._addresses.get(_hostname(origin), origin)
        key = self._keys.get(origin)
        if key is None:
            key = self._keys[origin] = sys.intern("domain:" + registrable_domain(
                _hostname(origin)))
            if len(self._keys) > self._size:
                self._keys.popitem(last=False)
        return key

    async def prepare(self, requests: Iterable[Request]) -> None:
        """With `ip`: look up the names of `requests` not yet known (a name whose lookup
        fails keeps its host key)."""
        if self.by != "ip":
            return
        names: dict[str, int] = {}
        for request in requests:
            origin = request._host or request.host
            name = _hostname(origin)
            if name not in self._addresses:
                names[name] = int(origin.rpartition(":")[2])
        if names:
            await asyncio.gather(*(self._look_up(name, port) for name, port in names.items()))

    async def _look_up(self, name: str, port: int) -> None:
        if _is_address(name):
            address = name
        else:
            if self._resolver is None:
                assert self._make_resolver is not None, "ip keys need a resolver"
                self._resolver = self._make_resolver()
            try:
                found = await self._resolver.resolve(name, port)
            except OSError as exc:
                logger.debug("politeness_by = ip: %s did not resolve (%s); keyed by host",
                             name, exc)
                return
            if not found:
                return
            address = found[0]["host"]
        self._addresses[name] = sys.intern("ip:" + address)
        while len(self._addresses) > self._size:
            self._addresses.popitem(last=False)

    async def close(self) -> None:
        if self._resolver is not None:
            resolver, self._resolver = self._resolver, None
            await resolver.close()


def _same(origin: str) -> str:
    return origin

