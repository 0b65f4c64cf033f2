"""No credential leaves its place: real crawls through the CLI whose requests carry a URL
password, an Authorization header, a secret-named header, cookies (their own and a
site's), a proxy password, with a PostgreSQL password in the output's query and a Redis
password in the frontier's URL. Every channel a user or an attacker can read is grepped
for each secret: standard output and error at DEBUG, the log file, the stats file, the
status page's JSON, metrics and event stream, the output files, the job database (and
its write-ahead log) after a kill -9, every key and value in Redis after a kill -9, and
the `status` command."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import textwrap
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.conftest import finish, spawn

SECRETS = {
    "url": "Url-S3cret-1",
    "authorization": "Auth-S3cret-2",
    "api_key": "Key-S3cret-3",
    "cookie": "Cookie-S3cret-4",
    "site_cookie": "Site-S3cret-5",
    "proxy": "Proxy-S3cret-6",
    "postgres": "Pg-S3cret-7",
    "redis": "Redis-S3cret-8",
}

SPIDER = '''
    from crawler import Request, Spider

    class Keeper(Spider):
        name = "keeper"
        custom_settings = {"log_interval": 1, "concurrency": 4, "obey_robots": False,
                           "retry_backoff_base": 0.01, "cookies_enabled": True}

        def __init__(self, base, proxy, url_secret, auth, key, cookie, **kw):
            super().__init__(**kw)
            self.base, self.proxy = base, proxy
            self.auth, self.key, self.cookie = auth, key, cookie
            self.with_password = base.replace("://", f"://user:{url_secret}@")

        async def start(self):
            yield Request(self.base + "/login", callback=self.parse)
            yield Request(self.with_password + "/p/0", callback=self.parse)
            yield Request("http://proxied.test/p/1", callback=self.parse,
                          meta={"proxy": self.proxy})

        def parse(self, response):
            yield {"url": response.url}
            for link in response.css("a"):
                yield response.follow(link, callback=self.parse, headers={
                    "Authorization": f"Bearer {self.auth}", "X-Api-Key": self.key},
                    cookies={"own": self.cookie})
'''


def _site(count: int, delay: float) -> web.Application:
    """/login sets a cookie; /p/i links to the next pages, answers 503 once for each page
    ending in 7 (a retry stores the request again), and 404 for /p/missing."""
    app = web.Application()
    seen: set[str] = set()

    async def login(request: web.Request) -> web.Response:
        response = web.Response(text='<a href="/p/1">1</a>', content_type="text/html")
        response.set_cookie("session", SECRETS["site_cookie"])
        return response

    async def page(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        i = request.match_info["i"]
        if i == "missing":
            raise web.HTTPNotFound()
        if i.endswith("7") and i not in seen:
            seen.add(i)
            raise web.HTTPServiceUnavailable()
        n = int(i)
        links = "".join(f'<a href="/p/{m}">{m}</a>' for m in (2 * n + 1, 2 * n + 2)
                        if m < count)
        return web.Response(text=f"<html><body>{links}<a href='/p/missing'>x</a>"
                                 "</body></html>", content_type="text/html")

    app.router.add_get("/login", login)
    app.router.add_get("/p/{i}", page)
    return app


def _proxy() -> web.Application:
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text="<html><title>proxied</title></html>",
                            content_type="text/html")

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _project(tmp_path: Path) -> Path:
    (tmp_path / "spiders").mkdir()
    (tmp_path / "spiders" / "__init__.py").write_text("")
    (tmp_path / "spiders" / "keeper.py").write_text(textwrap.dedent(SPIDER))
    return tmp_path


def _args(base: str, proxy_port: int) -> list[str]:
    return ["-a", f"base={base}",
            "-a", f"proxy=http://agent:{SECRETS['proxy']}@127.0.0.1:{proxy_port}",
            "-a", f"url_secret={SECRETS['url']}", "-a", f"auth={SECRETS['authorization']}",
            "-a", f"key={SECRETS['api_key']}", "-a", f"cookie={SECRETS['cookie']}"]


def _leaks(where: str, text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [f"{name} in {where}" for name, secret in SECRETS.items()
            if secret.encode() in data]


async def _read_status(port: int, token: str) -> list[tuple[str, bytes]]:
    found = []
    async with aiohttp.ClientSession() as session:
        for path in ("/api/stats", "/metrics"):
            async with session.get(f"http://127.0.0.1:{port}{path}?token={token}") as r:
                found.append((path, await r.read()))
        async with session.get(f"http://127.0.0.1:{port}/api/events?token={token}") as r:
            found.append(("/api/events", await r.content.readuntil(b"\n\n")))
    return found


async def test_no_secret_appears_in_any_output_of_a_job_dir_crawl(aiohttp_server, tmp_path,
                                                                  postgres_url):
    server = await aiohttp_server(_site(600, 0.05))
    proxy = await aiohttp_server(_proxy())
    base = str(server.make_url("")).rstrip("/")
    project = _project(tmp_path)
    table = f"secrets_{uuid.uuid4().hex[:8]}"
    pg = f"{postgres_url}?table={table}&key=url&password={SECRETS['postgres']}"
    command = [sys.executable, "-m", "crawler", "run", "keeper", *_args(base, proxy.port),
               "--job-dir", "job", "-o", "out.jsonl", "-o", pg, "--stats", "stats.json",
               "--changes", "changes.jsonl",
               "--status-port", "0", "-L", "DEBUG"]
    proc = await spawn(*command, "--log-file", "log1.txt", cwd=project)
    status: list[tuple[str, bytes]] = []
    for _ in range(200):  # the page's URL is logged at start
        await asyncio.sleep(0.05)
        log = (project / "log1.txt").read_text() if (project / "log1.txt").exists() else ""
        match = re.search(r"status page: http://127\.0\.0\.1:(\d+)/\?token=(\S+)", log)
        if match:
            await asyncio.sleep(1.5)  # retries and failures happen
            status = await _read_status(int(match.group(1)), match.group(2))
            break
    assert status, "no status page"
    proc.send_signal(signal.SIGKILL)  # rows with the requests' data stay in the job
    await proc.wait()
    leaks = [leak for path, body in status for leak in _leaks(path, body)]
    for name in ("job.sqlite3", "job.sqlite3-wal"):
        if (project / "job" / name).exists():
            leaks += _leaks(name, (project / "job" / name).read_bytes())
    proc = await spawn(*command, "--log-file", "log2.txt", cwd=project)
    out, err = await finish(proc, 120)
    assert proc.returncode == 0, err.decode()
    leaks += _leaks("stdout", out) + _leaks("stderr", err)
    for name in ("log1.txt", "log2.txt", "stats.json", "out.jsonl", "changes.jsonl"):
        leaks += _leaks(name, (project / name).read_bytes())
    for name in ("job.sqlite3", "job.sqlite3-wal"):
        if (project / "job" / name).exists():
            leaks += _leaks(name, (project / "job" / name).read_bytes())
    assert leaks == []
    stats = json.loads((project / "stats.json").read_text())
    assert stats["pages"] > 100 and stats["retries"] > 0 and stats["errors"]["http_404"] > 0
    assert any("password=***" in name for name in stats["outputs"])  # the masked name
    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetchval(f"SELECT count(*) FROM {table}")
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    assert rows == stats["items"]


async def test_no_secret_reaches_redis_or_the_fleets_output(aiohttp_server, tmp_path):
    from tests.test_redis import _free_port, _redis_server_command, _start_redis

    port = _free_port()
    redis_server = await _start_redis(_redis_server_command(
        port, tmp_path, "--appendonly", "no", "--requirepass", SECRETS["redis"]), port)
    try:
        server = await aiohttp_server(_site(600, 0.05))
        proxy = await aiohttp_server(_proxy())
        base = str(server.make_url("")).rstrip("/")
        (tmp_path / "p").mkdir()
        project = _project(tmp_path / "p")
        url = f"redis://:{SECRETS['redis']}@127.0.0.1:{port}/0"
        proc = await spawn(sys.executable, "-m", "crawler", "run", "keeper",
                           *_args(base, proxy.port), "--frontier", url, "-o", "out.jsonl",
                           "--stats", "stats.json", "-L", "DEBUG", cwd=project)
        await asyncio.sleep(3.0)
        proc.send_signal(signal.SIGKILL)
        _, err = await proc.communicate()
        leaks = _leaks("stderr", err)
        import redis

        client = redis.Redis.from_url(url)
        try:
            for key in client.scan_iter("*"):
                leaks += _leaks(f"key {key!r}", key)
                kind = client.type(key)
                value = {b"string": client.get, b"hash": client.hgetall,
                         b"zset": lambda k: client.zrange(k, 0, -1),
                         b"set": client.smembers, b"list": lambda k: client.lrange(k, 0, -1)
                         }[kind](key)
                leaks += _leaks(f"key {key!r}", repr(value))
        finally:
            client.close()
        status = await spawn(sys.executable, "-m", "crawler", "status", "keeper",
                             "--frontier", url, cwd=project)
        out, err = await finish(status, 30)
        assert status.returncode == 0, err.decode()
        leaks += _leaks("status", out) + _leaks("status stderr", err)
        bad = await spawn(sys.executable, "-m", "crawler", "status", "keeper", "--frontier",
                          url.replace(f"{port}", f"{_free_port()}"), cwd=project)
        out, err = await finish(bad, 30)
        assert bad.returncode == 2 and b"***" in err
        leaks += _leaks("status error", out + err)
        assert leaks == []
    finally:
        redis_server.kill()
        await redis_server.wait()
