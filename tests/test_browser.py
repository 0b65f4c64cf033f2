"""Pages rendered in a real Chromium (Debian's, driven by Playwright; nothing downloaded):
a JavaScript-only site crawled completely, pages that hang, alert or open popups failing
or passing within their timeout while the crawl goes on, a browser killed mid-crawl
survived, and no Chromium outliving a crawl killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web

from crawler import Request, Spider
from crawler.handlers.proctree import alive, descendants, roots
from tests.conftest import crawl, finish, kill_at, spawn, status_page_text

CHROMIUM = os.environ.get("CRAWLER_CHROMIUM", "chromium")


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CRAWLER_REQUIRE_BROWSER"):
            pytest.fail(f"no {CHROMIUM} on PATH (CRAWLER_REQUIRE_BROWSER)")
        pytest.skip(f"no {CHROMIUM} on PATH (apt-get install chromium) for the browser tests")
    pytest.importorskip("playwright.async_api", reason="Playwright drives the browser")


# a page whose content and links exist only once its script ran
_JS_PAGE = """<html><head><title>js</title></head><body><div id="app"></div><script>
const n = {n};
document.getElementById("app").innerHTML = "<h1>page " + n + "</h1>" + (n < {last} ?
  '<a href="/p/' + (2 * n) + '">l</a><a href="/p/' + (2 * n + 1) + '">r</a>' : "");
