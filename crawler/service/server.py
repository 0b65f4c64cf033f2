"""The service's lifecycle: bind the socket (a port in use is a one-line error before
anything starts), open the records, take over what a previous service left, serve until a
signal, then stop every run gracefully (each resumes at the next start)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from crawler.exceptions import StartupError
from crawler.extensions.status import loopback
from crawler.service.api import Spiders, service_app
from crawler.service.runs import Runner
from crawler.service.schedules import Scheduler
from crawler.service.store import RunStore

__all__ = ["ServiceOptions", "serve"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceOptions:
    project: Path
    data: Path
    host: str = "127.0.0.1"
    port: int = 6800  # Scrapyd's
    token: str | None = None  # needed off loopback
    max_runs: int = 4
    grace: float = 30.0  # seconds a cancelled or stopped run has before it is killed
    log_cap: int = 10 << 20  # bytes of a run's log before it rotates
    keep: int = 1000  # finished runs kept
    keep_days: float | None = None  # ... for at most this many days


def bind(options: ServiceOptions) -> socket.socket:
    """The service's socket; StartupError when it cannot be had or is unsafe."""
    if not loopback(options.host) and not options.token:
        raise StartupError(f"serving on {options.host} (not loopback) needs --token: "
                           "anyone who can reach it could start and stop crawls")
    try:
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        return socket.create_server((options.host, options.port), family=family)
    except OSError as exc:
        raise StartupError(f"cannot listen on {options.host}:{options.port}: "
                           f"{exc.strerror or exc}") from None


async def serve(options: ServiceOptions, sock: socket.socket) -> None:
    """Serve until SIGINT or SIGTERM (a second one stops at once)."""
    token = options.token or secrets.token_urlsafe(16)
    store = RunStore(options.data / "service.db")
    await store.open()
    runner = Runner(store, project=options.project, data=options.data,
                    max_runs=options.max_runs, grace=options.grace,
                    log_cap=options.log_cap, keep=options.keep,
                    keep_days=options.keep_days)
    scheduler = Scheduler(runner)
    local = loopback(options.host)
    hosts = frozenset({"127.0.0.1", "localhost", "::1", options.host.lower()}) \
        if local else None
    app = service_app(runner, Spiders(options.project, sys.executable), scheduler,
                      token=token, token_for_all=not local, hosts=hosts)
    web_runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await web_runner.setup()
    site = web.SockSite(web_runner, sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            logger.warning("second signal: stopping now")
            sys.exit(130)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await runner.start()
        await scheduler.start()
        await site.start()
        port = sock.getsockname()[1]
        shown = f"[{options.host}]" if ":" in options.host else options.host
        print(f"crawl service: http://{shown}:{port}/ (project {options.project}, data "
              f"{options.data}, {options.max_runs} runs at once)", file=sys.stderr, flush=True)
        if options.token is None:
            print(f"token for changes (X-Crawler-Token): {token}", file=sys.stderr,
                  flush=True)
        await stop.wait()
        logger.info("stopping: the running crawls stop gracefully and resume at the next "
                    "start")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await scheduler.close()
        await runner.close()
        await web_runner.cleanup()
        await store.close()
