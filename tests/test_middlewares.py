"""Downloader middlewares: the chain's order and contract against a fake downloader, the
built-ins reordered or left out, and the HTTP cache, cookies and proxies end to end
against local servers (the cache test asserts from the server's hit counter that a rerun
fetched nothing)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler import Crawler, Request, Response, Settings, Spider
from crawler.exceptions import DownloadError, Kind, SettingsError
from crawler.middlewares import BUILTIN, Retry, middleware_specs
from crawler.middlewares.httpcache import cache_path
from tests.conftest import crawl, links
from tests.test_cli import run_cli

HITS = web.AppKey("hits", list)


class FakeDownloader:
    """Answers from a table of url -> (status, headers, body) or an exception; records."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.fetched: list[str] = []

    async def fetch(self, request: Request) -> Response:
        self.fetched.append(request.url)
        answer = self.table[request.url]
        if isinstance(answer, Exception):
            raise answer
        status, headers, body = answer
        return Response(request.url, status, headers, body, request)


class Pages(Spider):
    name = "pages"

    def __init__(self, urls: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.start_urls = urls
        self.seen: list[tuple[str, int, tuple[str, ...]]] = []
        self.failed: list[str] = []

    def start(self):  # type: ignore[override]
        for url in self.start_urls:
            yield Request(url, errback=self.errback)

    def parse(self, response):
        self.seen.append((response.url, response.status, response.flags))
        yield {"url": response.url}

    def errback(self, failure):
        self.failed.append(failure.kind)


def _settings(**kw: Any) -> Settings:
    return Settings(obey_robots=False, log_interval=0, retry_backoff_base=0.01).merge(kw)


class Trail:
    """Appends (name, hook) to a shared trail; what it returns is set per test."""

    trail: list[tuple[str, str]] = []

    def __init__(self, name: str, answer_request: Any = None) -> None:
        self.name, self.answer_request = name, answer_request

    async def process_request(self, request):
        self.trail.append((self.name, "request"))
        return self.answer_request(request) if self.answer_request else None

    def process_response(self, request, response):  # a plain method works as well
        self.trail.append((self.name, "response"))
        return response

    async def process_exception(self, request, exc):
        self.trail.append((self.name, "exception"))


async def test_requests_go_in_order_responses_and_exceptions_come_back_in_reverse():
    Trail.trail = []
    down = FakeDownloader({"http://a.test/": (200, {}, b"<html></html>"),
                           "http://a.test/x": DownloadError(Kind.TLS, "boom")})
    spider = Pages(["http://a.test/", "http://a.test/x"])
    outer, inner = Trail("outer"), Trail("inner")
    result = await Crawler(spider, settings=_settings(
        per_host_concurrency=1, downloader_middlewares={inner: 800, outer: 100}),
        downloader=down).run()
    assert Trail.trail == [("outer", "request"), ("inner", "request"),
                           ("inner", "response"), ("outer", "response"),
                           ("outer", "request"), ("inner", "request"),
                           ("inner", "exception"), ("outer", "exception")]
    assert spider.failed == ["tls"] and result.stats.errors == {"tls": 1}


async def test_a_response_from_process_request_skips_the_network_but_not_process_response():
    Trail.trail = []
    down = FakeDownloader({})
    canned = Trail("canned", lambda r: Response(r.url, 200, {}, b"<p>canned</p>", r,
                                                flags=("cached",)))
    outer = Trail("outer")
    spider = Pages(["http://a.test/"])
    result = await Crawler(spider, settings=_settings(
        downloader_middlewares=[outer, canned]), downloader=down).run()
    assert down.fetched == []
    assert spider.seen == [("http://a.test/", 200, ("cached",))]
    assert Trail.trail == [("outer", "request"), ("canned", "request"),
                           ("canned", "response"), ("outer", "response")]
    assert result.stats.pages == 1 and result.stats.status_counts == {200: 1}


async def test_a_returned_request_is_scheduled_and_a_retry_waits_without_the_dupe_filter():
    class Swap:
        def process_response(self, request, response):
            if request.url.endswith("/old"):
                return request.replace(url="http://a.test/new")
            if request.url.endswith("/flaky") and not request.meta.get("again"):
                return Retry(request.replace(meta={"again": True}), 0.05)
            return response

    ok = (200, {}, b"<html></html>")
    down = FakeDownloader({f"http://a.test/{p}": ok for p in ("old", "new", "flaky")})
    spider = Pages(["http://a.test/old", "http://a.test/flaky"])
    await Crawler(spider, settings=_settings(downloader_middlewares=[Swap()]),
                  downloader=down).run()
    assert sorted(url for url, _, _ in spider.seen) == ["http://a.test/flaky",
                                                        "http://a.test/new"]
    assert down.fetched.count("http://a.test/flaky") == 2


async def test_builtins_can_be_left_out_or_reordered_and_bad_orders_are_refused():
    down = FakeDownloader({"http://a.test/": (302, {"Location": "/b"}, b""),
                           "http://a.test/b": (200, {}, b"")})
    spider = Pages(["http://a.test/"])
    result = await Crawler(spider, settings=_settings(downloader_middlewares={
        "crawler.middlewares.redirect.RedirectMiddleware": None}), downloader=down).run()
    assert down.fetched == ["http://a.test/"] and spider.failed == ["http_302"]
    assert result.stats.redirects == 0
    specs = middleware_specs((("crawler.middlewares.retry.RetryMiddleware", 10),))
    assert specs[0] == "crawler.middlewares.retry.RetryMiddleware"
    assert len(specs) == len(BUILTIN)
    with pytest.raises(SettingsError, match="must be an integer or None"):
        Settings().merge({"downloader_middlewares": {"x.Y": "first"}})
    assert Settings().merge_strings({"downloader_middlewares": "a.B=10,c.D=none"}) \
        .downloader_middlewares == (("a.B", 10), ("c.D", None))


async def test_a_middleware_that_raises_fails_its_request_and_frees_the_slot():
    class Broken:
        def process_request(self, request):
            raise KeyError("oops")

    down = FakeDownloader({})
    spider = Pages([f"http://a.test/{i}" for i in range(3)])
    result = await asyncio.wait_for(Crawler(spider, settings=_settings(
        per_host_concurrency=1, downloader_middlewares=[Broken]), downloader=down).run(), 10)
    assert spider.failed == ["internal"] * 3 and result.stats.errors == {"internal": 3}


# -- the HTTP cache ------------------------------------------------------------------------


def _counting_site(pages: dict[str, tuple[int, str]]) -> web.Application:
    """Every request, robots.txt included, lands in app[HITS]."""
    app = web.Application()
    app[HITS] = []

    async def handle(request: web.Request) -> web.Response:
        request.app[HITS].append(request.path)
        status, text = pages.get(request.path, (404, "no"))
        return web.Response(status=status, text=text, content_type="text/html")

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class Follow(Spider):
    name = "follow"
    custom_settings = {"log_interval": 0}

    def parse(self, response):
        yield {"url": response.url, "title": response.css_first("title").text()}
        yield from response.follow_all(css="a")


async def test_the_cache_replays_a_crawl_without_touching_the_network(aiohttp_server,
                                                                     tmp_path):
    site = _counting_site({"/": (200, links("/a", "/b", "/gone", title="home")),
                           "/a": (200, links(title="a")), "/b": (200, links(title="b"))})
    server = await aiohttp_server(site)
    cache = tmp_path / "cache"

    def spider() -> Follow:
        s = Follow()
        s.start_urls = [str(server.make_url("/"))]
        return s

    first, items1 = await crawl(spider(), tmp_path, http_cache=True, http_cache_dir=str(cache))
    assert sorted(site[HITS]) == ["/", "/a", "/b", "/gone", "/robots.txt"]
    assert first.counters["httpcache/store"] == 4  # three pages and robots.txt's 404
    site[HITS].clear()
    second, items2 = await crawl(spider(), tmp_path, http_cache=True,
                                 http_cache_dir=str(cache))
    assert site[HITS] == ["/gone"]  # a 404 is not kept unless asked
    assert sorted(map(json.dumps, items1)) == sorted(map(json.dumps, items2))
    assert second.counters["httpcache/hit"] == 4 and second.pages == first.pages == 4
    assert second.errors == {"http_404": 1}
    site[HITS].clear()
    await crawl(spider(), tmp_path, http_cache=True, http_cache_dir=str(cache),
                http_cache_codes=(404,))
    site[HITS].clear()
    await crawl(spider(), tmp_path, http_cache=True, http_cache_dir=str(cache),
                http_cache_codes=(404,))
    assert site[HITS] == []  # now the 404 is kept as well
    site[HITS].clear()
    await crawl(spider(), tmp_path)  # without the cache: the network again
    assert sorted(site[HITS]) == ["/", "/a", "/b", "/gone", "/robots.txt"]


async def test_stale_entries_are_fetched_again(aiohttp_server, tmp_path):
    site = _counting_site({"/": (200, links(title="home"))})
    server = await aiohttp_server(site)
    spider = Follow()
    spider.start_urls = [str(server.make_url("/"))]
    options = {"http_cache": True, "http_cache_dir": str(tmp_path), "obey_robots": False}
    await crawl(spider, tmp_path, **options)
    db = sqlite3.connect(cache_path(tmp_path, "follow"))
    with db:
        db.execute("UPDATE responses SET stored = stored - 100")
    db.close()
    site[HITS].clear()
    stats, _ = await crawl(spider, tmp_path, http_cache_expiration=50.0, **options)
    assert site[HITS] == ["/"] and stats.counters["httpcache/miss"] == 1


async def test_cache_hits_are_not_held_back_by_the_download_delay(aiohttp_server, tmp_path):
    site = _counting_site({"/": (200, links(*[f"/{i}" for i in range(4)], title="h")),
                           **{f"/{i}": (200, links(title=str(i))) for i in range(4)}})
    server = await aiohttp_server(site)
    spider = Follow()
    spider.start_urls = [str(server.make_url("/"))]
    options = {"http_cache": True, "http_cache_dir": str(tmp_path), "obey_robots": False,
               "download_delay": 0.5, "randomize_download_delay": False}
    started = time.monotonic()
    await crawl(spider, tmp_path, **options)
    network = time.monotonic() - started
    assert network >= 2.0  # the control: five pages 0.5 s apart
    started = time.monotonic()
    stats, _ = await crawl(spider, tmp_path, **options)
    assert stats.counters["httpcache/hit"] == 5
    assert time.monotonic() - started < network / 2


# -- cookies and proxies ---------------------------------------------------------------------


def _cookie_site() -> web.Application:
    async def login(request: web.Request) -> web.Response:
        response = web.Response(text=links("/check"), content_type="text/html")
        response.set_cookie("session", "s3cret", path="/")
        return response

    async def check(request: web.Request) -> web.Response:
        return web.json_response({"cookie": request.headers.get("Cookie")})

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_get("/check", check)
    return app


class CookieSpider(Spider):
    name = "cookies"
    custom_settings = {"log_interval": 0, "obey_robots": False}

    def start(self):  # type: ignore[override]
        yield Request(self.base + "/login", callback=self.logged_in)
        yield Request(self.base + "/check?own", cookies={"lang": "en"}, callback=self.check)

    def logged_in(self, response):
        yield Request(self.base + "/check?jar", callback=self.check)

    def check(self, response):
        yield {"url": response.url.rsplit("?", 1)[1], **response.json()}


async def test_cookies_are_kept_in_a_jar_unless_turned_off(aiohttp_server, tmp_path):
    server = await aiohttp_server(_cookie_site())
    spider = CookieSpider()
    spider.base = str(server.make_url("")).rstrip("/")
    _, items = await crawl(spider, tmp_path, cookies_enabled=False)
    assert {i["url"]: i["cookie"] for i in items} == {"own": "lang=en", "jar": None}
    _, items = await crawl(spider, tmp_path)  # on by default, as in Scrapy and Crawlee
    got = {i["url"]: i["cookie"] for i in items}
    assert got["jar"] is not None and "session=s3cret" in got["jar"]
    assert "lang=en" in got["own"]


def _proxy_app() -> web.Application:
    """A forward proxy that fetches nothing: it answers for any host, and records."""
    app = web.Application()
    app[HITS] = []

    async def handle(request: web.Request) -> web.Response:
        request.app[HITS].append((str(request.url), request.headers.get("Proxy-Authorization")))
        if request.path == "/robots.txt":
            raise web.HTTPNotFound()
        return web.Response(text=links("/next", title=request.host), content_type="text/html")

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def test_meta_proxy_and_the_environment_route_requests_through_a_proxy(
        aiohttp_server, tmp_path, monkeypatch):
    proxy = await aiohttp_server(_proxy_app())
    port = proxy.port

    class ViaProxy(Spider):
        name = "via"
        custom_settings = {"log_interval": 0}

        def start(self):  # type: ignore[override]
            yield Request("http://shop.test/", meta={"proxy": f"http://u:pw@127.0.0.1:{port}"})

        def parse(self, response):
            yield {"title": response.css_first("title").text()}

    _, items = await crawl(ViaProxy(), tmp_path, max_depth=0)
    assert items == [{"title": "shop.test"}]
    hits = proxy.app[HITS]
    assert ("http://shop.test/", "Basic dTpwdw==") in hits  # u:pw
    hits.clear()
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("no_proxy", "direct.test")
    spider = Follow()
    spider.start_urls = ["http://books.test/"]
    _, items = await crawl(spider, tmp_path, max_depth=1)
    assert sorted(url for url, _ in hits) == [
        "http://books.test/", "http://books.test/next", "http://books.test/robots.txt"]


# -- a user's middleware, extension and sink through the CLI -------------------------------

PROJECT = '''
    import json

    from crawler import Spider
    from crawler.signals import Signal
    from crawler.outputs.sinks import Sink


    class Stamp:
        """A downloader middleware: a header on every request, a mark on every response."""

        @classmethod
        def from_crawler(cls, crawler):
            mw = cls()
            mw.token = crawler.settings.get("stamp.token")
            return mw

        async def process_request(self, request):
            request.headers = {"X-Token": self.token}

        def process_response(self, request, response):
            response.headers = {**response.headers, "X-Stamped": "yes"}
            return response


    class Closing:
        """An extension: says how the crawl ended, in a file."""

        @classmethod
        def from_crawler(cls, crawler):
            ext = cls()
            crawler.signals.connect(Signal.SPIDER_CLOSED, ext.closed)
            return ext

        def closed(self, reason):
            with open("closed.txt", "w") as f:
                f.write(reason)


    class JsonArraySink(Sink):
        """A sink for memo://NAME: collects records, writes NAME.json at close."""

        def __init__(self, uri, *, overwrite=False, fields=None):
            super().__init__(uri, overwrite=overwrite, fields=fields)
            self.path = uri.split("://", 1)[1] + ".json"
            self.records = []

        async def write(self, record):
            self.records.append(record.fields)
            self.count += 1

        async def close(self):
            with open(self.path, "w") as f:
                json.dump(self.records, f)


    class Site(Spider):
        name = "site"
        custom_settings = {"log_interval": 0,
                           "downloader_middlewares": {"spiders.site.Stamp": 500},
                           "extensions": ["spiders.site.Closing"],
                           "sinks": {"memo": "spiders.site.JsonArraySink"}}
        start_urls = ["{start}"]

        def parse(self, response):
            yield {"path": response.url.rsplit("/", 1)[1],
                   "token": response.text.strip(), "stamped": response.headers["X-Stamped"]}
'''


async def test_a_user_middleware_extension_and_sink_through_the_cli(aiohttp_server,
                                                                     tmp_path: Path):
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("X-Token", "none"))

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    server = await aiohttp_server(app)
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "site.py").write_text(
        textwrap.dedent(PROJECT).replace("{start}", str(server.make_url("/here"))))
    code, _, err = await run_cli("run", "site", "-s", "stamp.token=t0k", "-o", "memo://items",
                                 cwd=tmp_path)
    assert code == 0, err
    assert json.loads((tmp_path / "items.json").read_text()) == [
        {"path": "here", "token": "t0k", "stamped": "yes"}]
    assert (tmp_path / "closed.txt").read_text() == "finished"
    code, _, err = await run_cli("run", "site", "-o", "nosuch://x", cwd=tmp_path)
    assert code == 2 and "nosuch:// outputs are not supported" in err
    assert len(err.strip().splitlines()) == 1


