"""Smoke versions of the benchmarks: completeness, never speed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.conftest import finish, spawn

ROOT = Path(__file__).resolve().parent.parent


async def _run(*args: str) -> tuple[int, str]:
    proc = await spawn(sys.executable, *args, cwd=ROOT)
    out, err = await finish(proc, 110)
    return proc.returncode or 0, out.decode() + err.decode()


async def test_crawler_bench_command_crawls_every_page():
    code, out = await _run("-m", "crawler", "bench", "--pages", "400", "--concurrency", "16")
    assert code == 0, out
    match = re.search(r"crawled (\d+) pages, wrote (\d+) items in [\d.]+s: ([\d,]+) pages/s", out)
    assert match, out
    assert match.group(1) == match.group(2) == "400"


async def test_suite_smoke_every_contender_sees_every_page_once():
    code, out = await _run("-m", "benchmarks.run", "--smoke")
    assert code == 0, out
    assert '"ours": {"complete": true, "exactly_once": true}' in out
    assert '"floor": {"complete": true, "exactly_once": true}' in out
