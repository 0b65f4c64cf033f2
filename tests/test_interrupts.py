"""Signals against hanging user hooks, through the CLI in real subprocesses (issue 7.4, 7.5).

Whatever a pipeline hook does (await forever, block the loop), a second signal stops the
process, and items yielded before the hooks ran are on disk.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import finish, links, make_site, spawn

ROOT = Path(__file__).resolve().parent.parent

SPIDER = textwrap.dedent('''
    import asyncio, time
    from pathlib import Path
    from crawler import Spider

    class Hang:
        def __init__(self, where, how):
            self.where, self.how = where, how

        @classmethod
        def from_crawler(cls, crawler):
            spider = crawler.spider
            return cls(spider.hang_in, spider.how)

        async def _hang(self, spider):
            Path(spider.marker).write_text("hanging")
            if self.how == "sync":
                time.sleep(3600)
            await asyncio.sleep(3600)

        async def open_spider(self, spider):
            if self.where == "open":
                await self._hang(spider)

        async def close_spider(self, spider):
            if self.where == "close":
                await self._hang(spider)

        def process_item(self, item, spider):
            return item

    class Hooks(Spider):
        name = "hooks"
        custom_settings = {"item_pipelines": [Hang], "log_interval": 0}

        def __init__(self, base, marker, hang_in, how="async", n="20", **kw):
            super().__init__(**kw)
            self.start_urls = [base + str(i) for i in range(int(n))]
            self.marker, self.hang_in, self.how = marker, hang_in, how

        def parse(self, response):
            yield {"url": response.url}
''')


async def _start(tmp_path: Path, base: str, hang_in: str, how: str, n: int = 20,
                 ) -> asyncio.subprocess.Process:
    (tmp_path / "hooks.py").write_text(SPIDER)
    return await spawn(
        sys.executable, "-m", "crawler", "run", "hooks.py", "-a", f"base={base}", "-a", f"n={n}",
        "-a", f"marker={tmp_path / 'marker'}", "-a", f"hang_in={hang_in}", "-a", f"how={how}",
        "-O", "keep.jsonl", "--stats", "stats.json", cwd=tmp_path)


async def _wait_for(path: Path, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not await asyncio.to_thread(path.exists):
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.05)


async def _site(aiohttp_server) -> str:
    server = await aiohttp_server(make_site({f"/{i}": links() for i in range(20)}))
    return str(server.make_url("/"))


@pytest.mark.parametrize(("hang_in", "how", "sig"), [
    ("open", "async", signal.SIGINT),
    ("open", "sync", signal.SIGTERM),
    ("close", "async", signal.SIGINT),
    ("close", "sync", signal.SIGHUP),
])
async def test_a_second_signal_always_stops_a_hanging_hook(aiohttp_server, tmp_path, hang_in,
                                                            how, sig):
    (tmp_path / "keep.jsonl").write_text('{"kept": true}\n')
    proc = await _start(tmp_path, await _site(aiohttp_server), hang_in, how)
    await _wait_for(tmp_path / "marker")
    started = time.monotonic()
    proc.send_signal(sig)
    await asyncio.sleep(0.3)
    if hang_in == "open" and how == "async":  # the first signal cuts an opening hook short
        _, err = await finish(proc, 20)
        assert proc.returncode == 1, err.decode()
        assert "nothing was crawled: stopped (shutdown) before the first request" in err.decode()
    else:
        assert proc.returncode is None  # a graceful stop waits for the hook...
        proc.send_signal(sig)  # ...and a second signal does not
        _, err = await finish(proc, 20)
        assert proc.returncode == 130, err.decode()
    assert time.monotonic() - started < 10
    lines = (tmp_path / "keep.jsonl").read_text().splitlines()
    if hang_in == "open":  # the output was never truncated: nothing was crawled
        assert lines == ['{"kept": true}']
    else:  # outputs are flushed before the close hooks run: every item is on disk
        assert len(lines) == 20 and '"url"' in lines[0]


async def test_sighup_stops_gracefully_like_sigterm(aiohttp_server, tmp_path):
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.Response(text=links(), content_type="text/html")

    # 200 pages of 0.5 s, 8 at a time: a crawl of 12 s, stopped after 1 s
    server = await aiohttp_server(make_site({f"/{i}": slow for i in range(200)}))
    proc = await _start(tmp_path, str(server.make_url("/")), "none", "async", n=200)
    await asyncio.sleep(1.0)
    proc.send_signal(signal.SIGHUP)
    _, err = await finish(proc, 20)
    assert proc.returncode == 0, err.decode()
    assert "SIGHUP received: stopping" in err.decode()
    assert "crawl shutdown:" in err.decode()  # the summary
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["finish_reason"] == "shutdown"
    assert stats["items"] == len((tmp_path / "keep.jsonl").read_text().splitlines())
