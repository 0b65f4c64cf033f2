"""The live status page of a running crawl: `run --status-port PORT`.

Served by the crawl process itself (aiohttp.web), on 127.0.0.1 unless `status_host` says
otherwise:

    /              the page: counters, a pages/s chart, hosts, recent failures, the
                   estimate of what is left, pause/resume/stop buttons (no external
                   request: its script is served from here, the chart is plain SVG)
    /api/stats     a JSON snapshot
    /api/events    server-sent events: a snapshot a second
    /metrics       the Prometheus text exposition format (version 0.0.4)
    POST /api/pause, /api/resume, /api/stop

Security: the controls need the token (`status_token`, or one made at start and logged
with the page's URL), sent as `X-Crawler-Token`, `Authorization: Bearer` or `?token=`;
a POST whose Origin is another site's is refused, as is any request whose Host header is
not this server's (DNS rebinding); bound to any address other than the loopback, every
endpoint needs the token. The page may not be framed (clickjacking) and its policy allows
no other origin.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from crawler.exceptions import StartupError
from crawler.extensions.connlimit import ConnectionLimits, guarded_factory
from crawler.redact import redact
from crawler.signals import Signal
from crawler.tasks import cancel_and_wait

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["SECURITY_HEADERS", "StatusPage", "StatusView", "guard_middleware", "loopback",
           "prometheus", "refused", "status_app"]

logger = logging.getLogger(__name__)

_HISTORY = 900  # seconds of pages/s kept for the chart (one point a second)
_FAILURES = 30  # recent failures kept
_HOSTS = 10  # busiest hosts shown
MAX_STREAMS = 16  # event streams served at once: each costs a snapshot a second
MAX_CONNECTIONS = 64  # connections open at once (the crawl's file descriptors are its own)
HEADER_TIMEOUT = 10.0  # seconds a request may take to send its headers (slowloris)
KEEPALIVE = 15.0  # seconds an idle kept-alive connection stays open
# what the page loads by itself, holding no data: served without the token (the page's
# own URL carries it; a browser does not add it to its script and style requests)
_PUBLIC = frozenset({"/status.js", "/status.css"})
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class StatusView:
    """What the page shows, read from a running crawler: counters, a pages/s history,
    recent failures, hosts, limits and the estimate of what is left."""

    def __init__(self, crawler: CrawlerProtocol) -> None:
        self.crawler = crawler
        self.history: deque[tuple[float, float]] = deque(maxlen=_HISTORY)
        self.failures: deque[dict[str, Any]] = deque(maxlen=_FAILURES)
        self.started = time.monotonic()
        self._last = (self.started, 0)

    def failed(self, request: Any, failure: Any) -> None:
        """REQUEST_FAILED handler."""
        self.failures.appendleft({"url": redact(request.url), "kind": failure.kind,
                                  "at": round(time.monotonic() - self.started, 1)})

    def sample(self) -> None:
        """Add a point to the pages/s history (called every second)."""
        now, pages = time.monotonic(), self.crawler.stats.pages
        last_time, last_pages = self._last
        rate = (pages - last_pages) / max(now - last_time, 1e-6)
        self._last = (now, pages)
        self.history.append((round(now - self.started, 1), round(rate, 1)))

    async def snapshot(self) -> dict[str, Any]:
        c = self.crawler
        stats, settings = c.stats, c.settings
        elapsed = time.monotonic() - self.started
        recent = [rate for _, rate in list(self.history)[-5:]]
        rate = sum(recent) / len(recent) if recent else 0.0
        crawl = await c.snapshot(hosts=_HOSTS)  # state, queued, in flight, hosts, storage's
        return {
            **crawl, "elapsed": round(elapsed, 1),
            "pages": stats.pages, "items": stats.items, "failed": stats.requests_failed,
            "retries": stats.retries, "pages_per_second": round(rate, 1),
            "errors": dict(stats.errors),
            "status_counts": {str(k): v for k, v in sorted(stats.status_counts.items())},
            "failures": list(self.failures),
            "history": list(self.history), "max_loop_stall": round(stats.max_loop_stall, 4),
            "monitors": list(stats.monitors),
            **_estimate(stats.pages, stats.items, elapsed, rate, settings),
        }


def _estimate(pages: int, items: int, elapsed: float, rate: float,
              settings: Any) -> dict[str, Any]:
    """How far along the nearest limit is (0-1) and the seconds left at the current rate;
    None without a limit."""
    candidates: list[tuple[float, float | None]] = []
    if settings.max_pages:
        left = max(settings.max_pages - pages, 0)
        candidates.append((pages / settings.max_pages, left / rate if rate else None))
    if settings.max_items:
        item_rate = items / elapsed if elapsed else 0.0
        left = max(settings.max_items - items, 0)
        candidates.append((items / settings.max_items, left / item_rate if item_rate else None))
    if settings.max_duration:
        candidates.append((elapsed / settings.max_duration,
                           max(settings.max_duration - elapsed, 0.0)))
    if not candidates:
        return {"progress": None, "eta_seconds": None}
    progress, eta = max(candidates, key=lambda c: c[0])
    return {"progress": round(min(progress, 1.0), 4),
            "eta_seconds": None if eta is None else round(eta, 1)}


def prometheus(snapshot: dict[str, Any]) -> str:
    """The snapshot in the Prometheus text exposition format."""
    spider = _label(snapshot["spider"])
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str,
               samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP crawler_{name} {help_text}")
        lines.append(f"# TYPE crawler_{name} {kind}")
        for labels, value in samples:
            lines.append(f'crawler_{name}{{spider="{spider}"{labels}}} {value}')

    metric("pages_total", "counter", "Responses received.", [("", snapshot["pages"])])
    metric("items_total", "counter", "Items written to the outputs.", [("", snapshot["items"])])
    metric("requests_failed_total", "counter", "Requests that failed after their retries.",
           [("", snapshot["failed"])])
    metric("retries_total", "counter", "Requests tried again.", [("", snapshot["retries"])])
    metric("errors_total", "counter", "Errors by kind.",
           [(f',kind="{_label(k)}"', v) for k, v in sorted(snapshot["errors"].items())])
    metric("responses_total", "counter", "Responses by HTTP status.",
           [(f',status="{_label(k)}"', v) for k, v in snapshot["status_counts"].items()])
    metric("queued", "gauge", "Requests waiting in the frontier.", [("", snapshot["queued"])])
    metric("in_flight", "gauge", "Requests being fetched.", [("", snapshot["in_flight"])])
    metric("pages_per_second", "gauge", "Pages per second over the last 5 seconds.",
           [("", snapshot["pages_per_second"])])
    metric("paused", "gauge", "1 while the crawl is paused.",
           [("", int(snapshot["state"] == "paused"))])
    metric("elapsed_seconds", "gauge", "Seconds since the status page started.",
           [("", snapshot["elapsed"])])
    concurrency = snapshot.get("concurrency")
    if concurrency:  # concurrency = "auto" (crawler/core/autoscale.py)
        metric("concurrency_limit", "gauge", "Requests the autoscaler lets run at once.",
               [("", concurrency["limit"])])
    browser = snapshot.get("browser")
    if browser:  # pages rendered in a browser (crawler/handlers/browser.py)
        metric("browser_pages_open", "gauge", "Pages open in the browser.",
               [("", browser["pages_open"])])
        metric("browser_contexts", "gauge", "Browser contexts open.",
               [("", browser["contexts"])])
        metric("browser_memory_megabytes", "gauge", "Memory the browser's processes hold.",
               [("", browser["memory_mb"])])
        metric("browser_restarts_total", "counter", "Browser restarts (crashes, memory).",
               [("", browser["restarts"])])
    return "\n".join(lines) + "\n"


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def status_app(view: StatusView, *, token: str, token_for_all: bool,
               hosts: frozenset[str] | None = None,
               controls: dict[str, Callable[[], None]] | None = None,
               closing: asyncio.Event | None = None) -> web.Application:
    """The aiohttp application of the page. `hosts`: the Host header names accepted (None:
    any); `controls`: pause/resume/stop actions; `closing` ends the event streams."""
    closing = closing or asyncio.Event()
    actions = controls or {}
    streams = 0
    guard = guard_middleware(token, token_for_all=token_for_all, hosts=hosts, public=_PUBLIC)

    async def page(request: web.Request) -> web.StreamResponse:
        return web.Response(body=_static("status.html"), content_type="text/html",
                            charset="utf-8")

    async def script(request: web.Request) -> web.StreamResponse:
        return web.Response(body=_static("status.js"), content_type="text/javascript",
                            charset="utf-8")

    async def style(request: web.Request) -> web.StreamResponse:
        return web.Response(body=_static("status.css"), content_type="text/css",
                            charset="utf-8")

    async def stats(request: web.Request) -> web.StreamResponse:
        return web.Response(body=orjson.dumps(await view.snapshot()),
                            content_type="application/json")

    async def metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(text=prometheus(await view.snapshot()),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def events(request: web.Request) -> web.StreamResponse:
        nonlocal streams
        if streams >= MAX_STREAMS:
            return refused(503, f"{MAX_STREAMS} event streams are open already")
        streams += 1
        try:
            return await stream(request)
        finally:
            streams -= 1

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store",
                                               **SECURITY_HEADERS})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while not closing.is_set():
                await response.write(b"data: " + orjson.dumps(await view.snapshot()) + b"\n\n")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closing.wait(), 1.0)
            # the crawl's last numbers, then that it closed
            await response.write(b"data: " + orjson.dumps(await view.snapshot()) + b"\n\n")
            await response.write(b"event: closed\ndata: {}\n\n")
        return response

    def control(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def act(request: web.Request) -> web.StreamResponse:
            action = actions.get(name)
            if action is None:
                return refused(404, f"no {name} here")
            action()
            logger.info("status page: %s", name)
            return web.json_response({"ok": True, "action": name})
        return act

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", page)
    app.router.add_get("/status.js", script)
    app.router.add_get("/status.css", style)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/events", events)
    app.router.add_get("/metrics", metrics)
    for name in ("pause", "resume", "stop"):
        app.router.add_post(f"/api/{name}", control(name))
    return app


def guard_middleware(token: str, *, token_for_all: bool, hosts: frozenset[str] | None,
                     public: frozenset[str] = frozenset(), what: str = "the status page's",
                     public_suffixes: tuple[str, ...] = ()) -> Any:
    """The rules of every page we serve (the status page, the crawl service): a Host header
    among `hosts` (None: any; against DNS rebinding), the token for every change (POST,
    PUT, DELETE) and, with `token_for_all`, for every path but `public` (and those ending
    in `public_suffixes`: a page's script and style); no cross-origin
    change; security headers (CSP, no framing) on every answer."""

    @web.middleware
    async def guard(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                    ) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
        if hosts is not None and host not in hosts:
            return refused(403, "unknown Host header (DNS rebinding?)")
        changes = request.method not in ("GET", "HEAD", "OPTIONS")
        open_path = request.path in public or (
            public_suffixes and request.path.endswith(public_suffixes))
        if (token_for_all and not open_path) or changes:
            if not _token_ok(request, token):
                return refused(401, f"{what} token is needed (X-Crawler-Token, "
                                     "Authorization: Bearer, or ?token=)")
        if changes:
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                return refused(403, "cross-origin request refused")
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return guard


def _token_ok(request: web.Request, token: str) -> bool:
    """The token given as X-Crawler-Token, ?token=, a Bearer token, or the password of
    Basic authentication (what Scrapyd's clients send)."""
    given = request.headers.get("X-Crawler-Token") or request.query.get("token") or ""
    auth = request.headers.get("Authorization", "")
    if not given and auth.startswith("Bearer "):
        given = auth[7:]
    elif not given and auth.startswith("Basic "):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            given = base64.b64decode(auth[6:], validate=True).decode().partition(":")[2]
    return hmac.compare_digest(given.encode(), token.encode())


def refused(status: int, why: str) -> web.Response:
    return web.json_response({"error": why}, status=status, headers=SECURITY_HEADERS)


def _static(name: str) -> bytes:
    return resources.files("crawler.extensions").joinpath("static", name).read_bytes()


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StatusPage:
    """The extension serving the page (on when `status_port` is set). The port is bound
    when the crawl is built, so a port in use is a one-line startup error."""

    def __init__(self, crawler: CrawlerProtocol, sock: socket.socket, token: str,
                 generated: bool) -> None:
        self.crawler = crawler
        self.view = StatusView(crawler)
        self.token = token
        self._generated = generated
        self._sock = sock
        self._finalizer = weakref.finalize(self, sock.close)  # a crawl that never opened
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.limits = ConnectionLimits(max_connections=MAX_CONNECTIONS,
                                       header_timeout=HEADER_TIMEOUT, what="status page")
        self._sampler: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        host = crawler.settings.status_host
        self.local = loopback(host)
        names = {"127.0.0.1", "localhost", "::1", host.lower()}
        self._hosts = frozenset(names) if self.local else None
        port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/"

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> StatusPage | None:
        s = crawler.settings
        if s.status_port is None:
            return None
        try:
            family = socket.AF_INET6 if ":" in s.status_host else socket.AF_INET
            sock = socket.create_server((s.status_host, s.status_port), family=family)
        except OSError as exc:
            raise StartupError(f"status page: cannot listen on {s.status_host}:"
                               f"{s.status_port}: {exc.strerror or exc}") from None
        token = s.status_token or secrets.token_urlsafe(16)
        page = cls(crawler, sock, token, s.status_token is None)
        crawler.signals.connect(Signal.SPIDER_OPENED, page.spider_opened)
        crawler.signals.connect(Signal.SPIDER_CLOSED, page.spider_closed)
        crawler.signals.connect(Signal.REQUEST_FAILED, page.view.failed)
        return page

    def discard(self) -> None:
        """Give the port back: the crawl that bound it will not run (`run --workers`
        checks its crawl in the parent, then a worker serves the page)."""
        self._finalizer()

    async def spider_opened(self) -> None:
        c = self.crawler
        app = status_app(self.view, token=self.token, token_for_all=not self.local,
                         hosts=self._hosts, closing=self._closing,
                         controls={"pause": c.pause, "resume": c.resume,
                                   "stop": lambda: c.stop("status_page")})
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0,
                                     keepalive_timeout=KEEPALIVE)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            guarded_factory(server, self.limits), sock=self._sock)
        self._sampler = asyncio.create_task(self._sample(), name="status sampler")
        where = f"{self.url}?token={self.token}"
        if self._generated:
            logger.info("status page: %s (the token in it guards the controls)", where)
        else:
            logger.info("status page: %s (with the given --status-token)", self.url)

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.view.sample()

    async def spider_closed(self) -> None:
        self._closing.set()
        await cancel_and_wait(self._sampler)
        self._sampler = None
        if self._server is not None:
            self._server.close()  # no new connection
        if self._runner is not None:
            await self._runner.cleanup()  # the open ones end
            self._runner = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._finalizer()


