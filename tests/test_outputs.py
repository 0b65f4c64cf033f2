"""Outputs through the CLI: never corrupted, never truncated by a failure (issue 7.6-7.12)."""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import finish, links, make_site, needs_unshare, spawn

ROOT = Path(__file__).resolve().parent.parent

SPIDER = textwrap.dedent('''
    from crawler import Spider

    class Pages(Spider):
        name = "pages"
        custom_settings = {"log_interval": 0}

        def __init__(self, base, n="20", pad="0", odd="", **kw):
            super().__init__(**kw)
            self.start_urls = [f"{base}{i}" for i in range(int(n))]
            self.pad, self.odd = int(pad), odd

        def parse(self, response):
            tail = response.url.rsplit("/", 1)[1]
            n = int(tail) if tail.isdigit() else -1
            if self.odd and n % 5 == 0:
                deep = []
                for _ in range(300):
                    deep = [deep]
                yield {"n": n, "deep": deep}  # too deep to write in any format
            if self.odd and n % 5 == 1:
                yield {"n": n, "big": 2 ** 70}  # exact in every format
            yield {"n": n, "pad": "x" * self.pad}
            if n == 0:
                yield response.follow("/extra")
''')

KEEP = '{"kept": true}\n'


async def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
                  prefix: tuple[str, ...] = ()) -> tuple[int, str, str]:
    proc = await spawn(*prefix, sys.executable, "-m", "crawler", *args, cwd=cwd, env=env)
    out, err = await finish(proc, 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def base(aiohttp_server) -> str:
    pages = {f"/{i}": links() for i in range(100)} | {"/extra": links()}
    server = await aiohttp_server(make_site(pages))
    return str(server.make_url("/"))


def _spider(tmp_path: Path) -> str:
    (tmp_path / "pages.py").write_text(SPIDER)
    return "pages.py"


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("crawler: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("bad_output", "message"), [
    ("afile/x.jsonl", "cannot write afile/x.jsonl: Not a directory"),
    ("adir", "it is a directory"),
    ("/proc/x.jsonl", "cannot write /proc/x.jsonl"),
    ("/sys/x.jsonl", "cannot write /sys/x.jsonl"),
    ("s3://bucket/x.jsonl", "s3:// outputs are not supported"),
    ("x.yaml", "unknown output format"),
    ("items.txt:yaml", "unknown output format 'yaml' in 'items.txt:yaml'"),
    ("garbage.json", "not a JSON array"),
])
async def test_a_bad_output_is_one_line_and_truncates_nothing(base, tmp_path, bad_output,
                                                              message):
    (tmp_path / "keep.jsonl").write_text(KEEP)
    (tmp_path / "afile").write_text("a file")
    (tmp_path / "adir").mkdir()
    (tmp_path / "garbage.json").write_text("garbage]")
    flag = "-o" if bad_output == "garbage.json" else "-O"
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}",
                                 "-O", "keep.jsonl", flag, bad_output, cwd=tmp_path)
    assert code == 2
    assert message in _one_error_line(err)
    assert (tmp_path / "keep.jsonl").read_text() == KEEP
    assert (tmp_path / "garbage.json").read_text() == "garbage]"
    assert not (tmp_path / "s3:").exists()


PIPELINES = textwrap.dedent('''
    class FailsInInit:
        def __init__(self):
            raise RuntimeError("no database")
        def process_item(self, item, spider):
            return item

    class FailsToOpen:
        def open_spider(self, spider):
            raise ConnectionError("database down")
        def process_item(self, item, spider):
            return item
''')


@pytest.mark.parametrize(("pipeline", "message"), [
    ("FailsInInit", "cannot build item pipeline FailsInInit: RuntimeError: no database"),
    ("FailsToOpen", "FailsToOpen.open_spider() failed: ConnectionError: database down"),
    ("NoSuchPipeline", "cannot import item pipeline"),
])
async def test_a_failing_pipeline_is_one_line_before_any_output_is_touched(
        base, tmp_path, pipeline, message):
    (tmp_path / "keep.jsonl").write_text(KEEP)
    (tmp_path / "mypipes.py").write_text(PIPELINES)
    code, _, err = await run_cli(
        "run", _spider(tmp_path), "-a", f"base={base}", "-O", "keep.jsonl",
        "-s", f"item_pipelines=mypipes.{pipeline}", cwd=tmp_path,
        env={"PYTHONPATH": f"{ROOT}:{tmp_path}"})
    assert code == 2
    assert message in _one_error_line(err)
    assert (tmp_path / "keep.jsonl").read_text() == KEEP


