"""Monitors: each check passing and failing on a real crawl of a local site, the results in
the stats, the summary and the status page; a failing one exits 3 and is sent to a webhook
(a local aiohttp server) and by email (a local aiosmtpd server)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import textwrap
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler import Spider
from crawler.extensions.monitors import load_schema
from crawler.settings import Settings
from tests.conftest import crawl, finish, make_site, spawn

PAGES = {
    "/": '<html><body><a href="/p/1">1</a><a href="/p/2">2</a><a href="/p/3">3</a>'
         '<a href="/p/4">4</a><a href="/missing">x</a></body></html>',
    **{f"/p/{i}": f"<html><head><title>t{i}</title></head><body><p class=price>"
                  f"{'' if i == 4 else i * 10}</p></body></html>" for i in range(1, 5)},
}


class Shop(Spider):
    name = "shop"
    custom_settings = {"obey_robots": False, "log_interval": 0, "retries": 0}

    def __init__(self, base: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.start_urls = [base + "/"]

    def parse(self, response):
        if response.url.rstrip("/").count("/") == 2:  # the index
            yield from response.follow_all(css="a")
            return
        price = response.css_text("p.price")
        yield {"title": response.css_text("title"), "price": int(price) if price else None}


async def _results(base: str, tmp_path: Path, **settings: Any) -> dict[str, dict[str, Any]]:
    stats, _ = await crawl(Shop(base), tmp_path, **settings)
    return {r["name"]: r for r in stats.monitors}


async def test_each_monitor_passes_and_fails(aiohttp_server, tmp_path):
    """4 items (one without a price), 6 pages (one a 404), finished: each check on both sides
    of what the crawl did."""
    server = await aiohttp_server(make_site(PAGES))
    base = str(server.make_url("")).rstrip("/")
    passing = await _results(
        base, tmp_path, monitor_min_items=4, monitor_min_pages=6, monitor_max_error_rate=0.2,
        monitor_max_error_rates={"http_404": 0.2}, monitor_field_coverage={"price": 0.75,
                                                                           "title": 1},
        monitor_max_duration=60, monitor_finish_reasons=("finished",))
    assert all(r["passed"] for r in passing.values()), passing
    assert set(passing) == {"min_items", "min_pages", "error_rate", "error_rate/http_404",
                            "field_coverage/price", "field_coverage/title", "max_duration",
                            "finish_reason"}
    failing = await _results(
        base, tmp_path, monitor_min_items=5, monitor_min_pages=7, monitor_max_error_rate=0.1,
        monitor_max_error_rates={"http_404": 0.1, "timeout": 0.0},
        monitor_field_coverage={"price": 0.8, "title": 1}, monitor_max_duration=0.0001,
        monitor_finish_reasons=("max_pages",))
    assert {n for n, r in failing.items() if not r["passed"]} == {
        "min_items", "min_pages", "error_rate", "error_rate/http_404", "field_coverage/price",
        "max_duration", "finish_reason"}, failing
    assert failing["error_rate/timeout"]["passed"] and failing["field_coverage/title"]["passed"]
    assert failing["min_items"]["message"] == "4 items, at least 5 expected"
    assert failing["field_coverage/price"]["message"].startswith("3 of 4 items (75.0%)")
    assert failing["error_rate"]["message"].startswith("1 of 6 requests failed (16.7%)")
    assert failing["finish_reason"]["message"] == "finished with 'finished', expected max_pages"


async def test_item_schema_as_pydantic_model_and_json_schema(aiohttp_server, tmp_path):
    from pydantic import BaseModel

    class Item(BaseModel):
        title: str
        price: int

    server = await aiohttp_server(make_site(PAGES))
    base = str(server.make_url("")).rstrip("/")
    strict = await _results(base, tmp_path, monitor_item_schema=Item)
    assert not strict["item_schema"]["passed"]
    assert strict["item_schema"]["message"].startswith("1 of 4 items (25.0%) fail the schema")
    assert "price" in strict["item_schema"]["message"]
    lenient = await _results(base, tmp_path, monitor_item_schema=Item,
                             monitor_max_invalid_items=0.25)
    assert lenient["item_schema"]["passed"]
    schema = tmp_path / "item.json"
    schema.write_text(json.dumps({"type": "object", "required": ["title", "price"],
                                  "properties": {"price": {"type": ["integer", "null"]}}}))
    as_file = await _results(base, tmp_path, monitor_item_schema=str(schema))
    assert as_file["item_schema"]["passed"], as_file
    schema.write_text(json.dumps({"type": "object", "properties": {
        "price": {"type": "integer", "minimum": 25}}}))
    failing = await _results(base, tmp_path, monitor_item_schema=str(schema))
    assert failing["item_schema"]["message"].startswith("3 of 4 items (75.0%) fail")


def no_404s(stats: dict[str, Any]) -> str | None:
    """A check of one's own: given the stats, None or what is wrong."""
    missing = stats["errors"].get("http_404", 0)
    return f"{missing} pages missing" if missing else None


