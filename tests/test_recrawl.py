"""Recrawls of a job dir against a real server that answers conditional requests: what is
sent, how each page is judged, what the change feed and the outputs get, and the bad
validators servers send."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from crawler import Crawler, Settings, Spider
from crawler.outputs.formats import make_exporter
from crawler.recrawl.history import Change, Visit, next_interval
from tests.conftest import finish, spawn, status_page_text

SITE = web.AppKey("site", dict)
SENT = web.AppKey("sent", list)


def changing_site(pages: dict[str, str], *, etags: bool = True, modified: bool = True,
                  etag_every_time: bool = False, future_modified: bool = False,
                  weak: bool = False) -> web.Application:
    """Pages by path (their body: change one between crawls; delete one: 404), each with
    an ETag of its body and a Last-Modified, answering If-None-Match / If-Modified-Since
    with 304. What each request sent is kept."""
    app = web.Application()
    app[SITE] = dict(pages)
    app[SENT] = []
    served = {"n": 0}

    async def handle(request: web.Request) -> web.StreamResponse:
        app[SENT].append((request.path, request.headers.get("If-None-Match"),
                          request.headers.get("If-Modified-Since")))
        body = app[SITE].get(request.path)
        if body is None:
            return web.Response(status=404, text="gone")
        served["n"] += 1
        tag = hashlib.sha1(body.encode()).hexdigest()[:12]
        tag = f"{served['n']}-{tag}" if etag_every_time else tag
        etag = f'W/"{tag}"' if weak else f'"{tag}"'
        last = "Fri, 01 Jan 2100 00:00:00 GMT" if future_modified else \
            "Mon, 01 Jun 2026 00:00:00 GMT"
        headers = {}
        if etags:
            headers["ETag"] = etag
        if modified:
            headers["Last-Modified"] = last
        if etags and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        if not etags and modified and not future_modified and \
                request.headers.get("If-Modified-Since") == last and \
                app.get("unchanged_since", True):
            return web.Response(status=304, headers=headers)
        return web.Response(text=body, content_type="text/html", headers=headers)

    app.router.add_get("/{tail:.*}", handle)
    return app


def page(title: str, *hrefs: str) -> str:
    return f"<html><body><h1>{title}</h1>" + "".join(
        f'<a href="{h}">{h}</a>' for h in hrefs) + "</body></html>"


class Pages(Spider):
    name = "pages"
    custom_settings = {"obey_robots": False, "retries": 0, "log_interval": 0}
    parsed: list[str] = []

    async def parse(self, response):
        type(self).parsed.append(response.url)
        yield {"url": response.url, "title": response.css_first("h1").text()}
        for a in response.css("a"):
            yield response.follow(a)


async def run(server, tmp_path: Path, **settings: Any) -> tuple[Any, list[dict], list[dict]]:
    """One run of the job in tmp_path/job; its stats, this run's items and changes."""
    Pages.parsed = []
    items_path, changes_path = tmp_path / "items.jsonl", tmp_path / "changes.jsonl"
    before_items = _lines(items_path)
    before_changes = _lines(changes_path)
    merged = Settings().merge(Pages.custom_settings).merge(
        {"job_dir": str(tmp_path / "job"), "changes_file": str(changes_path), **settings})
    spider = Pages(start_urls=[str(server.make_url("/"))])
    result = await Crawler(spider, settings=merged,
                           outputs=[make_exporter(items_path)]).run()
    return (result.stats, _lines(items_path)[len(before_items):],
            _lines(changes_path)[len(before_changes):])


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] \
        if path.exists() else []


def by_change(changes: list[dict], server) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for record in changes:
        out.setdefault(record["change"], set()).add("/" + record["url"].split("/", 3)[3])
    return out


SITE_PAGES = {"/": page("home", "/a", "/b", "/c"), "/a": page("a", "/d"),
              "/b": page("b"), "/c": page("c"), "/d": page("d")}


