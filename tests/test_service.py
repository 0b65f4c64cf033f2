"""The crawl service (`python -m crawler serve`, crawler/service/), end to end: the service
and its runs are real processes, the site a local server, the API spoken over HTTP."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from benchmarks.servers import spider_project
from tests.conftest import spawn

TOKEN = "test-token"
AUTH = {"X-Crawler-Token": TOKEN}

SPIDER = textwrap.dedent('''
    import signal
    from crawler import Request, Spider

    class Pages(Spider):
        """Every page of a local site."""
        name = "pages"
        custom_settings = {"obey_robots": False, "per_host_concurrency": 2,
                           "log_interval": 0}

        def __init__(self, base="http://127.0.0.1:9", count="10", stubborn="no", **kw):
            super().__init__(**kw)
            self.base, self.count, self.stubborn = base, int(count), stubborn == "yes"

        async def start(self):
            if self.stubborn:  # a spider that will not stop when asked
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            for i in range(self.count):
                yield Request(f"{self.base}/p/{i}")

        def parse(self, response):
            yield {"url": response.url}
''')


def _site(delay: float) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(text="<html><body>page</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/p/{i}", page)
    return app


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A service process on a free port, and a client for it."""

    def __init__(self, project: Path, *extra: str) -> None:
        self.project, self.extra = project, extra
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.session = aiohttp.ClientSession()

    async def start(self) -> None:
        self.proc = await spawn(sys.executable, "-m", "crawler", "serve", "--port",
                                str(self.port), "--token", TOKEN, *self.extra,
                                cwd=self.project)
        for _ in range(200):
            try:
                async with self.session.get(self.url + "/daemonstatus.json") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("the service did not start")

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, **kw) as response:
            body = await response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, orjson.loads(body) if kind.startswith("application/json") \
                else body

    async def run(self, run_id: str) -> dict[str, Any]:
        return (await self.call("GET", f"/api/runs/{run_id}"))[1]

    async def until(self, run_id: str, *states: str, limit: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            run = await self.run(run_id)
            if run["state"] in states:
                return run
            await asyncio.sleep(0.05)
        raise AssertionError(f"run {run_id} never became {states}: {run['state']}")

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        await asyncio.wait_for(self.proc.wait(), 60)

    async def close(self) -> None:
        await self.session.close()


def _items(project: Path, run_id: str) -> list[str]:
    path = project / ".crawler-service" / "runs" / run_id / "items.jsonl"
    return [orjson.loads(line)["url"] for line in path.read_bytes().splitlines()]


async def _start(aiohttp_server, tmp_path, delay: float = 0.05, *extra: str,
                 ) -> tuple[Service, str]:
    server = await aiohttp_server(_site(delay))
    project = spider_project(tmp_path / "project", "pages", SPIDER)
    service = Service(project, *extra)
    await service.start()
    return service, str(server.make_url("")).rstrip("/")


async def test_a_run_paused_and_resumed_writes_every_page_once(aiohttp_server, tmp_path):
    service, base = await _start(aiohttp_server, tmp_path, 0.05)
    try:
        status, run = await service.call("POST", "/api/runs", headers=AUTH, json={
            "spider": "pages", "args": {"base": base, "count": "80"}})
        assert status == 201 and run["state"] == "queued"
        run_id = run["id"]
        await service.until(run_id, "running")
        await asyncio.sleep(1.0)
        status, paused = await service.call("POST", f"/api/runs/{run_id}/pause", headers=AUTH)
        assert status == 200 and paused["state"] in ("pausing", "paused")
        paused = await service.until(run_id, "paused")
        done_before = len(_items(service.project, run_id))
        assert 0 < done_before < 80  # stopped part way, gracefully
        await service.call("POST", f"/api/runs/{run_id}/resume", headers=AUTH)
        finished = await service.until(run_id, "finished")
        urls = _items(service.project, run_id)
        assert Counter(urls) == Counter(f"{base}/p/{i}" for i in range(80))  # once each
        assert finished["attempts"] == 2 and finished["exit_code"] == 0
        status, page = await service.call("GET", f"/api/runs/{run_id}/items?offset=70&limit=5")
        assert [i["url"] for i in page["items"]] == urls[70:75]
        status, log = await service.call("GET", f"/api/runs/{run_id}/log?tail=2000")
        assert b"crawl finished" in log or b"finished" in log
    finally:
        await service.stop()
        await service.close()


async def test_kill_9_of_the_service_then_a_restart_resumes_the_run_exactly_once(
        aiohttp_server, tmp_path):
    service, base = await _start(aiohttp_server, tmp_path, 0.05)
    try:
        _, run = await service.call("POST", "/api/runs", headers=AUTH, json={
            "spider": "pages", "args": {"base": base, "count": "80"}})
        running = await service.until(run["id"], "running")
        await asyncio.sleep(1.0)
        await service.stop(signal.SIGKILL)
        # the crawl died with the service (no orphan goes on writing)
        for _ in range(100):
            if not _alive(running["pid"]):
                break
            await asyncio.sleep(0.05)
        assert not _alive(running["pid"])
        await service.start()
        finished = await service.until(run["id"], "finished")
        assert Counter(_items(service.project, run["id"])) == Counter(
            f"{base}/p/{i}" for i in range(80))
        assert finished["attempts"] == 2
    finally:
        await service.stop()
        await service.close()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def test_thirty_runs_queued_with_max_runs_2_never_run_more_than_2(aiohttp_server,
                                                                        tmp_path):
    service, base = await _start(aiohttp_server, tmp_path, 0.05, "--max-runs", "2")
    try:
        ids = []
        for n in range(30):
            _, run = await service.call("POST", "/api/runs", headers=AUTH, json={
                "spider": "pages", "args": {"base": base, "count": "3"}, "priority": n % 3})
            ids.append(run["id"])
        most_records = most_processes = 0
        while True:
            _, listing = await service.call("GET", "/api/runs?limit=100")
            states = Counter(r["state"] for r in listing["runs"])
            most_records = max(most_records, states["running"])
            most_processes = max(most_processes, len(_crawls(service.project)))
            if states["finished"] == 30:
                break
            assert not states["failed"], listing
            await asyncio.sleep(0.05)
        assert most_records <= 2 and most_processes <= 2
        assert most_records == 2  # and both slots were used
        _, status = await service.call("GET", "/api/status")
        assert status["runs"] == {"finished": 30} and status["max_runs"] == 2
        _, metrics = await service.call("GET", "/metrics")
        assert b'crawler_service_runs{state="finished"} 30' in metrics
        assert b'crawler_service_pages_total{spider="pages"} 90' in metrics
    finally:
        await service.stop()
        await service.close()


def _crawls(project: Path) -> list[int]:
    """The crawl processes running this project's runs (the process table's view)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"run" in cmd and str(project / ".crawler-service").encode() in b" ".join(cmd) \
                    and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


async def test_cancel_kills_a_run_that_ignores_sigint_after_the_grace(aiohttp_server, tmp_path):
    service, base = await _start(aiohttp_server, tmp_path, 5.0, "--grace", "1")
    try:
        _, run = await service.call("POST", "/api/runs", headers=AUTH, json={
            "spider": "pages", "args": {"base": base, "count": "50", "stubborn": "yes"}})
        running = await service.until(run["id"], "running")
        await asyncio.sleep(1.0)  # start() ran: SIGINT is ignored now
        started = time.monotonic()
        status, cancelling = await service.call("POST", f"/api/runs/{run['id']}/cancel",
                                                headers=AUTH)
        assert status == 200 and cancelling["state"] == "cancelling"
        cancelled = await service.until(run["id"], "cancelled", limit=20)
        assert 0.9 <= time.monotonic() - started < 10
        assert cancelled["exit_code"] == -signal.SIGKILL
        assert not _alive(running["pid"])
    finally:
        await service.stop()
        await service.close()


async def test_scrapyd_endpoints_answer_in_scrapyds_shapes(aiohttp_server, tmp_path):
    service, base = await _start(aiohttp_server, tmp_path, 0.01)
    basic = {"Authorization": "Basic " + base64.b64encode(f"me:{TOKEN}".encode()).decode()}
    try:
        status, spiders = await service.call("GET", "/listspiders.json?project=default")
        assert spiders["status"] == "ok" and spiders["spiders"] == ["pages"]
        status, refused = await service.call("POST", "/schedule.json", data={
            "project": "default", "spider": "pages"})
        assert status == 401  # a change needs the token
        status, scheduled = await service.call("POST", "/schedule.json", headers=basic, data={
            "project": "myproject", "spider": "pages", "base": base, "count": "4",
            "setting": "download_delay=0", "jobid": "job-one"})
        assert scheduled["status"] == "ok" and scheduled["jobid"] == "job-one"
        _, wrong = await service.call("POST", "/schedule.json", headers=basic, data={
            "project": "myproject", "spider": "nope"})
        assert wrong["status"] == "error" and "nope" in wrong["message"]
        await service.until("job-one", "finished")
        _, jobs = await service.call("GET", "/listjobs.json?project=myproject")
        assert jobs["status"] == "ok" and jobs["pending"] == [] and jobs["running"] == []
        [job] = jobs["finished"]
        assert job["id"] == "job-one" and job["spider"] == "pages"
        assert job["start_time"] and job["end_time"]
        _, items = await service.call("GET", job["items_url"])
        assert sorted(orjson.loads(line)["url"] for line in items.splitlines()) == sorted(
            f"{base}/p/{i}" for i in range(4))
        _, daemon = await service.call("GET", "/daemonstatus.json")
        assert daemon["status"] == "ok" and daemon["finished"] == 1
        _, cancelled = await service.call("POST", "/cancel.json", headers=basic, data={
            "project": "myproject", "job": "job-one"})
        assert cancelled == {**cancelled, "status": "ok", "prevstate": "finished"}
    finally:
        await service.stop()
        await service.close()


async def test_bad_requests_get_a_clear_answer_and_nothing_runs(tmp_path):
    project = spider_project(tmp_path / "project", "pages", SPIDER)
    service = Service(project)
    await service.start()
    try:
        status, body = await service.call("POST", "/api/runs", json={"spider": "pages"})
        assert status == 401
        status, body = await service.call("POST", "/api/runs", headers=AUTH,
                                          json={"spider": "nope"})
        assert status == 404 and "nope" in body["error"]
        status, body = await service.call("POST", "/api/runs", headers=AUTH, json={
            "spider": "pages", "settings": {"concurency": "3"}})
        assert status == 400 and "did you mean 'concurrency'" in body["error"]
        status, body = await service.call("POST", "/api/runs", headers=AUTH, data=b"{")
        assert status == 400
        status, body = await service.call("GET", "/api/runs/none-such")
        assert status == 404
        status, body = await service.call("POST", "/api/runs", headers={
            **AUTH, "Origin": "http://evil.example"}, json={"spider": "pages"})
        assert status == 403
        status, body = await service.call("GET", "/api/status", headers={
            "Host": "evil.example"})
        assert status == 403  # DNS rebinding
        _, listing = await service.call("GET", "/api/runs")
        assert listing["runs"] == []
    finally:
        await service.stop()
        await service.close()


async def test_off_loopback_the_service_needs_a_token(tmp_path):
    project = spider_project(tmp_path / "project", "pages", SPIDER)
    proc = await spawn(sys.executable, "-m", "crawler", "serve", "--host", "0.0.0.0",
                       "--port", str(_port()), cwd=project)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"needs --token" in err


async def test_a_cron_schedule_fires_once_per_due_time_across_restarts(tmp_path):
    """A fake clock; the service's records on disk. Each due time makes one run, whether
    the service restarts between firings, or was down over several (one run for those),
    or died after storing a firing's run and before moving the schedule on."""
    from datetime import UTC, datetime

    from crawler.service.runs import Runner
    from crawler.service.schedules import Scheduler
    from crawler.service.store import RunStore

    now = [datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC).timestamp()]

    async def service() -> tuple[RunStore, Scheduler]:
        store = RunStore(tmp_path / "service.db")
        await store.open()
        # the runner is not started: the runs it is given stay queued, to be counted
        runner = Runner(store, project=tmp_path, data=tmp_path)
        return store, Scheduler(runner, clock=lambda: now[0])

    store, scheduler = await service()
    made = await scheduler.create({"spider": "pages", "cron": "* * * * *", "overlap": "queue",
                                   "timezone": "Europe/Paris"})
    assert made.next_fire == datetime(2026, 1, 1, 0, 1, tzinfo=UTC).timestamp()
    await scheduler.tick()
    assert await store.runs() == []  # not due yet
    now[0] += 31  # 00:01:01
    await scheduler.tick()
    await scheduler.tick()
    assert [r.id for r in await store.runs()] == [f"{made.id}-{int(made.next_fire)}"]
    await store.close()

    store, scheduler = await service()  # a restart: nothing fires again
    await scheduler.tick()
    assert len(await store.runs()) == 1
    now[0] += 600  # down for ten minutes: the nine missed firings make one run
    await scheduler.tick()
    assert len(await store.runs()) == 2
    [schedule] = await store.schedules()
    assert schedule.next_fire > now[0] and schedule.fired == 2

    # killed after storing a firing's run, before moving the schedule on: the same due
    # time comes up again at the next start, and finds its run
    schedule.next_fire = schedule.last_fire or 0.0
    await store.save_schedule(schedule)
    await scheduler.tick()
    assert len(await store.runs()) == 2

    # overlap = skip: a firing while the schedule's run is still queued makes none
    await scheduler.update(schedule.id, {"overlap": "skip"})
    now[0] += 60
    await scheduler.tick()
    assert len(await store.runs()) == 2
    assert (await store.schedules())[0].skipped == 1
    await store.close()


