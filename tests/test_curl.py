"""The second HTTP stack (crawler/handlers/curl.py): HTTP/2 with a real nginx over TLS, a
request that picks its stack, and the SSRF guard in front of libcurl. The failure kinds,
size caps, timeouts and TLS settings are the downloader suite's, run against both stacks
(tests/test_hostile.py, tests/test_tls.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from crawler import Failure, Request, Spider
from tests.conftest import HITS, crawl, links, make_site


class Pages(Spider):
    name = "pages"
    custom_settings = {"obey_robots": False, "retries": 0}

    def __init__(self, urls: list[str], meta: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.urls, self.meta = urls, meta
        self.failures: list[tuple[str, str]] = []

    async def start(self):
        for url in self.urls:
            yield Request(url, meta=dict(self.meta or {}), errback=self.failed)

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all(css="a")

    def failed(self, failure: Failure):
        self.failures.append((failure.kind, str(failure.exception)))


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if found is None:
        if os.environ.get("CRAWLER_REQUIRE_NGINX"):
            pytest.fail("no nginx (CRAWLER_REQUIRE_NGINX)")
        pytest.skip("no nginx (apt-get install nginx) to serve HTTP/2 over TLS")
    return found


@pytest.mark.parametrize(("stack", "protocol"), [("curl", "HTTP/2.0"), ("aiohttp", "HTTP/1.1")])
def test_the_curl_stack_speaks_http2_to_nginx(tmp_path, stack, protocol):
    """nginx offers HTTP/2 by ALPN: the curl stack takes it, aiohttp stays on HTTP/1.1 (its
    log says which protocol each request came with)."""
    import asyncio

    from benchmarks.servers import local_ca, serve
    from benchmarks.site import generate

    _nginx()
    root = generate(tmp_path / "site", 20)
    ca, cert, key = local_ca(tmp_path)
    log = tmp_path / "access.log"
    with serve(root, tls=(cert, key), access_log=log,
               log_format="$server_protocol $request_uri") as (_, bases):
        stats, items = asyncio.run(crawl(
            Pages([bases[0] + "p/0.html"]), tmp_path, http_stack=stack,
            tls_ca_bundle=str(ca), max_pages=10))
    assert stats.pages == 10 and not stats.errors
    lines = [line.split() for line in log.read_text().splitlines()]
    assert {proto for proto, _ in lines} == {protocol}


async def test_a_request_picks_its_stack(aiohttp_server, tmp_path):
    """meta["download_handler"] = "curl" sends one request through libcurl in a crawl on
    aiohttp (and "aiohttp" the other way): a refused connection says which client met it."""
    server = await aiohttp_server(make_site({"/": links()}))
    dead = await aiohttp_server(make_site({}))
    port = dead.port
    await dead.close()
    url = f"http://127.0.0.1:{port}/"
    for stack, meta, says in (("aiohttp", {"download_handler": "curl"}, "curl: (7)"),
                              ("curl", {"download_handler": "aiohttp"}, "cannot connect")):
        spider = Pages([url, str(server.make_url("/"))], meta)
        stats, items = await crawl(spider, tmp_path, http_stack=stack)
        assert len(items) == 1  # the live page, through the other stack, fetched fine
        [(kind, message)] = spider.failures
        assert kind == "connection" and says in message, message


async def test_the_guard_stands_in_front_of_libcurl(aiohttp_server, tmp_path):
    """allow_private_addresses = false: a loopback address, written or resolved (here by
    the `resolve` setting), is refused before libcurl connects: the server sees nothing."""
    server = await aiohttp_server(make_site({"/": links()}))
    urls = [str(server.make_url("/")), f"http://inside.test:{server.port}/"]
    spider = Pages(urls)
    stats, items = await crawl(spider, tmp_path, http_stack="curl",
                               allow_private_addresses=False,
                               resolve=(f"inside.test:{server.port}:127.0.0.1",))
    assert items == [] and [k for k, _ in spider.failures] == ["forbidden_address"] * 2
    assert server.app[HITS] == []


async def test_resolve_gives_libcurl_the_address(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site({"/": links("/a"), "/a": links()}))
    stats, items = await crawl(Pages([f"http://named.test:{server.port}/"]), tmp_path,
                               http_stack="curl",
                               resolve=(f"named.test:{server.port}:127.0.0.1",))
    assert sorted(i["url"] for i in items) == [f"http://named.test:{server.port}/",
                                               f"http://named.test:{server.port}/a"]
    assert stats.counters["dns/lookups"] == 0  # the override answered


async def test_cookies_are_the_middlewares_not_libcurls(aiohttp_server, tmp_path):
    """libcurl keeps no cookie of its own: with cookies on, the crawl's jar sends a
    Set-Cookie back; with them off, nothing is sent back."""
    from aiohttp import web

    seen: list[str | None] = []

    async def page(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.Response(text=links("/b") if request.path == "/a" else links(),
                                content_type="text/html")
        response.set_cookie("sid", "42")
        return response

    server = await aiohttp_server(make_site({"/a": page, "/b": page}))
    for enabled, expected in ((True, [None, "sid=42"]), (False, [None, None])):
        seen.clear()
        await crawl(Pages([str(server.make_url("/a"))]), tmp_path, http_stack="curl",
                    cookies_enabled=enabled)
        assert seen == expected
