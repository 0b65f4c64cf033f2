"""Sessions and proxy pools (Crawlee's SessionPool and proxy rotation).

**Proxies** (`proxies`, `proxies_file`): requests rotate through the list, round robin; a
request's own `meta["proxy"]` wins. A proxy that fails `proxy_max_failures` times in a row
(a refused, reset or timed-out connection, a 407 from the proxy, a ban) is rested for
`proxy_rest` seconds, doubling each time it fails again after a rest (up to 16x), then
tried again; a success clears its failures. When every proxy is resting, the one that
wakes first is used (counted as `proxies/all_rested`). Each proxy's requests, failures and
rests are counted as `proxies/HOST:PORT/...`: a proxy is named by its host and port
everywhere, never with its credentials, which travel only as Proxy-Authorization.

**Sessions** (`sessions` = the pool's size): a session is a cookie jar, a proxy and
headers (`session.headers`, sent unless the request sets them). A request takes the next
session of the pool (`session_scope = "request"`) or its host's (`"host"`), named by
`meta["session_id"]` (a retry keeps its session unless it was retired). A session is
retired after `session_max_uses` requests, when its proxy is rested, or when it is banned:
a status in `ban_statuses` or the spider's `is_blocked(response)`; a banned session's
request is retried on another session (bounded by `retries`, as every Retry is). A retired
session is replaced by a new one, with an empty jar and the next proxy. Counted as
`sessions/created`, `sessions/retired/REASON`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import CookieJar
from multidict import CIMultiDict
from yarl import URL

from crawler.exceptions import Kind, NotConfigured, RequestFailed, StartupError
from crawler.http import Request, Response
from crawler.http.urls import proxy_address
from crawler.middlewares import Retry
from crawler.middlewares.cookies import cookie_header, set_cookies

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["Proxy", "ProxyPool", "Session", "SessionMiddleware", "SessionPool",
           "read_proxies"]

logger = logging.getLogger(__name__)

# failures that are the proxy's (a 503 or a dns failure may be the target's)
PROXY_FAILURES = frozenset({Kind.CONNECTION, Kind.TIMEOUT, Kind.PROTOCOL})
_MAX_REST_FACTOR = 16
_HOSTS_KEPT = 100_000  # hosts whose session is remembered (session_scope = "host")
# what a retry on another session drops: its session and its proxy (the headers the
# session added, named in meta["session_headers"], go as the request is sent again)
_META = ("session_id", "proxy", "pool_proxy")


def proxy_label(url: str) -> str:
    """How a proxy is named wherever it is shown: scheme://host:port, no credentials."""
    parsed = URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}"


def read_proxies(listed: Sequence[str], path: str | None) -> list[str]:
    """The `proxies` setting's URLs and `proxies_file`'s, in order, each once. StartupError
    when the file cannot be read or holds something that is not a proxy URL (named by its
    line, never by its text: it may hold a password)."""
    urls = [u.strip() for u in listed if u.strip()]
    if path is not None:
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise StartupError(f"proxies_file {path}: cannot read it ({why})") from None
        for n, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if proxy_address(line) is None:
                raise StartupError(f"proxies_file {path}, line {n}: not an http:// or "
                                   "https:// proxy URL")
            urls.append(line)
    return list(dict.fromkeys(urls))


class Proxy:
    """One proxy of the pool and its health."""

    __slots__ = ("failures", "label", "rested_until", "rests", "url")

    def __init__(self, url: str) -> None:
        self.url = url  # with its credentials: sent, never shown
        self.label = proxy_label(url)
        self.failures = 0  # in a row
        self.rests = 0  # rests in a row (a success clears them)
        self.rested_until = 0.0

    def __repr__(self) -> str:
        return f"Proxy({self.label})"