async def test_schedules_over_the_api(aiohttp_server, tmp_path):
    service, base = await _start(aiohttp_server, tmp_path, 0.01)
    try:
        status, bad = await service.call("POST", "/api/schedules", headers=AUTH, json={
            "spider": "pages", "cron": "not cron"})
        assert status == 400 and "cron" in bad["error"]
        status, made = await service.call("POST", "/api/schedules", headers=AUTH, json={
            "spider": "pages", "every": 1, "args": {"base": base, "count": "2"}})
        assert status == 201
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # it fires by itself, every second
            _, listing = await service.call("GET", "/api/runs?state=finished")
            if len(listing["runs"]) >= 2:
                break
            await asyncio.sleep(0.1)
        assert all(r["schedule"] == made["id"] for r in listing["runs"])
        status, _ = await service.call("PUT", f"/api/schedules/{made['id']}", headers=AUTH,
                                       json={"enabled": False})
        assert status == 200
        status, run = await service.call("POST", f"/api/schedules/{made['id']}/run",
                                         headers=AUTH)
        assert status == 201 and run["schedule"] == made["id"]
        status, _ = await service.call("DELETE", f"/api/schedules/{made['id']}", headers=AUTH)
        assert status == 200
        _, schedules = await service.call("GET", "/api/schedules")
        assert schedules["schedules"] == []
    finally:
        await service.stop()
        await service.close()


