"""Shared helpers: run a spider in-process against local aiohttp servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crawler import Crawler, Settings, Spider
from crawler.outputs.formats import make_exporter
from crawler.stats import Stats

ServerFactory = Callable[..., Awaitable[TestServer]]

ROOT = Path(__file__).resolve().parent.parent
HITS = web.AppKey("hits", list)  # (path, arrival monotonic time) per request


def can_unshare() -> bool:
    """Whether `unshare -rm` can mount a file system here (user namespaces): the tests of
    a full disk and of a read-only mount use one."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True, check=False)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(not can_unshare(), reason="needs `unshare -rm` to mount "
                                   "a small or read-only file system (user namespaces)")


def make_site(pages: dict[str, str | Callable[[web.Request], Awaitable[web.StreamResponse]]],
              ) -> web.Application:
    """An app that serves `pages` by path and records every arrival in app[HITS]
    (robots.txt only when `pages` defines one)."""
    app = web.Application()
    app[HITS] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/robots.txt" and "/robots.txt" not in pages:
            raise web.HTTPNotFound()  # allow all, and keep HITS to the pages under test
        request.app[HITS].append((request.path_qs, time.monotonic()))
        page = pages.get(request.path_qs, pages.get(request.path))
        if page is None:
            raise web.HTTPNotFound()
        if callable(page):
            return await page(request)
        return web.Response(text=page, content_type="text/html")

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def links(*hrefs: str, title: str = "page") -> str:
    anchors = "".join(f'<a href="{h}">{h}</a>' for h in hrefs)
    return f"<html><head><title>{title}</title></head><body>{anchors}</body></html>"


async def crawl(spider: Spider, tmp_path: Path | None = None, **settings: Any) -> tuple[
        Stats, list[Any]]:
    """Run `spider` to the end; return its stats and the items written to a .jsonl file."""
    out = (tmp_path or Path("/tmp")) / f"items-{id(spider)}.jsonl"
    exporter = make_exporter(out, overwrite=True)
    merged = Settings().merge(type(spider).custom_settings).merge(settings)
    result = await Crawler(spider, settings=merged, outputs=[exporter]).run()
    items = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    out.unlink()
    return result.stats, items


@pytest.fixture
def url_of() -> Callable[[TestServer, str], str]:
    def url(server: TestServer, path: str = "/") -> str:
        return str(server.make_url(path))
    return url


_CHILDREN: list[asyncio.subprocess.Process] = []


async def spawn(*args: str, cwd: Path, env: dict[str, str] | None = None,
                ) -> asyncio.subprocess.Process:
    """A child process in a session of its own, killed (with its children) at the end of the
    test if still running: a hung crawl fails its test and does not outlive it."""
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, start_new_session=True)
    _CHILDREN.append(proc)
    return proc


async def finish(proc: asyncio.subprocess.Process, limit: float) -> tuple[bytes, bytes]:
    """communicate() within `limit` seconds; on a timeout the child is killed first."""
    try:
        return await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        _kill(proc)
        raise


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group: unshare, sh and what they run
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test() -> Iterator[None]:
    yield
    while _CHILDREN:
        _kill(_CHILDREN.pop())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[str]:
    """A Redis URL for the shared-frontier tests: CRAWLER_TEST_REDIS_URL (default
    redis://127.0.0.1:6379/15) when it answers, else a redis-server of our own on a free
    port; else skip, unless CRAWLER_REQUIRE_REDIS=1 (CI), where the tests must run."""
    import shutil
    import socket
    import subprocess

    url = os.environ.get("CRAWLER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    if _redis_answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CRAWLER_REQUIRE_REDIS"):
            pytest.fail(f"no Redis at {url} and no redis-server to start (CRAWLER_REQUIRE_REDIS)")
        pytest.skip(f"no Redis at {url} and no redis-server binary: the shared-frontier "
                    "tests need one (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir",
                             str(directory), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not _redis_answers(url):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.exceptions.RedisError, OSError):
        return False


@pytest.fixture
def redis_url(redis_server) -> Iterator[str]:
    """The test Redis, without keys under crawler:* before the test (a run killed half way
    leaves some) and after it."""
    import redis

    def clear() -> None:
        client = redis.Redis.from_url(redis_server)
        try:
            keys = list(client.scan_iter("crawler:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    clear()
    yield redis_server
    clear()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL URL for the sink's tests: CRAWLER_TEST_POSTGRES_URL (default
    postgresql://postgres@127.0.0.1:5432/test) when it answers; else skip, unless
    CRAWLER_REQUIRE_POSTGRES=1 (CI), where the tests must run."""
    url = os.environ.get("CRAWLER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import asyncpg
    except ImportError:
        asyncpg = None
    problem = "asyncpg is not installed (pip install -e '.[test]')" if asyncpg is None else None
    if asyncpg is not None:
        async def ping() -> None:
            conn = await asyncpg.connect(url, timeout=5)
            await conn.close()

        try:
            asyncio.run(ping())
        except Exception as exc:
            problem = f"no PostgreSQL at {url} ({type(exc).__name__}: {exc})"
    if problem is not None:
        if os.environ.get("CRAWLER_REQUIRE_POSTGRES"):
            pytest.fail(f"{problem} (CRAWLER_REQUIRE_POSTGRES)")
        pytest.skip(f"{problem}: the PostgreSQL sink's tests need one")
    return url



async def kill_at(command: list[str], cwd: Path, waits: list[float]) -> int:
    """Start `command` and kill it with SIGKILL `wait` seconds later, for each of `waits`
    (started again after each kill), unless it ended first; how many kills were made."""
    kills = 0
    for wait in waits:
        proc = await spawn(*command, cwd=cwd)
        await asyncio.sleep(wait)
        if proc.returncode is not None:
            break
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        kills += 1
    return kills

async def status_page_text(status: Any, element: str, contains: str,
                           chromium: str = "chromium") -> str:
    """The text of `#element` of a crawl's live status page (its StatusPage extension),
    as a real Chromium shows it once it contains `contains`."""
    import shutil

    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        viewer = await p.chromium.launch(executable_path=shutil.which(chromium))
        try:
            page = await viewer.new_page()
            await page.goto(f"{status.url}?token={status.token}")
            await page.wait_for_function(
                f"document.getElementById({element!r}).textContent.includes({contains!r})",
                timeout=20_000)
            return str(await page.text_content(f"#{element}"))
        finally:
            await viewer.close()
