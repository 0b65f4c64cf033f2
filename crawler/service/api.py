"""The crawl service's HTTP API (JSON), and the Scrapyd-compatible subset.

    GET  /api/spiders                       the project's spiders and their arguments
    POST /api/runs                          {"spider", "args", "settings", "priority"}
    GET  /api/runs?state=&spider=&limit=&offset=
    GET  /api/runs/{id}                     one run (its live stats while it runs)
    POST /api/runs/{id}/pause|resume|cancel
    GET  /api/runs/{id}/log?tail=BYTES      the end of its log
    GET  /api/runs/{id}/log/stream          the log followed (server-sent events)
    GET  /runs/{id}/status/                 a running run's live status page, through us
    GET  /                                  the web page (runs, schedules, controls)
    GET  /api/runs/{id}/items?offset=&limit=  its items, paged
    GET  /api/runs/{id}/items.jl            its output, whole
    GET|POST /api/schedules                 {"spider", "cron" | "every", "timezone",
                                             "args", "settings", "overlap", "missed"}
    GET|PUT|DELETE /api/schedules/{id}; POST /api/schedules/{id}/run (now)
    GET  /api/status, /metrics              the service; Prometheus text
    GET  /openapi.json                      this, as an OpenAPI document (openapi.py)

Scrapyd's endpoints answer in Scrapyd's shapes (`project` may be any name: the service
runs one project): `POST /schedule.json` (project, spider, `setting=KEY=VALUE` repeated,
`jobid`, `priority`, any other field a spider argument), `POST /cancel.json` (project,
job), `GET /listjobs.json`, `GET /listspiders.json`, `GET /daemonstatus.json`, and each
run's items at `/items/{project}/{spider}/{job}.jl` (its `items_url`) and log at
`/logs/{project}/{spider}/{job}.log`.

Every answer carries the status page's security headers; every change needs the token
(X-Crawler-Token, a Bearer token, or Basic authentication's password, as Scrapyd clients
send it), and off loopback every request does (crawler/extensions/status.py's guard).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from crawler.exceptions import SettingsError
from crawler.extensions.status import SECURITY_HEADERS, guard_middleware
from crawler.service.openapi import document
from crawler.service.runs import RunError, Runner
from crawler.service.schedules import Scheduler, check_schedule
from crawler.service.store import FINAL, PAUSED, PAUSING, QUEUED, RUNNING, Run
from crawler.settings import Settings

__all__ = ["Spiders", "service_app"]

_SPIDERS_TTL = 5.0  # seconds a listing of the project's spiders is reused
_PAGE = 100  # runs or items per page, unless asked
_TAIL = 64 << 10  # bytes of a log's end, unless asked
_MAX_STREAMS = 32  # logs followed at once
_MAX_WORKERS = 64  # processes of one fleet run
_PUBLIC = frozenset({"/", "/service.js", "/service.css"})  # the page: its data needs the token
_STATIC = {"/": ("service.html", "text/html"), "/service.js": ("service.js", "text/javascript"),
           "/service.css": ("service.css", "text/css")}
RUNNER = web.AppKey("runner", Runner)
STREAMS = web.AppKey("streams", list)
CLIENT = web.AppKey("client", aiohttp.ClientSession)
SCHEDULER = web.AppKey("scheduler", Scheduler)


class Spiders:
    """The project's spiders, listed by a child process (`python -m crawler list --json`):
    spider files changed since are read again, and a broken one cannot touch the service."""

    def __init__(self, project: Path, python: str) -> None:
        self._project, self._python = project, python
        self._listed: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def listing(self) -> dict[str, Any]:
        async with self._lock:
            if self._listed is None or time.monotonic() - self._listed[0] > _SPIDERS_TTL:
                proc = await asyncio.create_subprocess_exec(
                    self._python, "-m", "crawler", "list", "--json", cwd=self._project,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                out, err = await proc.communicate()
                if proc.returncode != 0:
                    last = err.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
                    return {"spiders": [], "errors": [last[0]]}
                self._listed = (time.monotonic(), orjson.loads(out))
            return self._listed[1]

    async def names(self) -> list[str]:
        return [s["name"] for s in (await self.listing())["spiders"]]


SPIDERS = web.AppKey("spiders", Spiders)


def _static(path: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    name, kind = _STATIC[path]
    body = resources.files("crawler.service").joinpath("static", name).read_bytes()

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type=kind, charset="utf-8")
    return serve


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json")


def _error(message: str, status: int) -> web.Response:
    return _json({"error": message}, status)


def _check(spider: object, args: object, settings: object) -> str | None:
    """Why a run cannot be made of these, or None."""
    if not isinstance(spider, str) or not spider:
        return "spider: a spider name is needed"
    for name, value in (("args", args), ("settings", settings)):
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str | int | float | bool)
                for k, v in value.items()):
            return f"{name}: an object of names to values is needed"
    try:
        assert isinstance(settings, dict)
        Settings().merge_strings({k: str(v) for k, v in settings.items()})
    except SettingsError as exc:
        return f"settings: {exc}"
    return None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise web.HTTPBadRequest(text='{"error": "the body is not JSON"}',
                                 content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "the body is not a JSON object"}',
                                 content_type="application/json")
    return data


def _int(request: web.Request, name: str, default: int, low: int = 0,
         high: int = 1 << 30) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f'{{"error": "{name} must be a number"}}',
                                 content_type="application/json") from None
    return min(max(value, low), high)


@web.middleware
async def _errors(request: web.Request,
                  handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                  ) -> web.StreamResponse:
    """A RunError (an unknown run, a state it cannot leave) as its JSON answer."""
    try:
        return await handler(request)
    except RunError as exc:
        return _error(str(exc), exc.status)


def service_app(runner: Runner, spiders: Spiders, scheduler: Scheduler, *, token: str,
                token_for_all: bool, hosts: frozenset[str] | None) -> web.Application:
    """The service's aiohttp application."""
    app = web.Application(middlewares=[guard_middleware(
        token, token_for_all=token_for_all, hosts=hosts, what="the service's",
        public=_PUBLIC, public_suffixes=("/status/status.js", "/status/status.css")),
        _errors], client_max_size=1 << 20)
    app[RUNNER] = runner
    app[SPIDERS] = spiders
    app[SCHEDULER] = scheduler
    app[STREAMS] = [0]

    async def client(app: web.Application) -> Any:
        app[CLIENT] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_connect=5))
        yield
        await app[CLIENT].close()

    app.cleanup_ctx.append(client)
    r = app.router
    for name in _PUBLIC:
        r.add_get(name, _static(name))
    r.add_get("/api/spiders", list_spiders)
    r.add_post("/api/runs", start_run)
    r.add_get("/api/runs", list_runs)
    r.add_get("/api/runs/{id}", get_run)
    for action in ("pause", "resume", "cancel"):
        r.add_post(f"/api/runs/{{id}}/{action}", _action(action))
    r.add_get("/api/runs/{id}/log", run_log)
    r.add_get("/api/runs/{id}/log/stream", follow_log)
    r.add_route("*", "/runs/{id}/status/{tail:.*}", status_page)
    r.add_get("/api/runs/{id}/items", run_items)
    r.add_get("/api/runs/{id}/items.jl", run_output)
    r.add_get("/api/schedules", list_schedules)
    r.add_post("/api/schedules", create_schedule)
    r.add_get("/api/schedules/{id}", get_schedule)
    r.add_put("/api/schedules/{id}", update_schedule)
    r.add_delete("/api/schedules/{id}", delete_schedule)
    r.add_post("/api/schedules/{id}/run", run_schedule)
    r.add_get("/api/status", status)
    r.add_get("/openapi.json", openapi)
    r.add_get("/metrics", metrics)
    # Scrapyd's
    r.add_post("/schedule.json", scrapyd_schedule)
    r.add_post("/cancel.json", scrapyd_cancel)
    r.add_get("/listjobs.json", scrapyd_listjobs)
    r.add_get("/listspiders.json", scrapyd_listspiders)
    r.add_get("/daemonstatus.json", scrapyd_status)
    r.add_get("/items/{project}/{spider}/{job}.jl", run_output)
    r.add_get("/logs/{project}/{spider}/{job}.log", run_log)
    return app


