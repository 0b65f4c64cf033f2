"""Names the crawl answers itself (`resolve`, as curl's --resolve): a crawl of names that
DNS does not know reaches a local server, the guard still refuses what they name, and a
bad entry is one line before anything starts."""

from __future__ import annotations

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
