"""One crawl over every way a server can misbehave, through the CLI in a real subprocess."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import HITS, finish, make_site, spawn
from tests.hostile import EXPECTED_FAILURES, HEALTHY, make_hostile_app

ROOT = Path(__file__).resolve().parent.parent

SPIDER = textwrap.dedent('''
    from yarl import URL
    from crawler import Spider

    class Hostile(Spider):
        name = "hostile"
        custom_settings = {"timeout": 1.0, "retries": 1, "retry_backoff_base": 0.05,
                           "max_depth": 3, "log_interval": 0}

        def __init__(self, base, **kw):
            super().__init__(**kw)
            self.start_urls = [base]
            self.allowed_domains = ["127.0.0.1"]

        def parse(self, response):
            yield {"path": URL(response.url).path, "status": response.status,
                   "chars": len(response.text), "links": len(response.css("a"))}
            for link in response.css("a[href]"):
                yield response.follow(link, errback=self.failed)

        def failed(self, failure):
            first = (failure.request.meta.get("redirect_urls") or [failure.request.url])[0]
            yield {"failed": URL(first).path, "kind": failure.kind}
''')


@pytest.mark.parametrize("stack", ["aiohttp", "curl"])
async def test_hostile_site_never_stalls_or_crashes_the_crawl(aiohttp_server, tmp_path, stack):
    """The downloader suite, against both HTTP stacks (crawler/handlers/http.py, curl.py):
    the same pages, the same failure kinds."""
    other = make_site({})
    offsite_server = await aiohttp_server(other, host="localhost")
    app = make_hostile_app(offsite=str(offsite_server.make_url("/elsewhere")))
    server = await aiohttp_server(app)
    (tmp_path / "hostile.py").write_text(SPIDER)

    started = time.monotonic()
    proc = await spawn(
        sys.executable, "-m", "crawler", "run", "hostile.py", "-a",
        f"base={server.make_url('/')}", "-O", "items.jsonl", "--stats", "stats.json",
        "-s", f"http_stack={stack}", cwd=tmp_path)
    _, err = await finish(proc, 120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, err.decode()[-3000:]
    assert elapsed < 60

    items = [json.loads(x) for x in (tmp_path / "items.jsonl").read_text().splitlines()]
    stats = json.loads((tmp_path / "stats.json").read_text())
    pages = {i["path"] for i in items if "path" in i}
    failures = {i["failed"]: i["kind"] for i in items if "failed" in i}

    assert set(HEALTHY) <= pages, set(HEALTHY) - pages
    assert failures.pop("/private/secret") == "robots_disallowed"  # the errback was called
    assert {p: k for p, k in failures.items() if p in EXPECTED_FAILURES} == EXPECTED_FAILURES
    # the rest are weird hrefs that resolve to real paths ("/%zz", NUL bytes): plain 404s
    assert {k for p, k in failures.items() if p not in EXPECTED_FAILURES} == {"http_404"}
    errors = dict(stats["errors"])
    errors.pop("http_404")
    assert errors == {kind: list(EXPECTED_FAILURES.values()).count(kind)
                      for kind in set(EXPECTED_FAILURES.values())}
    hits = [path for path, _ in app[HITS]]
    assert not any(p.startswith("/private") for p in hits)  # robots.txt said no
    assert stats["robots_disallowed"] == 1
    assert other[HITS] == []
    assert stats["offsite_dropped"] >= 2  # a link and a redirect, at least
    assert max(int(p.rsplit("/", 1)[1]) for p in pages if p.startswith("/calendar/")) <= 2
    assert stats["depth_limited"] >= 1
    assert stats["invalid_url"] >= 2 and stats["unsupported_scheme"] >= 5
    assert stats["url_too_long"] >= 1
    assert stats["retries"] >= 4  # 503, 429, always-500, slow
    assert stats["max_loop_stall_seconds"] < 0.1, stats["max_loop_stall_seconds"]
    assert stats["peak_rss_mb"] < 400
