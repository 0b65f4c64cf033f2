"""Storage modes: the registry, and a mode defined outside the package (tests/registered_store.py)
crawling end to end through the public API without a change to the core."""

from __future__ import annotations

import pytest

from crawler import Crawler, Request, Settings, SettingsError, Spider, StartupError
from crawler.outputs.formats import make_exporter
from crawler.storage import build_storage, register_storage, storage_schemes
from tests.conftest import links, make_site
from tests.registered_store import STORES, HeldStorage


class Site(Spider):
    name = "site"

    async def parse(self, response):
        yield {"url": response.url, "title": response.css_first("title").text()}
        for href in response.css("a"):
            yield response.follow(href.attributes["href"])


async def test_a_store_registered_from_outside_crawls_end_to_end(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({
        "/": links("/a", "/b", title="home"), "/a": links("/b", "/c", title="a"),
        "/b": links("/", title="b"), "/c": links(title="c")}))
    out = tmp_path / "items.jsonl"
    spider = Site()
    spider.start_urls = [str(server.make_url("/"))]
    settings = Settings(frontier="held://example", log_interval=0)
    crawler = Crawler(spider, settings=settings, outputs=[make_exporter(out)])
    assert isinstance(crawler.storage, HeldStorage) and crawler.storage.url == "held://example"
    result = await crawler.run()
    assert result.problem is None and result.stats.items == 4
    assert sorted(line.count(b'"title"') for line in out.read_bytes().splitlines()) == [1] * 4
    store = STORES[-1]
    assert store is crawler.storage and store.pages_written == 4
    assert sorted(p.rsplit("/", 1)[1] for p in store.frontier.completed) == ["", "a", "b", "c"]


def test_an_unregistered_scheme_is_a_settings_error_naming_the_registered_ones():
    with pytest.raises(SettingsError, match=r"frontier.*redis://.*held://"):
        Settings(frontier="nosuch://x")
    assert {"redis", "rediss", "unix", "held"} <= storage_schemes()


def test_a_scheme_must_look_like_one():
    with pytest.raises(ValueError, match="not a URL scheme"):
        register_storage("no such", HeldStorage)


def test_two_storage_modes_at_once_are_refused_before_anything_opens(tmp_path):
    from crawler.frontier import MemoryFrontier

    with pytest.raises(StartupError, match="keeps the crawl's state itself"):
        Crawler(Site(), settings=Settings(frontier="held://x", job_dir=str(tmp_path / "j")))
    with pytest.raises(StartupError, match="job dir keeps its own frontier"):
        Crawler(Site(), settings=Settings(job_dir=str(tmp_path / "j")),
                frontier=MemoryFrontier())
    assert not (tmp_path / "j").exists()


def test_the_settings_pick_the_mode():
    from crawler.storage.base import StorageContext
    from crawler.storage.fleet import FleetStorage
    from crawler.storage.jobdir import JobStorage
    from crawler.storage.memory import MemoryStorage

    crawler = Crawler(Site())
    assert type(crawler.storage) is MemoryStorage
    assert isinstance(Crawler(Site(), settings=Settings(job_dir="/nonexistent/j")).storage,
                      JobStorage)  # nothing is opened before run()
    context = crawler.storage.context
    fleet = build_storage(StorageContext(
        context.spider, Settings(frontier="redis://127.0.0.1:1/0"), context.stats,
        context.signals, context.outputs, context.fingerprint))
    assert isinstance(fleet, FleetStorage) and fleet.robots_at_fetch
    assert Request("http://a/").url == "http://a/"