# -- the API -------------------------------------------------------------------------------

async def openapi(request: web.Request) -> web.Response:
    return _json(document())


async def list_spiders(request: web.Request) -> web.Response:
    return _json(await request.app[SPIDERS].listing())


async def start_run(request: web.Request) -> web.Response:
    data = await _body(request)
    spider, args, settings = data.get("spider"), data.get("args", {}), data.get("settings", {})
    priority, workers = data.get("priority", 0), data.get("workers", 1)
    problem = _check(spider, args, settings)
    if problem is None and (not isinstance(priority, int) or isinstance(priority, bool)):
        problem = "priority: a whole number is needed"
    if problem is None and (not isinstance(workers, int) or isinstance(workers, bool)
                            or not 1 <= workers <= _MAX_WORKERS):
        problem = f"workers: a number of processes, 1 to {_MAX_WORKERS}"
    if problem is None and workers > 1 and not str(settings.get("frontier", "")).startswith(
            ("redis://", "rediss://", "unix://")):
        problem = ("workers: a fleet run needs a shared frontier: settings.frontier = "
                   "redis://HOST:PORT/DB")
    if problem is not None:
        return _error(problem, 400)
    assert isinstance(spider, str)
    if spider not in await request.app[SPIDERS].names():
        return _error(f"no spider {spider!r} in the project", 404)
    run = await request.app[RUNNER].submit(
        spider, args={k: str(v) for k, v in args.items()},
        settings={k: str(v) for k, v in settings.items()}, priority=priority,
        workers=workers)
    return _json(run.public(), 201)


