"""Job directories: a real `python -m crawler run --job-dir` subprocess killed with SIGKILL
at random moments, resumed until it finishes, leaves every page's item exactly once in a
.jsonl, a .json and a .csv; a graceful stop resumes the same way; a finished job is a
no-op; --restart starts over; another spider's job is refused; requests round-trip."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import signal
import sqlite3
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from aiohttp import web

from crawler import Request, Spider
from crawler.frontier.jobdir import Job
from tests.conftest import finish, kill_at, needs_unshare, spawn

PAGES = 1500
HITS = web.AppKey("hits", Counter)

SPIDER = '''
    from crawler import Spider

    class Tree(Spider):
        name = "tree"
        custom_settings = {"log_interval": 0, "concurrency": 8, "obey_robots": False,
                           "retry_backoff_base": 0.05}

        def __init__(self, base, **kw):
            super().__init__(**kw)
            self.start_urls = [base + "/p/0"]

        def parse(self, response):
            self.state["pages"] = self.state.get("pages", 0) + 1
            # large items: buffers fill and are written between commits, so a kill often
            # leaves bytes past the last commit for the resume to cut back
            yield {"page": int(response.url.rsplit("/", 1)[1]), "text": "caf\\u00e9, \\"q\\"",
                   "pad": "x" * 3000}
            for link in response.css("a"):
                yield response.follow(link, callback=self.parse)
'''


def _tree_site() -> web.Application:
    """PAGES pages; page i links to 2i+1, 2i+2 and back to i//2 (a duplicate)."""
    app = web.Application()
    app[HITS] = Counter()

    async def page(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        request.app[HITS][i] += 1
        await asyncio.sleep(0.02)  # 8 workers: ~400 pages/s, a crawl of ~4 s
        links = "".join(f'<a href="/p/{j}">{j}</a>' for j in (2 * i + 1, 2 * i + 2, i // 2)
                        if j < PAGES)
        return web.Response(text=f"<html><body>{links}</body></html>",
                            content_type="text/html")

    app.router.add_get("/p/{i}", page)
    return app


def _project(tmp_path: Path) -> Path:
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "tree.py").write_text(textwrap.dedent(SPIDER))
    return tmp_path


def _command(base: str) -> list[str]:
    return [sys.executable, "-m", "crawler", "run", "tree", "-a", f"base={base}",
            "--job-dir", "job", "-O", "out.jsonl", "-O", "out.json", "-O", "out.csv",
            "-O", "out.xml"]


def _assert_exactly_once(project: Path) -> None:
    lines = (project / "out.jsonl").read_bytes().splitlines()
    jsonl = Counter(json.loads(line)["page"] for line in lines)
    array = Counter(item["page"] for item in json.loads((project / "out.json").read_text()))
    with (project / "out.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    table = Counter(int(row["page"]) for row in rows)
    tree = ElementTree.parse(project / "out.xml").getroot()  # a whole document, or raises
    elements = Counter(int(item.findtext("page")) for item in tree)
    every = Counter(range(PAGES))
    assert jsonl == every, sorted((jsonl - every) + (every - jsonl))[:10]
    assert array == every
    assert table == every
    assert elements == every
    assert all(row["text"] == 'café, "q"' for row in rows)


@pytest.mark.parametrize("seed", [7, 11, 23, 42])
async def test_kill_9_at_random_moments_then_resume_gives_every_page_once(aiohttp_server,
                                                                           tmp_path, seed):
    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    project = _project(tmp_path)
    rng = random.Random(seed)
    kills = await kill_at(_command(base), project, [rng.uniform(0.5, 1.3) for _ in range(3)])
    assert kills >= 2, "the crawl ended before it could be killed: make the site slower"
    proc = await spawn(*_command(base), cwd=project)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    _assert_exactly_once(project)
    hits = server.app[HITS]
    assert set(hits) == set(range(PAGES))
    assert max(hits.values()) <= kills + 1  # a page is fetched again only after a kill
    # what a kill makes the crawl fetch again: what was in flight (concurrency 8) and what
    # completed since the last commit, a few hundredths of a second at ~400 pages/s
    again = sum(hits.values()) - PAGES
    print(f"seed {seed}: {kills} kills, {again} pages fetched again ({again / kills:.1f} "
          "per kill)")
    assert again <= kills * 30, f"{again} pages fetched again after {kills} kills"
    proc = await spawn(sys.executable, "-m", "crawler", "jobs", "job", cwd=project)
    out, _ = await finish(proc, 30)
    assert f"items:    {PAGES}" in out.decode() and "state:    finished" in out.decode()


async def test_a_graceful_stop_resumes_and_a_finished_job_is_a_no_op(aiohttp_server,
                                                                    tmp_path):
    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    project = _project(tmp_path)
    proc = await spawn(*_command(base), cwd=project)
    await asyncio.sleep(0.8)
    proc.send_signal(signal.SIGINT)
    _, err = await finish(proc, 60)
    assert proc.returncode == 0, err.decode()
    assert "shutdown" in err.decode()
    proc = await spawn(*_command(base), cwd=project)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    _assert_exactly_once(project)
    assert max(server.app[HITS].values()) == 1  # a graceful stop repeats nothing
    db = sqlite3.connect(project / "job" / "job.sqlite3")
    state = json.loads(db.execute("SELECT value FROM job WHERE key = 'state'").fetchone()[0])
    db.close()
    assert state == {"pages": PAGES}  # spider.state went on from where it was
    # run again: nothing to do, nothing touched
    before = (project / "out.json").read_bytes()
    proc = await spawn(*_command(base), cwd=project)
    _, err = await finish(proc, 60)
    assert proc.returncode == 0 and "has finished: nothing to do" in err.decode()
    assert (project / "out.json").read_bytes() == before
    assert sum(server.app[HITS].values()) == PAGES
    # --restart: all over again
    proc = await spawn(*_command(base), "--restart", cwd=project)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    _assert_exactly_once(project)
    assert set(server.app[HITS].values()) == {2}


async def test_another_spiders_job_and_unstorable_outputs_are_refused(tmp_path):
    project = _project(tmp_path)
    (project / "spiders" / "other.py").write_text(textwrap.dedent('''
        from crawler import Spider

        class Other(Spider):
            name = "other"
            start_urls = ["http://127.0.0.1:9/"]
    '''))
    proc = await spawn(sys.executable, "-m", "crawler", "run", "tree", "-a",
                       "base=http://127.0.0.1:9", "--job-dir", "job", "-o", "-", cwd=project)
    _, err = await finish(proc, 60)
    assert proc.returncode == 2 and "cannot be used with a job dir" in err.decode()
    proc = await spawn(sys.executable, "-m", "crawler", "run", "tree", "-a",
                       "base=http://127.0.0.1:9", "--job-dir", "job", "-O", "o.jsonl",
                       cwd=project)
    await finish(proc, 60)
    proc = await spawn(sys.executable, "-m", "crawler", "run", "other", "--job-dir", "job",
                       cwd=project)
    _, err = await finish(proc, 60)
    assert proc.returncode == 2
    assert "is a job of spider 'tree', not 'other'" in err.decode()
    assert len(err.decode().strip().splitlines()) == 1
    # one crawl per job dir: a second one while the first runs is refused
    class Tree(Spider):
        name = "tree"

    job = Job(project / "job", Tree())
    await job.open()  # holds the lock, as a running crawl does
    try:
        proc = await spawn(sys.executable, "-m", "crawler", "run", "tree", "-a",
                           "base=http://127.0.0.1:9", "--job-dir", "job", "-O", "o.jsonl",
                           cwd=project)
        _, err = await finish(proc, 60)
    finally:
        await job.close()
    assert proc.returncode == 2 and "is in use by another crawl" in err.decode()


class _Named(Spider):
    name = "named"

    def parse(self, response):
        yield from ()

    def failed(self, failure):
        return None


def test_requests_round_trip_through_their_dict_and_refuse_what_cannot_be_stored():
    spider = _Named()
    request = Request("http://a.test/x?q=1", callback=spider.parse, errback=spider.failed,
                      method="POST", body=b"\xff\x00data", headers={"X-A": "1", "Accept": None},
                      meta={"k": [1, 2]}, cb_kwargs={"n": 3}, priority=5, dont_filter=True,
                      depth=2, cookies={"c": "v"})
    data = json.loads(json.dumps(request.to_dict(spider)))
    again = Request.from_dict(data, spider)
    assert (again.url, again.method, again.body, again.meta, again.cb_kwargs) == (
        request.url, "POST", b"\xff\x00data", {"k": [1, 2]}, {"n": 3})
    assert again.callback == spider.parse and again.errback == spider.failed
    assert (again.priority, again.depth, again.dont_filter, again.cookies) == (5, 2, True,
                                                                              {"c": "v"})
    assert again.headers["X-A"] == "1" and again.dropped_headers == {"accept"}
    with pytest.raises(ValueError, match="is not a method of the spider"):
        Request("http://a.test/", callback=lambda r: None).to_dict(spider)
    with pytest.raises(ValueError, match=r"meta\['when'\] cannot be stored as JSON"):
        Request("http://a.test/", meta={"when": object()}).to_json(spider)


async def test_a_callback_that_is_not_a_spider_method_is_a_clear_error(aiohttp_server,
                                                                       tmp_path):
    server = await aiohttp_server(_tree_site())
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "lam.py").write_text(textwrap.dedent(f'''
        from crawler import Request, Spider

        class Lam(Spider):
            name = "lam"
            custom_settings = {{"log_interval": 0, "obey_robots": False}}
            start_urls = ["{server.make_url('/p/0')}"]

            def parse(self, response):
                yield {{"ok": 1}}
                yield Request("{server.make_url('/p/1')}", callback=lambda r: None)
    '''))
    proc = await spawn(sys.executable, "-m", "crawler", "run", "lam", "--job-dir", "job",
                       "-O", "o.jsonl", cwd=tmp_path)
    _, err = await finish(proc, 60)
    assert "is not a method of the spider: a request kept in a job directory names its " \
        "callbacks" in err.decode()
    assert (tmp_path / "o.jsonl").read_text().count("ok") == 1


async def test_with_a_job_item_scraped_comes_once_its_page_is_written(aiohttp_server, tmp_path):
    from crawler.signals import Signal
    from tests.conftest import crawl

    server = await aiohttp_server(_tree_site())
    heard: list[int] = []

    class Ears:
        @classmethod
        def from_crawler(cls, crawler):
            ext = cls()
            crawler.signals.connect(Signal.ITEM_SCRAPED,
                                    lambda item: heard.append(crawler.stats.items))
            return ext

    class Few(Spider):
        name = "few"
        start_urls = [str(server.make_url("/p/0"))]

        def parse(self, response):
            yield {"url": response.url}
            yield {"again": response.url}
            for link in response.css("a"):
                yield response.follow(link)

    stats, items = await crawl(Few(), tmp_path, job_dir=str(tmp_path / "job"), max_depth=2,
                               extensions=[Ears], log_interval=0, obey_robots=False)
    assert len(items) == stats.items == len(heard) == 14  # 7 pages, two items each
    assert all(count % 2 == 0 for count in heard)  # said after both items were counted


class _Plain(Spider):
    name = "plain"


async def _open_outputs(job: Job, *paths: Path) -> tuple[Any, list[Any]]:
    from crawler.outputs.formats import make_exporter
    from crawler.outputs.outputs import Outputs
    from crawler.stats import Stats

    sinks = [make_exporter(path) for path in paths]
    outputs = Outputs(sinks, Stats())
    await job.prepare_outputs(sinks)
    await outputs.check()
    await outputs.open()
    return outputs, sinks


async def test_a_commit_holds_exactly_the_pages_completed_before_its_cut(tmp_path):
    """A page completing while a commit writes its cut, and a flush that writes it at once,
    must not end up inside the length the commit stores: resumed, every output holds
    page 1 only, page 2 is to be done again (the CSV rows duplicated after kill -9)."""
    from crawler.outputs.items import to_record

    job = Job(tmp_path / "job", _Plain())
    await job.open()
    paths = [tmp_path / "a.jsonl", tmp_path / "b.json", tmp_path / "c.csv"]
    outputs, sinks = await _open_outputs(job, *paths)
    first, second = Request("http://x.test/1"), Request("http://x.test/2")
    job.added(first, b"1" * 20)
    job.added(second, b"2" * 20)
    await job.commit()
    async with job.lock:  # page 1 completes
        await outputs.write(to_record({"page": 1}))
        job.complete(first)
    commit = asyncio.create_task(job.commit())
    for _ in range(1000):  # until the commit has taken its cut (which clears the flag)
        if not job._completed.is_set():
            break
        await asyncio.sleep(0)
    assert not job._completed.is_set()
    async with job.lock:  # page 2 completes after the cut ...
        await outputs.write(to_record({"page": 2}))
        job.complete(second)
    # ... and its write fills the CSV's buffer, which writes at once, while the commit
    # still writes the first output's cut
    await sinks[2].flush()
    await commit
    await outputs.close()
    await job.close()  # "killed": page 2's completion was never committed
    again = Job(tmp_path / "job", _Plain())
    await again.open()
    outputs, _ = await _open_outputs(again, *paths)
    await outputs.close()
    await again.close()
    assert (tmp_path / "a.jsonl").read_text() == '{"page":1}\n'
    assert json.loads((tmp_path / "b.json").read_text()) == [{"page": 1}]
    assert (tmp_path / "c.csv").read_text() == "page\n1\n"
    db = sqlite3.connect(tmp_path / "job" / "job.sqlite3")
    left = [json.loads(data)[0] for (data,) in db.execute("SELECT data FROM requests")]
    db.close()
    assert left == ["http://x.test/2"]


class _TreeSpider(Spider):
    name = "tree"
    custom_settings = {"log_interval": 0, "concurrency": 8, "obey_robots": False}

    def __init__(self, base: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.start_urls = [base + "/p/0"]

    def parse(self, response):
        yield {"page": int(response.url.rsplit("/", 1)[1])}
        for link in response.css("a"):
            yield response.follow(link, callback=self.parse)


async def _job_crawl(tmp_path: Path, spider: Spider, *names: str, **settings: Any) -> Any:
    from crawler import Crawler, Settings
    from crawler.outputs.formats import make_exporter

    outputs = [make_exporter(tmp_path / name) for name in names]
    merged = Settings().merge(type(spider).custom_settings).merge(
        {"job_dir": str(tmp_path / "job"), **settings})
    return await Crawler(spider, settings=merged, outputs=outputs).run()


async def test_an_output_changed_between_runs_is_refused_before_any_is_touched(
        aiohttp_server, tmp_path):
    from crawler.exceptions import StartupError

    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    names = ("a.jsonl", "b.jsonl", "c.csv")
    result = await _job_crawl(tmp_path, _TreeSpider(base), *names, max_pages=60)
    assert result.finish_reason == "max_pages"
    # b: a line taken out of the middle and garbage past the end, so that it is not shorter
    lines = (tmp_path / "b.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines[:10] + lines[11:]) + b"x" * 200)
    (tmp_path / "a.jsonl").write_bytes((tmp_path / "a.jsonl").read_bytes() + b'{"torn')
    before = {name: (tmp_path / name).read_bytes() for name in names}
    with pytest.raises(StartupError, match=r"output .*b\.jsonl was changed since the job "
                                           r"wrote it.*--restart"):
        await _job_crawl(tmp_path, _TreeSpider(base), *names, max_pages=200)
    assert {name: (tmp_path / name).read_bytes() for name in names} == before  # untouched
    # put back, it resumes: a's torn tail is cut, every page once
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines))
    result = await _job_crawl(tmp_path, _TreeSpider(base), *names)
    assert result.finish_reason == "finished"
    for name in ("a.jsonl", "b.jsonl"):
        pages = Counter(json.loads(x)["page"] for x in (tmp_path / name).read_bytes().splitlines())
        assert pages == Counter(range(PAGES))


async def test_restart_waits_for_the_lock_before_forgetting_the_job(aiohttp_server, tmp_path):
    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    project = _project(tmp_path)
    proc = await spawn(*_command(base), cwd=project)
    await asyncio.sleep(1.0)
    rows = _rows(project)
    assert rows  # a crawl under way holds its job
    again = await spawn(*_command(base), "--restart", cwd=project)
    _, err = await finish(again, 60)
    assert again.returncode == 2 and "is in use by another crawl" in err.decode()
    assert _rows(project)  # the running crawl's job is still there
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    proc = await spawn(*_command(base), cwd=project)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    _assert_exactly_once(project)


def _rows(project: Path) -> int:
    db = sqlite3.connect(project / "job" / "job.sqlite3")
    try:
        return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    finally:
        db.close()


async def test_a_start_url_added_before_resuming_is_crawled_the_others_not_again(
        aiohttp_server, tmp_path):
    app = _tree_site()
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    result = await _job_crawl(tmp_path, _TreeSpider(base), "a.jsonl", max_pages=30)
    assert result.finish_reason == "max_pages"
    assert app[HITS][0] == 1

    class Grown(_TreeSpider):
        def __init__(self, base: str, **kw: Any) -> None:
            super().__init__(base, **kw)
            self.start_urls = [base + "/p/0", base + "/p/1400"]

    result = await _job_crawl(tmp_path, Grown(base), "a.jsonl", max_depth=1)
    assert app[HITS][1400] == 1  # the new start URL
    assert app[HITS][0] == 1  # the old one is not fetched again
    items = Counter(json.loads(x)["page"] for x in (tmp_path / "a.jsonl").read_bytes()
                    .splitlines())
    assert max(items.values()) == 1 and 1400 in items


async def test_a_page_yielding_many_items_holds_them_in_bounded_memory(aiohttp_server,
                                                                       tmp_path):
    """With a job dir a page's items wait for its completion: past a bound they wait on
    disk, so 20,000 items of 2 KB (40 MB) from one callback do not sit in memory."""
    import tracemalloc

    server = await aiohttp_server(_tree_site())
    url = str(server.make_url("/p/0"))

    class Flood(Spider):
        name = "flood"
        start_urls = [url]

        def parse(self, response):
            for i in range(20_000):
                yield {"i": i, "pad": "x" * 2000}

    tracemalloc.start()
    try:
        result = await _job_crawl(tmp_path, Flood(), "a.jsonl", "b.csv", obey_robots=False,
                                  log_interval=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.stats.items == 20_000
    assert [json.loads(x)["i"] for x in (tmp_path / "a.jsonl").read_bytes().splitlines()] \
        == list(range(20_000))
    with (tmp_path / "b.csv").open(newline="") as f:
        assert [int(row["i"]) for row in csv.DictReader(f)] == list(range(20_000))
    assert peak < 40 << 20, f"peak {peak >> 20} MiB"  # all of them: 80 MiB
    assert not list((tmp_path / "job").glob("page-*"))  # the spill file left nothing


async def test_max_pages_counts_a_page_fetched_again_after_a_stop_once(aiohttp_server,
                                                                       tmp_path):
    """Pages fetched but not complete when a crawl is killed are fetched again on resume:
    the stored count leaves them out, so max_pages still means that many pages' items."""
    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")

    class Slow(_TreeSpider):
        async def parse(self, response):
            await asyncio.sleep(0.3)  # fetched, then long in the callback
            for out in super().parse(response):
                yield out

    from crawler import Crawler, Settings
    from crawler.outputs.formats import make_exporter

    settings = Settings().merge(Slow.custom_settings).merge(
        {"job_dir": str(tmp_path / "job"), "max_pages": 120})
    crawler = Crawler(Slow(base), settings=settings,
                      outputs=[make_exporter(tmp_path / "a.jsonl")])
    run = asyncio.create_task(crawler.run())
    for _ in range(3000):
        if crawler.stats.pages >= 40 or run.done():
            break
        await asyncio.sleep(0.01)
    crawler.kill()  # pages in their callbacks are abandoned
    first = await run
    assert first.stats.pages > first.stats.items
    result = await _job_crawl(tmp_path, Slow(base), "a.jsonl", max_pages=120)
    items = [json.loads(x)["page"] for x in (tmp_path / "a.jsonl").read_bytes().splitlines()]
    assert result.stats.pages == 120
    assert len(items) == len(set(items)) == 120 - result.stats.requests_failed
    stats = result.stats.as_dict()
    assert 0 < stats["pages_before"] < 120
    assert stats["pages_per_second"] == round(
        (120 - stats["pages_before"]) / result.stats.elapsed_seconds, 1)


class _Named2(_TreeSpider):
    """Links go to parse_link: a stored request names it."""

    def parse(self, response):
        yield {"page": int(response.url.rsplit("/", 1)[1])}
        for link in response.css("a"):
            yield response.follow(link, callback=self.parse_link)

    def parse_link(self, response):
        return self.parse(response)


async def test_resuming_after_a_callback_was_renamed_drops_its_requests_and_ends(
        aiohttp_server, tmp_path, caplog):
    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    result = await _job_crawl(tmp_path, _Named2(base), "a.jsonl", max_pages=20)
    assert result.finish_reason == "max_pages"

    class Renamed(_TreeSpider):  # parse_link is gone
        pass

    result = await asyncio.wait_for(_job_crawl(tmp_path, Renamed(base), "a.jsonl"), 30)
    assert result.stats.errors["unrestorable_request"] > 0
    errors = [r for r in caplog.records if "cannot be restored" in r.getMessage()]
    assert 1 <= len(errors) <= 5  # named a few times, then only counted
    assert "could not be restored and were dropped" in caplog.text


async def test_a_stored_wait_is_capped_when_the_clock_went_back(aiohttp_server, tmp_path):
    """The clock set back a day between runs: a stored host pause and a retry's not-before
    time lie a day ahead. They are capped at what the settings allow."""
    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    result = await _job_crawl(tmp_path, _TreeSpider(base), "a.jsonl", max_pages=30)
    assert result.finish_reason == "max_pages"
    db = sqlite3.connect(tmp_path / "job" / "job.sqlite3")
    day = time.time() + 86_400
    host = db.execute("SELECT host FROM requests LIMIT 1").fetchone()[0]
    with db:
        db.execute("INSERT OR REPLACE INTO hosts VALUES (?, ?)",
                   (host, json.dumps({"delay": 0, "crawl_delay": 0, "next_start": day})))
        db.execute("UPDATE requests SET not_before = ? WHERE id IN "
                   "(SELECT id FROM requests LIMIT 5)", (day,))
    db.close()
    started = time.monotonic()
    result = await asyncio.wait_for(_job_crawl(
        tmp_path, _TreeSpider(base), "a.jsonl", retry_backoff_max=1.0,
        autothrottle_max_delay=1.0), 60)
    assert result.finish_reason == "finished"
    assert time.monotonic() - started < 30


async def test_a_damaged_job_is_a_one_line_error(aiohttp_server, tmp_path):
    from crawler.exceptions import StartupError

    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    await _job_crawl(tmp_path, _TreeSpider(base), "a.jsonl", max_pages=20)
    db = sqlite3.connect(tmp_path / "job" / "job.sqlite3")
    with db:  # a request row that is no request, and stats that are no JSON
        db.execute("UPDATE requests SET data = '[1, 2' WHERE id = (SELECT MIN(id) FROM "
                   "requests)")
        db.execute("UPDATE job SET value = 'not json' WHERE key = 'stats'")
    db.close()
    with pytest.raises(StartupError, match=r"is damaged .*--restart starts it over"):
        await _job_crawl(tmp_path, _TreeSpider(base), "a.jsonl")
    db = sqlite3.connect(tmp_path / "job" / "job.sqlite3")
    with db:
        db.execute("UPDATE job SET value = '{}' WHERE key = 'stats'")
    db.close()
    result = await asyncio.wait_for(_job_crawl(tmp_path, _TreeSpider(base), "a.jsonl"), 60)
    assert result.stats.errors["unrestorable_request"] == 1


async def test_a_commit_stores_stats_with_kind_keys(tmp_path):
    from crawler.exceptions import Kind
    from crawler.stats import Stats

    job = Job(tmp_path / "job", _Plain())
    await job.open()
    stats = Stats()
    stats.errors[Kind.TIMEOUT] += 2
    stats.counters[Kind.DNS] += 1
    await job.commit(stats, finished=True)
    await job.close()
    again = Job(tmp_path / "job", _Plain())
    await again.open()
    restored = Stats()
    again.restore_stats(restored)
    await again.close()
    assert restored.errors["timeout"] == 2 and restored.counters["dns"] == 1


@needs_unshare
async def test_a_job_dir_on_a_full_disk_stops_with_one_line(aiohttp_server, tmp_path):
    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    project = _project(tmp_path)
    (project / "job").mkdir()
    crawl = " ".join([*_command(base)[:7], "--job-dir", "job", "-O", "out.jsonl"])
    script = f"mount -t tmpfs -o size=400k tmpfs {project / 'job'} && {crawl}"
    proc = await spawn("unshare", "-rm", "sh", "-c", script, cwd=project)
    _, err = await finish(proc, 120)
    text = err.decode()
    assert proc.returncode == 1, text
    errors = [line for line in text.splitlines() if line.startswith("crawler: error:")]
    assert len(errors) == 1 and "cannot store the job's progress" in errors[0], text
    assert "Traceback" not in text


@needs_unshare
async def test_jobs_reads_a_job_on_a_read_only_mount(aiohttp_server, tmp_path):
    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    await _job_crawl(tmp_path, _TreeSpider(base), "a.jsonl", max_pages=20)
    job = tmp_path / "job"
    script = (f"mount --bind {job} {job} && mount -o remount,bind,ro {job} && "
              f"{sys.executable} -m crawler jobs {job}")
    proc = await spawn("unshare", "-rm", "sh", "-c", script, cwd=tmp_path)
    out, err = await finish(proc, 60)
    assert proc.returncode == 0, err.decode()
    assert "pages:    20" in out.decode() and "Traceback" not in err.decode()