async def test_a_recrawl_sends_validators_and_reports_each_change(aiohttp_server, tmp_path):
    server = await aiohttp_server(changing_site(SITE_PAGES))
    stats, items, changes = await run(server, tmp_path)
    assert len(items) == 5 and stats.counters["recrawl/new"] == 5
    assert by_change(changes, server) == {"new": {"/", "/a", "/b", "/c", "/d"}}
    assert {record["time"][-1] for record in changes} == {"Z"}

    # between the crawls: b changes, c disappears, a links to a new page e
    site = server.app[SITE]
    site["/b"] = page("b, updated")
    del site["/c"]
    site["/a"] = page("a", "/d", "/e")
    site["/e"] = page("e")
    server.app[SENT].clear()
    stats, items, changes = await run(server, tmp_path, recrawl=True)
    assert by_change(changes, server) == {"unchanged": {"/", "/d"}, "changed": {"/a", "/b"},
                                          "gone": {"/c"}, "new": {"/e"}}
    assert len(changes) == 6  # one record per page visited
    # only what changed or is new was parsed and written again
    assert sorted(i["title"] for i in items) == ["a", "b, updated", "e"]
    assert sorted(u.rsplit("/", 1)[1] for u in Pages.parsed) == ["a", "b", "e"]
    sent = {path: (inm, ims) for path, inm, ims in server.app[SENT]}
    assert sent["/"][0] and sent["/"][1] == "Mon, 01 Jun 2026 00:00:00 GMT"
    assert sent["/e"] == (None, None)  # a new page: nothing to validate
    assert stats.counters["recrawl/unchanged"] == 2 and stats.counters["recrawl/gone"] == 1
    from crawler.stats import summary

    assert "6 pages (1 new, 2 changed, 2 unchanged, 1 gone)" in summary(stats.as_dict())

    # a third round: c stays gone (forgotten), everything else unchanged
    stats, items, changes = await run(server, tmp_path, recrawl=True)
    assert by_change(changes, server) == {"unchanged": {"/", "/a", "/b", "/d", "/e"}}
    assert items == []


async def test_without_recrawl_a_finished_job_says_so(aiohttp_server, tmp_path, caplog):
    server = await aiohttp_server(changing_site(SITE_PAGES))
    await run(server, tmp_path)
    stats, items, changes = await run(server, tmp_path)
    assert stats.finish_reason == "job_finished" and items == [] and changes == []
    assert "--recrawl visits its pages again" in caplog.text


async def test_emit_unchanged_parses_every_page_without_conditional_requests(aiohttp_server,
                                                                            tmp_path):
    server = await aiohttp_server(changing_site(SITE_PAGES))
    await run(server, tmp_path)
    server.app[SENT].clear()
    stats, items, changes = await run(server, tmp_path, recrawl=True, emit_unchanged=True)
    assert len(items) == 5 and {c["change"] for c in changes} == {"unchanged"}
    assert all(inm is None and ims is None for _, inm, ims in server.app[SENT])


@pytest.mark.parametrize("case", ["etag_every_time", "future_modified", "weak", "digest"])
async def test_bad_or_missing_validators_are_judged_by_the_body(aiohttp_server, tmp_path,
                                                                case):
    """An ETag new with every response while the body is not, a Last-Modified in the
    future (not sent back), a weak ETag (sent back as is), none at all (the digest)."""
    options = {"etag_every_time": {"etag_every_time": True, "modified": False},
               "future_modified": {"etags": False, "future_modified": True},
               "weak": {"weak": True, "modified": False},
               "digest": {"etags": False, "modified": False}}[case]
    server = await aiohttp_server(changing_site(SITE_PAGES, **options))
    await run(server, tmp_path)
    server.app[SITE]["/b"] = page("b, updated")
    server.app[SENT].clear()
    stats, items, changes = await run(server, tmp_path, recrawl=True)
    assert by_change(changes, server) == {"unchanged": {"/", "/a", "/c", "/d"},
                                          "changed": {"/b"}}
    assert [i["title"] for i in items] == ["b, updated"]
    sent = {path: (inm, ims) for path, inm, ims in server.app[SENT]}
    if case == "future_modified":
        assert sent["/a"] == (None, None)  # a Last-Modified in the future is not trusted
    if case == "weak":
        assert sent["/a"][0].startswith('W/"')
        assert stats.counters["recrawl/unchanged"] == 4 and stats.status_counts[304] == 4


async def test_a_redirect_away_is_gone_and_its_target_new(aiohttp_server, tmp_path):
    app = changing_site(SITE_PAGES)
    moved = {"on": False}

    @web.middleware
    async def redirect(request, handler):
        if moved["on"] and request.path == "/d":
            raise web.HTTPMovedPermanently("/d2")
        return await handler(request)

    app.middlewares.append(redirect)
    app[SITE]["/d2"] = page("d2")
    server = await aiohttp_server(app)
    await run(server, tmp_path)
    moved["on"] = True
    stats, items, changes = await run(server, tmp_path, recrawl=True)
    found = by_change(changes, server)
    assert found["gone"] == {"/d"} and found["new"] == {"/d2"}