async def list_runs(request: web.Request) -> web.Response:
    states = [s for s in request.query.get("state", "").split(",") if s]
    limit, offset = _int(request, "limit", _PAGE, 1, 1000), _int(request, "offset", 0)
    runner = request.app[RUNNER]
    runs = await runner.store.runs(
        states=states, spider=request.query.get("spider"), limit=limit, offset=offset)
    lives = await asyncio.gather(*(_live(request, r) for r in runs))
    return _json({"runs": [{**r.public(), "live": live} for r, live in zip(runs, lives,
                                                                           strict=True)],
                  "limit": limit, "offset": offset})


async def get_run(request: web.Request) -> web.Response:
    run = await request.app[RUNNER].get(request.match_info["id"])
    return _json({**run.public(), "live": await _live(request, run)})


async def _live(request: web.Request, run: Run) -> dict[str, Any] | None:
    """A running run's numbers from its own status page, or None."""
    page = request.app[RUNNER].status_page(run.id)
    if page is None:
        return None
    port, token = page
    try:
        async with request.app[CLIENT].get(
                f"http://127.0.0.1:{port}/api/stats", headers={"X-Crawler-Token": token},
                timeout=aiohttp.ClientTimeout(total=2.0)) as response:
            data = orjson.loads(await response.read())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    keys = ("pages", "items", "failed", "retries", "pages_per_second", "queued",
            "in_flight", "elapsed", "state")
    return {k: data.get(k) for k in keys}


