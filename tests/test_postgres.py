"""The PostgreSQL sink against a real server: a fresh table, upserts, -O, connections cut
from the server side, items the server cannot store, backpressure while the table is
locked, kill -9 with a job dir, and one-line errors for bad connection strings."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from typing import Any, ClassVar

import orjson
import pytest
from aiohttp import web

from crawler import Crawler, Settings, Spider
from crawler.outputs import postgres as pg_sink
from crawler.outputs.feeds import output_sink
from tests.conftest import HITS, ROOT, finish, spawn

asyncpg = pytest.importorskip("asyncpg", reason="the PostgreSQL sink needs asyncpg")


@pytest.fixture
async def db(postgres_url):
    """(url, a connection, a fresh table name); the table is dropped afterwards."""
    conn = await asyncpg.connect(postgres_url)
    table = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield postgres_url, conn, table
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


SPIDER_FILE = 'from tests.test_postgres import Pages\n\nclass Here(Pages):\n    name = "pages"\n'


def sink_url(url: str, table: str, key: str | None = None) -> str:
    return f"{url}?table={table}" + (f"&key={key}" if key else "")


class Pages(Spider):
    """Yields {"url", "n", "run"} for every page of a site of `pages` pages."""

    name = "pages"
    custom_settings: ClassVar[dict[str, Any]] = {"per_host_concurrency": 8,
                                                 "log_interval": 0}

    def __init__(self, base: str, run: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = [base]
        self.run = run

    async def parse(self, response):
        n = int(response.url.rsplit("/", 1)[-1] or 0)
        yield {"url": response.url, "n": n, "run": self.run}
        for link in response.css("a"):
            yield response.follow(link, callback=self.parse)


def chain_site(count: int, delay: float = 0.0) -> web.Application:
    """Pages /0 .. /count-1, each linking to the next 3."""
    async def page(request: web.Request) -> web.Response:
        if delay:
            await asyncio.sleep(delay)
        n = int(request.match_info.get("n") or 0)
        request.app[HITS].append((request.path, 0.0))
        links = "".join(f'<a href="/{m}">{m}</a>' for m in range(n + 1, min(n + 4, count)))
        return web.Response(text=f"<html><body>{links}</body></html>",
                            content_type="text/html")

    app = web.Application()
    app[HITS] = []
    app.router.add_get("/{n:\\d*}", page)
    return app


async def crawl_to(spider: Spider, spec: str, *, overwrite: bool = False,
                   **settings: Any) -> tuple[Crawler, Any]:
    import datetime

    sink = output_sink(spec, overwrite=overwrite, fields=None, spider=spider,
                       started=datetime.datetime.now(datetime.UTC))
    merged = Settings().merge(type(spider).custom_settings).merge(settings)
    crawler = Crawler(spider, settings=merged, outputs=[sink])
    await crawler.run()
    return crawler, sink


async def test_demo_crawl_into_a_fresh_table(db, tmp_path):
    url, conn, table = db
    proc = await spawn(sys.executable, "-m", "crawler", "demo", "-o", sink_url(url, table),
                       "--stats", str(tmp_path / "stats.json"), cwd=tmp_path)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    rows = await conn.fetch(f"SELECT spider, item, scraped_at FROM {table}")
    assert len(rows) == 240
    assert {r["spider"] for r in rows} == {"books"}
    items = [orjson.loads(r["item"]) for r in rows]
    assert set(items[0]) == {"url", "title", "price", "rating", "category"}
    assert len({i["url"] for i in items}) == 240 and all(r["scraped_at"] for r in rows)
    columns = await conn.fetch("SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_name = $1 ORDER BY ordinal_position", table)
    assert [(c["column_name"], c["data_type"]) for c in columns] == [
        ("id", "bigint"), ("spider", "text"), ("item", "jsonb"),
        ("scraped_at", "timestamp with time zone")]
    stats = orjson.loads((tmp_path / "stats.json").read_bytes())
    assert stats["outputs"][sink_url(url, table)] == {"items": 240}


async def test_upsert_on_a_key_updates_rows(db, aiohttp_server):
    url, conn, table = db
    server = await aiohttp_server(chain_site(50))
    base = str(server.make_url("/"))
    for run in (1, 2):
        await crawl_to(Pages(base, run=run), sink_url(url, table, "url"))
    rows = await conn.fetch(f"SELECT item->>'run' AS run FROM {table}")
    assert len(rows) == 50 and {r["run"] for r in rows} == {"2"}
    # without a key, the same crawl adds rows; -O removes this spider's rows first
    plain = f"{table}_plain"
    try:
        for _ in range(2):
            await crawl_to(Pages(base), sink_url(url, plain))
        assert await conn.fetchval(f"SELECT count(*) FROM {plain}") == 100
        await conn.execute(f"INSERT INTO {plain} (spider, item) VALUES ('other', '{{}}')")
        await crawl_to(Pages(base), sink_url(url, plain), overwrite=True)
        assert await conn.fetchval(f"SELECT count(*) FROM {plain} WHERE spider = 'pages'") == 50
        assert await conn.fetchval(f"SELECT count(*) FROM {plain} WHERE spider = 'other'") == 1
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {plain}")


async def test_connections_cut_by_the_server_lose_no_item(db, aiohttp_server):
    url, conn, table = db
    server = await aiohttp_server(chain_site(800, delay=0.01))
    spider = Pages(str(server.make_url("/")))  # about 2 s at 4 pages in flight
    killed = 0

    async def terminate() -> None:
        nonlocal killed
        while True:
            await asyncio.sleep(0.15)
            killed += await conn.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'crawler pages') AS t")

    cutter = asyncio.create_task(terminate())
    try:
        crawler, sink = await crawl_to(spider, sink_url(url, table, "url"),
                                       per_host_concurrency=4)
    finally:
        cutter.cancel()
    assert killed >= 3
    assert sink.error is None and sink.reconnects >= 1
    assert crawler.stats.pages == 800
    assert await conn.fetchval(f"SELECT count(DISTINCT item->>'url') FROM {table}") == 800
    assert crawler.stats.outputs[sink.name]["items"] >= 800


async def test_items_the_server_cannot_store_are_counted_not_fatal(db, aiohttp_server, caplog):
    url, conn, table = db
    server = await aiohttp_server(chain_site(30))

    class WithNul(Pages):
        async def parse(self, response):
            async for obj in super().parse(response):
                if isinstance(obj, dict) and obj["n"] % 10 == 3:
                    obj["title"] = "bad\x00byte"
                yield obj

    crawler, sink = await crawl_to(WithNul(str(server.make_url("/"))), sink_url(url, table))
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 27
    assert sink.rejected == 3 and sink.error is None
    assert crawler.stats.outputs[sink.name] == {"items": 27, "rejected": 3}
    assert sum("item not stored: a string holds a NUL character" in r.getMessage()
               for r in caplog.records) == 3


async def test_a_locked_table_holds_the_crawl_back_not_its_memory(db, aiohttp_server,
                                                                  monkeypatch):
    url, conn, table = db
    monkeypatch.setattr(pg_sink, "BUFFER", 40)
    monkeypatch.setattr(pg_sink, "BATCH", 10)
    server = await aiohttp_server(chain_site(400))
    hits = server.app[HITS]
    await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, spider text NOT NULL,"
                       " item jsonb NOT NULL, scraped_at timestamptz NOT NULL DEFAULT now())")
    lock = conn.transaction()
    await lock.start()
    await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    task = asyncio.create_task(crawl_to(Pages(str(server.make_url("/"))),
                                        sink_url(url, table), concurrency=4))
    await asyncio.sleep(1.5)
    held = len(hits)
    await asyncio.sleep(0.5)
    # held back: the buffer (40), the batch stuck in its INSERT (10), pages in the workers
    # and the callback's slice; not the site's 400 pages
    assert held == len(hits) and held < 120, held
    assert not task.done()
    await lock.rollback()
    crawler, sink = await task
    assert crawler.stats.pages == 400 and sink.error is None
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 400


async def test_bad_connection_strings_are_one_line_errors_before_any_fetch(
        db, aiohttp_server, tmp_path):
    url, conn, table = db
    server = await aiohttp_server(chain_site(5))
    base = str(server.make_url("/"))
    spider = tmp_path / "pages.py"
    spider.write_text(SPIDER_FILE)
    await conn.execute("DROP ROLE IF EXISTS crawler_readonly")
    await conn.execute("CREATE ROLE crawler_readonly LOGIN")
    await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, spider text NOT NULL,"
                       " item jsonb NOT NULL, scraped_at timestamptz NOT NULL DEFAULT now())")
    host = url.split("@", 1)[1].split("/", 1)[0]
    cases = {
        f"postgresql://no_such_role@{host}/test?table={table}": 'role "no_such_role" does '
                                                                 "not exist",
        f"postgresql://postgres@{host}/no_such_db": 'database "no_such_db" does not exist',
        "postgresql://postgres@127.0.0.1:1/test": "cannot connect",
        f"{url}?table=bad-name": "table 'bad-name' is not a plain name",
        f"postgres://crawler_readonly@{host}/test?table={table}": "permission denied",
    }
    try:
        for spec, message in cases.items():
            proc = await spawn(sys.executable, "-m", "crawler", "run", str(spider), "-a",
                               f"base={base}", "-o", spec, cwd=ROOT)
            _, err = await finish(proc, 60)
            lines = err.decode().strip().splitlines()
            assert proc.returncode == 2, (spec, lines)
            assert len(lines) == 1 and lines[0].startswith("crawler: error: ")
            assert message in lines[0], (spec, lines)
        assert server.app[HITS] == []  # nothing fetched
        proc = await spawn(sys.executable, "-m", "crawler", "run", str(spider), "-a",
                           f"base={base}", "-o", sink_url(url, table), "--job-dir",
                           str(tmp_path / "job"), cwd=ROOT)
        _, err = await finish(proc, 60)
        assert proc.returncode == 2 and "with ?key=FIELD" in err.decode()
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute("DROP ROLE IF EXISTS crawler_readonly")


async def test_kill_9_with_a_job_dir_keeps_every_item(db, aiohttp_server, tmp_path):
    """SIGKILL mid-crawl, twice, then resume: every page's item is in the table once
    (the job records a page done only after the sink committed its items)."""
    url, conn, table = db
    server = await aiohttp_server(chain_site(1000, delay=0.01))
    base = str(server.make_url("/"))
    spider = tmp_path / "pages.py"
    spider.write_text(SPIDER_FILE)
    args = [sys.executable, "-m", "crawler", "run", str(spider), "-a", f"base={base}",
            "-o", sink_url(url, table, "url"), "--job-dir", str(tmp_path / "job"),
            "-s", "concurrency=2", "-s", "per_host_concurrency=2"]  # about 5 s in all
    for wait in (2.5, 1.5):  # (the sink commits about once a second)
        proc = await spawn(*args, cwd=ROOT)
        await asyncio.sleep(wait)
        assert proc.returncode is None
        os.kill(proc.pid, signal.SIGKILL)
        await finish(proc, 30)
        stored = await conn.fetchval(f"SELECT count(*) FROM {table}")
        assert 0 < stored < 1000
    proc = await spawn(*args, cwd=ROOT)
    _, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    urls = await conn.fetch(f"SELECT item->>'url' AS url FROM {table}")
    assert len(urls) == 1000 and len({r["url"] for r in urls}) == 1000


async def test_a_table_dropped_mid_crawl_fails_the_sink_and_stops_the_crawl(
        db, aiohttp_server):
    url, conn, table = db
    server = await aiohttp_server(chain_site(2000, delay=0.01))
    spider = Pages(str(server.make_url("/")))
    task = asyncio.create_task(crawl_to(spider, sink_url(url, table), per_host_concurrency=2))
    for _ in range(300):  # until the first batch is in
        if await conn.fetchval(f"SELECT to_regclass('{table}') IS NOT NULL") and \
                await conn.fetchval(f"SELECT count(*) FROM {table}"):
            break
        await asyncio.sleep(0.1)
    await conn.execute(f"DROP TABLE {table}")
    crawler, sink = await asyncio.wait_for(task, 60)  # no hang: the crawl stops
    assert crawler.stats.finish_reason == "output_failed"
    assert "UndefinedTableError" in sink.error and crawler.stats.pages < 2000


async def test_an_item_repeated_in_one_batch_keeps_its_last_version(db, aiohttp_server):
    """ON CONFLICT DO UPDATE may touch a row once per statement: a batch holding one key
    twice keeps the later item (without that, PostgreSQL refuses the whole batch)."""
    url, conn, table = db
    server = await aiohttp_server(chain_site(20))

    class Twice(Pages):
        async def parse(self, response):
            async for obj in super().parse(response):
                if isinstance(obj, dict):
                    yield {**obj, "run": "first"}
                    obj = {**obj, "run": "second"}
                yield obj

    crawler, sink = await crawl_to(Twice(str(server.make_url("/"))),
                                   sink_url(url, table, "url"))
    rows = await conn.fetch(f"SELECT item->>'run' AS run FROM {table}")
    assert sink.error is None and len(rows) == 20 and {r["run"] for r in rows} == {"second"}


async def test_keys_are_collapsed_as_the_index_compares_them(db, aiohttp_server):
    """1 and "1" are one key to item->>FIELD: in one batch, the later item stays (the
    batch failed as a whole before: CardinalityViolation)."""
    url, conn, table = db
    server = await aiohttp_server(chain_site(1))

    class Mixed(Pages):
        async def parse(self, response):
            yield {"k": 1, "v": "number"}
            yield {"k": "1", "v": "text"}
            yield {"k": 2.5, "v": "float"}
            yield {"k": True, "v": "bool"}
            yield {"k": "true", "v": "bool as text"}

    crawler, sink = await crawl_to(Mixed(str(server.make_url("/"))),
                                   sink_url(url, table, "k"))
    rows = await conn.fetch(f"SELECT item->>'k' AS k, item->>'v' AS v FROM {table} ORDER BY 1")
    assert sink.error is None
    assert [(r["k"], r["v"]) for r in rows] == [("1", "text"), ("2.5", "float"),
                                                ("true", "bool as text")]


async def test_a_table_locked_at_the_end_bounds_the_close_and_says_why(
        db, aiohttp_server, monkeypatch, caplog):
    url, conn, table = db
    monkeypatch.setattr(pg_sink, "WAIT_NOTICE", 0.3)
    monkeypatch.setattr(pg_sink, "CLOSE_PATIENCE", 1.5)
    server = await aiohttp_server(chain_site(30))
    await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, spider text NOT NULL,"
                       " item jsonb NOT NULL, scraped_at timestamptz NOT NULL DEFAULT now())")
    lock = conn.transaction()
    await lock.start()
    await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    try:
        crawler, sink = await asyncio.wait_for(
            crawl_to(Pages(str(server.make_url("/"))), sink_url(url, table)), 30)
    finally:
        await lock.rollback()
    assert crawler.stats.pages == 30
    assert "did not take them within" in sink.error and "lock held" in sink.error, sink.error
    said = [r for r in caplog.records if "has waited" in r.getMessage()]
    assert len(said) == 1 and "lock held on table" in said[0].getMessage()


async def test_a_table_of_another_layout_is_refused_before_any_fetch(db, aiohttp_server,
                                                                      tmp_path):
    url, conn, table = db
    server = await aiohttp_server(chain_site(5))
    spider = tmp_path / "pages.py"
    spider.write_text(SPIDER_FILE)
    await conn.execute(f"CREATE TABLE {table} (id serial, title text NOT NULL, body text)")
    proc = await spawn(sys.executable, "-m", "crawler", "run", str(spider), "-a",
                       f"base={server.make_url('/')}", "-o", sink_url(url, table), cwd=ROOT)
    _, err = await finish(proc, 60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert "exists with another layout (no spider text column; no item jsonb column; its " \
        "column title is NOT NULL without a default)" in lines[0]
    assert server.app[HITS] == []
