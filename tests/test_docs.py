"""Every example in the documentation (docs/*.md and the README) runs.

- A Python block is imported as a module; its spiders' settings are checked as a crawl
  would check them, and a spider that starts on the demo shop (127.0.0.1:8000), or on a
  scheme of its own download handler, is crawled (the shop: a real one), through the
  commands its page shows (or `run FILE` when it shows none): exit 0 and items written.
- A JSON block is JSON; a TOML block is a project file that `python -m crawler settings`
  must accept.
- A shell block's `python -m crawler ...` commands must parse with the real argument
  parser and their `-s` settings must be valid; `pip install '.[extra]'` names a declared
  extra.
- A console block (`$ command` and what it prints) is run, and what it shows must be in
  what the command printed.

The tutorial's blocks are followed line by line by tests/test_tutorial.py instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from crawler import Settings, Spider
from crawler.commands.main import _parser
from tests.conftest import ROOT

DOCS = ROOT / "docs"
DEMO = "127.0.0.1:8000"
_FENCE = re.compile(r"^(`{3,})(\w*)[^\n]*\n(.*?)^\1[ \t]*$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    body: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def _pages() -> list[Path]:
    return [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]


def blocks(lang: str | None = None) -> list[Block]:
    found = []
    for path in _pages():
        text = path.read_text()
        if "<!-- tutorial:start -->" in text:  # test_tutorial.py follows it
            head, _, rest = text.partition("<!-- tutorial:start -->")
            inside, _, tail = rest.partition("<!-- tutorial:end -->")
            text = head + "\n" * inside.count("\n") + tail  # its lines kept, for line numbers
        for match in _FENCE.finditer(text):
            block = Block(path.name, text.count("\n", 0, match.start()) + 1, match.group(2),
                          match.group(3))
            if lang is None or block.lang == lang:
                found.append(block)
    return found


def _ids(items: list[Block]) -> list[str]:
    return [str(b) for b in items]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project(directory: Path, spiders: dict[str, str]) -> Path:
    """A project in `directory` whose spiders/ package holds `spiders` (file: source)."""
    (directory / "spiders").mkdir(parents=True)
    (directory / "spiders" / "__init__.py").write_text("")
    for name, source in spiders.items():
        (directory / "spiders" / name).write_text(source)
    return directory


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions
                if isinstance(a, argparse._SubParsersAction)).choices


# -- the demo shop every runnable example crawls ------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler", "demo", "--serve", "--port", str(port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _crawler(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, check=False,
                          env={**os.environ, "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}"})


def _on_demo(body: str, port: int) -> str:
    return body.replace(DEMO, f"127.0.0.1:{port}")


def _commands(body: str) -> Iterator[list[str]]:
    """The `python -m crawler` commands of a shell block, as argument lists."""
    text = re.sub(r"\\\n\s*", " ", body)
    for line in text.splitlines():
        line = line.split("  #")[0].strip().removesuffix("&").strip()
        if line.startswith("#"):
            continue
        for command in re.split(r"&&|;|\|", line):
            args = shlex.split(command, comments=True)
            if args[:3] == ["python", "-m", "crawler"]:
                yield args[3:]


def _file_name(body: str) -> str:
    first = body.lstrip().splitlines()[0]
    match = re.match(r"#\s*spiders/(\w+\.py)", first)
    return match.group(1) if match else "example.py"


# -- Python -------------------------------------------------------------------------------

PYTHON = blocks("python")


def _spiders(namespace: dict[str, object]) -> list[type[Spider]]:
    return [v for v in namespace.values() if isinstance(v, type) and issubclass(v, Spider)
            and v.__module__ == namespace["__name__"] and getattr(v, "name", "")]


@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_a_python_example_runs(block: Block, tmp_path: Path, demo: int) -> None:
    name = _file_name(block.body)
    path = _project(tmp_path, {name: _on_demo(block.body, demo)}) / "spiders" / name
    name = f"docs_example_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    sys.path.insert(0, str(tmp_path))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(tmp_path))
        del sys.modules[name]
    for spider in _spiders(vars(module)):
        Settings.for_spider(spider)  # a misspelt or mistyped setting fails here
        start = spider.start_urls if isinstance(spider.start_urls, list | tuple) else ()
        offline = all(url.startswith(f"http://127.0.0.1:{demo}/")  # the demo, or a
                      or not url.startswith(("http://", "https://"))  # handler of its own
                      for url in start) if start else DEMO in block.body  # start()'s
        if offline:
            _crawl_it(block, spider, path, demo, tmp_path)


def _crawl_it(block: Block, spider: type[Spider], path: Path, port: int, cwd: Path) -> None:
    shown = [args for b in blocks("bash") if b.page == block.page
             for args in _commands(_on_demo(b.body, port))
             if args[:2] == ["run", spider.name]]
    for args in shown or [["run", str(path), "-s", "max_pages=30", "-O", "items.jsonl"]]:
        done = _crawler(args, cwd)
        assert done.returncode == 0, (block, args, done.stderr[-3000:])
        assert ", 0 items" not in done.stderr.splitlines()[-1], (block, args, done.stderr)


# -- TOML -------------------------------------------------------------------------------

TOML = blocks("toml")


@pytest.mark.parametrize("block", TOML, ids=_ids(TOML))
def test_a_project_file_example_is_accepted(block: Block, tmp_path: Path) -> None:
    name = "pyproject.toml" if "pyproject.toml" in block.body.splitlines()[0] \
        else "crawler.toml"
    tomllib.loads(block.body)
    (tmp_path / name).write_text(block.body)
    done = _crawler(["settings"], tmp_path, timeout=60)
    assert done.returncode == 0, (block, done.stderr)


# -- JSON -------------------------------------------------------------------------------

JSON = blocks("json")


@pytest.mark.parametrize("block", JSON, ids=_ids(JSON))
def test_a_json_example_is_json(block: Block) -> None:
    orjson.loads(block.body)


# -- shell --------------------------------------------------------------------------------

SHELL = blocks("bash")


class _Refused(Exception):
    pass


def _parse(args: list[str]) -> argparse.Namespace:
    parser = _parser()

    def error(message: str) -> None:
        raise _Refused(message)

    for sub in [parser, *_subparsers(parser).values()]:
        sub.error = error  # type: ignore[method-assign]
    return parser.parse_args(args)


@pytest.mark.parametrize("block", SHELL, ids=_ids(SHELL))
def test_a_shell_example_parses(block: Block) -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for wanted in re.findall(r"pip install -e '\.\[([\w,]+)\]'", block.body):
        for extra in wanted.split(","):
            assert extra in extras, (block, extra)
    for args in _commands(block.body):
        try:
            parsed = _parse(args)
        except _Refused as exc:
            raise AssertionError(f"{block}: python -m crawler {shlex.join(args)}: {exc}") \
                from None
        pairs = dict(s.split("=", 1) for s in getattr(parsed, "set", None) or [])
        Settings().merge_strings(pairs)


# -- console: commands and what they print ------------------------------------------------

CONSOLE = blocks("console")


def _expected(line: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in line.split("...")))


@pytest.mark.parametrize("block", CONSOLE, ids=_ids(CONSOLE))
def test_a_console_example_prints_what_it_shows(block: Block, tmp_path: Path,
                                                demo: int) -> None:
    started = next(b for b in PYTHON if b.page == "getting-started.md")  # the books spider
    _project(tmp_path, {"books.py": _on_demo(started.body, demo)})
    runs: list[tuple[list[str], list[str]]] = []
    for line in _on_demo(block.body, demo).splitlines():
        if line.startswith("$ "):
            args = shlex.split(line[2:])
            assert args[:3] == ["python", "-m", "crawler"], (block, line)
            runs.append((args[3:], []))
        elif line.strip():
            runs[-1][1].append(line)
    assert runs, block
    for args, shown in runs:
        done = _crawler(args, tmp_path)
        printed = done.stdout + done.stderr
        for line in shown:
            assert _expected(line).search(printed), (str(block), line, printed[-2000:])


# -- the references cannot drift from the code ---------------------------------------------


def _extension() -> object:
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        return importlib.import_module("crawler_docs")
    finally:
        sys.path.remove(str(DOCS / "_ext"))


def test_every_signal_and_kind_says_what_it_means() -> None:
    from crawler import Kind, Signal

    ext = _extension()
    for enum_cls in (Signal, Kind):
        comments = ext.enum_comments(enum_cls)  # type: ignore[attr-defined]
        for member in enum_cls:
            assert comments.get(member.name), f"{enum_cls.__name__}.{member.name} has no comment"
    for member in Signal:  # "arguments; when it is sent"
        assert ";" in ext.enum_comments(Signal)[member.name], member  # type: ignore[attr-defined]


def test_the_generated_references_cover_every_setting_command_and_kind() -> None:
    from crawler import Kind, Signal

    ext = _extension()
    settings = ext.settings_reference()  # type: ignore[attr-defined]
    for field in dataclasses.fields(Settings):
        assert f"(setting-{field.name})=" in settings, field.name
    cli = ext.cli_reference()  # type: ignore[attr-defined]
    for command in _commands_of_the_parser():
        assert f"(cli-{command})=" in cli, command
    kinds = ext.kinds_reference()  # type: ignore[attr-defined]
    assert all(f"`{kind.value}`" in kinds for kind in Kind)
    signals = ext.signals_reference()  # type: ignore[attr-defined]
    assert all(f"`{signal.value}`" in signals for signal in Signal)
    errors = ext.errors_reference()  # type: ignore[attr-defined]
    assert "unknown spider …; available: …" in errors
    assert "--restart needs a job: give --job-dir DIR" in errors
    assert errors.count("\n| ") > 100  # every usage and startup error the source raises


def _commands_of_the_parser() -> set[str]:
    return set(_subparsers(_parser()))


def test_the_readme_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Commands")[1].split("\n\n")[1]
    listed = {name for cell in re.findall(r"^\| (.+?) \|", table, re.MULTILINE)
              for name in re.findall(r"`(\w+)", cell)}
    assert listed == _commands_of_the_parser()


def test_the_api_reference_documents_every_public_name() -> None:
    import crawler

    api = (DOCS / "api.md").read_text()
    missing = [name for name in crawler.__all__ if name != "__version__"
               and not re.search(rf"::\s+crawler\.{name}\b", api)]
    assert not missing, f"docs/api.md lacks {missing}"


def test_the_readme_is_an_overview() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines: topics belong in docs/"


# -- the crawl service's curl examples, against a real service ----------------------------


def test_the_crawl_service_examples_run(tmp_path: Path, demo: int) -> None:
    """service.md's curl commands, in order, against `python -m crawler serve` in a project
    holding the demo spider: every one answered below 400 (`curl -f`), `ID` being the run
    or schedule the commands before made."""
    _project(tmp_path, {"books.py": (ROOT / "spiders" / "books.py").read_text()})
    port = _free_port()
    token = "docs-token-0123456789"
    service = subprocess.Popen(
        [sys.executable, "-m", "crawler", "serve", "--port", str(port), "--token", token],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ids: dict[str, str] = {}
    ran = 0
    try:
        _wait_for(port)
        for block in blocks("bash"):
            if block.page != "service.md" or "curl" not in block.body:
                continue
            text = re.sub(r"\\\n\s*", " ", _on_demo(block.body, demo))
            text = text.replace("localhost:6800", f"127.0.0.1:{port}").replace("$T", token)
            for line in text.splitlines():
                line = line.split("  #")[0].strip()
                for command in (c.strip() for c in line.split(";")):
                    if not command.startswith("curl "):
                        continue
                    kind = "schedules" if "/api/schedules" in command else "runs"
                    command = command.replace(f"/{kind}/ID", f"/{kind}/{ids.get(kind)}")
                    done = subprocess.run(["bash", "-c", "curl -f" + command[4:]],
                                          cwd=tmp_path, capture_output=True, text=True,
                                          timeout=60, check=False)
                    assert done.returncode == 0, (block, command, done.stdout, done.stderr)
                    ran += 1
                    if (" -X POST " in command and command.rstrip("'").endswith(
                            (f"/api/{kind}", f"/api/{kind} -d"))) or ("/api/" in command \
                            and " -d " in command and "-X POST" in command \
                            and f"/api/{kind} " in command + " "):
                        ids[kind] = json.loads(done.stdout)["id"]
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()
    assert ran >= 15 and set(ids) == {"runs", "schedules"}
    assert (tmp_path / "items.jsonl").exists()


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listened on {port}"
            time.sleep(0.1)


# -- the browser page's spider, on a local replica of the site it names -------------------

_QUOTES_PAGE = """<html><head><title>Quotes</title></head><body><div id="quotes"></div>
<ul class="pager"></ul><script>
const quotes = {quotes};
document.getElementById("quotes").innerHTML = quotes.map(([text, author]) =>
  '<div class="quote"><span class="text">' + text + '</span> by <small class="author">'
  + author + '</small></div>').join("");