def _action(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def act(request: web.Request) -> web.Response:
        runner = request.app[RUNNER]
        run = await getattr(runner, name)(request.match_info["id"])
        return _json(run.public())
    return act


async def _run_of(request: web.Request) -> Run:
    run_id = request.match_info.get("id") or request.match_info["job"]
    return await request.app[RUNNER].get(run_id)


async def run_log(request: web.Request) -> web.Response:
    run = await _run_of(request)
    tail = _int(request, "tail", _TAIL, 1, 16 << 20)
    text = await asyncio.to_thread(_tail, request.app[RUNNER].paths(run.id)["log"], tail)
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def follow_log(request: web.Request) -> web.StreamResponse:
    """The log as server-sent events: its end first, then each new piece, until the run
    ends (a rotation starts again from the new file's start)."""
    runner = request.app[RUNNER]
    run = await _run_of(request)
    streams = request.app[STREAMS]
    if streams[0] >= _MAX_STREAMS:
        return _error(f"{_MAX_STREAMS} log streams are open already", 503)
    streams[0] += 1
    try:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store",
                                               **SECURITY_HEADERS})
        await response.prepare(request)
        path = runner.paths(run.id)["log"]
        position = max(0, await asyncio.to_thread(_size, path) - _TAIL)
        with contextlib.suppress(ConnectionError):
            while True:
                text, position = await asyncio.to_thread(_read_from, path, position)
                if text:
                    await response.write(b"data: " + orjson.dumps(text) + b"\n\n")
                current = await runner.store.get(run.id)
                if current is None or (current.state in FINAL and not text):
                    await response.write(b"event: closed\ndata: {}\n\n")
                    break
                await asyncio.sleep(0.5)
        return response
    finally:
        streams[0] -= 1


async def status_page(request: web.Request) -> web.StreamResponse:
    """A running run's own status page, through the service (its token added here)."""
    runner = request.app[RUNNER]
    run = await _run_of(request)
    page = runner.status_page(run.id)
    if page is None:
        return _error(f"run {run.id} is {run.state}: its status page is up while it runs",
                      404)
    port, token = page
    url = f"http://127.0.0.1:{port}/{request.match_info['tail']}"
    session = request.app[CLIENT]
    headers = {"X-Crawler-Token": token}
    try:
        async with session.request(request.method, url, headers=headers,
                                   data=await request.read() or None) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                **{k: v for k, v in upstream.headers.items()
                   if k.lower() in ("content-type", "cache-control")}, **SECURITY_HEADERS})
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            return response
    except aiohttp.ClientError as exc:
        return _error(f"run {run.id}'s status page does not answer: {exc}", 502)


async def run_items(request: web.Request) -> web.Response:
    run = await _run_of(request)
    limit, offset = _int(request, "limit", _PAGE, 1, 1000), _int(request, "offset", 0)
    runner = request.app[RUNNER]
    files = await asyncio.to_thread(runner.outputs, run.id)
    items = await asyncio.to_thread(_lines, files, offset, limit)
    return _json({"items": items, "offset": offset, "limit": limit})


async def run_output(request: web.Request) -> web.StreamResponse:
    run = await _run_of(request)
    files = await asyncio.to_thread(request.app[RUNNER].outputs, run.id)
    if len(files) == 1:
        return web.FileResponse(files[0], headers={"Content-Type": "application/x-ndjson"})
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           **SECURITY_HEADERS})
    await response.prepare(request)
    for path in files:  # a fleet's: one file per worker, one after the other
        with contextlib.suppress(OSError):
            async for chunk in _chunks(path):
                await response.write(chunk)
    await response.write_eof()
    return response


async def _chunks(path: Path) -> Any:
    with await asyncio.to_thread(path.open, "rb") as file:
        while chunk := await asyncio.to_thread(file.read, 1 << 16):
            yield chunk


async def status(request: web.Request) -> web.Response:
    runner = request.app[RUNNER]
    counts = await runner.store.count()
    return _json({"running": runner.running(), "max_runs": runner.max_runs,
                  "runs": counts, "disk_bytes": await asyncio.to_thread(_disk, runner.data)})