async def test_recrawl_needs_a_job_dir(tmp_path):
    from crawler.exceptions import StartupError

    for setting in ({"recrawl": True}, {"changes_file": str(tmp_path / "c.jsonl")}):
        with pytest.raises(StartupError, match="needs a job"):
            Crawler(Pages(), settings=Settings().merge(setting))
    assert not (tmp_path / "c.jsonl").exists()


def test_intervals_grow_when_unchanged_and_shrink_when_changed():
    s = Settings().merge({"recrawl_min_interval": 100, "recrawl_max_interval": 1000})
    assert next_interval(200, False, s) == pytest.approx(280)  # x 1.4
    assert next_interval(200, True, s) == pytest.approx(160)  # x 0.8
    assert next_interval(900, False, s) == 1000 and next_interval(110, True, s) == 100
    visit = Visit("ab", "u", "h", 0, "[]", None, None, None, 1000.0, 1000.0, 280.0)
    assert visit.due == 1280.0 and Change.GONE == "gone"


class FakeClock:
    """Wall time that a sleep moves on at once."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0.01)


async def test_continuous_wakes_for_each_page_when_it_falls_due(aiohttp_server, tmp_path):
    """Three pages, due a (fake) 100 s after their visit: all three visited again at +100
    (conditional: 304), then b changes: its interval shrinks (x 0.8) while the others grow
    (x 1.4), so b alone is visited next, at +100 +80."""
    app = changing_site({"/": page("home", "/a", "/b"), "/a": page("a"), "/b": page("b")})
    clock = FakeClock()
    hits: list[tuple[str, float]] = []

    @web.middleware
    async def when(request, handler):
        hits.append((request.path, clock.now))
        return await handler(request)

    app.middlewares.append(when)
    server = await aiohttp_server(app)
    feed = tmp_path / "changes.jsonl"
    merged = Settings().merge(Pages.custom_settings).merge({
        "job_dir": str(tmp_path / "job"), "changes_file": str(feed), "continuous": True,
        "recrawl_interval": 100, "recrawl_min_interval": 10, "recrawl_max_interval": 1000})
    crawler = Crawler(Pages(start_urls=[str(server.make_url("/"))]), settings=merged,
                      outputs=[make_exporter(tmp_path / "items.jsonl")])
    crawler.storage.clock, crawler.storage.sleep = clock.time, clock.sleep
    task = asyncio.create_task(crawler.run())

    async def feed_has(n: int) -> list[dict]:
        for _ in range(500):
            if len(_lines(feed)) >= n:
                return _lines(feed)
            await asyncio.sleep(0.02)
        raise AssertionError(f"the feed has {len(_lines(feed))} records, not {n}")

    try:
        await feed_has(3)
        start = hits[0][1]  # (the first visits, at the fake clock's start)
        server.app[SITE]["/b"] = page("b, updated")
        records = await feed_has(6)
        assert sorted(r["change"] for r in records[3:]) == ["changed", "unchanged",
                                                            "unchanged"]
        second = [at for path, at in hits[3:6]]
        assert all(start + 100 <= at < start + 101 for at in second), (start, hits)
        records = await feed_has(7)
        assert records[6]["url"].endswith("/b") and records[6]["change"] == "unchanged"
        assert start + 180 <= hits[6][1] < start + 181 and hits[6][0] == "/b"
        assert (await crawler.snapshot())["next_due"] >= start + 240
    finally:
        crawler.stop()
        result = await asyncio.wait_for(task, 30)
    assert result.finish_reason == "shutdown"
    # a is not due again before +240 (the fake clock may reach it before the stop lands)
    visits_of_a = [at for path, at in hits if path == "/a"]
    assert visits_of_a[:2] == [start, start + 100]
    assert all(at >= start + 240 for at in visits_of_a[2:])


CLI_SPIDER = '''
from crawler import Spider

class Pages(Spider):
    name = "pages"
    custom_settings = {"obey_robots": False, "log_interval": 0}

    def __init__(self, base, **kw):
        super().__init__(**kw)
        self.start_urls = [base + "/"]

    def parse(self, response):
        yield {"url": response.url}
        for a in response.css("a"):
            yield response.follow(a)
'''


async def test_continuous_survives_kill_9_with_its_schedule_and_stops_on_sigint(
        aiohttp_server, tmp_path):
    """Every page due a second after its visit: killed with SIGKILL mid-way, the crawl
    resumes with its history (no page new twice, its feed whole), goes on revisiting, and
    SIGINT ends it with exit 0."""
    server = await aiohttp_server(changing_site(SITE_PAGES))
    base = str(server.make_url("")).rstrip("/")
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "pages.py").write_text(CLI_SPIDER)
    command = [sys.executable, "-m", "crawler", "run", "pages", "-a", f"base={base}",
               "--job-dir", "job", "-o", "out.jsonl", "--changes", "changes.jsonl",
               "--continuous", "--no-progress", "-s", "recrawl_interval=1",
               "-s", "recrawl_min_interval=1", "-s", "recrawl_max_interval=1"]
    feed = tmp_path / "changes.jsonl"

    async def feed_reaches(n: int) -> None:
        for _ in range(300):
            if len(_lines(feed)) >= n:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the feed stayed at {len(_lines(feed))} records")

    proc = await spawn(*command, cwd=tmp_path)
    await feed_reaches(8)  # the five new pages and a revisit under way
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    before = _lines(feed)  # whole lines only, each valid JSON
    proc = await spawn(*command, cwd=tmp_path)
    await feed_reaches(len(before) + 6)
    proc.send_signal(signal.SIGINT)
    _, err = await finish(proc, 30)
    assert proc.returncode == 0, err.decode()
    records = _lines(feed)
    assert [r["change"] for r in records].count("new") == 5
    assert {r["change"] for r in records} == {"new", "unchanged"}
    assert len(_lines(tmp_path / "out.jsonl")) == 5  # unchanged pages write nothing
    proc = await spawn(sys.executable, "-m", "crawler", "jobs", "job", cwd=tmp_path)
    out, _ = await finish(proc, 30)
    assert "round:    1 (5 pages known; the first due again at " in out.decode()


def cache_site() -> web.Application:
    """One path per caching case; each answers a matching If-None-Match /
    If-Modified-Since with 304."""
    app = web.Application()
    app[SENT] = []
    now = email.utils.formatdate(usegmt=True)
    hour = email.utils.formatdate(time.time() + 3600, usegmt=True)
    past = "Mon, 01 Jun 2026 00:00:00 GMT"
    cases = {"/max-age": {"Cache-Control": "max-age=3600", "ETag": '"m"'},
             "/expires": {"Date": now, "Expires": hour},
             "/no-store": {"Cache-Control": "no-store", "ETag": '"s"'},
             "/no-cache": {"Cache-Control": "no-cache", "ETag": '"n"'},
             "/expired": {"Date": now, "Expires": past, "Last-Modified": past},
             "/must-revalidate": {"Cache-Control": "max-age=0, must-revalidate",
                                  "ETag": '"r"'},
             "/stale-no-validators": {"Cache-Control": "max-age=0"}}

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = cases[request.path]
        app[SENT].append((request.path, request.headers.get("If-None-Match"),
                          request.headers.get("If-Modified-Since")))
        if ("ETag" in headers and request.headers.get("If-None-Match") == headers["ETag"]) \
                or ("Last-Modified" in headers and request.headers.get(
                    "If-Modified-Since") == headers["Last-Modified"]):
            return web.Response(status=304, headers=headers)
        return web.Response(text=page(request.path), content_type="text/html",
                            headers=headers)

    for path in cases:
        app.router.add_get(path, handle)
    return app


async def test_the_rfc9111_cache_policy_honours_each_header(aiohttp_server, tmp_path):
    server = await aiohttp_server(cache_site())
    paths = ["/max-age", "/expires", "/no-store", "/no-cache", "/expired",
             "/must-revalidate", "/stale-no-validators"]
    settings = {"http_cache": True, "http_cache_dir": str(tmp_path / "cache"),
                "http_cache_policy": "rfc9111"}

    async def crawl_once() -> tuple[Any, dict[str, str]]:
        out = tmp_path / "items.jsonl"
        out.unlink(missing_ok=True)
        spider = Pages(start_urls=[str(server.make_url(p)) for p in paths])
        merged = Settings().merge(Pages.custom_settings).merge(settings)
        result = await Crawler(spider, settings=merged, outputs=[make_exporter(out)]).run()
        return result.stats, {i["url"].split("/", 3)[3]: i["title"] for i in _lines(out)}

    stats, titles = await crawl_once()
    assert len(titles) == 7 and stats.counters["httpcache/no_store"] == 1
    server.app[SENT].clear()
    stats, titles = await crawl_once()
    # every page's body reached its callback, from the network or the cache
    assert titles == {p[1:]: p for p in paths}
    sent = {path: (inm, ims) for path, inm, ims in server.app[SENT]}
    assert "/max-age" not in sent and "/expires" not in sent  # fresh: not asked
    assert sent["/no-store"] == (None, None)  # never stored: fetched whole
    assert sent["/no-cache"] == ('"n"', None)  # revalidated every time
    assert sent["/must-revalidate"] == ('"r"', None)
    assert sent["/expired"] == (None, "Mon, 01 Jun 2026 00:00:00 GMT")
    assert sent["/stale-no-validators"] == (None, None)
    assert stats.counters["httpcache/hit"] == 2
    assert stats.counters["httpcache/revalidated"] == 3


async def test_the_items_digest_ignores_markup_that_gives_the_same_items(aiohttp_server,
                                                                        tmp_path):
    """recrawl_digest = items: b's markup changes but not its title (unchanged, nothing
    written); a's title changes (changed, written)."""
    pages = {**SITE_PAGES, "/b": page("b") + "<!-- rendered at 10:00 -->"}
    server = await aiohttp_server(changing_site(pages))
    await run(server, tmp_path, recrawl_digest="items")
    server.app[SITE]["/b"] = page("b") + "<!-- rendered at 10:05 -->"
    server.app[SITE]["/a"] = page("a, renamed", "/d")
    stats, items, changes = await run(server, tmp_path, recrawl=True, recrawl_digest="items")
    assert by_change(changes, server) == {"unchanged": {"/", "/b", "/c", "/d"},
                                          "changed": {"/a"}}
    assert [i["title"] for i in items] == ["a, renamed"]
    assert sorted(u.rsplit("/", 1)[1] for u in Pages.parsed) == ["a", "b"]  # body changed
    assert stats.items == 1 and stats.counters["recrawl/unchanged"] == 4