if ({next}) document.querySelector("ul.pager").innerHTML =
  '<li class="next"><a href="/js/page/2/">Next</a></li>';
</script></body></html>"""


def test_the_browser_example_renders_its_site(tmp_path: Path) -> None:
    """browser.md's spider, its site (quotes.toscrape.com/js/, whose quotes and next link
    exist only once its script ran) replaced by a replica on 127.0.0.1: run as written,
    it yields every quote of both pages, which plain HTTP would not see."""
    if shutil.which("chromium") is None:
        if os.environ.get("CRAWLER_REQUIRE_BROWSER"):
            pytest.fail("no chromium on PATH (CRAWLER_REQUIRE_BROWSER)")
        pytest.skip("no chromium on PATH (apt-get install chromium) for the browser example")
    pytest.importorskip("playwright.async_api", reason="Playwright drives the browser")
    site = tmp_path / "site"
    pages = {"js": [["To be", "Hamlet"], ["Or not", "Hamlet"]],
             "js/page/2": [["All the world", "Jaques"]]}
    for path, quotes in pages.items():
        (site / path).mkdir(parents=True)
        (site / path / "index.html").write_text(_QUOTES_PAGE.format(
            quotes=json.dumps(quotes), next="true" if path == "js" else "false"))
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d",
         str(site)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        _wait_for(port)
        [block] = [b for b in PYTHON if b.page == "browser.md"]
        project = _project(tmp_path / "project", {"quotes_js.py": block.body.replace(
            "https://quotes.toscrape.com/", f"http://127.0.0.1:{port}/")})
        done = _crawler(["run", "quotes_js", "-O", "quotes.jsonl", "-s", "download_delay=0"],
                        project)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    written = [json.loads(line) for line in (project / "quotes.jsonl").read_bytes().splitlines()]
    assert sorted((q["text"], q["author"]) for q in written) == \
        sorted(tuple(q) for quotes in pages.values() for q in quotes)


def test_every_usage_example_in_a_docstring_is_python() -> None:
    """The `Usage:` sections the API reference shows: each compiles as the body of a
    callback (they may `yield` and `await`), so that none rots into pseudo-code."""
    import ast
    import textwrap

    checked = 0
    for path in sorted((ROOT / "crawler").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                              | ast.AsyncFunctionDef):
                continue
            lines = (ast.get_docstring(node) or "").splitlines()
            for i, line in enumerate(lines):
                if line.strip() != "Usage:":
                    continue
                body = []
                for following in lines[i + 1:]:
                    if following.strip() and not following.startswith(" "):
                        break
                    body.append(following)
                code = textwrap.indent(textwrap.dedent("\n".join(body)), "    ")
                errors = []
                for head in ("async def", "def"):  # `yield from` needs a plain generator
                    try:
                        compile(f"{head} example(self, response):\n{code}\n    pass\n",
                                str(path), "exec")
                        break
                    except SyntaxError as exc:
                        errors.append(exc)
                else:
                    raise AssertionError(f"{path}: its Usage example: {errors[0]}")
                checked += 1
    assert checked >= 20


def test_coming_from_scrapy_names_the_settings_the_declarations_give() -> None:
    """Each Scrapy setting the names table mentions is answered, on its row, by the
    setting whose declaration carries that Scrapy name."""
    ours = {scrapy.upper(): (field.name, *field.metadata["flag"])
            for field in dataclasses.fields(Settings) for scrapy in field.metadata["scrapy"]}
    table = [line for line in (DOCS / "scrapy.md").read_text().splitlines()
             if line.startswith("| ") and line.count(" | ") >= 1]
    checked = 0
    for row in table:
        left, _, right = row[2:].partition(" | ")
        for name in re.findall(r"\b[A-Z][A-Z_]{3,}\b", left):
            if name in ours:
                assert any(f"`{spelling}" in right for spelling in ours[name]), (name, row)
                checked += 1
    assert checked >= 20