async def metrics(request: web.Request) -> web.Response:
    runner = request.app[RUNNER]
    counts = await runner.store.count()
    lines = ["# HELP crawler_service_runs Runs the service keeps, by state.",
             "# TYPE crawler_service_runs gauge"]
    for state in sorted({*counts, QUEUED, RUNNING, PAUSED}):
        lines.append(f'crawler_service_runs{{state="{state}"}} {counts.get(state, 0)}')
    per_spider: dict[str, list[int]] = {}
    for run in await runner.store.runs(limit=1 << 30):
        totals = per_spider.setdefault(run.spider, [0, 0])
        totals[0] += int(run.stats.get("pages", 0) or 0)
        totals[1] += int(run.stats.get("items", 0) or 0)
    for name, help_text, index in (("pages", "Pages fetched by finished runs", 0),
                                   ("items", "Items written by finished runs", 1)):
        lines += [f"# HELP crawler_service_{name}_total {help_text}, by spider.",
                  f"# TYPE crawler_service_{name}_total counter"]
        lines += [f'crawler_service_{name}_total{{spider="{s}"}} {t[index]}'
                  for s, t in sorted(per_spider.items())]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain",
                        charset="utf-8")


# -- schedules -----------------------------------------------------------------------------

async def list_schedules(request: web.Request) -> web.Response:
    schedules = await request.app[SCHEDULER].store.schedules()
    return _json({"schedules": [s.public() for s in schedules]})


async def create_schedule(request: web.Request) -> web.Response:
    data = await _body(request)
    spider = data.get("spider")
    problem = _check(spider, data.get("args", {}), data.get("settings", {})) \
        or check_schedule(data)
    if problem is not None:
        return _error(problem, 400)
    if spider not in await request.app[SPIDERS].names():
        return _error(f"no spider {spider!r} in the project", 404)
    schedule = await request.app[SCHEDULER].create(data)
    return _json(schedule.public(), 201)


async def get_schedule(request: web.Request) -> web.Response:
    schedule = await request.app[SCHEDULER].get(request.match_info["id"])
    return _json(schedule.public())