class ProxyPool:
    """Usage: `pool = ProxyPool(["http://u:p@10.0.0.1:3128"], max_failures=3, rest=60)`;
    `proxy = pool.pick()`, then `pool.succeeded(proxy)` or `pool.failed(proxy)`."""

    def __init__(self, urls: Sequence[str], *, max_failures: int = 3, rest: float = 60.0,
                 counters: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.proxies = [Proxy(url) for url in urls]
        self._by_label = {p.label: p for p in self.proxies}
        self._next = itertools.cycle(self.proxies)
        self._max_failures = max_failures
        self._rest = rest
        self._counters = counters if counters is not None else Counter()
        self._clock = clock

    def get(self, label: object) -> Proxy | None:
        return self._by_label.get(label) if isinstance(label, str) else None

    def resting(self, proxy: Proxy) -> bool:
        return proxy.rested_until > self._clock()

    def pick(self) -> Proxy:
        """The next proxy not resting (round robin); the one that wakes first if all are."""
        now = self._clock()
        for _ in range(len(self.proxies)):
            proxy = next(self._next)
            if proxy.rested_until <= now:
                break
        else:
            proxy = min(self.proxies, key=lambda p: p.rested_until)
            self._counters["proxies/all_rested"] += 1
        self._counters[f"proxies/{proxy.label}/requests"] += 1
        return proxy

    def succeeded(self, proxy: Proxy) -> None:
        proxy.failures = proxy.rests = 0

    def failed(self, proxy: Proxy, why: str) -> bool:
        """Count a failure; True when it put the proxy to rest."""
        self._counters[f"proxies/{proxy.label}/failures"] += 1
        if proxy.rested_until > self._clock():
            return False  # sent before it was rested: its rest already counts this
        proxy.failures += 1
        if proxy.failures < self._max_failures:
            return False
        rest = self._rest * min(2 ** proxy.rests, _MAX_REST_FACTOR)
        proxy.rests += 1
        proxy.failures = 0
        proxy.rested_until = self._clock() + rest
        self._counters[f"proxies/{proxy.label}/rested"] += 1
        logger.warning("proxy %s failed %d times in a row (last: %s): rested %.0f s",
                       proxy.label, self._max_failures, why, rest)
        return True


class Session:
    """A cookie jar, a proxy and headers that requests share until it is retired."""

    __slots__ = ("headers", "id", "jar", "proxy", "uses")

    def __init__(self, sid: str, proxy: Proxy | None) -> None:
        self.id = sid
        self.proxy = proxy
        self.jar = CookieJar(unsafe=True)  # unsafe: IP-address hosts keep cookies too
        self.headers: dict[str, str] = {}
        self.uses = 0

    def __repr__(self) -> str:
        return f"Session({self.id}, proxy={self.proxy!r}, uses={self.uses})"


class SessionPool:
    """Usage: `pool = SessionPool(size=100, proxies=proxy_pool)`; `pool.pick(request)`,
    `pool.retire(session, "banned")`."""

    def __init__(self, *, size: int, scope: str = "request", max_uses: int = 50,
                 proxies: ProxyPool | None = None, counters: Any = None) -> None:
        self._size = size
        self._scope = scope
        self.max_uses = max_uses
        self._proxies = proxies
        self._counters = counters if counters is not None else Counter()
        self._sessions: dict[str, Session] = {}  # the live ones
        self._turns: deque[Session] = deque()  # the live ones, the next to take first
        self._ids = itertools.count(1)
        self._hosts: OrderedDict[str, str] = OrderedDict()  # host -> its session's id

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, sid: object) -> Session | None:
        return self._sessions.get(sid) if isinstance(sid, str) else None

    def pick(self, request: Request) -> Session:
        if self._scope == "host":
            host = request.host
            session = self.get(self._hosts.get(host))
            if session is None:
                session = self._take()
                self._hosts[host] = session.id
                if len(self._hosts) > _HOSTS_KEPT:
                    self._hosts.popitem(last=False)
            else:
                self._hosts.move_to_end(host)
            return session
        return self._take()

    def _take(self) -> Session:
        """A new session while the pool is not full; else the next one, round robin."""
        if len(self._sessions) < self._size:
            return self._new()
        session = self._turns[0]
        self._turns.rotate(-1)
        return session

    def _new(self) -> Session:
        session = Session(f"s{next(self._ids)}",
                          self._proxies.pick() if self._proxies is not None else None)
        self._sessions[session.id] = session
        self._turns.append(session)
        self._counters["sessions/created"] += 1
        return session

    def retire(self, session: Session, reason: str) -> None:
        if self._sessions.pop(session.id, None) is not None:
            self._turns.remove(session)
            self._counters[f"sessions/retired/{reason}"] += 1
            logger.debug("session %s retired (%s)", session.id, reason)