async def test_cache_flags_through_the_cli(aiohttp_server, tmp_path: Path):
    site = _counting_site({"/": (200, links(title="home"))})
    server = await aiohttp_server(site)
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "follow.py").write_text(textwrap.dedent(f'''
        from crawler import Spider

        class Follow(Spider):
            name = "follow"
            custom_settings = {{"log_interval": 0}}
            start_urls = ["{server.make_url('/')}"]

            def parse(self, response):
                yield {{"url": response.url}}
    '''))
    for flags, hits in ((["--cache"], ["/robots.txt", "/"]), (["--cache"], []),
                        (["--cache", "--cache-clear"], ["/robots.txt", "/"])):
        site[HITS].clear()
        code, _, err = await run_cli("run", "follow", *flags, "-O", "o.jsonl", cwd=tmp_path)
        assert code == 0, err
        assert site[HITS] == hits
    assert (tmp_path / ".crawler-cache" / "follow.sqlite3").is_file()


async def test_the_builtins_against_a_fake_downloader():
    """Retry (a 503 then a 200), redirect (301 to a page), status filtering (404): the same
    stats and outcomes as ever, without a socket."""
    class Flaky(FakeDownloader):
        async def fetch(self, request):
            if request.url.endswith("/flaky") and self.fetched.count(request.url) == 0:
                self.fetched.append(request.url)
                return Response(request.url, 503, {}, b"", request)
            return await super().fetch(request)

    ok = (200, {}, b"<html></html>")
    down = Flaky({"http://a.test/flaky": ok,
                  "http://a.test/moved": (301, {"Location": "/new"}, b""),
                  "http://a.test/new": ok, "http://a.test/missing": (404, {}, b"")})
    spider = Pages(["http://a.test/flaky", "http://a.test/moved", "http://a.test/missing"])
    result = await Crawler(spider, settings=_settings(), downloader=down).run()
    stats = result.stats
    assert sorted(url for url, _, _ in spider.seen) == ["http://a.test/flaky", "http://a.test/new"]
    assert spider.failed == ["http_404"]
    assert (stats.retries, stats.redirects, stats.pages) == (1, 1, 5)
    assert stats.status_counts == {200: 2, 301: 1, 404: 1, 503: 1}


