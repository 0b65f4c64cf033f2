"""DNS: answers kept their TTL and failures their negative TTL (against a DNS server on
127.0.0.1), a crawl asking its own servers; names the crawl answers itself (`resolve`, as
curl's --resolve) reaching a local server, the guard still refusing what they name, and a
bad entry one line before anything starts."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from crawler import Settings, Spider
from crawler.exceptions import SettingsError
from crawler.handlers.dns import parse_resolve
from tests.conftest import crawl


class Hosts(Spider):
    name = "hosts"
    custom_settings = {"obey_robots": False, "retries": 0, "log_interval": 0}

    async def parse(self, response):
        yield {"url": response.url, "host": response.text}


def host_echo() -> web.Application:
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=request.headers["Host"], content_type="text/plain")

    app.router.add_get("/{tail:.*}", handle)
    return app


async def test_names_given_to_loopback_are_crawled_with_their_own_host(aiohttp_server,
                                                                       tmp_path):
    server = await aiohttp_server(host_echo())
    port = server.port
    urls = [f"http://shop{i}.example.test:{port}/" for i in range(3)] + \
        [f"http://exact.invalid:{port}/"]
    stats, items = await crawl(Hosts(start_urls=urls), tmp_path, resolve=(
        f"*.example.test:{port}:127.0.0.1", "exact.invalid:*:127.0.0.1"))
    assert sorted(i["host"] for i in items) == sorted(u.split("/")[2] for u in urls)
    assert stats.requests_failed == 0


async def test_an_override_is_no_way_around_the_guard(aiohttp_server, tmp_path):
    server = await aiohttp_server(host_echo())
    stats, items = await crawl(
        Hosts(start_urls=[f"http://inside.test:{server.port}/"]), tmp_path,
        resolve=(f"inside.test:{server.port}:127.0.0.1",), allow_private_addresses=False)
    assert items == [] and stats.errors["forbidden_address"] == 1


def test_bad_entries_are_refused_naming_the_rule():
    for bad in ("example.com:80", "example.com:http:127.0.0.1", "a.test:80:not-an-ip"):
        with pytest.raises(SettingsError, match="HOST:PORT:ADDRESS"):
            Settings().merge({"resolve": (bad,)})
    assert parse_resolve(["v6.test:443:[::1]"]) == [("v6.test", 443, "::1")]


async def test_resolve_through_the_command_line(aiohttp_server, tmp_path):
    """The CLI builds its downloader before the loop runs: the override is made on it."""
    import sys

    from tests.conftest import finish, spawn

    server = await aiohttp_server(host_echo())
    proc = await spawn(sys.executable, "-m", "crawler", "fetch",
                       f"http://cli.test:{server.port}/", "-s", "obey_robots=false",
                       "-s", f"resolve=cli.test:{server.port}:127.0.0.1", cwd=tmp_path)
    out, err = await finish(proc, 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == f"cli.test:{server.port}"


class _Answers:
    """A DNS server on 127.0.0.1 (dnslib): `<anything>.live.test` -> 127.0.0.1 with a TTL of
    `ttl` seconds, everything else NXDOMAIN; the queries it got, by name."""

    def __init__(self, ttl: int) -> None:
        from dnslib import QTYPE, RR, A
        from dnslib.server import BaseResolver, DNSLogger, DNSServer

        self.queries: list[str] = []
        outer = self

        class Resolver(BaseResolver):
            def resolve(self, request, handler):
                reply = request.reply()
                name = str(request.q.qname).rstrip(".")
                if request.q.qtype != QTYPE.AAAA:  # (a lookup of both asks A and AAAA)
                    outer.queries.append(name)
                if not name.endswith(".live.test"):
                    reply.header.rcode = 3  # NXDOMAIN
                elif request.q.qtype == QTYPE.A:
                    reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1"),
                                        ttl=ttl))
                return reply

        self.server = DNSServer(Resolver(), port=0, address="127.0.0.1",
                                logger=DNSLogger("-request,-reply,-truncated,-error,-recv,"
                                                 "-send,-data"))
        self.server.start_thread()
        self.address = f"127.0.0.1:{self.server.server.server_address[1]}"

    def count(self, name: str) -> int:
        return self.queries.count(name)

    def stop(self) -> None:
        self.server.stop()
        self.server.server.server_close()


@pytest.fixture
def dns_server():
    pytest.importorskip("dnslib", reason="a local DNS server answers the resolver's tests")
    pytest.importorskip("aiodns", reason="the resolver asks DNS through c-ares")
    servers: list[_Answers] = []
    yield lambda ttl: servers.append(_Answers(ttl)) or servers[-1]
    for server in servers:
        server.stop()


async def test_answers_are_kept_their_ttl_and_failures_their_negative_ttl(dns_server):
    """(Real time for the TTL: c-ares keeps answers their TTL as well.)"""
    import time

    from crawler.handlers.dns import CachingResolver

    dns = dns_server(1)
    shift = [0.0]
    resolver = CachingResolver(servers=(dns.address,), negative_ttl=30, timeout=5,
                               clock=lambda: time.monotonic() + shift[0])
    try:
        for _ in range(3):  # within the TTL: one query
            found = await resolver.resolve("shop.live.test", 80, socket.AF_INET)
        assert [r["host"] for r in found] == ["127.0.0.1"]
        assert dns.count("shop.live.test") == 1
        await asyncio.sleep(1.3)  # past the TTL the record gave
        await resolver.resolve("shop.live.test", 80, socket.AF_INET)
        assert dns.count("shop.live.test") == 2
        for _ in range(5):  # a dead domain: one lookup per negative period
            with pytest.raises(OSError, match=r"gone\.dead\.test"):
                await resolver.resolve("gone.dead.test", 80, socket.AF_INET)
        assert dns.count("gone.dead.test") == 1
        shift[0] += 31  # the negative period is over
        with pytest.raises(OSError, match=r"gone\.dead\.test"):
            await resolver.resolve("gone.dead.test", 80, socket.AF_INET)
        assert dns.count("gone.dead.test") == 2
        # lookups of one name at once share one query
        await asyncio.gather(*(resolver.resolve("many.live.test", 80, socket.AF_INET)
                               for _ in range(20)))
        assert dns.count("many.live.test") == 1
    finally:
        await resolver.close()


async def test_a_crawl_asks_its_dns_servers_and_a_dead_domain_fails_as_dns(
        aiohttp_server, tmp_path, dns_server):
    dns = dns_server(300)
    server = await aiohttp_server(host_echo())
    urls = [f"http://shop.live.test:{server.port}/p{i}" for i in range(5)] + \
        [f"http://nowhere.dead.test:{server.port}/p{i}" for i in range(5)]
    stats, items = await crawl(Hosts(start_urls=urls), tmp_path, dns_servers=(dns.address,))
    assert len(items) == 5 and stats.errors["dns"] == 5
    assert dns.count("shop.live.test") == 1  # one lookup for the live host's pages
    assert dns.count("nowhere.dead.test") == 1  # and one for the dead one's five links
    assert stats.counters["dns/lookups"] == 2 and stats.counters["dns/failures"] == 1
