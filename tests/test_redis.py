"""Shared crawls on a real Redis: real `python -m crawler run --frontier` worker processes
against local sites on two hosts. Together they write every page; a SIGKILLed worker
loses nothing; per-host limits hold across the fleet (checked by the server's own arrival
times, against a control that breaks them); start() runs once; max_pages is global; a
Redis restart mid-crawl is ridden out. The frontier contract itself runs against Redis in
tests/test_frontier.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import finish, spawn

PAGES = 600  # per host
ARRIVALS = web.AppKey("arrivals", list)  # (page, arrival, departure) per request
ROBOTS = web.AppKey("robots", list)  # one entry per robots.txt fetch

SPIDER = '''
    import asyncio

    from crawler import Request, Spider

    class Fleet(Spider):
        name = "fleet"
        custom_settings = {"log_interval": 0, "concurrency": 8, "obey_robots": False}

        def __init__(self, bases, slow_start="", **kw):
            super().__init__(**kw)
            self.bases = bases.split(",")
            self.start_urls = [base + "/p/0" for base in self.bases]
            self.slow_start = slow_start

        async def start(self):
            if not self.slow_start:  # every page of the first host, one each 10 ms
                async for request in super().start():
                    yield request
                return
            for i in range(int(self.slow_start)):
                await asyncio.sleep(0.01)
                yield Request(f"{self.bases[0]}/p/{i}", callback=self.parse)

        def parse(self, response):
            yield {"url": response.url}
            for link in response.css("a"):
                yield response.follow(link, callback=self.parse)
'''


def _site(delay: float = 0.01, other: list[str] | None = None) -> web.Application:
    """PAGES pages; page i links to 2i+1, 2i+2, i//2, and the same page on the other
    host(s) (`other`, filled in once they are up)."""
    app = web.Application()
    app[ARRIVALS] = []
    app[ROBOTS] = []
    others = other if other is not None else []

    async def robots(request: web.Request) -> web.Response:
        request.app[ROBOTS].append(time.monotonic())
        await asyncio.sleep(0.2)  # slow enough that every worker wants it meanwhile
        return web.Response(text="User-agent: *\nDisallow: /private\n")

    async def page(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        arrived = time.monotonic()
        await asyncio.sleep(delay)
        request.app[ARRIVALS].append((i, arrived, time.monotonic()))
        links = [f"/p/{j}" for j in (2 * i + 1, 2 * i + 2, i // 2) if j < PAGES]
        links += [f"{base}/p/{i}" for base in others]
        body = "".join(f'<a href="{href}">x</a>' for href in links)
        return web.Response(text=f"<html><body>{body}</body></html>", content_type="text/html")

    app.router.add_get("/p/{i}", page)
    app.router.add_get("/robots.txt", robots)
    return app


async def _two_hosts(aiohttp_server, delay: float = 0.01,
                     ) -> tuple[list[str], list[web.Application]]:
    links_a: list[str] = []
    links_b: list[str] = []
    apps = [_site(delay, links_a), _site(delay, links_b)]
    servers = [await aiohttp_server(app) for app in apps]
    bases = [str(s.make_url("")).rstrip("/") for s in servers]
    links_a.append(bases[1])
    links_b.append(bases[0])
    return bases, apps


def _project(tmp_path: Path) -> Path:
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "fleet.py").write_text(textwrap.dedent(SPIDER))
    return tmp_path


def _worker(bases: list[str], url: str, job: str, worker: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "crawler", "run", "fleet", "-a", f"bases={','.join(bases)}",
            "--frontier", url, "--job", job, "--worker-id", worker,
            "-O", "out.{worker}.jsonl", "--stats", f"stats.{worker}.json", *extra]


def _items(project: Path) -> Counter[str]:
    urls: Counter[str] = Counter()
    for path in project.glob("out.*.jsonl"):
        urls.update(json.loads(line)["url"] for line in path.read_bytes().splitlines())
    return urls


def _every_page(bases: list[str]) -> Counter[str]:
    return Counter(f"{base}/p/{i}" for base in bases for i in range(PAGES))


def _stats(project: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(project.glob("stats.*.json"))]


async def _run_fleet(commands: list[list[str]], project: Path, limit: float = 120) -> None:
    """Run the commands at once; each must exit 0."""
    procs = [await spawn(*cmd, cwd=project) for cmd in commands]
    for proc in procs:
        _, err = await finish(proc, limit)
        assert proc.returncode == 0, err.decode()


async def test_three_workers_write_every_page_once(aiohttp_server, tmp_path, redis_url):
    bases, _ = await _two_hosts(aiohttp_server)
    project = _project(tmp_path)
    job = uuid.uuid4().hex
    await _run_fleet([_worker(bases, redis_url, job, f"w{n}") for n in range(3)], project)
    assert _items(project) == _every_page(bases)
    stats = _stats(project)
    assert sum(s["start_requests"] for s in stats) == 2  # start() ran once, in one worker
    assert sum(1 for s in stats if s["pages"]) >= 2  # the work was shared
    proc = await spawn(sys.executable, "-m", "crawler", "status", "fleet", "--frontier",
                       redis_url, "--job", job, cwd=project)
    out, err = await finish(proc, 30)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "state:       finished" in text and f"pages:       {2 * PAGES}" in text, text
    assert f"items:       {2 * PAGES}" in text, text


async def test_robots_txt_is_fetched_once_for_the_fleet(aiohttp_server, tmp_path, redis_url):
    bases, apps = await _two_hosts(aiohttp_server)
    project = _project(tmp_path)
    job = uuid.uuid4().hex
    commands = [_worker(bases, redis_url, job, f"w{n}", "-s", "obey_robots=true")
                for n in range(3)]
    await _run_fleet(commands, project)
    assert _items(project) == _every_page(bases)
    assert [len(app[ROBOTS]) for app in apps] == [1, 1]


async def test_a_killed_worker_loses_no_page(aiohttp_server, tmp_path, redis_url):
    bases, _ = await _two_hosts(aiohttp_server, delay=0.03)
    project = _project(tmp_path)
    job = uuid.uuid4().hex
    lease = ("-s", "frontier_lease=2")
    procs = [await spawn(*_worker(bases, redis_url, job, f"w{n}", *lease), cwd=project)
             for n in range(3)]
    await asyncio.sleep(2.0)
    assert procs[1].returncode is None, "the crawl ended before the kill: slow the site"
    procs[1].send_signal(signal.SIGKILL)
    await procs[1].wait()
    for proc in (procs[0], procs[2]):
        _, err = await finish(proc, 120)
        assert proc.returncode == 0, err.decode()
    items = _items(project)
    every = _every_page(bases)
    assert set(items) == set(every)  # at least once: none lost
    redelivered = await _count(redis_url, job, "redelivered")
    assert redelivered >= 1  # the killed worker's leases came back
    assert sum(items.values()) - len(every) <= redelivered  # twice: only re-deliveries


async def test_a_stopped_worker_gives_its_requests_back_and_a_rerun_finishes(
        aiohttp_server, tmp_path, redis_url):
    """SIGINT: the worker finishes what it fetches and leaves no lease behind for others
    to wait out; running a worker again finishes the crawl."""
    bases, _ = await _two_hosts(aiohttp_server, delay=0.03)
    project = _project(tmp_path)
    job = uuid.uuid4().hex
    proc = await spawn(*_worker(bases, redis_url, job, "w0"), cwd=project)
    await asyncio.sleep(2.0)
    assert proc.returncode is None, "the crawl ended before the stop: slow the site"
    proc.send_signal(signal.SIGINT)
    _, err = await finish(proc, 60)
    assert proc.returncode == 0, err.decode()
    assert await _zcard(redis_url, job, "leased") == 0
    assert await _count(redis_url, job, "queued") > 0
    proc = await spawn(*_worker(bases, redis_url, job, "w1"), cwd=project)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    assert set(_items(project)) == set(_every_page(bases))


async def test_a_seeder_killed_in_start_is_taken_over(aiohttp_server, tmp_path, redis_url):
    """The worker running start() dies half way through it: once its seeding lease ends,
    another worker runs start() again (duplicates filtered) and every page is crawled."""
    bases, _ = await _two_hosts(aiohttp_server)
    project = _project(tmp_path)
    job = uuid.uuid4().hex
    extra = ("-a", f"slow_start={PAGES}", "-s", "frontier_lease=2")
    seeder = await spawn(*_worker(bases, redis_url, job, "w0", *extra), cwd=project)
    await asyncio.sleep(2.0)  # ~200 of 600 start requests yielded
    assert seeder.returncode is None, "start() ended before the kill: slow it"
    other = await spawn(*_worker(bases, redis_url, job, "w1", *extra), cwd=project)
    await asyncio.sleep(0.5)
    seeder.send_signal(signal.SIGKILL)
    await seeder.wait()
    _, err = await finish(other, 120)
    assert other.returncode == 0, err.decode()
    assert "running start() here" in err.decode()
    assert set(_items(project)) == set(_every_page(bases))


async def test_per_host_limits_hold_across_workers(aiohttp_server, tmp_path, redis_url):
    """One request at a time and 0.2 s between starts, for the whole fleet (arrivals may
    come closer by the network's jitter: 0.15 s is asserted); the control (the same three
    workers, each with a frontier of its own) breaks it."""
    app = _site(delay=0.02)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    project = _project(tmp_path)
    limits = ("-s", "per_host_concurrency=1", "-s", "download_delay=0.2",
              "-s", "randomize_download_delay=false", "-s", "max_pages=20")
    job = uuid.uuid4().hex
    shared = [_worker([base], redis_url, job, f"w{n}", *limits) for n in range(3)]
    await _run_fleet(shared, project)
    arrivals = sorted(app[ARRIVALS], key=lambda a: a[1])
    assert len(arrivals) == 20  # max_pages, for the fleet
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.15, gaps
    assert all(b[1] >= a[2] - 0.005 for a, b in itertools.pairwise(arrivals))

    app[ARRIVALS].clear()
    control = [[sys.executable, "-m", "crawler", "run", "fleet", "-a", f"bases={base}",
                *limits, "-O", f"control{n}.jsonl"] for n in range(3)]
    await _run_fleet(control, project)
    arrivals = sorted(app[ARRIVALS], key=lambda a: a[1])
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) < 0.15  # three separate frontiers: three times the rate


async def test_the_fleet_holds_one_slot_per_registrable_domain(aiohttp_server, tmp_path,
                                                               redis_url):
    """politeness_by = domain, for the fleet: two workers crawl two names of one domain
    (given to one local server) one request at a time, 0.2 s apart, whichever name."""
    app = _site(delay=0.02)
    server = await aiohttp_server(app)
    bases = [f"http://{name}.fleet.test:{server.port}" for name in ("a", "b")]
    project = _project(tmp_path)
    limits = ("-s", "per_host_concurrency=1", "-s", "download_delay=0.2",
              "-s", "randomize_download_delay=false", "-s", "max_pages=16",
              "-s", "politeness_by=domain", "-s", f"resolve=*.test:{server.port}:127.0.0.1")
    job = uuid.uuid4().hex
    await _run_fleet([_worker(bases, redis_url, job, f"w{n}", *limits) for n in range(2)],
                     project)
    arrivals = sorted(app[ARRIVALS], key=lambda a: a[1])
    assert len(arrivals) == 16
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.15, gaps


async def test_start_runs_once_under_a_race_and_max_pages_is_global(aiohttp_server, tmp_path,
                                                                    redis_url):
    bases, _ = await _two_hosts(aiohttp_server)
    project = _project(tmp_path)
    job = uuid.uuid4().hex
    commands = [_worker(bases, redis_url, job, f"w{n}", "-s", "max_pages=150")
                for n in range(4)]
    await _run_fleet(commands, project)
    stats = _stats(project)
    assert sum(s["start_requests"] for s in stats) == 2
    assert sum(s["pages"] for s in stats) == 150
    assert sum(_items(project).values()) == 150


async def _count(url: str, job: str, name: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        return int(await client.hget(f"crawler:fleet:{job}:counts", name) or 0)
    finally:
        await client.aclose()


async def _zcard(url: str, job: str, name: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        return int(await client.zcard(f"crawler:fleet:{job}:{name}"))
    finally:
        await client.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_server_command(port: int, directory: Path, *options: str) -> list[str]:
    """A redis-server of the test's own (to stop and start); fail in CI, else skip, when
    there is no binary."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CRAWLER_REQUIRE_REDIS"):
            pytest.fail("redis-server is needed to stop and start a server (CRAWLER_REQUIRE_REDIS)")
        pytest.skip("no redis-server binary to stop and start (apt-get install redis-server)")
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--save", "", *options]