# -- credentials stay with their origin --------------------------------------------------

def _recording_site(redirect_to: list[str]) -> web.Application:
    """/start sets a cookie and redirects to redirect_to[0]; /seen records what arrived."""
    app = web.Application()
    app[HITS] = []

    async def start(request: web.Request) -> web.Response:
        request.app[HITS].append(("start", dict(request.headers)))
        response = web.Response(status=302, headers={"Location": redirect_to[0]})
        response.set_cookie("session", "origin-only")
        return response

    async def seen(request: web.Request) -> web.Response:
        request.app[HITS].append(("seen", dict(request.headers)))
        return web.json_response({})

    async def robots(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app.router.add_get("/start", start)
    app.router.add_get("/seen", seen)
    app.router.add_get("/robots.txt", robots)
    return app


class Carrying(Spider):
    name = "carrying"
    custom_settings = {"log_interval": 0, "cookies_enabled": True}

    def start(self):  # type: ignore[override]
        yield Request(self.url, headers={"Authorization": "Bearer t0ken", "X-Api-Key": "k3y",
                                         "Cookie": "mine=c00kie", "X-Trace": "plain"},
                      cookies={"own": "c0"})

    def parse(self, response):
        yield {"ok": 1}


@pytest.mark.parametrize("same_origin", [False, True])
async def test_a_redirect_to_another_origin_drops_the_requests_credentials(
        aiohttp_server, tmp_path, same_origin):
    target: list[str] = []
    origin = await aiohttp_server(_recording_site(target))
    other = await aiohttp_server(_recording_site(target))
    where = origin if same_origin else other
    # another host name (the jar keeps cookies by host, not port), still on loopback
    target.append(str(where.make_url("/seen")) if same_origin else
                  f"http://localhost:{other.port}/seen")
    spider = Carrying()
    spider.url = str(origin.make_url("/start"))
    await crawl(spider, tmp_path)
    (_, headers), = [h for h in where.app[HITS] if h[0] == "seen"]
    assert headers["X-Trace"] == "plain"
    secrets = [name for name in ("Authorization", "X-Api-Key", "Cookie") if name in headers]
    if same_origin:  # the control: the same origin gets them, and the jar's cookie
        assert secrets == ["Authorization", "X-Api-Key", "Cookie"]
        assert "session=origin-only" in headers["Cookie"]
    else:
        assert secrets == [], headers


def _identity_site() -> web.Application:
    """/me answers with who asked (its Cookie or Authorization), with Vary on
    Accept-Language; /star with Vary: *."""
    app = web.Application()
    app[HITS] = []

    async def me(request: web.Request) -> web.Response:
        request.app[HITS].append(request.path)
        who = request.headers.get("Authorization") or request.headers.get("Cookie") or "anon"
        lang = request.headers.get("Accept-Language", "")
        return web.Response(text=f"<html><title>{who} {lang}</title></html>",
                            content_type="text/html", headers={"Vary": "Accept-Language"})

    async def star(request: web.Request) -> web.Response:
        request.app[HITS].append(request.path)
        return web.Response(text="<html><title>star</title></html>", content_type="text/html",
                            headers={"Vary": "*"})

    app.router.add_get("/me", me)
    app.router.add_get("/star", star)
    return app


class Identity(Spider):
    name = "identity"
    custom_settings = {"log_interval": 0, "obey_robots": False}

    def start(self):  # type: ignore[override]
        for kwargs in self.asks:
            yield Request(self.base + kwargs.pop("path", "/me"), dont_filter=True, **kwargs)

    def parse(self, response):
        yield {"title": response.css_first("title").text(),
               "cached": "cached" in response.flags}


async def test_the_cache_never_serves_one_identitys_response_to_another(aiohttp_server,
                                                                      tmp_path):
    server = await aiohttp_server(_identity_site())
    options = {"http_cache": True, "http_cache_dir": str(tmp_path / "c")}

    async def ask(*asks: dict) -> list[dict]:
        spider = Identity()
        spider.base = str(server.make_url("")).rstrip("/")
        spider.asks = [dict(a) for a in asks]
        _, items = await crawl(spider, tmp_path, concurrency=1, per_host_concurrency=1,
                               **options)
        return items

    alice, bob = {"cookies": {"s": "alice"}}, {"cookies": {"s": "bob"}}
    await ask(alice)
    assert await ask(bob) == [{"title": "s=bob en", "cached": False}]
    assert await ask(alice) == [{"title": "s=alice en", "cached": True}]  # her own, again
    token = {"headers": {"Authorization": "Bearer secret"}}
    await ask(token)
    assert await ask(token) == [{"title": "Bearer secret en", "cached": False}]  # never kept
    await ask({})
    assert await ask({}) == [{"title": "anon en", "cached": True}]
    # Vary: the same URL asked in another language is not the stored one
    assert await ask({"headers": {"Accept-Language": "fr"}}) == [
        {"title": "anon fr", "cached": False}]
    await ask({"path": "/star"})
    assert await ask({"path": "/star"}) == [{"title": "star", "cached": False}]


# -- retries from middlewares and callbacks are bounded and counted ---------------------

class CaptchaRetry:
    """A user's middleware that retries every captcha page (forgetting retry_times)."""

    def process_response(self, request, response):
        if b"captcha" in response.body:
            return Retry(request.replace(), 0.0)
        return response


def _captcha_site() -> web.Application:
    app = web.Application()
    app[HITS] = []

    async def handle(request: web.Request) -> web.Response:
        request.app[HITS].append(request.path)
        text = "captcha" if request.path.startswith("/captcha") else "empty" \
            if request.path.startswith("/empty") else links(title="ok")
        return web.Response(text=text, content_type="text/html")

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def test_a_middlewares_retry_is_bounded_and_counted(aiohttp_server, tmp_path):
    server = await aiohttp_server(_captcha_site())
    failed: list[str] = []

    class Blocked(Spider):
        name = "blocked"
        custom_settings = {"log_interval": 0, "obey_robots": False, "retries": 3,
                           "downloader_middlewares": {CaptchaRetry: 560}}
        start_urls = [str(server.make_url("/captcha"))]

        def start(self):  # type: ignore[override]
            yield Request(self.start_urls[0], errback=self.gone)

        def parse(self, response):
            yield {"url": response.url}

        def gone(self, failure):
            failed.append(failure.kind)

    stats, _ = await crawl(Blocked(), tmp_path)
    assert server.app[HITS].count("/captcha") == 4  # the first try and 3 retries
    assert stats.retries == 3 and failed == ["too_many_retries"]


async def test_get_retry_request_retries_from_a_callback_and_gives_up(aiohttp_server,
                                                                      tmp_path):
    from crawler.middlewares.retry import get_retry_request

    server = await aiohttp_server(_captcha_site())

    class Empty(Spider):
        name = "empty"
        custom_settings = {"log_interval": 0, "obey_robots": False}
        start_urls = [str(server.make_url("/empty"))]

        def parse(self, response):
            again = get_retry_request(response.request, spider=self, reason="empty page",
                                      max_retry_times=2)
            if again is not None:
                yield again
            else:
                yield {"gave_up": response.url}

    stats, items = await crawl(Empty(), tmp_path)
    assert server.app[HITS].count("/empty") == 3 and len(items) == 1
    assert stats.retries == 2
    assert stats.counters["retry/reason_count/empty page"] == 2
    assert stats.counters["retry/max_reached"] == 1
