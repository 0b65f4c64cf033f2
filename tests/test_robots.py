"""robots.txt within bounds: the first 500 KiB of any file, and bounded memory across hosts
(issue 8.4, 8.5)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from multidict import CIMultiDict
from protego import Protego

from crawler import Request, Response, Spider
from crawler.core.robots import MAX_ROBOTS_BYTES, RobotsCache
from tests.conftest import HITS, crawl, links, make_site


def _big_robots(lines: int, first: str = "Disallow: /private") -> bytes:
    rules = "".join(f"Disallow: /junk/{i:08d}/some/long/path.html\n" for i in range(lines))
    return f"User-agent: *\n{first}\n{rules}".encode()


class _Server:
    """A fake fetch serving one robots.txt per host, counting fetches."""

    def __init__(self, body: bytes, distinct: bool = True) -> None:
        self.body = body
        self.distinct = distinct  # each host's file differs (by a comment naming it)
        self.fetches: list[str] = []

    async def fetch(self, request: Request) -> Response:
        self.fetches.append(request.host)
        body = f"# {request.host}\n".encode() + self.body if self.distinct else self.body
        return Response(request.url, 200, CIMultiDict(), body, request)


async def test_only_the_first_500_kib_is_parsed_never_allow_all():
    cache = RobotsCache(_Server(_big_robots(50_000)).fetch, user_agent="bot")
    request = Request("http://a.test:1/private/x")
    await cache.load(request)
    assert cache.permission(request) is False  # Disallow: /private comes first and is obeyed
    assert cache.permission(Request("http://a.test:1/ok")) is True
    assert cache._parsed_size <= MAX_ROBOTS_BYTES


async def test_a_line_cut_by_the_limit_is_not_read_as_a_shorter_rule():
    # lines sized so that the 500 KiB limit falls just after "Disallow: /" of a line
    line, cut = "Disallow: /private/p000000\n", "Disallow: /"
    count = (MAX_ROBOTS_BYTES - len(cut) - 100) // len(line)
    pad = MAX_ROBOTS_BYTES - len(cut) - count * len(line) - len("User-agent: *\n#\n")
    body = "User-agent: *\n#" + "x" * pad + "\n" + line * (count + 1)
    assert body.encode()[:MAX_ROBOTS_BYTES].endswith(b"Disallow: /")
    cache = RobotsCache(_Server(body.encode()).fetch, user_agent="bot")
    await cache.load(Request("http://a.test:1/"))
    assert cache.permission(Request("http://a.test:1/page.html")) is True
    assert cache.permission(Request("http://a.test:1/private/p000000")) is False


async def test_rules_are_let_go_and_parsed_again_without_fetching_again():
    server = _Server(_big_robots(10_000))  # ~440 KB each
    cache = RobotsCache(server.fetch, user_agent="bot", parsed_bytes=1 << 20)
    hosts = [f"http://h{i}.test/" for i in range(10)]
    for host in hosts:
        await cache.load(Request(host))
    assert cache._parsed_size <= 1 << 20 and len(cache._parsed) == 2  # the newest two
    first = Request(hosts[0] + "private/x")
    assert cache.permission(first) is None  # let go: load() parses the stored text again
    await cache.load(first)
    assert cache.permission(first) is False
    assert len(server.fetches) == 10  # no second fetch
    assert cache.parses == 11


async def test_hosts_serving_one_file_share_its_text_and_rules():
    server = _Server(_big_robots(10_000), distinct=False)
    cache = RobotsCache(server.fetch, user_agent="bot", parsed_bytes=1 << 20)
    hosts = [f"http://h{i}.test/" for i in range(50)]
    for host in hosts:
        await cache.load(Request(host))
    assert len(server.fetches) == 50 and cache.parses == 1
    assert len(cache._texts) == 1 and len(cache._parsed) == 1
    for host in hosts:
        assert cache.permission(Request(host + "private/x")) is False
        assert cache.permission(Request(host + "ok")) is True


async def test_large_files_are_parsed_one_at_a_time_off_the_loop(monkeypatch):
    import threading

    from crawler.core import robots

    parse = robots._parse_text
    running, most, threads = 0, 0, set()

    def watched(compressed: bytes) -> Protego:
        nonlocal running, most
        running += 1
        most = max(most, running)
        threads.add(threading.current_thread())
        try:
            return parse(compressed)
        finally:
            running -= 1

    monkeypatch.setattr(robots, "_parse_text", watched)
    cache = RobotsCache(_Server(_big_robots(10_000)).fetch, user_agent="bot",
                        parsed_bytes=8 << 20)
    await asyncio.gather(*(cache.load(Request(f"http://h{i}.test/")) for i in range(8)))
    assert cache.parses == 8
    assert all(cache.permission(Request(f"http://h{i}.test/private/x")) is False for i in range(8))
    assert threading.main_thread() not in threads  # none ran on the loop's thread
    assert most == 1  # one at a time: parses compete for the GIL with the loop


async def test_hosts_beyond_the_bound_are_forgotten_and_fetched_again():
    server = _Server(b"User-agent: *\nDisallow: /no\n")
    cache = RobotsCache(server.fetch, user_agent="bot", max_hosts=3)
    for i in range(5):
        await cache.load(Request(f"http://h{i}.test/"))
    assert len(cache._hosts) == 3 and len(cache._parsed) <= 3
    again = Request("http://h0.test/no")
    assert cache.permission(again) is None
    await cache.load(again)
    assert cache.permission(again) is False
    assert server.fetches.count("http://h0.test:80") == 2


async def test_a_huge_robots_txt_is_cut_at_500_kib_end_to_end(aiohttp_server, tmp_path):
    sent: list[int] = []

    async def robots(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "text/plain"
        await resp.prepare(request)
        chunk = b"Disallow: /junk/" + b"x" * 1000 + b"\n"
        await resp.write(b"User-agent: *\nDisallow: /private\n")
        try:
            for _ in range(50_000):  # 50 MB, if anyone read it all
                await resp.write(chunk)
                sent.append(len(chunk))
        except ConnectionError:
            pass
        return resp

    site = make_site({"/robots.txt": robots, "/ok": links(), "/private/x": links()})
    server = await aiohttp_server(site)

    class Two(Spider):
        name = "two"
        start_urls = [str(server.make_url("/ok")), str(server.make_url("/private/x"))]

        def parse(self, response):
            yield {"url": response.url}

    stats, items = await crawl(Two(), tmp_path)
    assert [i["url"].rsplit("/", 1)[1] for i in items] == ["ok"]
    assert "/private/x" not in [p for p, _ in site[HITS]]
    assert stats.robots_disallowed == 1
    # the client stopped at 500 KiB; what the server got out is what socket buffers took
    assert sum(sent) < 20_000_000


async def test_a_robots_txt_starting_with_a_byte_order_mark_is_obeyed():
    body = b"\xef\xbb\xbfUser-agent: *\nDisallow: /private\n"
    cache = RobotsCache(_Server(body, distinct=False).fetch, user_agent="bot")
    await cache.load(Request("http://a.test:1/"))
    assert cache.permission(Request("http://a.test:1/private/x")) is False
    assert cache.permission(Request("http://a.test:1/public")) is True
