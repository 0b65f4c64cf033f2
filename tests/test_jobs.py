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
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from crawler import Request, Spider
from crawler.jobs import Job
from tests.conftest import finish, spawn

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
            "--job-dir", "job", "-O", "out.jsonl", "-O", "out.json", "-O", "out.csv"]


def _assert_exactly_once(project: Path) -> None:
    lines = (project / "out.jsonl").read_bytes().splitlines()
    jsonl = Counter(json.loads(line)["page"] for line in lines)
    array = Counter(item["page"] for item in json.loads((project / "out.json").read_text()))
    with (project / "out.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    table = Counter(int(row["page"]) for row in rows)
    every = Counter(range(PAGES))
    assert jsonl == every, sorted((jsonl - every) + (every - jsonl))[:10]
    assert array == every
    assert table == every
    assert all(row["text"] == 'café, "q"' for row in rows)


async def test_kill_9_at_random_moments_then_resume_gives_every_page_once(aiohttp_server,
                                                                           tmp_path):
    server = await aiohttp_server(_tree_site())
    base = str(server.make_url("")).rstrip("/")
    project = _project(tmp_path)
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        proc = await spawn(*_command(base), cwd=project)
        await asyncio.sleep(rng.uniform(0.4, 1.2))
        if proc.returncode is not None:
            break
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        kills += 1
    assert kills >= 3, "the crawl ended before it could be killed: make the site slower"
    proc = await spawn(*_command(base), cwd=project)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    _assert_exactly_once(project)
    hits = server.app[HITS]
    assert set(hits) == set(range(PAGES))
    assert max(hits.values()) <= kills + 1  # a page is fetched again only after a kill
    assert sum(hits.values()) < PAGES * 1.5  # what was done stays done
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