async def test_the_page_in_a_real_browser(aiohttp_server, tmp_path):
    """Start a run from the page, watch its counters rise, pause it, resume it, follow its
    log, open its live status page through the service; a screenshot is kept
    (tests/artifacts/service.png)."""
    import shutil

    import pytest

    if shutil.which("chromium") is None:
        if os.environ.get("CRAWLER_REQUIRE_BROWSER"):
            pytest.fail("no chromium on PATH (CRAWLER_REQUIRE_BROWSER)")
        pytest.skip("no chromium on PATH (apt-get install chromium) for the page's test")
    from playwright.async_api import async_playwright

    service, base = await _start(aiohttp_server, tmp_path, 0.05)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=shutil.which("chromium"))
            try:
                # the page's CSP forbids eval, which wait_for_function needs: bypassed
                # for the test's own probes (tests/test_status.py does the same)
                page = await browser.new_page(viewport={"width": 1200, "height": 800},
                                              bypass_csp=True)
                await page.goto(f"{service.url}/?token={TOKEN}")
                await page.wait_for_function(
                    "document.querySelectorAll('#spider option').length > 0")
                await page.fill("#args", f"base={base}\ncount=200")
                await page.click("#start-button")
                row = page.locator("#runs tr").first
                await row.locator(".state.running").wait_for(timeout=20_000)
                await page.wait_for_function(
                    "Number(document.querySelector('#runs tr td.pages').textContent) > 5",
                    timeout=20_000)
                status_link = await row.get_by_role("link", name="status").get_attribute("href")
                viewer = await browser.new_page(bypass_csp=True)
                await viewer.goto(service.url + status_link)
                await viewer.wait_for_function(
                    "Number(document.getElementById('pages').textContent) > 0",
                    timeout=20_000)
                await viewer.close()
                await row.get_by_role("button", name="Pause").click()
                await row.locator(".state.paused").wait_for(timeout=20_000)
                paused_at = int(await row.locator("td.items").text_content() or 0)
                await row.get_by_role("button", name="Resume").click()
                await row.locator(".state.running").wait_for(timeout=20_000)
                await row.get_by_role("button", name="Log").click()
                await page.wait_for_function(
                    "document.getElementById('log').textContent.includes('status page')",
                    timeout=20_000)
                await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)  # for a look: the
                # docs' picture (docs/service.png) is copied from here by hand
                await page.screenshot(path=str(ARTIFACTS / "service.png"), full_page=True)
                await row.locator(".state.finished").wait_for(timeout=60_000)
            finally:
                await browser.close()
        [run] = (await service.call("GET", "/api/runs"))[1]["runs"]
        assert paused_at > 0 and run["stats"]["items"] == 200
        assert Counter(_items(service.project, run["id"])) == Counter(
            f"{base}/p/{i}" for i in range(200))
    finally:
        await service.stop()
        await service.close()


ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # git ignores it


