"""robots.txt, Crawl-delay, Retry-After, backoff and autothrottle, measured at the server."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import time
from typing import Any

import pytest
from aiohttp import web

from crawler import Failure, Request, Spider
from tests.conftest import HITS, crawl, links, make_site


class Paths(Spider):
    name = "paths"

    def __init__(self, urls: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.urls = urls
        self.failures: list[tuple[str, str]] = []

    async def start(self):
        for url in self.urls:
            yield Request(url, errback=self.failed)

    def parse(self, response):
        yield {"url": response.url, "t": time.monotonic()}

    def failed(self, failure: Failure):
        self.failures.append((failure.request.url, failure.kind))


def _times(app: web.Application, prefix: str = "/") -> list[float]:
    return sorted(t for p, t in app[HITS] if p.startswith(prefix))


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_robots_disallow_is_never_requested_and_fetched_once(aiohttp_server, tmp_path):
    site = make_site({"/robots.txt": "User-agent: *\nDisallow: /private/\n",
                      **{f"/p{i}": links() for i in range(5)}, "/private/x": links()})
    server = await aiohttp_server(site)
    urls = [str(server.make_url(p)) for p in ("/p0", "/p1", "/private/x", "/p2", "/p3")]
    stats, items = await crawl(Paths(urls), tmp_path)
    hits = [p for p, _ in site[HITS]]
    assert "/private/x" not in hits
    assert hits.count("/robots.txt") == 1
    assert stats.robots_disallowed == 1
    assert len(items) == 4


async def test_robots_for_our_user_agent_only(aiohttp_server, tmp_path):
    site = make_site({"/robots.txt": "User-agent: otherbot\nDisallow: /\n\n"
                                     "User-agent: crawler\nDisallow: /no\n",
                      "/no": links(), "/yes": links()})
    server = await aiohttp_server(site)
    stats, items = await crawl(Paths([str(server.make_url("/no")), str(server.make_url("/yes"))]),
                               tmp_path)
    assert [i["url"].rsplit("/", 1)[1] for i in items] == ["yes"]


async def test_obey_robots_false_ignores_it(aiohttp_server, tmp_path):
    site = make_site({"/robots.txt": "User-agent: *\nDisallow: /\n", "/a": links()})
    server = await aiohttp_server(site)
    _, items = await crawl(Paths([str(server.make_url("/a"))]), tmp_path, obey_robots=False)
    assert len(items) == 1
    assert "/robots.txt" not in [p for p, _ in site[HITS]]


async def test_robots_5xx_disallows_the_host_after_retries_4xx_allows(aiohttp_server, tmp_path):
    async def broken(request):
        return web.Response(status=503, text="down")

    async def forbidden(request):
        return web.Response(status=403, text="no robots for you")

    down = make_site({"/robots.txt": broken, "/a": links()})
    open_ = make_site({"/robots.txt": forbidden, "/a": links()})
    s1, s2 = await aiohttp_server(down), await aiohttp_server(open_)
    spider = Paths([str(s1.make_url("/a")), str(s2.make_url("/a"))])
    stats, items = await crawl(spider, tmp_path, retries=2, retry_backoff_base=0.01)
    assert [p for p, _ in down[HITS]] == ["/robots.txt"] * 3  # 1 try + 2 retries, no page
    assert spider.failures == [(str(s1.make_url("/a")), "http_503")]
    assert len(items) == 1 and items[0]["url"] == str(s2.make_url("/a"))


async def test_crawl_delay_spaces_requests_even_when_randomized(aiohttp_server, tmp_path):
    site = make_site({"/robots.txt": "User-agent: *\nCrawl-delay: 0.3\n",
                      **{f"/{i}": links() for i in range(5)}})
    server = await aiohttp_server(site)
    await crawl(Paths([str(server.make_url(f"/{i}")) for i in range(5)]), tmp_path,
                download_delay=0.05)  # randomize_download_delay is on by default
    gaps = _gaps([t for p, t in site[HITS] if p != "/robots.txt"])
    assert len(gaps) == 4
    assert min(gaps) >= 0.29


async def test_retry_after_pauses_that_host_only(aiohttp_server, tmp_path):
    tries: dict[str, int] = {}

    async def busy(request):
        tries[request.path] = tries.get(request.path, 0) + 1
        if tries[request.path] == 1:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(text=links(), content_type="text/html")

    paused = make_site({"/busy": busy, **{f"/{i}": links() for i in range(3)}})
    other = make_site({f"/{i}": links() for i in range(10)})
    a, b = await aiohttp_server(paused), await aiohttp_server(other)

    class Staged(Paths):
        async def start(self):
            yield Request(str(a.make_url("/busy")))
            await asyncio.sleep(0.2)  # the 503 has arrived; now queue more for both hosts
            for i in range(3):
                yield Request(str(a.make_url(f"/{i}")))
            for i in range(10):
                yield Request(str(b.make_url(f"/{i}")))

    stats, items = await crawl(Staged([]), tmp_path, retry_backoff_base=0.01)
    first_503 = _times(paused, "/busy")[0]
    assert _times(paused, "/busy")[1] - first_503 >= 1.0  # the retry waited out Retry-After
    assert min(_times(paused, "/")[1:]) - first_503 >= 0.99  # ...and so did the whole host
    assert max(_times(other)) - first_503 < 0.9  # the other host did not wait
    assert stats.retries == 1 and len(items) == 14


async def test_retry_after_http_date_on_429(aiohttp_server, tmp_path):
    count = 0

    async def limited(request):
        nonlocal count
        count += 1
        if count == 1:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return web.Response(status=429, headers={"Retry-After": when})
        return web.Response(text=links(), content_type="text/html")

    site = make_site({"/x": limited})
    server = await aiohttp_server(site)
    stats, items = await crawl(Paths([str(server.make_url("/x"))]), tmp_path,
                               retry_backoff_base=0.01)
    times = _times(site)
    assert len(items) == 1
    assert times[1] - times[0] >= 1.0  # an HTTP date has 1 s resolution: 2 s ahead is >= 1 s


async def test_retries_back_off_and_then_fail_with_the_kind(aiohttp_server, tmp_path,
                                                            monkeypatch):
    async def error(request):
        return web.Response(status=500)

    # full jitter draws uniform(0, base * 2**attempt): drawing the top of each range makes
    # the backoff exact, so both bounds of every gap are checked
    monkeypatch.setattr("crawler.core.retry.random.uniform", lambda low, high: high)
    site = make_site({"/e": error})
    server = await aiohttp_server(site)
    spider = Paths([str(server.make_url("/e"))])
    stats, _ = await crawl(spider, tmp_path, retries=3, retry_backoff_base=0.2)
    times = _times(site)
    assert len(times) == 4
    gaps = _gaps(times)
    for attempt, gap in enumerate(gaps):
        assert 0.2 * 2**attempt - 0.02 <= gap <= 0.2 * 2**attempt + 0.15
    assert spider.failures == [(str(server.make_url("/e")), "http_500")]
    assert stats.retries == 3 and stats.errors == {"http_500": 1}


async def test_timeouts_are_retried(aiohttp_server, tmp_path):
    async def hang(request):
        await asyncio.sleep(5)
        return web.Response(text="late")

    site = make_site({"/h": hang})
    server = await aiohttp_server(site)
    spider = Paths([str(server.make_url("/h"))])
    stats, _ = await crawl(spider, tmp_path, retries=1, retry_backoff_base=0.01, timeout=0.3)
    assert len(site[HITS]) == 2
    assert spider.failures == [(str(server.make_url("/h")), "timeout")]


async def test_autothrottle_adapts_delay_to_latency(aiohttp_server, tmp_path):
    async def slowish(request):
        await asyncio.sleep(0.1)
        return web.Response(text=links(), content_type="text/html")

    async def run(autothrottle: bool) -> list[float]:
        site = make_site({f"/{i}": slowish for i in range(12)})
        server = await aiohttp_server(site)
        await crawl(Paths([str(server.make_url(f"/{i}")) for i in range(12)]), tmp_path,
                    autothrottle=autothrottle, randomize_download_delay=False,
                    per_host_concurrency=16, autothrottle_start_delay=0.2)
        return _gaps(_times(site))

    assert max(await run(False)) < 0.05  # control: all at once
    gaps = await run(True)
    assert min(gaps) >= 0.05  # from 0.2 s toward latency / target concurrency (0.1 s)
    assert max(gaps[4:]) < 0.18


async def test_autothrottle_backs_off_on_429(aiohttp_server, tmp_path):
    async def limited(request):
        return web.Response(status=429)

    site = make_site({f"/{i}": limited for i in range(3)})
    server = await aiohttp_server(site)
    await crawl(Paths([str(server.make_url(f"/{i}")) for i in range(3)]), tmp_path,
                autothrottle=True, randomize_download_delay=False, retries=0,
                per_host_concurrency=1, autothrottle_start_delay=0)
    gaps = _gaps(_times(site))
    assert gaps[0] >= 0.99  # the first 429 sets the delay to at least 1 s
    assert gaps[1] >= 1.98  # the next one doubles it


async def test_each_redirect_hop_is_checked_against_robots(aiohttp_server, tmp_path):
    async def to_private(request):
        raise web.HTTPFound("/private/page")

    site = make_site({"/robots.txt": "User-agent: *\nDisallow: /private/\n",
                      "/jump": to_private, "/private/page": links()})
    server = await aiohttp_server(site)
    stats, items = await crawl(Paths([str(server.make_url("/jump"))]), tmp_path)
    assert [p for p, _ in site[HITS]] == ["/robots.txt", "/jump"]
    assert stats.robots_disallowed == 1 and items == []


async def test_progress_is_logged_every_interval(aiohttp_server, tmp_path, caplog):
    async def slow(request):
        await asyncio.sleep(0.2)
        return web.Response(text=links(), content_type="text/html")

    server = await aiohttp_server(make_site({f"/{i}": slow for i in range(4)}))
    caplog.set_level("INFO", logger="crawler.extensions.monitor")
    await crawl(Paths([str(server.make_url(f"/{i}")) for i in range(4)]), tmp_path,
                log_interval=0.1, per_host_concurrency=1)
    lines = [r.getMessage() for r in caplog.records if "pages (" in r.getMessage()]
    assert len(lines) >= 3
    assert "in flight" in lines[-1] and "queued" in lines[-1]


def test_policies_built_bare_are_as_polite_as_a_default_crawl():
    from crawler.core.ratelimit import HostPolicy
    from crawler.core.retry import RetryPolicy
    from crawler.settings import Settings

    assert HostPolicy() == HostPolicy.from_settings(Settings())
    assert RetryPolicy() == RetryPolicy.from_settings(Settings())


@pytest.mark.parametrize("stack", ["aiohttp", "curl"])
async def test_the_delay_holds_as_the_server_sees_it_when_sends_lag_their_dispatch(
        aiohttp_server, tmp_path, stack):
    """A middleware holds each request a different time between its dispatch and its send
    (as a busy loop or a full connection pool does): the gaps the server sees between two
    requests of a host still never fall under download_delay."""
    pages = {f"/p{i}": links() for i in range(8)}
    server = await aiohttp_server(make_site(pages))
    lags = iter([0.25, 0.0, 0.2, 0.0, 0.25, 0.05, 0.0, 0.2])

    class Lag:
        async def process_request(self, request):
            if not request.url.endswith("robots.txt"):
                await asyncio.sleep(next(lags, 0.0))

    spider = Paths([str(server.make_url(p)) for p in pages])
    stats, _ = await crawl(spider, tmp_path, download_delay=0.4, per_host_concurrency=1,
                           randomize_download_delay=False, obey_robots=False,
                           downloader_middlewares=[Lag()], http_stack=stack)
    gaps = _gaps(_times(server.app, "/p"))
    assert stats.pages == 8 and min(gaps) >= 0.39, gaps


async def _gaps_across_names(aiohttp_server, tmp_path, names: list[str],
                             **settings: Any) -> list[float]:
    """Three pages on each of `names` (all given to one local server with `resolve`), at a
    0.3 s delay: the gaps between every two arrivals, whichever name they came for."""
    pages = {f"/p{i}": links() for i in range(3)}
    server = await aiohttp_server(make_site(pages))
    urls = [f"http://{name}:{server.port}{p}" for name in names for p in pages]
    stats, _ = await crawl(Paths(urls), tmp_path, download_delay=0.3,
                           randomize_download_delay=False, obey_robots=False,
                           resolve=(f"*.test:{server.port}:127.0.0.1",), **settings)
    assert stats.pages == len(urls)
    return _gaps(_times(server.app, "/p"))


async def test_politeness_by_domain_holds_one_gap_across_subdomains(aiohttp_server, tmp_path):
    names = ["a.shop.test", "b.shop.test"]
    by_host = await _gaps_across_names(aiohttp_server, tmp_path, names)
    assert min(by_host) < 0.15  # control: two hosts, two slots, side by side
    by_domain = await _gaps_across_names(aiohttp_server, tmp_path, names,
                                         politeness_by="domain")
    assert min(by_domain) >= 0.29, by_domain


async def test_politeness_by_ip_holds_one_gap_across_names_of_one_address(
        aiohttp_server, tmp_path):
    names = ["one.test", "two.test"]  # two registrable domains, one address
    assert min(await _gaps_across_names(aiohttp_server, tmp_path, names,
                                        politeness_by="domain")) < 0.15
    by_ip = await _gaps_across_names(aiohttp_server, tmp_path, names, politeness_by="ip")
    assert min(by_ip) >= 0.29, by_ip


def test_politeness_keys():
    from crawler.core.politeness import PolitenessKeys, registrable_domain

    assert registrable_domain("www.example.co.uk") == "example.co.uk"
    assert registrable_domain("a.github.io") == "a.github.io"  # a public suffix's own names
    assert registrable_domain("127.0.0.1") == "127.0.0.1"
    assert registrable_domain("localhost") == "localhost"
    keys = PolitenessKeys("domain")
    assert keys.of("https://shop.example.com:443") == keys.of("http://www.example.com:80")
    assert keys.of("http://[::1]:80") == "domain:::1"
    assert PolitenessKeys("host").of("http://a.test:80") == "http://a.test:80"