</script></body></html>"""
_SPECIAL = {
    "/hang": "<html><body><script>while (true) {}</script></body></html>",
    "/alert": "<html><body><script>alert('hello'); confirm('sure?');"
              "document.body.innerHTML = '<h1>after the alert</h1>'</script></body></html>",
    "/popup": "<html><body><script>window.open('/p/1'); document.body.innerHTML = "
              "'<h1>after the popup</h1>'</script></body></html>",
}


def js_site(last: int = 16, *, delay: float = 0.0) -> web.Application:
    """Pages /p/1 ... /p/{2 * last - 1}, a binary tree built by script; robots.txt counted."""
    app = web.Application()
    app[HITS] = []

    async def page(request: web.Request) -> web.Response:
        app[HITS].append(request.path)
        if delay:
            await asyncio.sleep(delay)
        n = int(request.match_info["n"])
        return web.Response(text=_JS_PAGE.replace("{n}", str(n)).replace("{last}", str(last)),
                            content_type="text/html")

    async def special(request: web.Request) -> web.Response:
        app[HITS].append(request.path)
        return web.Response(text=_SPECIAL[request.path], content_type="text/html")

    async def robots(request: web.Request) -> web.Response:
        app[HITS].append(request.path)
        return web.Response(text="User-agent: *\nDisallow: /private\n")

    app.router.add_get("/p/{n}", page)
    app.router.add_get("/robots.txt", robots)
    for path in _SPECIAL:
        app.router.add_get(path, special)
    return app


HITS = web.AppKey("hits", list)


class Rendered(Spider):
    name = "rendered"
    custom_settings: ClassVar[dict[str, Any]] = {"render": "browser", "browser_timeout": 5,
                                                 "retries": 0}

    async def parse(self, response):
        h1 = response.css_first("h1")
        yield {"url": response.url, "h1": h1.text() if h1 else None,
               "status": response.status}
        for a in response.css("a"):
            yield response.follow(a)


async def test_a_javascript_only_site_is_crawled_completely(aiohttp_server, tmp_path):
    app = js_site(16)
    server = await aiohttp_server(app)
    spider = Rendered(start_urls=[str(server.make_url("/p/1"))])
    stats, items = await crawl(spider, tmp_path)
    assert sorted(int(i["url"].rsplit("/", 1)[1]) for i in items) == list(range(1, 32))
    assert all(i["h1"] == f"page {i['url'].rsplit('/', 1)[1]}" and i["status"] == 200
               for i in items)
    assert app[HITS].count("/robots.txt") == 1  # fetched over HTTP, once
    assert stats.counters["browser/pages"] == 31 and stats.requests_failed == 0


async def test_hanging_alerting_and_popup_pages_within_their_timeout(aiohttp_server,
                                                                     tmp_path):
    server = await aiohttp_server(js_site(4))
    spider = Rendered(start_urls=[str(server.make_url(p)) for p in
                                  ("/hang", "/alert", "/popup", "/p/1")])
    started = time.monotonic()
    stats, items = await crawl(spider, tmp_path, browser_timeout=3)
    assert time.monotonic() - started < 30
    assert stats.errors["browser_timeout"] == 1 and stats.requests_failed == 1
    h1s = {i["url"].rsplit("/", 1)[1]: i["h1"] for i in items}
    assert h1s["alert"] == "after the alert" and h1s["popup"] == "after the popup"
    assert {f"{n}" for n in range(1, 8)} <= set(h1s)  # the crawl went on


async def test_meta_renders_one_request_of_an_http_crawl(aiohttp_server, tmp_path):
    server = await aiohttp_server(js_site(2))
    base = str(server.make_url("/p/"))

    class Mixed(Spider):
        name = "mixed"

        async def start(self):
            yield Request(base + "1", meta={"browser": True})
            yield Request(base + "2")

        async def parse(self, response):
            h1 = response.css_first("h1")
            yield {"n": response.url[-1], "h1": h1.text() if h1 else None,
                   "rendered": "browser" in response.flags}

    stats, items = await crawl(Mixed(), tmp_path)
    assert sorted((i["n"], i["h1"], i["rendered"]) for i in items) == [
        ("1", "page 1", True), ("2", None, False)]  # HTTP sees no script's output


async def test_a_browser_killed_mid_crawl_is_launched_again_and_the_page_retried(
        aiohttp_server, tmp_path):
    app = js_site(8, delay=0.3)
    server = await aiohttp_server(app)
    spider = Rendered(start_urls=[str(server.make_url("/p/1"))])
    killed: list[int] = []

    async def kill_the_browser() -> None:
        await _until(lambda: bool(_descendants("chrom")), 30)
        await asyncio.sleep(0.5)  # pages are loading
        for pid in _descendants("chrom"):
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    killer = asyncio.create_task(kill_the_browser())
    stats, items = await crawl(spider, tmp_path, retries=2, browser_max_pages=2)
    await killer
    assert killed
    assert sorted(int(i["url"].rsplit("/", 1)[1]) for i in items) == list(range(1, 16))
    assert stats.counters["browser/restarts"] >= 1 and stats.requests_failed == 0


_SLOW_SPIDER = '''
from crawler import Spider

class SlowJS(Spider):
    name = "slowjs"
    custom_settings = {"render": "browser", "obey_robots": False, "browser_timeout": 60}

    def __init__(self, base="", **kw):
        super().__init__(**kw)
        self.start_urls = [f"{base}/p/{n}" for n in range(1, 6)]

    async def parse(self, response):
        yield {"url": response.url}
'''


async def test_no_chromium_outlives_a_crawl_killed_with_sigkill(aiohttp_server, tmp_path):
    server = await aiohttp_server(js_site(4, delay=30))  # pages that keep the tabs open
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "slowjs.py").write_text(_SLOW_SPIDER)
    proc = await spawn(sys.executable, "-m", "crawler", "run", "slowjs", "-a",
                       f"base={str(server.make_url('')).rstrip('/')}", "-o", "out.jsonl",
                       cwd=tmp_path)
    await _until(lambda: len(_descendants("chrom", root=proc.pid)) >= 3, 30)
    browsers = _descendants("chrom", root=proc.pid)  # the browser and its renderers
    assert browsers, "no Chromium was started"
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    await _until(lambda: not _alive(browsers), 10)
    assert not _alive(browsers), f"Chromium outlived the crawl: {_alive(browsers)}"


async def test_no_chromium_is_one_line_before_any_output(tmp_path):
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "slowjs.py").write_text(_SLOW_SPIDER)
    (tmp_path / "out.jsonl").write_text("kept\n")
    proc = await spawn(sys.executable, "-m", "crawler", "run", "slowjs", "-a",
                       "base=http://127.0.0.1:9", "-O", "out.jsonl", "-s",
                       "browser_executable=/nonexistent/chromium", cwd=tmp_path)
    _, err = await finish(proc, 60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert "browser_executable '/nonexistent/chromium' is not an executable" in lines[0]
    assert "apt-get install chromium" in lines[0]
    assert (tmp_path / "out.jsonl").read_text() == "kept\n"


async def _until(condition: Any, limit: float) -> Any:
    """Poll until `condition()` holds or `limit` seconds passed; its last value."""
    for _ in range(int(limit / 0.1)):
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.1)
    return condition()


def _descendants(name: str, root: int | None = None) -> list[int]:
    """Live processes below `root` (this one) whose command name contains `name`."""
    return descendants(root, name)


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if alive(pid)]



async def test_a_rendered_page_cannot_reach_a_private_address_when_refused(aiohttp_server,
                                                                          tmp_path):
    """allow_private_addresses = false holds for the browser too: the page is refused
    before Chromium sends anything (this server is on 127.0.0.1)."""
    app = js_site(2)
    server = await aiohttp_server(app)
    spider = Rendered(start_urls=[str(server.make_url("/p/1"))])
    stats, items = await crawl(spider, tmp_path, allow_private_addresses=False,
                               obey_robots=False)
    assert items == [] and stats.errors["forbidden_address"] == 1
    assert app[HITS] == []


_ACTIONS_PAGE = """<html><head><title>actions</title></head><body>
<input id="q"><button id="more" onclick="
  document.getElementById('out').innerHTML += '<p class=clicked>' +
    document.getElementById('q').value + '</p>'">more</button>