async def test_the_api_holds_against_its_openapi_document(aiohttp_server, tmp_path):
    """schemathesis generates requests from the served OpenAPI document (every operation,
    with the token, fuzzed and stateful): no answer is a server error."""
    service, base = await _start(aiohttp_server, tmp_path, 0.01, "--max-runs", "1",
                                 "--grace", "2")
    try:
        status, spec = await service.call("GET", "/openapi.json")
        assert status == 200 and sum(len(ops) for ops in spec["paths"].values()) == 23
        cli = Path(sys.executable).with_name("schemathesis")
        proc = await spawn(str(cli), "run", f"{service.url}/openapi.json", "--checks",
                           "not_a_server_error", "--header", f"X-Crawler-Token: {TOKEN}",
                           "--max-examples", "15", "--generation-deterministic",
                           cwd=tmp_path)
        out, err = await asyncio.wait_for(proc.communicate(), 300)
        assert proc.returncode == 0, (out + err).decode()[-4000:]
    finally:
        await service.stop()
        await service.close()


async def test_history_is_kept_by_count_and_by_age(tmp_path):
    from crawler.service.store import Run, RunStore

    store = RunStore(tmp_path / "service.db")
    await store.open()
    now = time.time()
    for n, age in enumerate((10, 5, 2, 1)):  # days since each finished
        await store.save(Run(id=f"r{n}", spider="s", state="finished",
                             finished=now - age * 86400))
    await store.save(Run(id="going", spider="s", state="running"))
    dropped = await store.forget(3, before=now - 3 * 86400)
    assert sorted(r.id for r in dropped) == ["r0", "r1"]  # past the newest 3; 5 days old
    dropped = await store.forget(1)
    assert sorted(r.id for r in dropped) == ["r2"]
    assert sorted(r.id for r in await store.runs()) == ["going", "r3"]
    await store.close()