async def test_a_sitemaps_changefreq_and_lastmod_start_a_pages_history(aiohttp_server,
                                                                       tmp_path):
    import sqlite3

    from crawler import SitemapSpider

    server = await aiohttp_server(changing_site(SITE_PAGES))
    base = str(server.make_url("/"))
    server.app[SITE]["/sitemap.xml"] = (
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f'<url><loc>{base}a</loc><changefreq>weekly</changefreq>'
        f'<lastmod>2026-01-01T00:00:00Z</lastmod></url><url><loc>{base}b</loc></url>'
        '</urlset>')

    class Mapped(SitemapSpider):
        name = "mapped"
        custom_settings = Pages.custom_settings

        async def parse(self, response):
            yield {"url": response.url}

    spider = Mapped(sitemap_urls=[str(server.make_url("/sitemap.xml"))])
    merged = Settings().merge(Mapped.custom_settings).merge(
        {"job_dir": str(tmp_path / "job"), "recrawl_max_interval": 30 * 86400})
    await Crawler(spider, settings=merged,
                  outputs=[make_exporter(tmp_path / "items.jsonl")]).run()
    db = sqlite3.connect(tmp_path / "job" / "job.sqlite3")
    rows = {url.rsplit("/", 1)[1]: (interval, changed, fetched) for url, interval, changed,
            fetched in db.execute("SELECT url, interval, changed, fetched FROM history")}
    db.close()
    assert rows["a"][0] == 7 * 86400 and rows["b"][0] == 86400  # weekly; the default
    assert rows["a"][1] == 1767225600.0  # lastmod 2026-01-01
    assert rows["b"][1] == rows["b"][2]  # no lastmod: changed when first fetched