@pytest.mark.parametrize("outputs", [
    ["-o", "a.jsonl", "-O", "a.jsonl"],
    ["-o", "a.csv", "-o", "./a.csv"],
    ["-o", "-", "--overwrite-output=-:csv"],
    ["-o", "a.jsonl", "--stats", "a.jsonl"],
])
async def test_the_same_output_twice_is_a_usage_error(base, tmp_path, outputs):
    (tmp_path / "a.jsonl").write_text(KEEP)
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}", *outputs,
                                 cwd=tmp_path)
    assert code == 2
    assert "given twice" in _one_error_line(err) or "also an output" in err
    assert (tmp_path / "a.jsonl").read_text() == KEEP
    assert not (tmp_path / "a.csv").exists()


async def test_an_unwritable_item_is_dropped_from_every_output_alike(base, tmp_path):
    code, _, err = await run_cli(
        "run", _spider(tmp_path), "-a", f"base={base}", "-a", "odd=yes", "-O", "a.jsonl",
        "-O", "a.csv", "-O", "a.json", "--stats", "stats.json", cwd=tmp_path)
    assert code == 0, err
    jsonl = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    rows = list(csv.DictReader((tmp_path / "a.csv").read_text().splitlines()))
    array = json.loads((tmp_path / "a.json").read_text())
    # 20 pages, /extra and 4 big ints; none of the 4 deep ones
    assert len(jsonl) == len(rows) == len(array) == 25
    assert sorted(i.get("big", 0) for i in jsonl)[-1] == 2**70
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["items"] == 25 and stats["errors"] == {"item_serialization": 4}
    assert "cannot write an item from http" in err and "nested deeper" in err
    assert stats["pages"] == 21  # the callback went on: /0's link was followed


async def test_output_forms(base, tmp_path):
    uri = f"file://{tmp_path}/by-uri.jsonl"
    code, out, err = await run_cli(
        "run", _spider(tmp_path), "-a", f"base={base}", "-a", "n=3", "-o", "-",
        "-O", uri, "-O", "out/%(name)s-%(time)s.csv", "-O", "items.txt:json", cwd=tmp_path)
    assert code == 0, err
    assert sorted(json.loads(x)["n"] for x in out.splitlines()) == [-1, 0, 1, 2]
    assert len((tmp_path / "by-uri.jsonl").read_text().splitlines()) == 4
    [stamped] = (tmp_path / "out").iterdir()
    assert stamped.name.startswith("pages-20") and stamped.suffix == ".csv"
    assert len(json.loads((tmp_path / "items.txt").read_text())) == 4
    assert not (tmp_path / "-").exists() and not (tmp_path / "file:").exists()
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}",
                                 "-O", "%(nope)s.jsonl", cwd=tmp_path)
    assert code == 2 and "unknown placeholder %(nope)s" in _one_error_line(err)


async def test_appending_maps_csv_by_its_header_and_adds_missing_newlines(base, tmp_path):
    (tmp_path / "a.csv").write_text("pad,n,gone\n,99,x")  # other order, no final newline
    (tmp_path / "a.jsonl").write_text('{"n": 99}')
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}", "-a", "n=2",
                                 "-o", "a.csv", "-o", "a.jsonl", cwd=tmp_path)
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "a.csv").read_text().splitlines()))
    assert rows[0] == {"pad": "", "n": "99", "gone": "x"}
    assert sorted(r["n"] for r in rows[1:]) == ["-1", "0", "1"]
    assert {r["gone"] for r in rows[1:]} == {""}
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert [json.loads(x)["n"] for x in lines][:1] == [99] and len(lines) == 4


@needs_unshare
async def test_a_full_disk_stops_cleanly_and_leaves_valid_files(base, tmp_path):
    """A 512 KiB tmpfs fills up mid-crawl: each file on it ends at its last complete record
    (the array still closed), the output on another disk keeps every item, the stats are
    written, and the exit code says it failed."""
    full, saved = tmp_path / "full", tmp_path / "saved"
    full.mkdir()
    saved.mkdir()
    crawl = " ".join([
        sys.executable, "-m", "crawler", "run", _spider(tmp_path), "-a", f"base={base}",
        "-a", "n=250", "-a", "pad=2000", "-O", "full/a.json", "-O", "full/a.jsonl",
        "-O", "full/a.csv", "-O", "full/a.xml", "-O", "healthy.jsonl", "--stats", "stats.json"])
    script = (f"mount -t tmpfs -o size=512k tmpfs {full} && {{ {crawl}; echo $? > code; }}; "
              f"cp {full}/* {saved}/")
    code, _, err = await run_cli(prefix=("unshare", "-rm", "sh", "-c", script), cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "code").read_text().strip() == "1", err
    errors = [line for line in err.splitlines() if line.startswith("crawler: error:")]
    assert errors and all("No space left on device" in e for e in errors), err
    assert "Traceback" not in err and "spider error" not in err
    assert "crawl output_failed:" in err  # the summary
    array = json.loads((saved / "a.json").read_text())
    jsonl = [json.loads(x) for x in (saved / "a.jsonl").read_text().splitlines()]
    rows = list(csv.reader((saved / "a.csv").read_text().splitlines()))
    elements = [item.findtext("pad") for item in ElementTree.parse(saved / "a.xml").getroot()]
    assert array and jsonl and len(rows) > 1 and elements
    assert all(len(pad) == 2000 for pad in elements)
    assert all(len(r["pad"]) == 2000 for r in [*array, *jsonl])
    assert all(len(row) == 2 and len(row[1]) in (3, 2000) for row in rows)
    healthy = [json.loads(x) for x in (tmp_path / "healthy.jsonl").read_text().splitlines()]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["finish_reason"] == "output_failed"
    assert len(healthy) == stats["items"] >= max(len(array), len(jsonl), len(rows) - 1,
                                                 len(elements))
    outputs = stats["outputs"]
    assert outputs["healthy.jsonl"] == {"items": len(healthy)}
    # each file on the full disk says how many items it holds; the one that met the full
    # disk first (which one is timing) says why it stopped
    counts = {"a.json": len(array), "a.jsonl": len(jsonl), "a.csv": len(rows) - 1,
              "a.xml": len(elements)}
    assert {name: outputs[f"full/{name}"]["items"] for name in counts} == counts
    assert any(outputs[f"full/{name}"].get("error") == "[Errno 28] No space left on device"
               for name in counts)


