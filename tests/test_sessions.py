"""Sessions and proxy pools (crawler/middlewares/sessions.py), through local servers that
act as HTTP proxies (an http:// URL is sent to a proxy in absolute form; these answer it
themselves, as the site would through them)."""

from __future__ import annotations

import sys
import textwrap
from typing import Any

import pytest
from aiohttp import web

from crawler import Request, Spider
from crawler.exceptions import StartupError
from crawler.middlewares.sessions import ProxyPool, read_proxies
from tests.conftest import HITS, crawl, finish, links, make_site, spawn

PAGES = {f"/p{i}": links() for i in range(12)}
AUTH = web.AppKey("auth", list)


class Pages(Spider):
    name = "pages"
    custom_settings = {"obey_robots": False, "retry_backoff_base": 0.0}

    def __init__(self, urls: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.urls = urls

    async def start(self):
        for url in self.urls:
            yield Request(url)

    def parse(self, response):
        yield {"url": response.url, "session": response.meta.get("session_id"),
               "proxy": response.meta.get("pool_proxy")}


def _proxy(status: int = 200) -> web.Application:
    """A 'proxy' that answers every page itself with `status`, and notes the
    Proxy-Authorization it was sent."""
    async def answer(request: web.Request) -> web.Response:
        request.app[AUTH].append(request.headers.get("Proxy-Authorization"))
        return web.Response(status=status, text=links(), content_type="text/html")

    app = make_site({p: answer for p in PAGES})
    app[AUTH] = []
    return app


async def _dead_port(aiohttp_server) -> int:
    server = await aiohttp_server(web.Application())
    port = server.port
    await server.close()
    return port


async def test_a_banned_session_is_retired_and_its_request_retried_on_another(aiohttp_server,
                                                                            tmp_path):
    banning = await aiohttp_server(_proxy(403))  # the site bans this proxy's address
    good = await aiohttp_server(_proxy())
    urls = [f"http://site.test{p}" for p in PAGES]
    stats, items = await crawl(
        Pages(urls), tmp_path, sessions=2, retries=5,
        proxies=(f"http://127.0.0.1:{banning.port}", f"http://127.0.0.1:{good.port}"))
    assert sorted(i["url"] for i in items) == sorted(urls)  # every page, none failed
    assert {i["proxy"] for i in items} == {f"http://127.0.0.1:{good.port}"}
    assert stats.counters["sessions/retired/banned"] >= 1
    assert stats.counters["sessions/banned"] == len(banning.app[HITS])
    assert not stats.errors


async def test_is_blocked_retires_a_session_a_200_page_bans(aiohttp_server, tmp_path):
    calls = {"n": 0}

    async def page(request: web.Request) -> web.Response:
        calls["n"] += 1  # every other answer is a captcha page, served with 200
        text = "captcha" if calls["n"] % 2 else "content"
        return web.Response(text=f"<html><body>{text}</body></html>", content_type="text/html")

    server = await aiohttp_server(make_site({"/a": page, "/b": page, "/c": page}))

    class Careful(Pages):
        def is_blocked(self, response):
            return "captcha" in response.text

        def parse(self, response):
            yield {"url": response.url, "text": response.css_text("body")}

    urls = [str(server.make_url(p)) for p in ("/a", "/b", "/c")]
    stats, items = await crawl(Careful(urls), tmp_path, sessions=3, per_host_concurrency=1)
    assert sorted(i["url"] for i in items) == sorted(urls)
    assert {i["text"] for i in items} == {"content"}
    assert stats.counters["sessions/retired/banned"] == 3


async def test_a_session_keeps_its_cookies_and_a_host_keeps_its_session(aiohttp_server,
                                                                        tmp_path):
    seen: list[str | None] = []

    async def page(request: web.Request) -> web.Response:
        seen.append(request.cookies.get("sid"))
        response = web.Response(text=links(), content_type="text/html")
        if "sid" not in request.cookies:
            response.set_cookie("sid", str(len(seen)))
        return response

    server = await aiohttp_server(make_site({f"/p{i}": page for i in range(4)}))
    urls = [str(server.make_url(f"/p{i}")) for i in range(4)]
    _, items = await crawl(Pages(urls), tmp_path, sessions=5, session_scope="host",
                           per_host_concurrency=1)
    assert len({i["session"] for i in items}) == 1
    assert seen == [None, "1", "1", "1"]


async def test_a_retry_on_a_new_session_does_not_carry_the_banned_sessions_cookie(
        aiohttp_server, tmp_path):
    """The site bans the cookie it set: the request retried on a new session goes without
    it (and gets in), the session's header of the banned one goes too."""
    cookies: list[str | None] = []

    async def page(request: web.Request) -> web.Response:
        if request.path == "/b":
            cookies.append(request.cookies.get("sid"))
            if request.cookies.get("sid"):
                return web.Response(status=403)
        response = web.Response(text=links("/b"), content_type="text/html")
        if request.path == "/a":
            response.set_cookie("sid", "marked")
        return response

    class Following(Pages):
        def parse(self, response):
            yield from super().parse(response)
            yield from response.follow_all(css="a")

    server = await aiohttp_server(make_site({"/a": page, "/b": page}))
    stats, items = await crawl(Following([str(server.make_url("/a"))]), tmp_path, sessions=1)
    assert cookies == ["marked", None]
    assert sorted(i["url"].rsplit("/", 1)[1] for i in items) == ["a", "b"]
    assert stats.counters["sessions/retired/banned"] == 1


async def test_a_dead_proxy_is_rested_and_the_pages_go_through_the_others(aiohttp_server,
                                                                          tmp_path):
    dead = await _dead_port(aiohttp_server)
    good = await aiohttp_server(_proxy())
    urls = [f"http://site.test{p}" for p in PAGES]
    stats, items = await crawl(
        Pages(urls), tmp_path, proxy_max_failures=2, proxy_rest=60, retries=5,
        proxies=(f"http://127.0.0.1:{dead}", f"http://127.0.0.1:{good.port}"))
    assert sorted(i["url"] for i in items) == sorted(urls)
    label = f"http://127.0.0.1:{dead}"
    assert stats.counters[f"proxies/{label}/rested"] == 1
    # once rested, it is not tried again within its rest: every request it was given
    # was sent before (in flight at once), and failed
    failed = stats.counters[f"proxies/{label}/failures"]
    assert failed >= 2 and stats.counters[f"proxies/{label}/requests"] == failed
    assert len(good.app[HITS]) == len(PAGES)


def test_a_proxy_rests_longer_each_time_it_fails_again():
    now = [0.0]
    pool = ProxyPool(["http://u:p@10.0.0.1:3128", "http://10.0.0.2:3128"], max_failures=1,
                     rest=10, clock=lambda: now[0])
    first, second = pool.proxies
    assert pool.failed(first, "connection")
    assert [pool.pick() for _ in range(3)] == [second] * 3
    now[0] = 10.0
    assert pool.pick() is first  # back after its rest
    assert pool.failed(first, "connection") and first.rested_until == 30.0  # 2 x 10 s
    pool.succeeded(first)
    assert first.rests == 0
    assert repr(first) == "Proxy(http://10.0.0.1:3128)"  # never its credentials


def test_a_bad_proxies_file_is_named_by_line_not_by_its_secret(tmp_path):
    path = tmp_path / "proxies.txt"
    path.write_text("# ours\nhttp://u:p@10.0.0.1:3128\nsocks5://u:hunter2@10.0.0.2:1080\n")
    with pytest.raises(StartupError, match="line 3") as caught:
        read_proxies((), str(path))
    assert "hunter2" not in str(caught.value)
    path.write_text("http://u:p@10.0.0.1:3128  # the first\n\n")
    assert read_proxies(("http://10.0.0.9:8080",), str(path)) == [
        "http://10.0.0.9:8080", "http://u:p@10.0.0.1:3128"]


SPIDER = """
from crawler import Request, Spider

class Through(Spider):
    name = "through"
    custom_settings = {"obey_robots": False, "retry_backoff_base": 0.0}

    async def start(self):
        for i in range(12):
            yield Request(f"http://site.test/p{i}")

    def parse(self, response):
        yield {"url": response.url, "proxy": response.meta.get("pool_proxy")}
"""


async def test_proxy_credentials_appear_in_no_log_line_and_no_output(aiohttp_server, tmp_path):
    """A whole run at DEBUG, with a dead proxy and a banning one among the good: the
    password reaches the good proxy (Proxy-Authorization) and nothing the run writes."""
    dead = await _dead_port(aiohttp_server)
    banning = await aiohttp_server(_proxy(403))
    good = await aiohttp_server(_proxy())
    secret = "s3cret-Pa55"
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "through.py").write_text(textwrap.dedent(SPIDER))
    (tmp_path / "proxies.txt").write_text(f"http://bob:{secret}@127.0.0.1:{banning.port}\n")
    proxies = f"http://bob:{secret}@127.0.0.1:{dead},http://bob:{secret}@127.0.0.1:{good.port}"
    proc = await spawn(sys.executable, "-m", "crawler", "run", "through", "-o", "out.jsonl",
                       "--stats", "stats.json", "-s", "log_level=DEBUG",
                       "-s", f"proxies={proxies}", "-s", "proxies_file=proxies.txt",
                       "-s", "sessions=3", "-s", "retries=6", "-s", "proxy_max_failures=1",
                       cwd=tmp_path)
    out, err = await finish(proc, 60)
    assert proc.returncode == 0, err.decode()
    written = out + err + b"".join(p.read_bytes() for p in tmp_path.rglob("*")
                                   if p.is_file() and p.name != "proxies.txt")
    assert secret.encode() not in written
    assert b"bob:" not in written
    assert b"proxies/http://127.0.0.1:" in (tmp_path / "stats.json").read_bytes()
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 12
    import base64
    sent = {base64.b64decode(a.split()[1]).decode() for a in good.app[AUTH] if a}
    assert sent == {f"bob:{secret}"}