<div id="out"></div><div style="height: 3000px"></div><div id="feed"></div>
<script>
let loads = 0;
window.addEventListener('scroll', () => {
  if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 10 && loads < 5) {
    loads += 1;
    const item = document.createElement('p'); item.className = 'lazy';
    item.textContent = 'lazy ' + loads; item.style.height = '3000px';
    document.getElementById('feed').appendChild(item);
  }
});
</script></body></html>"""


async def test_page_actions_and_the_page_hook(aiohttp_server, tmp_path):
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=_ACTIONS_PAGE, content_type="text/html")

    app.router.add_get("/actions", page)
    server = await aiohttp_server(app)
    url = str(server.make_url("/actions"))

    class Acting(Spider):
        name = "acting"
        custom_settings: ClassVar[dict[str, Any]] = {"obey_robots": False, "retries": 0}

        async def start(self):
            yield Request(url, meta={"browser": True, "browser_actions": [
                {"wait_for": "#more"}, {"fill": ["#q", "books"]}, {"click": "#more"},
                {"scroll": 3}, {"evaluate": "document.title"}],
                "browser_page": "count_lazy"}, dont_filter=True)
            yield Request(url, meta={"browser": True, "browser_actions": [{"jump": 1}]},
                          dont_filter=True, errback=self.failed)

        async def count_lazy(self, page):
            return await page.evaluate("document.querySelectorAll('p.lazy').length")

        async def parse(self, response):
            yield {"clicked": [p.text() for p in response.css("p.clicked")],
                   "lazy": len(response.css("p.lazy")),
                   "results": response.meta["browser_results"],
                   "hook": response.meta["browser_page_result"]}

        async def failed(self, failure):
            yield {"failed": failure.kind, "why": str(failure.exception)}

    stats, items = await crawl(Acting(), tmp_path)
    done = next(i for i in items if "clicked" in i)
    assert done == {"clicked": ["books"], "lazy": 3, "results": ["actions"], "hook": 3}
    failed = next(i for i in items if "failed" in i)
    assert failed["failed"] == "invalid_request" and "unknown browser action 'jump'" in \
        failed["why"]


async def test_a_browser_past_its_memory_limit_is_restarted_between_pages(aiohttp_server,
                                                                         tmp_path):
    server = await aiohttp_server(js_site(16))
    spider = Rendered(start_urls=[str(server.make_url("/p/1"))])
    seen: list[dict[str, Any]] = []

    class Watch:
        @classmethod
        def from_crawler(cls, crawler):
            watch = cls()
            watch.crawler = crawler
            from crawler import Signal

            crawler.signals.connect(Signal.RESPONSE_RECEIVED, watch.received)
            return watch

        async def received(self, response):
            seen.append((await self.crawler.snapshot()).get("browser", {}))

    stats, items = await crawl(spider, tmp_path, browser_max_memory=64, extensions=[Watch])
    assert len(items) == 31 and stats.requests_failed == 0  # nothing lost to the restarts
    assert stats.counters["browser/memory_restarts"] >= 1
    assert stats.counters["browser/peak_memory_mb"] > 64
    assert seen and all(0 <= s["pages_open"] <= 4 and s["running"] for s in seen)


async def test_fetch_and_parse_render_with_browser(aiohttp_server, tmp_path):
    server = await aiohttp_server(js_site(2))
    url = str(server.make_url("/p/1"))
    plain = await spawn(sys.executable, "-m", "crawler", "fetch", url, "-s",
                        "obey_robots=false", cwd=tmp_path)
    out, _ = await finish(plain, 60)
    assert b"<h1>page 1</h1>" not in out  # what HTTP sees: the script, not its output
    rendered = await spawn(sys.executable, "-m", "crawler", "fetch", "--browser", url, "-s",
                           "obey_robots=false", cwd=tmp_path)
    out, err = await finish(rendered, 60)
    assert rendered.returncode == 0, err.decode()
    assert b"<h1>page 1</h1>" in out and b'href="/p/2"' in out


async def test_two_browsers_share_the_pages_and_the_status_page_shows_them(aiohttp_server,
                                                                          tmp_path):
    """browsers = 2: both are launched and render pages (the process table has two Chromium
    browsers); the status page, in a third Chromium, shows them."""
    server = await aiohttp_server(js_site(64, delay=0.2))
    spider = Rendered(start_urls=[str(server.make_url("/p/1"))])
    from crawler.core.crawler import Crawler
    from crawler.settings import Settings

    merged = Settings().merge(Rendered.custom_settings).merge(
        {"browsers": 2, "status_port": 0, "log_interval": 0})
    crawler = Crawler(spider, settings=merged)
    task = asyncio.create_task(crawler.run())
    try:
        status = await _until(lambda: next((e for e in crawler.extensions
                                            if type(e).__name__ == "StatusPage"
                                            and e.url), None), 30)
        await _until(lambda: crawler.stats.pages >= 10, 60)
        browsers = roots("chrom")
        assert len(browsers) == 2, f"expected two Chromium browsers, found {browsers}"
        shown = await status_page_text(status, "browser", "2 of 2", CHROMIUM)
        assert "pages open" in shown and "contexts" in shown and "MB" in shown
    finally:
        result = await asyncio.wait_for(task, 120)
    assert result.stats.counters["browser/launches"] == 2
    assert result.stats.pages == 127 and result.stats.requests_failed == 0


def test_the_browser_in_the_metrics():
    from crawler.extensions.status import prometheus

    snapshot = {"spider": "s", "pages": 1, "items": 1, "failed": 0, "retries": 0,
                "errors": {}, "status_counts": {}, "queued": 0, "in_flight": 0,
                "pages_per_second": 0, "state": "running", "elapsed": 1,
                "browser": {"pages_open": 2, "contexts": 1, "memory_mb": 300.5,
                            "restarts": 1}}
    text = prometheus(snapshot)
    assert 'crawler_browser_pages_open{spider="s"} 2' in text
    assert 'crawler_browser_memory_megabytes{spider="s"} 300.5' in text


async def test_cookies_go_both_ways_between_http_and_the_browser(aiohttp_server, tmp_path):
    """A login over HTTP is seen by the rendered page; a cookie the page's script sets is
    sent by the next HTTP request."""
    app = web.Application()

    async def login(request: web.Request) -> web.Response:
        response = web.Response(text="<html><body>ok</body></html>", content_type="text/html")
        response.set_cookie("session", "abc123")
        return response

    async def rendered(request: web.Request) -> web.Response:
        return web.Response(text="<html><body><script>document.cookie = 'token=xyz';"
                            "document.body.innerHTML = '<p id=c>' + document.cookie + '</p>'"
                            "</script></body></html>", content_type="text/html")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"<html><body><p id=c>{request.headers.get('Cookie')}</p>"
                            "</body></html>", content_type="text/html")

    for path, handler in (("/login", login), ("/rendered", rendered), ("/echo", echo)):
        app.router.add_get(path, handler)
    server = await aiohttp_server(app)
    base = str(server.make_url("/"))

    class Session(Spider):
        name = "session"
        custom_settings: ClassVar[dict[str, Any]] = {"obey_robots": False}

        async def start(self):
            yield Request(base + "login", callback=self.logged_in)

        async def logged_in(self, response):
            yield Request(base + "rendered", meta={"browser": True}, callback=self.page)

        async def page(self, response):
            yield {"browser_saw": response.css_first("#c").text()}
            yield Request(base + "echo", callback=self.echoed)

        async def echoed(self, response):
            yield {"http_sent": response.css_first("#c").text()}

    stats, items = await crawl(Session(), tmp_path)
    saw = next(i["browser_saw"] for i in items if "browser_saw" in i)
    sent = next(i["http_sent"] for i in items if "http_sent" in i)
    assert "session=abc123" in saw and "token=xyz" in saw
    assert "token=xyz" in sent and "session=abc123" in sent


async def test_screenshots_and_pdfs_are_written_and_named_in_meta(aiohttp_server, tmp_path):
    server = await aiohttp_server(js_site(2))
    url = str(server.make_url("/p/1"))

    class Shots(Spider):
        name = "shots"
        custom_settings: ClassVar[dict[str, Any]] = {"obey_robots": False}

        async def start(self):
            yield Request(url, meta={"browser": True, "browser_screenshot": True,
                                     "browser_pdf": True})

        async def parse(self, response):
            yield {"png": response.meta["browser_screenshot"],
                   "pdf": response.meta["browser_pdf"]}

    stats, items = await crawl(Shots(), tmp_path, browser_files_dir=str(tmp_path / "files"))
    (item,) = items
    assert _head(item["png"], 8) == b"\x89PNG\r\n\x1a\n" and _head(item["pdf"], 5) == b"%PDF-"
    assert Path(item["png"]).parent == tmp_path / "files"
    assert not list((tmp_path / "files").glob("*.part"))


def _head(path: str, size: int) -> bytes:
    return Path(path).read_bytes()[:size]


_JOB_SPIDER = '''
from crawler import Spider

class JsTree(Spider):
    name = "jstree"
    custom_settings = {"render": "browser", "obey_robots": False, "log_interval": 0,
                       "browser_timeout": 20}

    def __init__(self, base="", **kw):
        super().__init__(**kw)
        self.start_urls = [base + "/p/1"]

    async def parse(self, response):
        yield {"page": int(response.url.rsplit("/", 1)[1]),
               "h1": response.css_first("h1").text()}
        for a in response.css("a"):
            yield response.follow(a)
'''


async def test_a_job_of_rendered_pages_killed_twice_gives_every_page_once(aiohttp_server,
                                                                          tmp_path):
    import orjson

    server = await aiohttp_server(js_site(64, delay=0.2))  # 127 pages
    base = str(server.make_url("")).rstrip("/")
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "jstree.py").write_text(_JOB_SPIDER)
    command = [sys.executable, "-m", "crawler", "run", "jstree", "-a", f"base={base}",
               "--job-dir", "job", "-O", "out.jsonl"]
    kills = await kill_at(command, tmp_path, [2.5, 2.0])
    assert kills >= 1, "the crawl ended before it could be killed: make the site slower"
    proc = await spawn(*command, cwd=tmp_path)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    items = [orjson.loads(line) for line in
             (tmp_path / "out.jsonl").read_bytes().splitlines()]
    pages = sorted(item["page"] for item in items)
    assert pages == list(range(1, 128)), [p for p in set(pages) if pages.count(p) > 1]
    assert all(item["h1"] == f"page {item['page']}" for item in items)


async def test_sigint_closes_the_browser_cleanly(aiohttp_server, tmp_path):
    server = await aiohttp_server(js_site(64, delay=0.2))
    base = str(server.make_url("")).rstrip("/")
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "jstree.py").write_text(_JOB_SPIDER)
    proc = await spawn(sys.executable, "-m", "crawler", "run", "jstree", "-a",
                       f"base={base}", "-O", "out.jsonl", cwd=tmp_path)
    await _until(lambda: len(_descendants("chrom", root=proc.pid)) >= 2, 30)
    browsers = _descendants("chrom", root=proc.pid)
    assert browsers, "no Chromium was started"
    proc.send_signal(signal.SIGINT)
    _, err = await finish(proc, 60)
    assert proc.returncode == 0, err.decode()
    assert "shutdown" in err.decode()
    assert not _alive(browsers), f"Chromium outlived the crawl: {_alive(browsers)}"