async def test_a_named_pipe_without_a_reader_is_refused_and_with_one_is_written(base,
                                                                               tmp_path):
    import os

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}", "-o",
                                 str(fifo), cwd=tmp_path)
    lines = err.strip().splitlines()
    assert code == 2 and lines == [f"crawler: error: cannot write {fifo}: it is a named "
                                   "pipe with no reader"], lines
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader: written in order
    try:
        code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}", "-a",
                                     "n=5", "-o", str(fifo), cwd=tmp_path)
        out = os.read(reader, 1 << 20)  # (six short lines: within the pipe's buffer)
    finally:
        os.close(reader)
    assert code == 0, err
    assert sorted(json.loads(x)["n"] for x in out.splitlines()) == [-1, 0, 1, 2, 3, 4]


async def test_the_stats_file_follows_a_symlink_and_a_pipe_is_refused(base, tmp_path):
    import os

    (tmp_path / "real").mkdir()
    link = tmp_path / "stats.json"
    link.symlink_to(tmp_path / "real" / "stats.json")
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}", "-a", "n=2",
                                 "--stats", str(link), cwd=tmp_path)
    assert code == 0, err
    assert link.is_symlink()  # kept: the stats went where it points
    assert json.loads((tmp_path / "real" / "stats.json").read_text())["pages"] == 3
    fifo = tmp_path / "stats.pipe"
    os.mkfifo(fifo)
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}", "--stats",
                                 str(fifo), cwd=tmp_path)
    assert code == 2 and "it is a named pipe" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("same", ["-o", "--stats"])
async def test_a_log_file_that_is_also_an_output_is_refused(base, tmp_path, same):
    target = tmp_path / "same.jsonl"
    target.write_text(KEEP)
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}", same,
                                 str(target), "--log-file", str(target), cwd=tmp_path)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--log-file" in lines[0], lines
    assert target.read_text() == KEEP


async def test_a_project_declares_its_outputs_in_feeds(base, tmp_path):
    (tmp_path / "crawler.toml").write_text(textwrap.dedent('''
        feed_indent = 2
        [feeds."out/%(name)s.json"]
        format = "json"
        [feeds."out/items.csv"]
        fields = ["n"]
        overwrite = true
        [feeds."out/lines.txt"]
        format = "jsonlines"
    '''))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "items.csv").write_text("old\n")
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}", "-a", "n=3",
                                 cwd=tmp_path)
    assert code == 0, err
    array = (tmp_path / "out" / "pages.json").read_text()
    assert '\n  "n": 0,' in array or '\n  "n":' in array  # indented by feed_indent
    assert sorted(item["n"] for item in json.loads(array)) == [-1, 0, 1, 2]
    rows = list(csv.DictReader((tmp_path / "out" / "items.csv").read_text().splitlines()))
    assert sorted(int(r["n"]) for r in rows) == [-1, 0, 1, 2] and set(rows[0]) == {"n"}
    lines = (tmp_path / "out" / "lines.txt").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])
    assert not (tmp_path / "output").exists()  # no default output beside them
    # -o on the command line replaces the project's feeds
    code, _, err = await run_cli("run", _spider(tmp_path), "-a", f"base={base}", "-a", "n=1",
                                 "-O", "only.jsonl", cwd=tmp_path)
    assert code == 0, err
    assert len((tmp_path / "only.jsonl").read_text().splitlines()) == 2
    assert len(json.loads((tmp_path / "out" / "pages.json").read_text())) == 4  # untouched