async def update_schedule(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    current = (await scheduler.get(request.match_info["id"])).public()
    data = await _body(request)
    merged = {**current, **data}
    if "cron" in data and "every" not in data:
        merged["every"] = None
    if "every" in data and "cron" not in data:
        merged["cron"] = None
    problem = _check(merged["spider"], merged["args"], merged["settings"]) \
        or check_schedule(merged)
    if problem is not None:
        return _error(problem, 400)
    schedule = await scheduler.update(request.match_info["id"], merged)
    return _json(schedule.public())


async def delete_schedule(request: web.Request) -> web.Response:
    await request.app[SCHEDULER].delete(request.match_info["id"])
    return _json({"deleted": request.match_info["id"]})


async def run_schedule(request: web.Request) -> web.Response:
    run = await request.app[SCHEDULER].run_now(request.match_info["id"])
    return _json(run.public(), 201)


# -- Scrapyd's endpoints -------------------------------------------------------------------

def _scrapyd_error(message: str) -> web.Response:
    return _json({"status": "error", "message": message,
                  "node_name": socket.gethostname()})


def _when(stamp: float | None) -> str | None:
    """A time as Scrapyd writes it: "2024-01-01 12:00:00.000000" (local time)."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S.%f")


async def _form(request: web.Request) -> Any:
    """A Scrapyd request's form fields; None when the body cannot be read as a form."""
    try:
        return await request.post()
    except ValueError:  # a multipart body without its boundary, a broken encoding
        return None


async def scrapyd_schedule(request: web.Request) -> web.Response:
    form = await _form(request)
    if form is None:
        return _scrapyd_error("the body is not a form (application/x-www-form-urlencoded)")
    spider = str(form.get("spider", ""))
    if not spider:
        return _scrapyd_error("'spider' parameter is required")
    settings: dict[str, str] = {}
    for value in form.getall("setting", []):
        name, sep, setting = str(value).partition("=")
        if not sep:
            return _scrapyd_error(f"setting {value!r} is not KEY=VALUE")
        settings[name] = setting
    args = {k: str(v) for k, v in form.items()
            if k not in ("project", "spider", "setting", "jobid", "priority", "_version")}
    problem = _check(spider, args, settings)
    if problem is not None:
        return _scrapyd_error(problem)
    if spider not in await request.app[SPIDERS].names():
        return _scrapyd_error(f"spider {spider!r} not found")
    try:
        priority = int(float(str(form.get("priority", 0))))
    except ValueError:
        return _scrapyd_error("priority must be a number")
    job = str(form["jobid"]) if form.get("jobid") else None
    if job is not None and await request.app[RUNNER].store.get(job) is not None:
        return _scrapyd_error(f"jobid {job!r} exists already")
    run = await request.app[RUNNER].submit(spider, args=args, settings=settings,
                                           priority=priority, run_id=job)
    return _json({"node_name": socket.gethostname(), "status": "ok", "jobid": run.id})


async def scrapyd_cancel(request: web.Request) -> web.Response:
    form = await _form(request)
    if form is None:
        return _scrapyd_error("the body is not a form (application/x-www-form-urlencoded)")
    job = str(form.get("job", ""))
    if not job:
        return _scrapyd_error("'job' parameter is required")
    runner = request.app[RUNNER]
    run = await runner.store.get(job)
    if run is None:
        return _scrapyd_error(f"job {job!r} not found")
    before = "pending" if run.state in (QUEUED, PAUSED) else "running" \
        if run.state not in FINAL else "finished"
    if run.state not in FINAL:
        await runner.cancel(job)
    return _json({"node_name": socket.gethostname(), "status": "ok", "prevstate": before})


async def scrapyd_listjobs(request: web.Request) -> web.Response:
    runner = request.app[RUNNER]
    project = request.query.get("project", "default")
    pending, running, finished = [], [], []
    for run in await runner.store.runs(limit=1 << 30):
        entry = {"project": project, "spider": run.spider, "id": run.id}
        if run.state in (QUEUED, PAUSED):
            pending.append(entry)
        elif run.state in FINAL:
            finished.append({**entry, "start_time": _when(run.started),
                             "end_time": _when(run.finished),
                             "items_url": f"/items/{project}/{run.spider}/{run.id}.jl",
                             "log_url": f"/logs/{project}/{run.spider}/{run.id}.log"})
        else:
            running.append({**entry, "pid": run.pid, "start_time": _when(run.started)})
    return _json({"node_name": socket.gethostname(), "status": "ok", "pending": pending,
                  "running": running, "finished": finished})


async def scrapyd_listspiders(request: web.Request) -> web.Response:
    return _json({"node_name": socket.gethostname(), "status": "ok",
                  "spiders": await request.app[SPIDERS].names()})


async def scrapyd_status(request: web.Request) -> web.Response:
    counts = await request.app[RUNNER].store.count()
    return _json({"node_name": socket.gethostname(), "status": "ok",
                  "pending": counts.get(QUEUED, 0) + counts.get(PAUSED, 0),
                  "running": sum(counts.get(s, 0) for s in (RUNNING, PAUSING, "cancelling")),
                  "finished": sum(counts.get(s, 0) for s in FINAL)})


# -- files (in a thread) -------------------------------------------------------------------

def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, position: int) -> tuple[str, int]:
    """What the log holds past `position` (from its start again when it was rotated)."""
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            end = file.tell()
            if end < position:
                position = 0
            file.seek(position)
            data = file.read(1 << 20)
            return data.decode(errors="replace"), position + len(data)
    except OSError:
        return "", position


def _tail(path: Path, size: int) -> str:
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            end = file.tell()
            file.seek(max(0, end - size))
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def _lines(paths: list[Path], offset: int, limit: int) -> list[Any]:
    """Items `offset` to `offset + limit` of the outputs, read in order."""
    items: list[Any] = []
    n = 0
    for path in paths:
        try:
            with path.open("rb") as file:
                for line in file:
                    if len(items) >= limit:
                        return items
                    if n >= offset:
                        try:
                            items.append(orjson.loads(line))
                        except orjson.JSONDecodeError:
                            break  # a line being written
                    n += 1
        except OSError:
            continue
    return items


def _disk(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass
    return total



