"""The CLI as users run it: real subprocesses, real signals, real files."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import finish, make_site, spawn

ROOT = Path(__file__).resolve().parent.parent

SPIDER = textwrap.dedent('''
    import time

    from crawler import Spider

    class Endless(Spider):
        name = "endless"
        custom_settings = {"max_pages": 1000, "concurrency": 4}

        def __init__(self, base, log, tag="none", **kw):
            super().__init__(**kw)
            self.start_urls = [base]
            self.log = log
            self.tag = tag

        async def parse(self, response):
            with open(self.log, "a") as f:   # what was yielded, for the test to compare
                f.write(response.url + "\\n")
            with open(self.log + ".t", "a") as f:  # and when
                f.write(f"{time.time()} {response.url}\\n")
            yield {"url": response.url, "tag": self.tag, "text": "caf\\u00e9, \\"q\\""}
            for link in response.css("a"):
                yield response.follow(link)
''')


async def _endless_site(aiohttp_server, delay: float = 0.0, hang_every: int = 0):
    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if hang_every and n % hang_every == hang_every - 1:
            await asyncio.sleep(3600)
        if delay:
            await asyncio.sleep(delay)
        body = "".join(f'<a href="/{n * 3 + k}">x</a>' for k in (1, 2, 3))
        return web.Response(text=f"<html><body>{body}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{n:\\d+}", page)
    server = await aiohttp_server(app)
    return str(server.make_url("/0"))


async def run_cli(*args: str, cwd: Path = ROOT, limit: float = 60) -> tuple[int, str, str]:
    proc = await spawn(sys.executable, "-m", "crawler", *args, cwd=cwd)
    out, err = await finish(proc, limit)
    return proc.returncode or 0, out.decode(), err.decode()


def _write_spider(tmp_path: Path) -> Path:
    path = tmp_path / "endless.py"
    path.write_text(SPIDER)
    return path


async def _run_endless(aiohttp_server, tmp_path: Path, setting: str) -> tuple[int, str, str]:
    """The endless spider through the CLI, with its default output and one setting."""
    base = await _endless_site(aiohttp_server)
    spider = _write_spider(tmp_path)
    return await run_cli("run", str(spider), "-a", f"base={base}",
                         "-a", f"log={tmp_path / 'log'}", "-s", setting, cwd=tmp_path)


async def test_unknown_spider_exits_2_with_one_line():
    code, out, err = await run_cli("run", "no_such_spider")
    assert code == 2
    assert err.strip().splitlines() == [
        "crawler: error: unknown spider 'no_such_spider'; available: bench, books; built in: "
        "markdown"]


@pytest.mark.parametrize(("setting", "message"), [
    ("concurency=2", "did you mean 'concurrency'"),
    ("max_pages=lots", "expects int"),
    ("nonsense", "expects NAME=VALUE"),
])
async def test_bad_setting_exits_2(setting, message):
    code, _, err = await run_cli("run", "books", "-s", setting)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


async def test_version_and_the_libraries_versions():
    from crawler import __version__

    code, out, _ = await run_cli("version")
    assert code == 0 and out == f"crawler {__version__}\n"
    code, out, _ = await run_cli("version", "-v")
    rows = {name.strip(): value.strip()
            for name, value in (line.split(" : ", 1) for line in out.splitlines())}
    assert code == 0 and rows["crawler"] == __version__
    assert rows["aiohttp"] == __import__("aiohttp").__version__
    assert {"Python", "platform", "selectolax", "html-to-markdown"} <= set(rows)


def test_every_setting_and_every_command_line_option_has_help():
    """What the settings table and `--help` say comes from the declarations: none may be
    silent."""
    import argparse
    import dataclasses

    from crawler.commands.main import _parser
    from crawler.settings import Settings

    assert [f.name for f in dataclasses.fields(Settings) if not f.metadata["help"]] == []
    parser = _parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    silent = [f"{name} {action.option_strings or action.dest}"
              for name, command in commands.choices.items() for action in command._actions
              if not isinstance(action, argparse._HelpAction)
              and action.help in (None, "", argparse.SUPPRESS)]
    assert silent == []
    assert all(choice.help for choice in commands._choices_actions)  # each command's line


async def test_list():
    code, out, _ = await run_cli("list")
    assert code == 0 and out.split() == ["bench", "books"]


async def test_run_spider_file_with_args_settings_outputs_and_stats(aiohttp_server, tmp_path):
    base = await _endless_site(aiohttp_server)
    spider = _write_spider(tmp_path)
    log = tmp_path / "yielded.txt"
    (tmp_path / "old.jsonl").write_text('{"old": 1}\n')
    code, _, err = await run_cli(
        "run", str(spider), "-a", f"base={base}", "-a", f"log={log}", "-a", "tag=T",
        "-s", "max_pages=7",  # command line beats custom_settings' 1000
        "-o", "old.jsonl", "-O", "new.json", "-o", "out.csv", "--stats", "stats.json",
        cwd=tmp_path)
    assert code == 0, err
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["pages"] == 7 and stats["items"] == 7 and stats["finish_reason"] == "max_pages"
    for key in ("requests_failed", "status_counts", "errors", "elapsed_seconds"):
        assert key in stats
    lines = (tmp_path / "old.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"old": 1} and len(lines) == 8  # -o appended
    items = json.loads((tmp_path / "new.json").read_text())
    assert {i["tag"] for i in items} == {"T"}
    rows = list(csv.DictReader((tmp_path / "out.csv").read_text().splitlines()))
    assert len(rows) == 7 and rows[0]["text"] == 'café, "q"'


async def test_default_output_path(aiohttp_server, tmp_path):
    code, _, err = await _run_endless(aiohttp_server, tmp_path, "max_pages=3")
    assert code == 0, err
    assert len((tmp_path / "output" / "endless.jsonl").read_text().splitlines()) == 3


async def _start_and_interrupt(aiohttp_server, tmp_path, signals: list[int],
                               hang_every: int = 0, run_for: float = 0.0):
    base = await _endless_site(aiohttp_server, delay=0.01, hang_every=hang_every)
    spider = _write_spider(tmp_path)
    log = tmp_path / "yielded.txt"
    proc = await spawn(
        sys.executable, "-m", "crawler", "run", str(spider), "-a", f"base={base}",
        "-a", f"log={log}", "-s", "max_pages=100000", "-O", "a.json", "-O", "a.jsonl",
        "-O", "a.csv", "--stats", "stats.json", cwd=tmp_path)
    for _ in range(400):  # until the crawl is clearly under way
        await asyncio.sleep(0.05)
        out = tmp_path / "a.jsonl"
        if log.exists() and len(log.read_text().splitlines()) > 50 and out.exists() \
                and out.stat().st_size:
            break
    await asyncio.sleep(run_for)
    (tmp_path / "killed_at").write_text(str(time.time()))
    for sig in signals:
        proc.send_signal(sig)
        await asyncio.sleep(0.05)
    _, err = await finish(proc, 60)
    return proc.returncode, err.decode(), log


def _read_outputs(tmp_path: Path) -> tuple[list[str], list[str], list[str]]:
    as_json = [i["url"] for i in json.loads((tmp_path / "a.json").read_text())]
    jsonl = [json.loads(x)["url"] for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    rows = [r["url"] for r in csv.DictReader((tmp_path / "a.csv").read_text().splitlines())]
    return as_json, jsonl, rows


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_graceful_stop_keeps_every_item(aiohttp_server, tmp_path, sig):
    code, err, log = await _start_and_interrupt(aiohttp_server, tmp_path, [sig])
    assert code == 0, err
    yielded = log.read_text().splitlines()
    as_json, jsonl, rows = _read_outputs(tmp_path)
    assert sorted(as_json) == sorted(jsonl) == sorted(rows) == sorted(yielded)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["finish_reason"] == "shutdown" and stats["items"] == len(yielded)


async def test_second_signal_stops_at_once_and_files_stay_valid(aiohttp_server, tmp_path):
    # some pages never answer, so the graceful stop would wait for the timeout
    code, err, log = await _start_and_interrupt(aiohttp_server, tmp_path,
                                                [signal.SIGINT, signal.SIGINT], hang_every=40)
    assert code == 130, err
    as_json, jsonl, rows = _read_outputs(tmp_path)
    assert as_json and sorted(as_json) == sorted(jsonl) == sorted(rows)
    assert set(as_json) <= set(log.read_text().splitlines())


async def test_sigkill_leaves_parseable_files(aiohttp_server, tmp_path):
    code, _, _ = await _start_and_interrupt(aiohttp_server, tmp_path, [signal.SIGKILL],
                                            run_for=3.0)
    assert code == -signal.SIGKILL
    killed = (tmp_path / "killed_at").read_text()
    as_json, jsonl, _ = _read_outputs(tmp_path)  # all parse
    # at most the last second is lost (batches are written every second; 0.5 s of margin)
    stamped = [line.split(" ", 1) for line in (tmp_path / "yielded.txt.t").read_text().splitlines()]
    settled = [url for t, url in stamped if float(t) < float(killed) - 1.5]
    assert len(settled) > 50
    assert set(settled) <= set(jsonl) and set(settled) <= set(as_json)


# -- user mistakes end in one line, and a crawl that did nothing says so (issue 7) ----------


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / "spiders" / name).write_text(textwrap.dedent(text))
    return tmp_path


SIMPLE = '''
    from crawler import Spider

    class {cls}(Spider):
        name = "{name}"
        custom_settings = {{"log_interval": 0}}

        def parse(self, response):
            yield {{"url": response.url}}
'''


@pytest.mark.parametrize(("setting", "message"), [
    ("timeout=inf", "'timeout' must be a finite number"),
    ("download_delay=inf", "'download_delay' must be a finite number"),
    ("concurrency=1000000", "'concurrency' must be <= 10000"),
    ("max_pages=0", "'max_pages' must be >= 1, or none for no limit"),
    ("max_items=0", "'max_items' must be >= 1, or none for no limit"),
    ("DOWNLOAD_DELAY=2", "did you mean 'download_delay'?"),
])
async def test_bad_values_exit_2_at_once(setting, message):
    code, _, err = await run_cli("run", "books", "-s", setting, limit=20)
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and message in err


async def test_user_agent_with_a_newline_is_refused_at_startup():
    code, _, err = await run_cli("run", "books", "-s", "user_agent=bot\r\nX: y")
    assert code == 2 and "control characters" in err and "Traceback" not in err


@pytest.mark.parametrize(("start", "message"), [
    ("example.com", "start URL 'example.com' is not an absolute http(s) URL (invalid url) "
                    "(did you mean http://example.com?)"),
    ("htp://x.org/", "start URL 'htp://x.org/' is not an absolute http(s) URL "
                     "(unsupported scheme)"),
    ("http://[::1", "start URL 'http://[::1' is not an absolute http(s) URL (invalid url)"),
])
async def test_a_bad_start_url_is_a_startup_error_naming_it(tmp_path, start, message):
    _project(tmp_path, {"simple.py": SIMPLE.format(cls="Simple", name="simple")})
    (tmp_path / "keep.jsonl").write_text("kept\n")
    code, _, err = await run_cli("run", "simple", "-a", f"start_urls={start}",
                                 "-O", "keep.jsonl", cwd=tmp_path)
    assert code == 2
    assert err.strip() == f"crawler: error: {message}"
    assert (tmp_path / "keep.jsonl").read_text() == "kept\n"


async def test_start_urls_from_an_argument_are_split_on_whitespace(aiohttp_server, tmp_path):
    base = await _endless_site(aiohttp_server)
    _project(tmp_path, {"simple.py": SIMPLE.format(cls="Simple", name="simple")})
    code, _, err = await run_cli("run", "simple", "-a", f"start_urls={base} {base[:-1]}1",
                                 "-O", "out.jsonl", cwd=tmp_path)
    assert code == 0, err
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2


async def test_a_crawl_that_fetched_nothing_says_why_and_exits_1(aiohttp_server, tmp_path):
    _project(tmp_path, {"simple.py": SIMPLE.format(cls="Simple", name="simple")})
    code, _, err = await run_cli("run", "simple", "-a", "start_urls=http://127.0.0.1:9/",
                                 "-s", "retries=0", "--stats", "s.json", cwd=tmp_path)
    assert code == 1
    assert "crawl finished: 0 pages" in err  # the summary still comes, and the stats
    assert "crawler: error: nothing was crawled: no page could be fetched of 1 start " \
           "request(s): 1 failed (connection=1)" in err
    assert json.loads((tmp_path / "s.json").read_text())["requests_failed"] == 1

    server = await aiohttp_server(make_site({"/robots.txt": "User-agent: *\nDisallow: /"}))
    code, _, err = await run_cli("run", "simple", "-a", f"start_urls={server.make_url('/a')}",
                                 cwd=tmp_path)
    assert code == 1
    assert "1 robots.txt disallowed" in err and "nothing was crawled" in err


async def test_summary_names_what_was_dropped(aiohttp_server, tmp_path):
    code, _, err = await _run_endless(aiohttp_server, tmp_path, "max_depth=2")
    assert code == 0, err
    assert "; dropped: " in err and "past max_depth" in err


async def test_two_spiders_with_one_name_and_a_broken_file(tmp_path):
    _project(tmp_path, {"a.py": SIMPLE.format(cls="First", name="twin"),
                        "b.py": SIMPLE.format(cls="Second", name="twin"),
                        "c.py": SIMPLE.format(cls="Fine", name="fine"),
                        "broken.py": "def oops(:\n"})
    code, _, err = await run_cli("run", "twin", cwd=tmp_path)
    assert code == 2
    assert err.strip() == ("crawler: error: spider name 'twin' is used by First in "
                           "spiders/a.py and Second in spiders/b.py: rename one")
    code, _, err = await run_cli("run", "fine", "-a", "start_urls=http://127.0.0.1:9/",
                                 "-s", "retries=0", cwd=tmp_path)
    assert err.splitlines()[0] == ("warning: cannot import spiders.broken: SyntaxError: "
                                   "invalid syntax (broken.py, line 1)")


async def test_failing_close_hooks_still_give_summary_and_stats(aiohttp_server, tmp_path):
    base = await _endless_site(aiohttp_server)
    _project(tmp_path, {"closing.py": '''
        from crawler import Spider

        class BadClose:
            def process_item(self, item, spider):
                return item
            def close_spider(self, spider):
                raise RuntimeError("close failed")

        class Closing(Spider):
            name = "closing"
            custom_settings = {"item_pipelines": [BadClose], "max_pages": 3}

            def parse(self, response):
                yield {"url": response.url}
                yield from response.follow_all(css="a")

            def closed(self, reason):
                raise ValueError("closed failed")
    '''})
    code, _, err = await run_cli("run", "closing", "-a", f"start_urls={base}",
                                 "--stats", "s.json", cwd=tmp_path)
    assert code == 0, err
    assert "crawl max_pages: 3 pages, 3 items" in err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["errors"] == {"close_spider": 1, "spider_closed": 1}


async def test_demo_runs_from_any_directory(tmp_path):
    code, _, err = await run_cli("demo", "-O", "books.jsonl", cwd=tmp_path)
    assert code == 0, err
    assert len((tmp_path / "books.jsonl").read_text().splitlines()) == 240


async def test_help_describes_the_commands():
    code, out, _ = await run_cli("--help")
    assert code == 0
    assert "only module" not in out
    assert out.splitlines()[2].startswith("crawler: an asyncio web crawling")
    assert "pages/s on this machine" in out and "exit codes:" in out
    assert all(f"  {c} " in out for c in ("new", "fetch", "parse", "shell", "check"))


async def test_ctrl_c_on_demo_serve_exits_quietly():
    proc = await spawn(sys.executable, "-m", "crawler", "demo", "--serve", cwd=ROOT)
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).startswith(b"demo bookshop at http://127.0.0.1:")
    proc.send_signal(signal.SIGINT)
    _, err = await finish(proc, 20)
    assert proc.returncode == 0 and b"Traceback" not in err


async def test_a_spider_that_fails_to_start_is_one_line(tmp_path):
    _project(tmp_path, {"broken_init.py": '''
        from crawler import Spider

        class BrokenInit(Spider):
            name = "broken_init"

            def __init__(self, pages="many", **kw):
                super().__init__(**kw)
                self.pages = int(pages)

        class BrokenStart(Spider):
            name = "broken_start"

            async def start(self):
                raise RuntimeError("no seeds today")
                yield
    '''})
    code, _, err = await run_cli("run", "broken_init", cwd=tmp_path)
    assert code == 2
    assert err.strip() == ("crawler: error: spider 'broken_init' failed to start: ValueError: "
                           "invalid literal for int() with base 10: 'many' (broken_init.py:9)")
    code, _, err = await run_cli("run", "broken_start", cwd=tmp_path)
    assert code == 1
    assert "RuntimeError: no seeds today" in err  # the traceback of the spider's own bug
    assert err.strip().splitlines()[-1] == (
        "crawler: error: nothing was crawled: the spider's start() raised before its first "
        "request (the error is logged above)")


def test_a_workers_argv_drops_what_each_worker_is_given_itself():
    from crawler.commands.fleet import _without, without_workers_flag

    argv = ["run", "s", "--workers", "2", "--worker-id=w", "--cache-clear", "-o", "x",
            "--status-port", "8080", "--frontier", "redis://h/0"]
    assert without_workers_flag(argv) == [
        "run", "s", "--cache", "-o", "x", "--status-port", "8080", "--frontier", "redis://h/0"]
    assert _without(["--status-port=1", "a", "--status-port", "2", "b"],
                    ("--status-port",)) == ["a", "b"]