def enough_per_page(stats: dict[str, Any]) -> str | None:
    return None if stats["items"] >= stats["pages"] / 2 else "too few items per page"


def broken(stats: dict[str, Any]) -> None:
    raise KeyError("no_such_stat")


async def test_checks_of_ones_own_pass_fail_and_raise(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site(PAGES))
    base = str(server.make_url("")).rstrip("/")
    results = await _results(base, tmp_path, monitor_checks=(
        no_404s, "tests.test_monitors.enough_per_page", broken))
    assert results["no_404s"] == {"name": "no_404s", "passed": False,
                                  "message": "1 pages missing"}
    assert results["enough_per_page"]["passed"]
    assert not results["broken"]["passed"]
    assert results["broken"]["message"].startswith("the check raised KeyError: 'no_such_stat'")


def test_a_bad_schema_is_a_settings_error(tmp_path):
    from crawler.exceptions import SettingsError

    bad = tmp_path / "bad.json"
    bad.write_text('{"type": 12}')
    with pytest.raises(SettingsError, match="not a valid JSON Schema"):
        load_schema(str(bad))
    with pytest.raises(SettingsError, match="cannot import 'no_such_module:Model'"):
        load_schema("no_such_module:Model")
    with pytest.raises(SettingsError, match="cannot read"):
        load_schema(str(tmp_path / "absent.json"))
    with pytest.raises(SettingsError, match="expects a pydantic model"):
        load_schema("json:dumps")


SPIDER = '''
    from crawler import Spider

    class Shop(Spider):
        name = "shop"
        custom_settings = {"obey_robots": False, "log_interval": 0, "retries": 0,
                           "monitor_min_items": 10, "monitor_field_coverage": {"price": 1}}

        def __init__(self, base, **kw):
            super().__init__(**kw)
            self.start_urls = [base + "/"]

        def parse(self, response):
            if response.url.rstrip("/").count("/") == 2:  # the index
                yield from response.follow_all(css="a")
                return
            yield {"title": response.css_text("title"), "price": response.css_text("p.price")}
'''


def _project(tmp_path: Path) -> Path:
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "shop.py").write_text(textwrap.dedent(SPIDER))
    return tmp_path