async def _start_redis(command: list[str], port: int) -> asyncio.subprocess.Process:
    """Start it and wait until it listens."""
    server = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        await asyncio.sleep(0.05)
    server.kill()
    raise AssertionError("redis-server did not start")


async def test_a_redis_restart_mid_crawl_loses_nothing(aiohttp_server, tmp_path):
    port = _free_port()
    data = tmp_path / "redis"
    data.mkdir()
    command = _redis_server_command(port, data, "--appendonly", "yes",
                                    "--appendfsync", "always")
    server = await _start_redis(command, port)
    try:
        bases, _ = await _two_hosts(aiohttp_server, delay=0.03)
        (tmp_path / "p").mkdir()
        project = _project(tmp_path / "p")
        url = f"redis://127.0.0.1:{port}/0"
        procs = [await spawn(*_worker(bases, url, "restart", f"w{n}"), cwd=project)
                 for n in range(2)]
        await asyncio.sleep(1.5)
        assert all(p.returncode is None for p in procs), "the crawl ended before the restart"
        server.terminate()  # a clean shutdown: the append-only file has every write
        await server.wait()
        await asyncio.sleep(3)
        server = await _start_redis(command, port)
        for proc in procs:
            _, err = await finish(proc, 120)
            assert proc.returncode == 0, err.decode()
            assert "unreachable" in err.decode()  # said once, and then that it is back
        assert set(_items(project)) == set(_every_page(bases))
    finally:
        if server.returncode is None:
            server.terminate()
            await server.wait()


