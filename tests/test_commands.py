"""The spider developer's commands end to end, through real subprocesses against the demo
bookshop on 127.0.0.1: new, fetch, parse, shell, check; project settings; logging options;
the live display on a terminal."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
from pathlib import Path

import orjson
import pytest

from crawler.commands.bookshop import make_app
from tests.conftest import ROOT, make_site

pytestmark = pytest.mark.slow

FAST = ["-s", "download_delay=0", "-s", "autothrottle=false", "-s", "per_host_concurrency=8"]


async def cli(*args: str, cwd: Path, stdin: bytes | None = None, limit: float = 90
              ) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", *args, cwd=cwd, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), limit)
    except TimeoutError:
        proc.kill()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def shop(aiohttp_server) -> str:
    server = await aiohttp_server(make_app())
    return str(server.make_url("/"))


def jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_new_writes_templates_that_run_and_pass_their_contracts(shop, tmp_path):
    for name, template in (("plain", "basic"), ("rules", "crawl"), ("mapped", "sitemap")):
        code, out, err = await cli("new", name, shop, "--template", template, cwd=tmp_path)
        assert code == 0, err
        assert f"spiders/{name}.py" in out
        source = (tmp_path / "spiders" / f"{name}.py").read_text()
        assert '"per_host_concurrency": 1' in source and '"download_delay": 1.0' in source
        assert '"obey_robots": True' in source and '"autothrottle": True' in source
    code, out, err = await cli("list", cwd=tmp_path)
    assert out.split() == ["mapped", "plain", "rules"]
    counts = {}
    for name in ("plain", "rules", "mapped"):
        code, _, err = await cli("run", name, *FAST, "-o", f"out/{name}.jsonl", cwd=tmp_path)
        assert code == 0, err
        counts[name] = len(jsonl(tmp_path / "out" / f"{name}.jsonl"))
    # every page; the crawl template's rule skips the start page; the sitemap lists 264
    assert counts == {"plain": 265, "rules": 264, "mapped": 264}
    code, out, err = await cli("check", cwd=tmp_path)
    assert code == 0, out + err
    assert out.split() == ["ok", "mapped.parse_item", "ok", "plain.parse", "ok",
                           "rules.parse_item"]
    assert "3 contract(s) run, 0 failed" in err


async def test_new_refuses_to_overwrite_or_take_bad_names(shop, tmp_path):
    assert (await cli("new", "shop", shop, cwd=tmp_path))[0] == 0
    before = (tmp_path / "spiders" / "shop.py").read_text()
    (tmp_path / "spiders" / "other.py").write_text(
        "from crawler import Spider\nclass S(Spider):\n    name = 'taken'\n")
    (tmp_path / "spiders" / "helpers.py").write_text("X = 1\n")
    for args, message in (
            (("shop", shop), "a spider named 'shop' exists already"),
            (("helpers", shop), "helpers.py exists already: not overwritten"),
            (("taken", shop), "a spider named 'taken' exists already"),
            (("Bad-Name", shop), "spider name 'Bad-Name': use lower-case"),
            (("class", shop), "spider name 'class'"),
            (("fine", "ftp://x/"), "bad URL 'ftp://x/'"),
            (("fine", shop, "-t", "nope"), "invalid choice: 'nope'")):
        code, out, err = await cli("new", *args, cwd=tmp_path)
        assert code == 2 and message in err, (args, err)
    assert (tmp_path / "spiders" / "shop.py").read_text() == before
    assert (tmp_path / "spiders" / "helpers.py").read_text() == "X = 1\n"
    assert not (tmp_path / "spiders" / "fine.py").exists()


CONTRACTS = '''
from crawler import Spider

class Shop(Spider):
    name = "shop"

    async def parse(self, response):
        """@url {base}
        @returns requests 8 8
        @returns items 0 0
        """
        for link in response.css("ul.categories a"):
            yield response.follow(link, callback=self.parse_category)

    async def parse_category(self, response):
        """@url {base}catalogue/category/travel/page-1.html
        @returns items 1
        @scrapes title price
        """
        yield {{"title": response.css_text("h1")}}

    async def parse_book(self, response):
        """@url {base}no/such/page.html
        @returns items 1 1
        """
        yield {{}}

    async def parse_with_kwargs(self, response, wanted):
        """@url {base}
        @cb_kwargs {{"wanted": 3}}
        @meta {{"flag": true}}
        @returns items 3 3
        """
        assert response.meta["flag"] is True
        for i in range(wanted):
            yield {{"i": i}}
'''


async def test_check_runs_contracts_and_fails_as_it_should(shop, tmp_path):
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "shop.py").write_text(CONTRACTS.format(base=shop))
    code, out, err = await cli("check", "shop", cwd=tmp_path)
    assert code == 1, err
    lines = out.splitlines()
    assert "ok    shop.parse" in lines and "ok    shop.parse_with_kwargs" in lines
    assert "FAIL  shop.parse_category" in lines and "FAIL  shop.parse_book" in lines
    assert "        @scrapes: item 1 lacks price" in lines
    assert any("no/such/page.html: could not be fetched (http_404" in line for line in lines)
    assert "4 contract(s) run, 2 failed" in err
    code, out, _ = await cli("check", "shop", "--list", cwd=tmp_path)
    assert code == 0 and len(out.splitlines()) == 4
    (tmp_path / "spiders" / "shop.py").write_text(CONTRACTS.format(base=shop).replace(
        "@returns items 0 0", "@returns pages 0 0"))
    code, out, err = await cli("check", cwd=tmp_path)
    assert code == 2
    assert err.strip() == ("crawler: error: Shop.parse: bad contract line '@returns pages 0 "
                           "0': 'pages' is neither items nor requests")


async def test_fetch_prints_body_or_headers(aiohttp_server, tmp_path):
    from aiohttp import web

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/target")

    async def agent(request: web.Request) -> web.Response:
        return web.Response(text=request.headers["User-Agent"])

    server = await aiohttp_server(make_site({"/target": "<p>arrived</p>", "/old": moved,
                                             "/agent": agent}))
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "books.py").write_text(PARSER)
    code, out, err = await cli("fetch", "--spider", "books", str(server.make_url("/agent")),
                               cwd=tmp_path)
    assert code == 0 and out == "books-bot/1.0", err  # the spider's settings
    code, out, err = await cli("fetch", str(server.make_url("/agent")), "-s",
                               "user_agent=other/2", cwd=tmp_path)
    assert code == 0 and out == "other/2", err
    code, out, err = await cli("fetch", str(server.make_url("/old")), cwd=tmp_path)
    assert code == 0 and out == "<p>arrived</p>", err
    code, out, _ = await cli("fetch", "--headers", "--no-redirect",
                             str(server.make_url("/old")), cwd=tmp_path)
    assert code == 0
    assert out.splitlines()[0] == f"302 {server.make_url('/old')}"
    assert "Location: /target" in out.splitlines()
    code, out, err = await cli("fetch", "http://127.0.0.1:1/", cwd=tmp_path)
    assert code == 1 and "crawler: error: cannot fetch http://127.0.0.1:1/: " in err
    code, _, err = await cli("fetch", "not a url", cwd=tmp_path)
    assert code == 2 and err.startswith("crawler: error: bad URL 'not a url'")


PARSER = '''
from crawler import Spider, CrawlSpider, Rule, LinkExtractor

class Books(Spider):
    name = "books"
    user_agent = "books-bot/1.0"

    async def parse(self, response):
        for link in response.css("li.book a"):
            yield response.follow(link, callback=self.parse_book)

    async def parse_book(self, response, note="none"):
        yield {"title": response.css_text("h1"), "note": note,
               "page": response.meta.get("page")}

class Rules(CrawlSpider):
    name = "rules"
    rules = [Rule(LinkExtractor(allow=r"/category/"), callback="parse_category")]

    def parse_category(self, response):
        yield {"category": response.css_text("h1")}

    def broken(self, response):
        raise RuntimeError("boom")
'''


async def test_parse_runs_a_callback_on_one_url(shop, tmp_path):
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "books.py").write_text(PARSER)
    category = f"{shop}catalogue/category/poetry/page-1.html"
    code, out, err = await cli("parse", "--spider", "books", category, cwd=tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ">>> depth 1: 0 items, 12 requests <<<"
    assert all(line.endswith("-> parse_book") for line in lines[1:]) and len(lines) == 13
    code, out, err = await cli("parse", "--spider", "books", category, "--depth", "2",
                               "--nolinks", cwd=tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == ">>> depth 1: 0 items, 12 requests <<<"
    assert lines[1] == ">>> depth 2: 12 items, 0 requests <<<"
    items = [orjson.loads(line) for line in lines[2:]]
    assert len(items) == 12 and all(i["note"] == "none" for i in items)
    code, out, err = await cli("parse", "--spider", "books", "-c", "parse_book",
                               f"{shop}catalogue/category/poetry/page-1.html",
                               "--meta", '{"page": 7}', "--cb-kwargs", '{"note": "hi"}',
                               cwd=tmp_path)
    assert code == 0, err
    item = orjson.loads(out.splitlines()[1])
    assert item["note"] == "hi" and item["page"] == 7 and item["title"] == "Poetry"
    # a CrawlSpider: the rule whose links include the URL picks the callback
    code, out, err = await cli("parse", "--spider", "rules", category, cwd=tmp_path)
    assert code == 0 and orjson.loads(out.splitlines()[1]) == {"category": "Poetry"}, err
    for args, message in ((("-c", "nope"), "spider 'books' has no method 'nope'"),
                          (("--meta", "[1]"), "--meta expects a JSON object"),
                          (("--cb-kwargs", "{"), "--cb-kwargs: not JSON"),
                          (("--depth", "0"), "--depth must be >= 1")):
        code, _, err = await cli("parse", "--spider", "books", shop, *args, cwd=tmp_path)
        assert code == 2 and message in err, (args, err)
    code, _, err = await cli("parse", "--spider", "rules", "-c", "broken", shop, cwd=tmp_path)
    assert code == 1 and "RuntimeError: boom" in err


async def test_shell_with_scripted_input(shop, tmp_path):
    script = "\n".join([
        'print("H1", response.css_text("h1"))',
        'print("BASE", open(view(response)).read().count(f\'<base href="{response.url}">\'))',
        'print("HREFS", response.sel.css("ul.categories a::attr(href)").getall()[:2])',
        'r = await fetch(response.urljoin("catalogue/category/travel/page-1.html"))',
        'print("AWAITED", r.status, response.css_text("h1"))',
        f'fetch("{shop}robots.txt")',
        'print("BARE", response.text.splitlines()[0])',
        'print("XPATH", response.url.endswith("robots.txt"))',
        'path = view(response); print("VIEW", open(path).read().startswith("User-agent"))',
        "1/0",
        'print("ALIVE")',
    ]) + "\n"
    code, out, err = await cli("shell", shop, cwd=tmp_path, stdin=script.encode())
    assert code == 0, err
    assert "H1 Demo Books" in out and "BASE 1" in out
    assert "HREFS ['catalogue/category/travel/page-1.html', " in out
    assert "AWAITED 200 Travel" in out
    assert "BARE User-agent: *" in out and "XPATH True" in out and "VIEW True" in out
    assert "ZeroDivisionError" in err and "ALIVE" in out
    assert "fetch(url)" in err  # the banner


SETTINGS_SPIDER = '''
from crawler import Spider

class Show(Spider):
    name = "show"
    custom_settings = {"retries": 5}

    async def parse(self, response):
        s = self.settings
        yield {"concurrency": s.concurrency, "retries": s.retries, "timeout": s.timeout,
               "plugin": s.get("myext.key"), "log_level": s.log_level}
'''


async def test_project_settings_file_and_precedence(shop, tmp_path):
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "show.py").write_text(SETTINGS_SPIDER)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.crawler]\nconcurrency = 3\nretries = 1\n'
        'timeout = 7\n\n[tool.crawler.myext]\nkey = "abc"\n')
    sub = tmp_path / "deeper" / "still"
    sub.mkdir(parents=True)  # found from a subdirectory, spiders too
    code, out, err = await cli("run", "show", "-a", f"start_urls={shop}", "-s", "timeout=9",
                               "-o", "-", "-L", "warning", cwd=sub)
    assert code == 0, err
    # defaults < project file < custom_settings < -s (and -L)
    assert orjson.loads(out) == {"concurrency": 3, "retries": 5, "timeout": 9.0,
                                 "plugin": "abc", "log_level": "WARNING"}
    (tmp_path / "crawler.toml").write_text("concurency = 4\n")  # crawler.toml comes first
    code, out, err = await cli("run", "show", "-a", f"start_urls={shop}", cwd=sub)
    assert code == 2
    assert err.strip() == (f"crawler: error: {tmp_path / 'crawler.toml'}: unknown setting "
                           "'concurency'; did you mean 'concurrency'?")
    (tmp_path / "crawler.toml").write_text("concurrency = [\n")
    code, _, err = await cli("list", cwd=sub)
    assert code == 2 and "crawler.toml: not valid TOML" in err
    (tmp_path / "crawler.toml").write_bytes(b"concurrency = 3\n# caf\xe9 (latin-1)\n")
    code, _, err = await cli("list", cwd=sub)
    assert code == 2 and err.strip().splitlines() == [
        f"crawler: error: {tmp_path / 'crawler.toml'}: not valid TOML: not UTF-8 text "
        "(byte 21)"]


async def test_log_file_nolog_and_level(shop, tmp_path):
    log = tmp_path / "crawl.log"
    code, _, err = await cli("demo", "--log-file", str(log), "-L", "debug", "-o", "out.jsonl",
                             cwd=tmp_path)
    assert code == 0, err
    text = log.read_text()
    assert " DEBUG [books] crawler.core.robots: robots.txt for " in text
    assert "crawl finished" not in text
    assert "DEBUG" not in err and "crawl finished" in err  # the summary stays on stderr
    code, _, err = await cli("demo", "--nolog", "-s", "max_pages=3", "-O", "out.jsonl",
                             cwd=tmp_path)
    assert code == 0 and err.splitlines()[-1].startswith("crawl max_pages")
    assert "INFO" not in err and "WARNING" not in err
    code, _, err = await cli("demo", "-L", "DEBUG", "-s", "max_pages=3", "-O", "out.jsonl",
                             cwd=tmp_path)
    assert code == 0 and " DEBUG [books] " in err
    code, _, err = await cli("demo", "--log-file", str(tmp_path / "no" / "dir.log"),
                             cwd=tmp_path)
    assert code == 2 and "--log-file" in err and "No such file or directory" in err


async def test_live_progress_on_a_terminal(tmp_path):
    """On a terminal (a pty here) the live display runs and a stats table ends the crawl;
    --no-progress keeps the log lines."""
    async def on_tty(*args: str) -> str:
        controller, terminal = pty.openpty()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", "demo", *args, "-O", "out.jsonl",
            "-s", "log_interval=0.3", cwd=tmp_path, stdin=terminal, stdout=terminal,
            stderr=terminal, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120",
                                  "TERM": "xterm"}, start_new_session=True)
        os.close(terminal)
        chunks = []
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.run_in_executor(None, os.read, controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        os.close(controller)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        return b"".join(chunks).decode(errors="replace")

    live = await on_tty("-s", "download_delay=0.002", "-s", "per_host_concurrency=1")
    assert "pages/s" in live and "in flight" in live and "queued" in live
    assert "crawl finished" in live and "pages per second" in live  # the stats table
    assert "pages (" not in live  # no periodic log line
    plain = await on_tty("--no-progress")
    assert "crawl finished: 265 pages" in plain and "in flight" not in plain.split(
        "crawl finished")[0].split("INFO")[0]
