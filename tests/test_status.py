"""The live status page: its API, event stream, metrics and controls with aiohttp's test
client during real crawls; the security rules; the CLI; and the page itself in a real
browser (headless Chromium driven by Playwright)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from aiohttp import web

from crawler import Crawler, Settings, Spider
from crawler.extensions.status import StatusView, status_app
from tests.conftest import HITS, ROOT, finish, spawn

TOKEN = "test-token-123"


def slow_site(count: int, delay: float) -> web.Application:
    """/0 .. /count-1, each linking to the next two, answering after `delay` seconds; /bad
    links fail with a 404."""
    async def page(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        request.app[HITS].append((request.path, 0.0))
        n = int(request.match_info["n"])
        links = "".join(f'<a href="/{m}">{m}</a>' for m in (n + 1, n + 2) if m < count)
        return web.Response(text=f"<html><body>{links}<a href='/bad{n % 3}'>x</a></body></html>",
                            content_type="text/html")

    app = web.Application()
    app[HITS] = []
    app.router.add_get("/{n:\\d+}", page)
    return app


class Chain(Spider):
    name = "chain"
    custom_settings: ClassVar[dict[str, Any]] = {"log_interval": 0}

    def __init__(self, base: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [base + "0"]

    async def parse(self, response):
        yield {"url": response.url}
        for link in response.css("a"):
            yield response.follow(link, callback=self.parse)


async def started(server, **settings: Any) -> tuple[Crawler, asyncio.Task[Any]]:
    crawler = Crawler(Chain(str(server.make_url("/"))),
                      settings=Settings().merge({"per_host_concurrency": 2, "log_interval": 0,
                                                 "retries": 0, **settings}))
    task = asyncio.create_task(crawler.run())
    three = asyncio.Event()
    crawler.signals.connect("response_received",
                            lambda: crawler.stats.pages >= 3 and three.set())
    await asyncio.wait_for(three.wait(), 30)
    return crawler, task


def client_app(crawler: Crawler, **kwargs: Any) -> web.Application:
    view = StatusView(crawler)
    crawler.signals.connect("request_failed", view.failed)

    async def sampling(app: web.Application):
        async def loop() -> None:
            while True:
                await asyncio.sleep(0.2)
                view.sample()
        task = asyncio.create_task(loop())
        yield
        task.cancel()

    app = status_app(view, token=TOKEN, controls={
        "pause": crawler.pause, "resume": crawler.resume,
        "stop": lambda: crawler.stop("status_page")}, **kwargs)
    app.cleanup_ctx.append(sampling)
    return app


async def test_api_events_metrics_and_controls(aiohttp_server, aiohttp_client):
    server = await aiohttp_server(slow_site(3000, 0.02))
    crawler, task = await started(server, max_pages=2500)
    client = await aiohttp_client(client_app(crawler, token_for_all=False))
    stats = await (await client.get("/api/stats")).json()
    assert stats["spider"] == "chain" and stats["state"] == "running"
    assert stats["pages"] >= 3 and 0 < stats["progress"] < 1
    host = str(server.make_url("/")).rstrip("/")
    assert stats["hosts"][0]["host"] == host and stats["hosts"][0]["in_flight"] is not None
    await asyncio.sleep(1.0)
    stats = await (await client.get("/api/stats")).json()
    assert stats["failures"] and stats["failures"][0]["kind"] == "http_404"
    assert "/bad" in stats["failures"][0]["url"] and stats["errors"]["http_404"] >= 1
    assert stats["eta_seconds"] is not None and stats["history"]

    # server-sent events: a snapshot a second, pages rising
    response = await client.get("/api/events")
    assert response.headers["Content-Type"] == "text/event-stream"
    seen = []
    while len(seen) < 3:
        line = (await response.content.readline()).decode()
        if line.startswith("data: "):
            seen.append(orjson.loads(line[6:]))
    response.close()
    assert seen[0]["pages"] < seen[-1]["pages"]

    metrics = await (await client.get("/metrics")).text()
    assert "# TYPE crawler_pages_total counter" in metrics
    samples = [line for line in metrics.splitlines() if not line.startswith("#")]
    assert all(re.fullmatch(r'crawler_\w+\{spider="chain"(,\w+="[^"]*")*\} -?[\d.]+', line)
               for line in samples), samples
    assert re.search(r'crawler_errors_total\{spider="chain",kind="http_404"\} \d+', metrics)

    # controls: the token is needed, another site's Origin is refused
    assert (await client.post("/api/pause")).status == 401
    refused = await client.post("/api/pause", headers={"X-Crawler-Token": TOKEN,
                                                       "Origin": "http://evil.example"})
    assert refused.status == 403 and not crawler.paused
    ok = await client.post("/api/pause", headers={"X-Crawler-Token": TOKEN,
                                                  "Origin": f"http://{client.host}:"
                                                            f"{client.port}"})
    assert ok.status == 200 and crawler.paused
    await asyncio.sleep(0.3)  # requests in flight finish
    held = crawler.stats.pages
    await asyncio.sleep(0.8)
    assert crawler.stats.pages == held  # nothing new starts while paused
    assert (await (await client.get("/api/stats")).json())["state"] == "paused"
    assert (await client.post("/api/resume",
                              headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
    await asyncio.sleep(0.5)
    assert crawler.stats.pages > held
    assert (await client.post(f"/api/stop?token={TOKEN}")).status == 200
    result = await asyncio.wait_for(task, 30)
    assert result.finish_reason == "status_page" and result.stats.pages < 2500


async def test_every_endpoint_needs_the_token_off_loopback_and_hosts_are_checked(
        aiohttp_server, aiohttp_client):
    server = await aiohttp_server(slow_site(50, 0.05))
    crawler, task = await started(server)
    client = await aiohttp_client(client_app(crawler, token_for_all=True,
                                             hosts=frozenset({"127.0.0.1"})))
    for path in ("/", "/api/stats", "/metrics", "/api/events"):
        assert (await client.get(path)).status == 401, path
    # the page's own script and style hold no data and come without the token (a browser
    # does not add the page's ?token= to them: the page would never render)
    for path in ("/status.js", "/status.css"):
        assert (await client.get(path)).status == 200, path
    page = await client.get(f"/?token={TOKEN}")
    assert page.status == 200 and "<svg" in await page.text()
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    rebound = await client.get(f"/api/stats?token={TOKEN}", headers={"Host": "evil.example"})
    assert rebound.status == 403
    crawler.stop()
    await asyncio.wait_for(task, 30)


async def test_cli_serves_the_page_and_refuses_a_busy_port(aiohttp_server, tmp_path):
    server = await aiohttp_server(slow_site(60, 0.05))
    spider = tmp_path / "chain.py"
    spider.write_text("from tests.test_status import Chain\n\nclass Here(Chain):\n"
                      "    name = 'here'\n")
    proc = await spawn(sys.executable, "-m", "crawler", "run", str(spider), "-a",
                       f"base={server.make_url('/')}", "--status-port", "0", "-O",
                       str(tmp_path / "out.jsonl"), "-s", "per_host_concurrency=1",
                       cwd=ROOT)
    url = None
    while url is None:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        match = re.search(r"status page: (http://127\.0\.0\.1:(\d+)/)\?token=(\S+)", line)
        if match:
            url, port, token = match.group(1), int(match.group(2)), match.group(3)
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(100):  # a page fetched first: a crawl stopped before any exits 1
            async with session.get(url + "api/stats") as response:
                stats = await response.json()
            if stats["pages"]:
                break
            await asyncio.sleep(0.05)
        assert stats["spider"] == "here" and stats["pages"] >= 1
        async with session.post(url + "api/stop", headers={"X-Crawler-Token": token}) as r:
            assert r.status == 200
        # while it is still serving, a second crawl on the same port is refused at start
        busy = await spawn(sys.executable, "-m", "crawler", "run", str(spider), "-a",
                           f"base={server.make_url('/')}", "--status-port", str(port),
                           "-O", str(tmp_path / "other.jsonl"), cwd=ROOT)
        _, err = await finish(busy, 60)
    _, rest = await finish(proc, 60)
    assert proc.returncode == 0, rest.decode()
    if busy.returncode == 2:  # (the first may have closed its page already)
        assert err.decode().strip().startswith("crawler: error: status page: cannot listen "
                                               f"on 127.0.0.1:{port}")
    code, err = await _cli("run", str(spider), "-a", f"base={server.make_url('/')}",
                           "--status-token", "short", cwd=ROOT)
    assert code == 2 and "setting 'status_token' must be at least 8 characters" in err


async def _cli(*args: str, cwd: Path) -> tuple[int, str]:
    proc = await spawn(sys.executable, "-m", "crawler", *args, cwd=cwd)
    _, err = await finish(proc, 60)
    return proc.returncode or 0, err.decode()


CHROMIUM = os.environ.get("CRAWLER_CHROMIUM", "/usr/bin/chromium")


async def test_the_page_in_a_real_browser(aiohttp_server, tmp_path):
    """Counters rise and the chart draws; pause stops the pages, resume restarts them; a
    screenshot is kept (tests/artifacts/status-page.png)."""
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CRAWLER_REQUIRE_BROWSER"):
            pytest.fail(f"no Chromium at {CHROMIUM} (CRAWLER_REQUIRE_BROWSER)")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium) for the browser "
                    "test")
    playwright_api = pytest.importorskip("playwright.async_api",
                                         reason="Playwright drives the browser")
    server = await aiohttp_server(slow_site(2000, 0.01))
    crawler, task = await started(server, status_port=0, max_pages=1500)
    page_ext = next(e for e in crawler.extensions if type(e).__name__ == "StatusPage")
    try:
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox"])
            try:
                # the page's CSP forbids eval, which wait_for_function needs: bypassed for
                # the test's probes only (the header itself is tested above)
                context = await browser.new_context(viewport={"width": 1200, "height": 900},
                                                    bypass_csp=True)
                page = await context.new_page()
                outside: list[str] = []
                page.on("request", lambda r: None if r.url.startswith(page_ext.url)
                        else outside.append(r.url))
                await page.goto(f"{page_ext.url}?token={page_ext.token}")
                await page.wait_for_function(
                    "document.getElementById('state').textContent === 'running'")
                first = int(await page.text_content("#pages"))
                await page.wait_for_function(
                    f"Number(document.getElementById('pages').textContent) > {first + 5}")
                await page.wait_for_function(
                    "document.getElementById('line').getAttribute('points').split(' ')"
                    ".length >= 3")
                await page.click("#pause")
                await page.wait_for_function(
                    "document.getElementById('state').textContent === 'paused'")
                # the page shows a snapshot a second: one after the requests in flight
                # finished, then two more that must not have moved
                await asyncio.sleep(1.5)
                held = int(await page.text_content("#pages"))
                await asyncio.sleep(2.2)
                assert int(await page.text_content("#pages")) == held
                await page.click("#resume")
                await page.wait_for_function(
                    f"Number(document.getElementById('pages').textContent) > {held}")
                artifacts = ROOT / "tests" / "artifacts"
                artifacts.mkdir(exist_ok=True)
                await page.screenshot(path=str(artifacts / "status-page.png"), full_page=True)
                assert outside == []  # the page asks nothing of any other origin
            finally:
                await browser.close()
    finally:
        crawler.stop()
        await asyncio.wait_for(task, 30)


async def test_a_shared_crawl_shows_the_fleet(aiohttp_server, aiohttp_client, redis_url):
    server = await aiohttp_server(slow_site(300, 0.02))
    crawler, task = await started(server, frontier=redis_url, frontier_job="status-fleet",
                                  worker_id="w1")
    client = await aiohttp_client(client_app(crawler, token_for_all=False))
    for _ in range(50):  # until the worker's first heartbeat is read (every 2 s at most)
        fleet = (await (await client.get("/api/stats")).json())["fleet"]
        if fleet.get("workers"):
            break
        await asyncio.sleep(0.1)
    assert "w1" in fleet["workers"] and fleet["counts"].get("pages", 0) >= 1
    assert "seen" in fleet and "leased" in fleet
    crawler.stop()
    await asyncio.wait_for(task, 30)


async def test_event_streams_are_bounded(aiohttp_server, aiohttp_client):
    from crawler.extensions import status

    server = await aiohttp_server(slow_site(200, 0.05))
    crawler, task = await started(server)
    client = await aiohttp_client(client_app(crawler, token_for_all=False))
    opened = [await client.get("/api/events") for _ in range(status.MAX_STREAMS)]
    assert all(r.status == 200 for r in opened)
    assert (await client.get("/api/events")).status == 503
    opened.pop().close()
    await asyncio.sleep(1.2)  # the handler notices the closed stream at its next write
    again = await client.get("/api/events")
    assert again.status == 200
    again.close()
    for response in opened:
        response.close()
    crawler.stop()
    await asyncio.wait_for(task, 30)


async def test_a_connection_flood_and_slow_headers_cannot_take_the_crawls_descriptors(
        aiohttp_server, monkeypatch):
    """Connections past the cap are closed at once, a request dribbling its headers is cut
    after the header timeout, and meanwhile the page answers and the crawl goes on."""
    import crawler.extensions.status as status

    monkeypatch.setattr(status, "HEADER_TIMEOUT", 0.5)
    server = await aiohttp_server(slow_site(400, 0.02))
    crawler, task = await started(server, status_port=0)
    page = next(e for e in crawler.extensions if isinstance(e, status.StatusPage))
    port = int(page.url.rsplit(":", 1)[1].strip("/"))
    flood = []
    for _ in range(status.MAX_CONNECTIONS + 40):
        flood.append(await asyncio.open_connection("127.0.0.1", port))
    await asyncio.sleep(0.2)
    assert page.limits.open <= status.MAX_CONNECTIONS
    assert page.limits.refused["full"] >= 40
    for _, writer in flood:
        writer.close()
    await asyncio.sleep(0.3)
    # a slowloris: the start of a request, a byte now and then
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for _ in range(10):
        await asyncio.sleep(0.15)
        if reader.at_eof():
            break
        writer.write(b"X")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed on it
    assert page.limits.refused["slow"] >= 1
    writer.close()
    # the page still answers, and the crawl went on
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    pages = crawler.stats.pages
    crawler.stop()
    result = await asyncio.wait_for(task, 30)
    assert result.stats.pages >= pages > 3


async def test_the_monitors_latest_results_are_on_the_page(aiohttp_server, aiohttp_client):
    server = await aiohttp_server(slow_site(3000, 0.02))
    crawler, task = await started(server, max_pages=2500, monitor_max_duration=0.2,
                                  monitor_interval=0.1, monitor_field_coverage={"x": 0.5})
    client = await aiohttp_client(client_app(crawler, token_for_all=False))
    await asyncio.sleep(0.6)
    stats = await (await client.get("/api/stats")).json()
    monitors = {m["name"]: m for m in stats["monitors"]}
    assert not monitors["max_duration"]["passed"]
    assert monitors["max_duration"]["message"].endswith("at most 0.2 s allowed")
    assert "field_coverage/x" in monitors
    crawler.stop()
    await task