async def test_the_status_page_shows_when_the_next_page_is_due(aiohttp_server, tmp_path):
    """A continuous crawl asleep: its status page, in a real Chromium, names the job, its
    round and when the next page is due."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium) for the status page")
    pytest.importorskip("playwright.async_api", reason="Playwright drives the browser")
    server = await aiohttp_server(changing_site(SITE_PAGES))
    merged = Settings().merge(Pages.custom_settings).merge({
        "job_dir": str(tmp_path / "job"), "continuous": True, "status_port": 0,
        "recrawl_interval": 7200})
    crawler = Crawler(Pages(start_urls=[str(server.make_url("/"))]), settings=merged,
                      outputs=[make_exporter(tmp_path / "items.jsonl")])
    task = asyncio.create_task(crawler.run())
    try:
        status = next(e for e in crawler.extensions if type(e).__name__ == "StatusPage")
        for _ in range(300):
            if crawler.stats.pages >= 5 and (await crawler.snapshot()).get("next_due"):
                break
            await asyncio.sleep(0.05)
        shown = await status_page_text(status, "job", "next page due")
        due = (await crawler.snapshot())["next_due"]
        moment = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(due))
        assert "round 1" in shown and moment in shown, shown
    finally:
        crawler.stop()
        await asyncio.wait_for(task, 30)