class SessionMiddleware:
    """Picks each request's session and proxy; keeps their health (the module docstring)."""

    def __init__(self, crawler: CrawlerProtocol, proxies: ProxyPool | None,
                 sessions: SessionPool | None) -> None:
        s = crawler.settings
        self._proxies = proxies
        self._sessions = sessions
        self._spider = crawler.spider
        self._counters = crawler.stats.counters
        self._cookies = s.cookies_enabled
        self._ban_statuses = frozenset(s.ban_statuses)

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> SessionMiddleware:
        s = crawler.settings
        urls = read_proxies(s.proxies, s.proxies_file)
        if not urls and not s.sessions:
            raise NotConfigured
        counters = crawler.stats.counters
        proxies = ProxyPool(urls, max_failures=s.proxy_max_failures, rest=s.proxy_rest,
                            counters=counters) if urls else None
        sessions = SessionPool(size=s.sessions, scope=s.session_scope,
                               max_uses=s.session_max_uses, proxies=proxies,
                               counters=counters) if s.sessions else None
        return cls(crawler, proxies, sessions)

    def process_request(self, request: Request) -> None:
        meta = request.meta
        session = None
        if self._sessions is not None:
            session = self._session(request, meta)
            if request.headers is not None:  # a retry's: the session's own, sent afresh
                for name in meta.pop("session_headers", ()):
                    request.headers.popall(name, None)
            added = []
            for name, value in session.headers.items():
                if request.headers is None or name not in request.headers:
                    request.headers = request.headers or CIMultiDict()
                    request.headers[name] = value
                    added.append(name)
            if self._cookies:
                if request.cookies:
                    session.jar.update_cookies(SimpleCookie(request.cookies), request.yurl)
                    request.cookies = None
                if "Cookie" not in (request.headers or ()):
                    cookie_header(session.jar, request)
                    if "Cookie" in (request.headers or ()):
                        added.append("Cookie")
            if added:  # the session's, not the request's: a retry on another drops them
                meta["session_headers"] = added
        if self._proxies is not None and ("proxy" not in meta or "pool_proxy" in meta):
            proxy = session.proxy if session is not None else self._proxies.pick()
            if proxy is not None:
                meta["proxy"] = proxy.url
                meta["pool_proxy"] = proxy.label

    def _session(self, request: Request, meta: dict[str, Any]) -> Session:
        assert self._sessions is not None
        session = self._sessions.get(meta.get("session_id"))
        if session is not None and session.proxy is not None and self._proxies is not None \
                and self._proxies.resting(session.proxy):
            self._sessions.retire(session, "proxy_rested")
            session = None
        if session is None:
            session = self._sessions.pick(request)
        session.uses += 1
        if session.uses >= self._sessions.max_uses:
            self._sessions.retire(session, "max_uses")  # this request is its last
        meta["session_id"] = session.id
        return session

    def process_response(self, request: Request, response: Response) -> Response | Retry:
        meta = request.meta
        proxy = self._proxies.get(meta.get("pool_proxy")) if self._proxies else None
        session = self._sessions.get(meta.get("session_id")) if self._sessions else None
        if session is not None and self._cookies and "Set-Cookie" in response.headers:
            session.jar.update_cookies(set_cookies(response, self._counters),
                                       response.request.yurl)
        banned = self._banned(response)
        if proxy is not None and self._proxies is not None:
            if response.status == 407 or banned:
                self._proxies.failed(proxy, banned or "http_407")
            else:
                self._proxies.succeeded(proxy)
        if banned and self._sessions is not None:
            if session is not None:
                self._sessions.retire(session, "banned")
            self._counters["sessions/banned"] += 1
            logger.debug("%s: session %s banned (%s); retried on another", request.url,
                         meta.get("session_id"), banned)
            meta = {k: v for k, v in meta.items() if k not in _META}
            return Retry(request.replace(meta=meta, dont_filter=True))
        return response

    def _banned(self, response: Response) -> str | None:
        """Why `response` says its session was banned, or None."""
        if response.status in self._ban_statuses:
            return f"http_{response.status}"
        if self._sessions is not None and self._spider.is_blocked(response):
            return "is_blocked"
        return None

    def process_exception(self, request: Request, exc: Exception) -> None:
        if self._proxies is None or not isinstance(exc, RequestFailed) \
                or exc.kind not in PROXY_FAILURES:
            return
        proxy = self._proxies.get(request.meta.get("pool_proxy"))
        if proxy is not None and self._proxies.failed(proxy, exc.kind) \
                and self._sessions is not None:
            session = self._sessions.get(request.meta.get("session_id"))
            if session is not None:
                self._sessions.retire(session, "proxy_rested")
