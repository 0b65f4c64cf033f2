"""Autoscaled concurrency (crawler/core/autoscale.py): the cgroup's memory limit, the
decisions, and a crawl that grows past the default concurrency on a slow site."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from crawler import Crawler, Request, Settings, Spider
from crawler.core.autoscale import Autoscaler, memory_limit
from tests.conftest import status_page_text

MB = 2**20


def _cgroup_v2(tmp_path: Path, limit: str) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    (root / "kubepods" / "pod1").mkdir(parents=True)
    (root / "kubepods" / "memory.max").write_text(limit + "\n")
    (root / "kubepods" / "pod1" / "memory.max").write_text("max\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/kubepods/pod1\n")
    return root, proc


def test_the_memory_limit_is_the_containers_cgroup_v2_and_v1(tmp_path):
    root, proc = _cgroup_v2(tmp_path, str(512 * MB))
    assert memory_limit(cgroup_root=root, proc_cgroup=proc) == (512 * MB, "cgroup v2")
    (root / "kubepods" / "memory.max").write_text("max\n")  # no limit on the way up
    limit, source = memory_limit(cgroup_root=root, proc_cgroup=proc)
    assert source == "machine" and limit > 512 * MB
    v1 = tmp_path / "v1"
    (v1 / "memory" / "docker" / "abc").mkdir(parents=True)
    (v1 / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text(str(300 * MB))
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712")
    (tmp_path / "v1-cgroup").write_text("5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n")
    assert memory_limit(cgroup_root=v1, proc_cgroup=tmp_path / "v1-cgroup") == (
        300 * MB, "cgroup v1")


async def test_it_shrinks_under_a_cgroup_limit_and_grows_when_it_is_lifted(tmp_path):
    """The real sampler, reading this process's real memory against a fake cgroup file: a
    limit below what it holds shrinks the concurrency at each sample; lifting it (and
    every slot in use) grows it again."""
    root, proc = _cgroup_v2(tmp_path, str(1 * MB))
    settings = Settings(concurrency="auto", max_concurrency=40, autoscale_interval=0.05)
    scaler = Autoscaler(settings, busy=lambda: scaler.limit, stall=lambda: 0.0,
                        cpu=lambda: 0.0, cgroup_root=root, proc_cgroup=proc)
    task = asyncio.create_task(scaler.run())
    try:
        assert scaler.limit == 16
        await _until(lambda: scaler.limit <= 4)
        assert scaler.reason.startswith("shrank: memory") and "cgroup v2" in scaler.reason
        (root / "kubepods" / "memory.max").write_text("max\n")
        await _until(lambda: scaler.limit == 40)
        assert scaler.reason.startswith("grew")
    finally:
        task.cancel()


def test_loop_lag_and_cpu_shrink_it_and_an_unused_limit_does_not_grow():
    settings = Settings(concurrency="auto", max_concurrency=100)
    scaler = Autoscaler(settings, busy=lambda: 0, stall=lambda: 0.0)
    calm = {"memory": 100 * MB, "memory_limit": 1000 * MB, "source": "machine"}
    scaler.decide(cpu=0.2, lag=0.01, busy=5, **calm)  # 5 of 16 in flight: no reason to grow
    assert scaler.limit == 16
    scaler.decide(cpu=0.2, lag=0.5, busy=16, **calm)
    assert scaler.limit == 12 and "event-loop lag 500 ms" in scaler.reason
    scaler.decide(cpu=0.97, lag=0.0, busy=12, **calm)
    assert scaler.limit == 9 and "CPU 97% of a core" in scaler.reason
    scaler.decide(cpu=0.2, lag=0.0, busy=9, **calm)
    assert scaler.limit == 10 and scaler.reason.startswith("grew")


class Slow(Spider):
    name = "slow"
    custom_settings = {"obey_robots": False}

    def __init__(self, base: str, **kw) -> None:
        super().__init__(**kw)
        self.base = base

    async def start(self):
        for i in range(400):
            yield Request(f"{self.base}/p/{i}")

    def parse(self, response):
        yield {"url": response.url}


async def test_a_crawl_grows_past_the_default_on_a_slow_site_and_the_page_says_why(
        aiohttp_server):
    """A site that answers in 0.3 s, whatever the load: with `auto`, more than the default
    16 requests are in flight at once (seen by the server), and the status page shows the
    limit and why it grew."""
    now = {"open": 0, "most": 0}

    async def page(request: web.Request) -> web.Response:
        now["open"] += 1
        now["most"] = max(now["most"], now["open"])
        await asyncio.sleep(0.3)
        now["open"] -= 1
        return web.Response(text="<html></html>", content_type="text/html")

    if shutil.which("chromium") is None:
        if os.environ.get("CRAWLER_REQUIRE_BROWSER"):
            pytest.fail("no chromium on PATH (CRAWLER_REQUIRE_BROWSER)")
        pytest.skip("no chromium on PATH (apt-get install chromium) to view the status page")
    app = web.Application()
    app.router.add_get("/p/{i}", page)
    server = await aiohttp_server(app)
    settings = Settings().merge(Slow.custom_settings).merge(
        {"concurrency": "auto", "max_concurrency": 64, "per_host_concurrency": 64,
         "autoscale_interval": 0.1, "status_port": 0, "log_interval": 0})
    crawler = Crawler(Slow(str(server.make_url("")).rstrip("/")), settings=settings)
    task = asyncio.create_task(crawler.run())
    try:
        status = await _until(lambda: next((e for e in crawler.extensions
                                            if type(e).__name__ == "StatusPage"
                                            and e.url), None))
        shown = await status_page_text(status, "concurrency", "grew")
        assert "of at most 64" in shown
    finally:
        result = await asyncio.wait_for(task, 120)
    assert result.stats.pages == 400
    assert now["most"] > 16
    assert result.stats.counters["autoscale/grew"] >= 1


async def _until(check, limit: float = 30):
    for _ in range(int(limit / 0.02)):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")
