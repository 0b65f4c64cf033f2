"""Download handlers: a handler for a scheme of the user's, set through the
download_handlers setting, crawls end to end; meta picks a handler per request; a handler
is opened at its first request and closed with the crawl."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from crawler import Crawler, Request, Response, Settings, Spider, StartupError
from crawler.exceptions import DownloadError, Kind, SettingsError
from tests.conftest import crawl, links

PAGES = {
    "memo://site/": links("/a", "/b", "memo://site/c"),
    "memo://site/a": links("/b"),
    "memo://site/b": links("/"),
    "memo://site/c": links(),
}


class MemoHandler:
    """Serves PAGES; counts its opening and closing."""

    events: ClassVar[list[str]] = []

    @classmethod
    def from_crawler(cls, crawler: Any) -> MemoHandler:
        cls.events.append(f"built:{crawler.spider.name}")
        return cls()

    async def __aenter__(self) -> MemoHandler:
        self.events.append("opened")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.events.append("closed")

    async def fetch(self, request: Request) -> Response:
        self.events.append(f"fetch:{request.url}")
        body = PAGES.get(request.url)
        if body is None:
            raise DownloadError(Kind.CONNECTION, f"no page {request.url}", request)
        return Response(request.url, 200, {"Content-Type": "text/html"}, body.encode(),
                        request)


class Memo(Spider):
    name = "memo"
    start_urls: ClassVar[list[str]] = ["memo://site/"]
    custom_settings: ClassVar[dict[str, Any]] = {
        "download_handlers": {"memo": "tests.test_handlers.MemoHandler"}, "obey_robots": False}

    async def parse(self, response):
        yield {"url": response.url}
        for a in response.css("a"):
            yield response.follow(a)


async def test_a_handler_for_a_scheme_of_ours_crawls_end_to_end(tmp_path):
    MemoHandler.events.clear()
    stats, items = await crawl(Memo(), tmp_path)
    assert sorted(i["url"] for i in items) == sorted(PAGES)
    assert stats.pages == 4 and stats.requests_failed == 0
    events = MemoHandler.events
    assert events[0] == "built:memo" and events[1] == "opened" and events[-1] == "closed"
    assert events.count("opened") == events.count("closed") == 1


async def test_a_scheme_of_ours_has_no_robots_txt_to_obey(tmp_path):
    """robots.txt is HTTP's (RFC 9309): with obey_robots on, a memo:// page is fetched
    without asking its handler for memo://site/robots.txt (which failed every start
    request as `internal` before)."""
    MemoHandler.events.clear()
    stats, items = await crawl(Memo(), tmp_path, obey_robots=True)
    assert sorted(i["url"] for i in items) == sorted(PAGES)
    assert not [e for e in MemoHandler.events if "robots.txt" in e]
    assert stats.requests_failed == 0


async def test_meta_sends_one_request_to_a_named_handler(tmp_path):
    MemoHandler.events.clear()

    class Named(Spider):
        name = "named"
        custom_settings: ClassVar[dict[str, Any]] = {
            "download_handlers": {"memory": MemoHandler}, "obey_robots": False}

        async def start(self):
            # an http URL no server answers: the named handler serves it instead
            yield Request("http://127.0.0.1:9/", meta={"download_handler": "memory"})

        async def parse(self, response):
            yield {"url": response.url}

    stats, items = await crawl(Named(), tmp_path)
    assert stats.requests_failed == 1 and items == []  # the memo handler has no such page
    assert "fetch:http://127.0.0.1:9/" in MemoHandler.events


async def test_a_disabled_scheme_is_not_fetched(tmp_path):
    class NoHttp(Memo):
        name = "nohttp"
        custom_settings: ClassVar[dict[str, Any]] = {
            **Memo.custom_settings, "download_handlers": {
                "memo": "tests.test_handlers.MemoHandler", "http": None}}

        async def parse(self, response):
            yield {"url": response.url}
            yield Request("http://127.0.0.1:9/elsewhere")  # no handler: dropped, counted

    stats, items = await crawl(NoHttp(), tmp_path)
    assert [i["url"] for i in items] == ["memo://site/"]
    assert stats.unsupported_scheme == 1 and stats.requests_failed == 0
    with pytest.raises(StartupError, match="not an absolute"):
        await Crawler(Memo(), settings=Settings(obey_robots=False)).run()  # no memo handler


def test_a_handler_that_cannot_be_built_is_a_startup_error():
    with pytest.raises(StartupError, match="cannot import download handler"):
        Crawler(Memo(), settings=Settings(download_handlers={"memo": "no.such.Handler"}))
    with pytest.raises(StartupError, match="has no fetch"):
        Crawler(Memo(), settings=Settings(download_handlers={"memo": object}))
    with pytest.raises(SettingsError, match="not a URL scheme"):
        Settings().merge_strings({"download_handlers": "no scheme=x.Y"})
    assert Settings().merge_strings({"download_handlers": "s3=a.B,ftp=none"}).download_handlers \
        == (("s3", "a.B"), ("ftp", None))