class _Smtp:
    """aiosmtpd's handler: keeps each message's envelope."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[tuple[str, str]] = []

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


HOOKS = web.AppKey("hooks", list)


def _webhook_app() -> web.Application:
    app = web.Application()
    app[HOOKS] = []

    async def hook(request: web.Request) -> web.Response:
        request.app[HOOKS].append((request.path, await request.json()))
        return web.Response(text="ok")

    app.router.add_post("/{tail:.*}", hook)
    return app


async def test_a_failing_monitor_exits_3_and_notifies_by_webhook_and_email(aiohttp_server,
                                                                          tmp_path):
    from aiosmtpd.controller import Controller

    site = await aiohttp_server(make_site(PAGES))
    hooks = await aiohttp_server(_webhook_app())
    handler = _Smtp()
    with socket.socket() as probe:  # a free port (the controller checks it by connecting)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(handler, hostname="127.0.0.1", port=port, auth_require_tls=False,
                      authenticator=handler.authenticate)
    await asyncio.to_thread(smtp.start)
    try:
        project = _project(tmp_path)
        secret_hook = str(hooks.make_url("/services/T000/B000/s3cr3tpath"))
        proc = await spawn(
            sys.executable, "-m", "crawler", "run", "shop", "-a",
            f"base={str(site.make_url('')).rstrip('/')}", "-O", "out.jsonl", "--stats",
            "stats.json", "-s", f"monitor_webhook={secret_hook}", "-s",
            "monitor_email_to=ops@example.com", "-s",
            f"monitor_smtp=smtp://bot:hunter22@127.0.0.1:{port}",
            cwd=project)
        _, err = await finish(proc, 60)
    finally:
        await asyncio.to_thread(smtp.stop)
    text = err.decode()
    assert proc.returncode == 3, text
    lines = [line for line in text.splitlines() if line.startswith("crawler: error:")]
    assert lines == ["crawler: error: monitor min_items failed: 4 items, at least 10 expected",
                     "crawler: error: monitor field_coverage/price failed: 3 of 4 items "
                     "(75.0%) have 'price' set, at least 100.0% expected"], text
    assert "monitors: 2 of 2 failed (min_items, field_coverage/price)" in text  # the summary
    assert "s3cr3tpath" not in text and "hunter22" not in text  # neither secret is shown
    stats = json.loads((project / "stats.json").read_text())
    assert [m["passed"] for m in stats["monitors"]] == [False, False]
    assert stats["counters"]["monitors/notified_webhook"] == 1
    [(path, body)] = hooks.app[HOOKS]
    assert path == "/services/T000/B000/s3cr3tpath"
    assert body["passed"] is False and body["spider"] == "shop"
    assert [m["name"] for m in body["monitors"]] == ["min_items", "field_coverage/price"]
    assert body["stats"]["items"] == 4
    [mail] = handler.messages
    assert handler.logins == [("bot", "hunter22")]  # the password reached the server only
    assert mail.rcpt_tos == ["ops@example.com"]
    message = message_from_bytes(mail.content)
    assert message["Subject"] == "crawl shop: 2 of 2 monitors failed (finished)"
    assert "FAIL min_items: 4 items, at least 10 expected" in message.get_payload()


async def test_passing_monitors_exit_0_and_slack_gets_its_shape_when_always(aiohttp_server,
                                                                           tmp_path):
    site = await aiohttp_server(make_site(PAGES))
    hooks = await aiohttp_server(_webhook_app())
    project = _project(tmp_path)
    proc = await spawn(
        sys.executable, "-m", "crawler", "run", "shop", "-a",
        f"base={str(site.make_url('')).rstrip('/')}", "-O", "out.jsonl",
        "-s", "monitor_min_items=4", "-s", "monitor_field_coverage=price=0.7",
        "-s", f"monitor_webhook={hooks.make_url('/hook')}", "-s",
        "monitor_webhook_format=slack", "-s", "monitor_notify=always", cwd=project)
    _, err = await finish(proc, 60)
    assert proc.returncode == 0, err.decode()
    assert "monitors: 2 passed" in err.decode()
    [(_, body)] = hooks.app[HOOKS]
    assert body["text"] == "crawl shop: all 2 monitors passed (finished)"
    assert body["blocks"][0]["type"] == "header"
    assert ":white_check_mark: *min_items*" in body["blocks"][1]["text"]["text"]


async def test_an_unreachable_webhook_is_logged_and_counted_not_fatal(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_site(PAGES))
    base = str(server.make_url("")).rstrip("/")
    gone = await aiohttp_server(web.Application())
    url = str(gone.make_url("/hook"))
    await gone.close()
    stats, items = await crawl(Shop(base), tmp_path, monitor_min_items=10,
                               monitor_webhook=url)
    assert len(items) == 4
    assert stats.counters["monitors/notify_failed"] == 1


async def test_monitors_are_evaluated_while_the_crawl_runs(aiohttp_server, tmp_path, caplog):
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text="<p class=price>1</p>", content_type="text/html")

    server = await aiohttp_server(make_site({**PAGES, "/p/1": slow}))
    base = str(server.make_url("")).rstrip("/")
    with caplog.at_level("WARNING", logger="crawler.extensions.monitors"):
        results = await _results(base, tmp_path, monitor_max_duration=0.2,
                                 monitor_interval=0.1)
    assert not results["max_duration"]["passed"]
    warnings = [r.getMessage() for r in caplog.records if "is failing" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("monitor max_duration is failing")


def test_monitor_settings_are_checked():
    from crawler.exceptions import SettingsError

    with pytest.raises(SettingsError, match="must name failure kinds"):
        Settings().merge({"monitor_max_error_rates": {"timout": 0.1}})
    with pytest.raises(SettingsError, match="share from 0 to 1"):
        Settings().merge_strings({"monitor_field_coverage": "price=1.5"})
    with pytest.raises(SettingsError, match="must be an smtp"):
        Settings().merge({"monitor_smtp": "http://mail"})
    assert Settings().merge_strings({"monitor_max_error_rates": "timeout=0.05,http_503=0.1"}
                                    ).monitor_max_error_rates == {"timeout": 0.05,
                                                                  "http_503": 0.1}


async def test_a_bad_schema_on_the_command_line_is_one_line_before_outputs(tmp_path):
    project = _project(tmp_path)
    (project / "out.jsonl").write_text("kept\n")
    proc = await spawn(sys.executable, "-m", "crawler", "run", "shop", "-a",
                       "base=http://127.0.0.1:9", "-O", "out.jsonl", "-s",
                       "monitor_item_schema=nowhere.json", cwd=project)
    _, err = await finish(proc, 60)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        "crawler: error: setting 'monitor_item_schema': cannot read nowhere.json: [Errno 2] "
        "No such file or directory: 'nowhere.json'"]
    assert (project / "out.jsonl").read_text() == "kept\n"