async def test_a_fleet_run_on_redis_paused_and_resumed_writes_every_page_once(
        aiohttp_server, tmp_path, redis_url):
    service, base = await _start(aiohttp_server, tmp_path, 0.05)
    try:
        status, bad = await service.call("POST", "/api/runs", headers=AUTH, json={
            "spider": "pages", "workers": 2})
        assert status == 400 and "frontier" in bad["error"]
        status, run = await service.call("POST", "/api/runs", headers=AUTH, json={
            "spider": "pages", "workers": 2, "args": {"base": base, "count": "80"},
            "settings": {"frontier": redis_url}})
        assert status == 201 and run["workers"] == 2
        await service.until(run["id"], "running")
        await asyncio.sleep(1.5)
        await service.call("POST", f"/api/runs/{run['id']}/pause", headers=AUTH)
        await service.until(run["id"], "paused")
        await service.call("POST", f"/api/runs/{run['id']}/resume", headers=AUTH)
        await service.until(run["id"], "finished", limit=90)
        _, output = await service.call("GET", f"/api/runs/{run['id']}/items.jl")
        urls = [orjson.loads(line)["url"] for line in output.splitlines()]
        assert Counter(urls) == Counter(f"{base}/p/{i}" for i in range(80))
        _, page = await service.call("GET", f"/api/runs/{run['id']}/items?limit=1000")
        assert len(page["items"]) == 80
    finally:
        await service.stop()
        await service.close()