async def test_an_outage_past_its_limit_stops_the_worker_with_an_error(aiohttp_server,
                                                                        tmp_path):
    port = _free_port()
    server = await _start_redis(
        _redis_server_command(port, tmp_path, "--appendonly", "no"), port)
    try:
        bases, _ = await _two_hosts(aiohttp_server, delay=0.05)
        (tmp_path / "p").mkdir()
        project = _project(tmp_path / "p")
        proc = await spawn(*_worker(bases, f"redis://127.0.0.1:{port}/0", "outage", "w0",
                                    "-s", "frontier_outage=2"), cwd=project)
        await asyncio.sleep(1.5)
        assert proc.returncode is None, "the crawl ended before the outage"
        server.kill()
        await server.wait()
        started = time.monotonic()
        _, err = await finish(proc, 60)
        assert time.monotonic() - started < 30
        assert proc.returncode == 1, err.decode()
        assert "the shared frontier was unreachable for too long" in err.decode()
        assert "spider error" not in err.decode() and "internal" not in err.decode()
        assert json.loads((project / "stats.w0.json").read_text())["finish_reason"] == \
            "frontier_unreachable"
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_a_cancelled_command_raises_cancelled(redis_url):
    """The redis client must let a task's cancellation through (8.0 and 8.1 swallow it
    during a command, and the crawl hangs at shutdown): the version pin's reason."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    script = client.register_script("return 1")

    async def loop() -> None:
        while True:
            await script(args=["x"])

    try:
        for i in range(100):
            task = asyncio.create_task(loop())
            await asyncio.sleep(0.001 * (i % 5))
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=2)
            assert done, f"cancellation swallowed on try {i}"
            assert task.cancelled() or isinstance(task.exception(), Exception)
    finally:
        await client.aclose()


async def test_workers_flag_runs_n_processes_on_one_frontier(aiohttp_server, tmp_path,
                                                            redis_url):
    bases, _ = await _two_hosts(aiohttp_server)
    project = _project(tmp_path)
    proc = await spawn(sys.executable, "-m", "crawler", "run", "fleet", "-a",
                       f"bases={','.join(bases)}", "--frontier", redis_url, "--job",
                       uuid.uuid4().hex, "--workers", "2", "-O", "out.{worker}.jsonl",
                       cwd=project)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    assert _items(project) == _every_page(bases)
    assert len(list(project.glob("out.*.jsonl"))) == 2
    assert err.decode().count("crawl finished") == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "2"], "--workers needs a shared frontier"),
    (["--workers", "2", "--frontier", "redis://127.0.0.1:1/0", "-o", "x.jsonl"],
     "each output needs {worker}"),
    (["--frontier", "http://127.0.0.1/"], "must be a redis://HOST:PORT/DB URL"),
    (["--job", "x"], "give --frontier URL"),
    (["--frontier", "redis://127.0.0.1:1/0", "--job-dir", "j"], "give no job dir"),
])
async def test_bad_shared_crawl_options_are_one_line_errors(tmp_path, args, message):
    project = _project(tmp_path)
    proc = await spawn(sys.executable, "-m", "crawler", "run", "fleet", "-a", "bases=x",
                       *args, cwd=project)
    _, err = await finish(proc, 60)
    assert proc.returncode == 2, err.decode()
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not list(project.glob("*.jsonl")) and not (project / "output").exists()


async def test_an_unreachable_frontier_is_a_one_line_error(tmp_path):
    project = _project(tmp_path)
    port = _free_port()
    (project / "out.jsonl").write_text("kept\n")
    proc = await spawn(sys.executable, "-m", "crawler", "run", "fleet", "-a",
                       "bases=http://127.0.0.1:9", "--frontier", f"redis://127.0.0.1:{port}/0",
                       "-O", "out.jsonl", cwd=project)
    _, err = await finish(proc, 60)
    assert proc.returncode == 2, err.decode()
    assert f"cannot reach the frontier at redis://127.0.0.1:{port}/0" in err.decode()
    assert (project / "out.jsonl").read_text() == "kept\n"  # before any output is touched


async def test_a_cancellation_a_client_swallows_is_raised_anyway():
    """redis-py can catch a cancellation that lands in a command and return normally; the
    frontier's calls raise it, so that a crawl's tasks stop when cancelled (a done-watcher
    that swallowed it held a crawl's end for 2 s)."""
    from crawler.frontier.redisstore import RedisFrontier

    frontier = RedisFrontier("redis://127.0.0.1:1/0", spider="s", heartbeat=None)
    entered = asyncio.Event()

    async def swallowing() -> str:
        entered.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # what the client library did
        return "answer"

    task = asyncio.create_task(frontier._call(swallowing))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert task.cancelled()


def _redis_client(url: str):
    import redis

    return redis.Redis.from_url(url)


async def test_the_crawls_state_deleted_mid_crawl_stops_every_worker_with_one_line(
        aiohttp_server, tmp_path, redis_url):
    bases, _ = await _two_hosts(aiohttp_server, delay=0.05)
    project = _project(tmp_path)
    job = uuid.uuid4().hex
    procs = [await spawn(*_worker(bases, redis_url, job, f"w{n}"), cwd=project)
             for n in range(2)]
    await asyncio.sleep(1.5)
    assert all(p.returncode is None for p in procs), "the crawl ended before the deletion"
    client = _redis_client(redis_url)
    try:
        keys = list(client.scan_iter(f"crawler:fleet:{job}:*"))
        client.delete(*keys)  # another client's FLUSHDB, or an eviction
    finally:
        client.close()
    for proc in procs:
        _, err = await finish(proc, 30)
        text = err.decode()
        assert proc.returncode == 1, text
        errors = [line for line in text.splitlines() if line.startswith("crawler: error:")]
        assert len(errors) == 1 and "vanished mid-crawl" in errors[0], text
        assert "Traceback" not in text


async def test_a_redis_that_may_evict_the_crawl_is_refused(tmp_path):
    port = _free_port()
    server = await _start_redis(_redis_server_command(
        port, tmp_path, "--appendonly", "no", "--maxmemory", "100mb",
        "--maxmemory-policy", "allkeys-lru"), port)
    try:
        project = _project(tmp_path / "p") if (tmp_path / "p").mkdir() is None else None
        assert project is not None
        (project / "out.jsonl").write_text("kept\n")
        proc = await spawn(*_worker(["http://127.0.0.1:9"], f"redis://127.0.0.1:{port}/0",
                                    "evict", "w0"), cwd=project)
        _, err = await finish(proc, 60)
        lines = err.decode().strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, lines
        assert "may evict the crawl's keys (maxmemory-policy allkeys-lru" in lines[0]
    finally:
        server.kill()
        await server.wait()


@pytest.mark.parametrize("fault", ["oom", "wrongtype"])
async def test_redis_refusing_commands_mid_crawl_is_one_line_and_exit_1(aiohttp_server,
                                                                         tmp_path, fault):
    port = _free_port()
    server = await _start_redis(
        _redis_server_command(port, tmp_path, "--appendonly", "no"), port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        bases, _ = await _two_hosts(aiohttp_server, delay=0.05)
        (tmp_path / "p").mkdir()
        project = _project(tmp_path / "p")
        proc = await spawn(*_worker(bases, url, "fault", "w0", "-s", "frontier_outage=2"),
                           cwd=project)
        await asyncio.sleep(1.5)
        assert proc.returncode is None, "the crawl ended before the fault"
        client = _redis_client(url)
        try:
            if fault == "oom":  # out of memory, evicting nothing
                client.config_set("maxmemory-policy", "noeviction")
                client.config_set("maxmemory", "1")
            else:  # a key of the wrong type under the crawl's prefix
                client.delete("crawler:fleet:fault:counts")
                client.set("crawler:fleet:fault:counts", "x")
        finally:
            client.close()
        _, err = await finish(proc, 60)
        text = err.decode()
        assert proc.returncode == 1, text
        errors = [line for line in text.splitlines() if line.startswith("crawler: error:")]
        assert len(errors) == 1, text
        assert ("stayed out of memory" if fault == "oom" else "WRONGTYPE") in errors[0]
        assert "Traceback" not in text and "internal" not in text
    finally:
        server.kill()
        await server.wait()


async def test_a_frozen_worker_loses_its_leases_in_seconds_and_drops_their_items(
        aiohttp_server, tmp_path, redis_url):
    """A worker SIGSTOPped mid-crawl: the other takes its pages back after its heartbeats
    stop (seconds, not the 30 s lease), and when the frozen one wakes it writes none of
    the pages it lost (exactly once, counted)."""
    bases, _ = await _two_hosts(aiohttp_server, delay=0.03)
    project = _project(tmp_path)
    job = uuid.uuid4().hex
    frozen = await spawn(*_worker(bases, redis_url, job, "frozen"), cwd=project)
    other = await spawn(*_worker(bases, redis_url, job, "other"), cwd=project)
    await asyncio.sleep(1.5)
    assert frozen.returncode is None and other.returncode is None
    frozen.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        _, err = await finish(other, 120)
        assert other.returncode == 0, err.decode()
        took = time.monotonic() - stopped_at
    finally:
        frozen.send_signal(signal.SIGCONT)
    # alone, the other worker needs a few seconds for what is left; the frozen worker's
    # in-flight pages come back after 6 s of silence, not at their 30 s lease deadline
    assert took < 20, f"the other worker ended {took:.1f} s after the freeze"
    _, err = await finish(frozen, 60)
    assert frozen.returncode == 0, err.decode()
    assert _items(project) == _every_page(bases)  # every page exactly once
    frozen_stats = json.loads((project / "stats.frozen.json").read_text())
    assert frozen_stats["counters"].get("frontier/lease_lost", 0) >= 1, frozen_stats
    assert "lost its lease" in err.decode()


async def _fleet_storage(redis_url: str, job: str, paths: list[Path]) -> Any:
    """A fleet worker's storage in this process (worker "a", spider "fleet"), its outputs
    open on `paths`: (storage, outputs, stats)."""
    from crawler import Settings, Spider
    from crawler.http.urls import fingerprint
    from crawler.outputs.formats import make_exporter
    from crawler.outputs.outputs import Outputs
    from crawler.signals import Signals
    from crawler.stats import Stats
    from crawler.storage.base import StorageContext
    from crawler.storage.fleet import FleetStorage

    class Pages(Spider):
        name = "fleet"  # the helpers' key prefix

    stats = Stats()
    outputs = Outputs([make_exporter(p, overwrite=True) for p in paths], stats)
    settings = Settings(frontier=redis_url, frontier_job=job, worker_id="a")
    storage = FleetStorage(StorageContext(Pages(), settings, stats, Signals(stats), outputs,
                                          fingerprint), redis_url)
    await storage.open()
    await outputs.check()
    await outputs.open()
    return storage, outputs, stats


async def _complete(storage: Any, request: Any, copies: int = 1) -> None:
    """`request`'s page completed with `copies` items (url, k)."""
    from crawler.outputs.items import to_record

    page = storage.page(request)
    for k in range(copies):
        await page.add(to_record({"url": request.url, "k": k}), None)
    await storage.complete(request, page, keep=False)


async def test_pages_whose_leases_were_lost_while_written_are_taken_back_out(tmp_path,
                                                                             redis_url):
    """The window the frozen-worker test can only hit by chance, made to happen: the
    leases of two pages are lost after this worker last heard its heartbeat (so it
    believes it holds them and writes them) and before it acknowledges them. The
    acknowledgement says so, and the worker cuts every file back and writes only the pages
    it acknowledged: each file as if the two had never been written, nothing counted
    twice."""
    import redis.asyncio as aioredis

    from crawler import Request
    from crawler.http.urls import fingerprint
    from crawler.tasks import cancel_and_wait

    paths = [tmp_path / f"out{suffix}" for suffix in (".jsonl", ".json", ".csv", ".xml")]
    storage, outputs, stats = await _fleet_storage(redis_url, uuid.uuid4().hex, paths)
    frontier = storage.frontier
    client = aioredis.from_url(redis_url)
    try:
        await cancel_and_wait(frontier._heartbeat)  # this worker "stalls" from here ...
        requests = [Request(f"http://a/{n}") for n in range(6)]
        await frontier.add_many([(r, fingerprint(r), False) for r in requests])
        taken = await frontier.pop_many(6)
        assert len(taken) == 6
        for request in taken[:2]:  # a first round, acknowledged as usual
            await _complete(storage, request, 2)
        frontier._beat_ok = time.monotonic()
        assert await storage.write_acknowledged()
        for request in taken[2:]:
            await _complete(storage, request, 2)
        for request in taken[2:4]:  # ... and meanwhile another worker took two pages back
            await client.hset(frontier.prefix + "owner", str(request.meta["_store_id"]), "b")
        frontier._beat_ok = time.monotonic()  # its last heartbeat looked fresh
        assert await storage.write_acknowledged()
        await outputs.close()
    finally:
        await client.aclose()
        await storage.close()
    kept = [r.url for r in taken[:2] + taken[4:]]
    lines = [json.loads(line) for line in paths[0].read_bytes().splitlines()]
    assert [item["url"] for item in lines] == [u for u in kept for _ in range(2)]
    assert [item["url"] for item in json.loads(paths[1].read_bytes())] == \
        [item["url"] for item in lines]
    assert paths[2].read_text().splitlines()[0] == "url,k"
    assert len(paths[2].read_text().splitlines()) == 1 + len(lines)
    from xml.etree import ElementTree

    assert len(ElementTree.parse(paths[3]).getroot()) == len(lines)
    assert stats.items == len(lines)
    assert stats.counters["frontier/lease_lost"] == 2
    assert not stats.counters.get("frontier/lease_lost_after_write")


async def test_a_stop_in_the_middle_of_an_acknowledgement_still_acknowledges(tmp_path,
                                                                             redis_url):
    """A graceful stop (SIGINT, a service's pause) cancels the acks task; caught between
    writing a batch and acknowledging it, the batch must still be acknowledged, or its
    pages would be given back and written a second time by whoever redoes them."""
    from crawler import Request
    from crawler.http.urls import fingerprint
    from crawler.tasks import cancel_and_wait

    path, job = tmp_path / "out.jsonl", uuid.uuid4().hex
    storage, outputs, _ = await _fleet_storage(redis_url, job, [path])
    frontier = storage.frontier
    acking = None
    try:
        requests = [Request(f"http://a/{n}") for n in range(4)]
        await frontier.add_many([(r, fingerprint(r), False) for r in requests])
        taken = await frontier.pop_many(4)
        for request in taken:
            await _complete(storage, request)
        written, go_on = asyncio.Event(), asyncio.Event()
        ack_held = frontier.ack_held

        async def slow_ack(held):  # the items are in the file; the ack is on its way
            written.set()
            await go_on.wait()
            return await ack_held(held)

        frontier.ack_held = slow_ack
        acking = asyncio.create_task(storage._acking(lambda: None))
        storage.idle()
        await asyncio.wait_for(written.wait(), 10)
        await cancel_and_wait(acking)  # the stop
        go_on.set()

        async def nothing_pending() -> bool:
            return True

        await storage.finish(nothing_pending)
        await outputs.close()
    finally:
        if acking is not None:
            acking.cancel()
        await storage.close()
    lines = [json.loads(line)["url"] for line in path.read_bytes().splitlines()]
    assert sorted(lines) == sorted(r.url for r in taken)
    assert await _count(redis_url, job, "acked") == 4
    assert await _zcard(redis_url, job, "leased") == 0
    assert await _count(redis_url, job, "queued") == 0  # nothing given back to be redone


async def test_an_acknowledgement_sent_again_gets_the_same_answer(redis_url):
    """The client sends a script again when its connection dropped, maybe after Redis ran
    it: the second run must not report the first run's acknowledgements as lost leases
    (the worker would take their items back out of its files)."""
    from crawler import Request
    from crawler.frontier.redisstore import RedisFrontier
    from crawler.http.urls import fingerprint

    frontier = RedisFrontier(redis_url, spider="acks", job=uuid.uuid4().hex, heartbeat=None,
                             worker="a")
    await frontier.open()
    try:
        request = Request("http://a/1")
        await frontier.add_many([(request, fingerprint(request), False)])
        [taken] = await frontier.pop_many(1)
        rid = str(taken.meta["_store_id"])
        args = [frontier.prefix, frontier.worker, "token-1", rid]
        assert await frontier._run("ack", args) == []
        assert await frontier._run("ack", args) == []  # the same call again
        assert await frontier._run("ack", [*args[:2], "token-2", rid]) == [rid.encode()]
    finally:
        await frontier.close()


async def test_fleet_status_counts_every_fetch_end_when_workers_leave(aiohttp_server,
                                                                       tmp_path, redis_url):
    bases, _ = await _two_hosts(aiohttp_server)
    project = _project(tmp_path)
    job = uuid.uuid4().hex
    await _run_fleet([_worker(bases, redis_url, job, f"w{n}") for n in range(3)], project)
    proc = await spawn(sys.executable, "-m", "crawler", "status", "fleet", "--frontier",
                       redis_url, "--job", job, cwd=project)
    out, err = await finish(proc, 30)
    assert proc.returncode == 0, err.decode()
    lines = dict(line.split(":", 1) for line in out.decode().splitlines()
                 if ":" in line and not line.startswith(" "))
    every = len(_every_page(bases))
    assert int(lines["done"]) == int(lines["pages"]) == every, out.decode()
    assert lines["state"].strip() == "finished"


async def test_a_frozen_redis_is_given_up_on_within_frontier_outage(aiohttp_server, tmp_path):
    """A Redis that accepts nothing and answers nothing (SIGSTOP: as a partition looks)
    must not hold each command for the client's 30 s socket timeout: the crawl gives up
    after about frontier_outage, with one line and no traceback."""
    port = _free_port()
    server = await _start_redis(_redis_server_command(
        port, tmp_path, "--appendonly", "no", "--requirepass", "secret-pw"), port)
    try:
        bases, _ = await _two_hosts(aiohttp_server, delay=0.05)
        (tmp_path / "p").mkdir()
        project = _project(tmp_path / "p")
        proc = await spawn(*_worker(bases, f"redis://:secret-pw@127.0.0.1:{port}/0", "frozen",
                                    "w0", "-s", "frontier_outage=3"), cwd=project)
        await asyncio.sleep(1.5)
        assert proc.returncode is None, "the crawl ended before the freeze"
        server.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        _, err = await finish(proc, 60)
        took = time.monotonic() - started
        text = err.decode()
        assert proc.returncode == 1, text
        assert took < 15, f"gave up after {took:.1f} s"
        errors = [line for line in text.splitlines() if line.startswith("crawler: error:")]
        assert len(errors) == 1 and "unreachable for too long" in errors[0], text
        assert "Traceback" not in text and "secret-pw" not in text
    finally:
        server.send_signal(signal.SIGCONT)
        server.kill()
        await server.wait()
