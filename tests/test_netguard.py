"""The SSRF guard (`allow_private_addresses = false`): what counts as private, and real
crawls refused before any connection. No packet leaves loopback: the direct targets all
resolve to loopback (through a static resolver), and the private and metadata ones are
asked for through a local proxy, which answers the public ones."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from crawler import Crawler, HttpDownloader, Request, Settings, Spider
from crawler.handlers.netguard import forbidden, literal_address
from tests.conftest import HITS


@pytest.mark.parametrize(("address", "refused"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("10.1.2.3", True), ("172.16.0.1", True),
    ("192.168.1.1", True), ("169.254.169.254", True), ("0.0.0.0", True), ("100.64.0.1", True),
    ("224.0.0.1", True), ("255.255.255.255", True), ("192.0.2.1", True), ("::1", True),
    ("::", True), ("fe80::1", True), ("fc00::1", True), ("ff02::1", True),
    ("::ffff:127.0.0.1", True), ("::ffff:169.254.169.254", True), ("2002:7f00:1::", True),
    ("2002:a9fe:a9fe::", True), ("64:ff9b::a9fe:a9fe", True),
    ("8.8.8.8", False), ("1.1.1.1", False), ("93.184.216.34", False),
    ("2606:4700:4700::1111", False), ("::ffff:8.8.8.8", False),
])
def test_what_is_forbidden(address, refused):
    assert forbidden(ipaddress.ip_address(address)) is refused


@pytest.mark.parametrize(("host", "address"), [
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("[::ffff:127.0.0.1]", "::ffff:7f00:1"), ("0", "0.0.0.0"),
    ("example.com", None), ("cafe", None), ("1.2.3.4.5", None),
])
def test_numeric_hosts_are_read_as_inet_aton_does(host, address):
    found = literal_address(host)
    assert (str(found) if found is not None else None) == address


class StaticResolver(AbstractResolver):
    """Names to addresses, without DNS; anything else fails."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"no such name in the test: {host}")
        address = self.names[host]
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [ResolveResult(hostname=host, host=address, port=port, family=kind, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self):
        return None


class Asks(Spider):
    name = "asks"
    custom_settings = {"log_interval": 0, "obey_robots": False, "retries": 0}

    def start(self):  # type: ignore[override]
        for url in self.urls:
            yield Request(url, errback=self.failed, meta=self.meta_for(url))

    def meta_for(self, url):
        return {"proxy": self.proxy} if getattr(self, "proxy", None) else {}

    def parse(self, response):
        yield {"url": response.url, "ok": True}

    def failed(self, failure):
        yield {"url": failure.request.url, "kind": failure.kind}


async def _run(spider: Spider, resolver: AbstractResolver, **settings) -> list[dict]:
    items: list[dict] = []

    class Collect:
        def process_item(self, item, spider):
            items.append(dict(item))
            return item

    s = Settings().merge({**spider.custom_settings, "item_pipelines": [Collect], **settings})
    async with HttpDownloader(s, resolver=resolver) as downloader:
        await Crawler(spider, settings=s, downloader=downloader).run()
    return items


async def test_direct_private_targets_are_refused_before_connecting(aiohttp_server):
    server = await aiohttp_server(_page_site())
    port = server.port
    resolver = StaticResolver({"loopback.test": "127.0.0.1", "v6.test": "::1"})
    spider = Asks()
    spider.urls = [f"http://127.0.0.1:{port}/", f"http://2130706433:{port}/a",
                   f"http://0x7f000001:{port}/b", f"http://0.0.0.0:{port}/c",
                   f"http://[::ffff:127.0.0.1]:{port}/d", f"http://loopback.test:{port}/e",
                   f"http://v6.test:{port}/f", f"http://127.1:{port}/g"]
    items = await _run(spider, resolver, allow_private_addresses=False)
    assert sorted(i.get("kind") for i in items) == ["forbidden_address"] * len(spider.urls)
    assert server.app[HITS] == []  # nothing reached the server
    # the control: allowed (the default), the same targets are fetched
    spider = Asks()
    spider.urls = [f"http://127.0.0.1:{port}/", f"http://loopback.test:{port}/e"]
    items = await _run(spider, resolver)
    assert [i.get("ok") for i in items] == [True, True]


async def test_names_and_redirects_to_private_addresses_are_refused_through_a_proxy(
        aiohttp_server):
    proxy = await aiohttp_server(_proxy_site())
    resolver = StaticResolver({"metadata.test": "169.254.169.254", "internal.test": "10.0.0.5",
                               "public.test": "93.184.216.34", "mapped.test":
                               "::ffff:10.0.0.5"})
    spider = Asks()
    spider.proxy = f"http://127.0.0.1:{proxy.port}"
    spider.urls = ["http://metadata.test/latest/meta-data/", "http://internal.test/admin",
                   "http://mapped.test/", "http://public.test/ok",
                   "http://public.test/redirect"]
    items = await _run(spider, resolver, allow_private_addresses=False)
    by_url = {i["url"]: i.get("kind", "ok") for i in items}
    assert by_url == {"http://metadata.test/latest/meta-data/": "forbidden_address",
                      "http://internal.test/admin": "forbidden_address",
                      "http://mapped.test/": "forbidden_address",
                      "http://public.test/ok": "ok",
                      # the redirect's hop to the metadata address is refused
                      "http://metadata.test/latest/user-data/": "forbidden_address"}
    assert sorted(proxy.app[HITS]) == ["http://public.test/ok", "http://public.test/redirect"]


def _page_site() -> web.Application:
    app = web.Application()
    app[HITS] = []

    async def handle(request: web.Request) -> web.Response:
        request.app[HITS].append(request.path)
        return web.Response(text="<html></html>", content_type="text/html")

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _proxy_site() -> web.Application:
    """A forward proxy that fetches nothing: it answers for the public name only."""
    app = web.Application()
    app[HITS] = []

    async def handle(request: web.Request) -> web.Response:
        request.app[HITS].append(str(request.url))
        if request.path == "/redirect":
            raise web.HTTPFound("http://metadata.test/latest/user-data/")
        return web.Response(text="<html></html>", content_type="text/html")

    app.router.add_route("*", "/{tail:.*}", handle)
    return app
