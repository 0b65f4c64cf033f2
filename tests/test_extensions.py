"""Signals and extensions: handlers get the arguments they ask for, a failing handler is
counted and the crawl goes on, the progress log is a built-in extension, and a user's
extension with its own namespaced setting works through `python -m crawler run`."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from crawler import Settings, Spider
from crawler.exceptions import SettingsError
from crawler.signals import Signal, Signals
from crawler.stats import Stats
from tests.conftest import crawl, links, make_site
from tests.test_cli import run_cli


async def test_handlers_get_what_they_ask_for_and_a_failure_is_counted():
    stats = Stats()
    signals = Signals(stats)
    got: list[Any] = []

    def only_item(item):
        got.append(("sync", item))

    async def everything(**kwargs):
        got.append(("async", sorted(kwargs)))

    def broken(item):
        raise RuntimeError("boom")

    signals.connect(Signal.ITEM_SCRAPED, only_item)
    signals.connect("item_scraped", broken)
    signals.connect(Signal.ITEM_SCRAPED, everything)
    assert signals.wants(Signal.ITEM_SCRAPED) and not signals.wants(Signal.ITEM_DROPPED)
    await signals.send(Signal.ITEM_SCRAPED, item={"a": 1}, request=None, spider=None)
    assert got == [("sync", {"a": 1}), ("async", ["item", "request", "spider"])]
    assert stats.errors == {"signal_handler": 1}
    signals.disconnect(Signal.ITEM_SCRAPED, only_item)
    signals.disconnect(Signal.ITEM_SCRAPED, broken)
    signals.disconnect(Signal.ITEM_SCRAPED, everything)
    assert not signals.wants(Signal.ITEM_SCRAPED)


class _Recorder:
    """Records every signal it gets, in order."""

    events: list[str]

    @classmethod
    def from_crawler(cls, crawler):
        ext = cls()
        ext.events = []
        crawler.signals.connect(Signal.SPIDER_OPENED, lambda spider: ext.events.append("open"))
        crawler.signals.connect(Signal.RESPONSE_RECEIVED,
                                lambda response: ext.events.append(f"response {response.status}"))
        crawler.signals.connect(Signal.ITEM_SCRAPED, lambda item: ext.events.append("item"))
        crawler.signals.connect(Signal.ITEM_DROPPED, lambda item: ext.events.append("dropped"))
        crawler.signals.connect(Signal.REQUEST_SCHEDULED,
                                lambda request: ext.events.append("scheduled"))
        crawler.signals.connect(Signal.REQUEST_FAILED,
                                lambda failure: ext.events.append(f"failed {failure.kind}"))
        crawler.signals.connect(Signal.SPIDER_CLOSED,
                                lambda reason: ext.events.append(f"closed {reason}"))
        _Recorder.last = ext
        return ext


class _DropSecond:
    def process_item(self, item, spider):
        if item["url"].endswith("/b"):
            from crawler import DropItem
            raise DropItem("second")
        return item


async def test_every_signal_reaches_an_extension_in_order(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({"/": links("/a", "/b", "/missing"),
                                              "/a": links(), "/b": links()}))

    class Three(Spider):
        name = "three"
        start_urls = [str(server.make_url("/"))]

        def parse(self, response):
            yield {"url": response.url}
            yield from response.follow_all(css="a")

    stats, items = await crawl(Three(), tmp_path, extensions=[_Recorder],
                               item_pipelines=[_DropSecond])
    events = _Recorder.last.events
    assert events[0] == "open" and events[-1] == "closed finished"
    assert events.count("scheduled") == 4  # the start request and three links
    assert events.count("response 200") == 3
    assert events.count("item") == 2 and events.count("dropped") == 1
    assert events.count("response 404") == 1 and events.count("failed http_404") == 1
    assert len(items) == 2 and stats.errors == {"http_404": 1}


async def test_the_progress_log_is_a_builtin_extension(aiohttp_server, tmp_path, caplog):
    server = await aiohttp_server(make_site({"/": links()}))

    class One(Spider):
        name = "one"
        start_urls = [str(server.make_url("/"))]

        async def parse(self, response):
            import asyncio
            await asyncio.sleep(0.35)
            yield {"url": response.url}

    caplog.set_level(logging.INFO, logger="crawler.extensions.monitor")
    await crawl(One(), tmp_path, log_interval=0.1)
    assert any("pages (" in r.getMessage() for r in caplog.records)
    caplog.clear()
    await crawl(One(), tmp_path, log_interval=0)
    assert not any("pages (" in r.getMessage() for r in caplog.records)


def test_namespaced_plugin_settings_pass_and_typos_in_ours_still_fail():
    s = Settings().merge({"myext.limit": 3}).merge_strings({"myext.path": "/tmp/x"})
    assert s.get("myext.limit") == 3 and s.get("myext.path") == "/tmp/x"
    assert s.get("concurrency") == 16 and s.get("other.key", "d") == "d"
    with pytest.raises(SettingsError, match="did you mean 'concurrency'"):
        Settings().merge_strings({"concurency": "2"})
    with pytest.raises(SettingsError, match="namespaced"):
        Settings().merge({"myext.": 1})


EXTENSION = '''
    import json

    from crawler import Spider
    from crawler.signals import Signal


    class CountPages:
        """Counts pages and items; writes them where its own setting says, at the end."""

        def __init__(self, path):
            self.path, self.pages, self.items = path, 0, 0

        @classmethod
        def from_crawler(cls, crawler):
            ext = cls(crawler.settings.get("countpages.path"))
            crawler.signals.connect(Signal.RESPONSE_RECEIVED, ext.response)
            crawler.signals.connect(Signal.ITEM_SCRAPED, ext.item)
            crawler.signals.connect(Signal.SPIDER_CLOSED, ext.closed)
            return ext

        def response(self, response):
            self.pages += 1

        async def item(self, item):
            self.items += 1

        def closed(self, spider, reason):
            with open(self.path, "w") as f:
                json.dump({"spider": spider.name, "reason": reason, "pages": self.pages,
                           "items": self.items}, f)


    class Site(Spider):
        name = "site"
        custom_settings = {"extensions": ["spiders.site.CountPages"], "log_interval": 0}
        start_urls = ["{start}"]

        def parse(self, response):
            yield {"url": response.url}
            yield from response.follow_all(css="a")
'''


async def test_a_user_extension_with_its_own_setting_through_the_cli(aiohttp_server,
                                                                      tmp_path: Path):
    server = await aiohttp_server(make_site({"/": links("/a", "/b"), "/a": links(),
                                              "/b": links()}))
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "site.py").write_text(
        textwrap.dedent(EXTENSION).replace("{start}", str(server.make_url("/"))))
    counts = tmp_path / "counts.json"
    code, _, err = await run_cli("run", "site", "-s", f"countpages.path={counts}",
                                 "-O", "out.jsonl", cwd=tmp_path)
    assert code == 0, err
    assert json.loads(counts.read_text()) == {
        "spider": "site", "reason": "finished", "pages": 3, "items": 3}


async def test_engine_idle_handlers_may_schedule_more_and_the_crawl_ends_when_they_do_not(
        aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({"/": links(), "/more": links(), "/last": links()}))
    fed: list[str] = []

    class Feeder:
        """Schedules one page each time the crawl runs dry, until it has none left."""

        @classmethod
        def from_crawler(cls, crawler):
            ext = cls()
            ext.crawler, ext.todo = crawler, ["/more", "/last"]
            crawler.signals.connect(Signal.ENGINE_IDLE, ext.idle)
            return ext

        async def idle(self, spider):
            from crawler import Request
            fed.append(spider.name)
            if self.todo:
                assert await self.crawler.schedule(Request(str(server.make_url(self.todo.pop(0)))))

    class One(Spider):
        name = "one"
        start_urls = [str(server.make_url("/"))]

        def parse(self, response):
            yield {"url": response.url}

    stats, items = await crawl(One(), tmp_path, extensions=[Feeder], log_interval=0)
    assert sorted(i["url"].rsplit("/", 1)[1] for i in items) == ["", "last", "more"]
    assert fed == ["one"] * 3 and stats.finish_reason == "finished"
