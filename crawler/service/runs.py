"""Runs as processes: each run is `python -m crawler run SPIDER` with a job directory, a
log file, an output and a stats file of its own under `DATA/runs/<id>/`.

- At most `max_runs` run at once; the others wait, the highest priority first, then first
  in first out.
- **pause** stops the process gracefully (SIGINT: what is in flight finishes, the job is
  committed); **resume** queues the run again, and its next process continues the same
  job directory: every page once in its output, however often it is paused.
- **cancel** stops it gracefully, then kills it (SIGKILL) after `grace` seconds.
- A process dies with the service (PR_SET_PDEATHSIG): after a `kill -9` of the service,
  nothing it started runs on unwatched, and the next start queues again each run that was
  running; it resumes from its job directory.
- Logs are capped: past `log_cap` bytes a run's log moves to `log.1` (the one before is
  dropped) and starts again. Finished runs past the newest `keep`, or older than
  `keep_days`, are forgotten with their files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from crawler.handlers.proctree import die_with_parent
from crawler.service.store import (
    ACTIVE,
    CANCELLED,
    CANCELLING,
    FAILED,
    FINAL,
    FINISHED,
    PAUSED,
    PAUSING,
    QUEUED,
    RUNNING,
    Run,
    RunStore,
)

__all__ = ["RunError", "Runner"]

_EXIT_MONITOR = 3  # `run`'s exit code when a monitor failed (crawler/commands/common.py)
logger = logging.getLogger(__name__)

_WATCH = 0.5  # seconds between looks at the running processes (logs, status)


class RunError(Exception):
    """A request the runs cannot take (an unknown run, a state it cannot leave): the API
    answers it with `status` (404, 409)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Runner:
    """Usage: `runner = Runner(store, project=root, data=data_dir)`; `await runner.start()`;
    `await runner.submit("books", args={"base_url": ...})`; `await runner.close()`."""

    def __init__(self, store: RunStore, *, project: Path, data: Path, max_runs: int = 4,
                 grace: float = 30.0, log_cap: int = 10 << 20, keep: int = 1000,
                 keep_days: float | None = None, python: str = sys.executable) -> None:
        self.store = store
        self.project = project
        self.data = data
        self.max_runs = max_runs
        self.grace = grace
        self.log_cap = log_cap
        self.keep = keep  # finished runs kept (the oldest are forgotten, their files too)
        self.keep_days = keep_days  # ... and for at most this long
        self.python = python
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._waits: dict[str, asyncio.Task[None]] = {}
        self._status: dict[str, tuple[int, str]] = {}  # run -> its status page's port, token
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._next_forget = 0.0  # (monotonic) when the history is trimmed next
        # one change of a run's state at a time: a pause read-modify-write and the end of
        # its process never interleave (a run left "pausing" with no process)
        self._lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the runs a previous service left: those it was running are queued again
        (their processes died with it) and resume from their job directories."""
        for run in await self.store.runs(states=sorted(ACTIVE), limit=1 << 30):
            if run.state == CANCELLING:
                run.state = CANCELLED
                run.finished = time.time()
            else:  # running or pausing: resumed (a pause that did not end is not one)
                run.state = QUEUED
            await self.store.save(run)
            logger.info("run %s (%s) was %s when the service stopped: %s", run.id,
                        run.spider, "running", run.state)
        self._task = asyncio.create_task(self._dispatch(), name="runs")

    async def close(self) -> None:
        """Stop the service: each running process gracefully (its run queued again, to
        resume at the next start), killed after the grace period."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for proc in list(self._procs.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        if self._waits:
            await asyncio.wait(list(self._waits.values()), timeout=self.grace)
            for proc in list(self._procs.values()):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await asyncio.gather(*self._waits.values(), return_exceptions=True)

    # -- what the API asks ----------------------------------------------------------------

    async def submit(self, spider: str, *, args: Mapping[str, str] | None = None,
                     settings: Mapping[str, str] | None = None, priority: int = 0,
                     schedule: str | None = None, run_id: str | None = None,
                     workers: int = 1) -> Run:
        run = Run(id=run_id or uuid.uuid4().hex, spider=spider, args=dict(args or {}),
                  settings=dict(settings or {}), priority=priority, schedule=schedule,
                  workers=workers)
        await self.store.save(run)
        self._wake.set()
        return run

    async def get(self, run_id: str) -> Run:
        run = await self.store.get(run_id)
        if run is None:
            raise RunError(f"no run {run_id}", 404)
        return run

    async def pause(self, run_id: str) -> Run:
        async with self._lock:
            run = await self.get(run_id)
            if run.state == QUEUED:
                run.state = PAUSED
            elif run.state == RUNNING:
                run.state = PAUSING
                self._signal(run.id, signal.SIGINT)
            elif run.state not in (PAUSED, PAUSING):
                raise RunError(f"run {run_id} is {run.state}: only a queued or running run "
                               "pauses")
            await self.store.save(run)
            return run

    async def resume(self, run_id: str) -> Run:
        async with self._lock:
            run = await self.get(run_id)
            if run.state != PAUSED:
                raise RunError(f"run {run_id} is {run.state}: only a paused run resumes")
            run.state = QUEUED
            await self.store.save(run)
            self._wake.set()
            return run

    async def cancel(self, run_id: str) -> Run:
        async with self._lock:
            run = await self.get(run_id)
            if run.state in (QUEUED, PAUSED):
                run.state = CANCELLED
                run.finished = time.time()
            elif run.state in (RUNNING, PAUSING):
                run.state = CANCELLING
                self._signal(run.id, signal.SIGINT)
                asyncio.get_running_loop().call_later(self.grace, self._kill, run.id)
            elif run.state != CANCELLING:
                raise RunError(f"run {run_id} is {run.state}: it cannot be cancelled")
            await self.store.save(run)
            return run

    def outputs(self, run_id: str) -> list[Path]:
        """A run's output files: one, or a fleet's one per worker (blocking: a listing)."""
        return sorted(self.paths(run_id)["dir"].glob("items*.jsonl"))

    def paths(self, run_id: str) -> dict[str, Path]:
        """Where a run's files are."""
        base = self.data / "runs" / run_id
        return {"dir": base, "job": base / "job", "items": base / "items.jsonl",
                "stats": base / "stats.json", "log": base / "log"}

    def status_page(self, run_id: str) -> tuple[int, str] | None:
        """The port and token of a running run's live status page."""
        return self._status.get(run_id)

    def running(self) -> int:
        return len(self._procs)

    # -- processes ------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            self._wake.clear()
            room = self.max_runs - len(self._procs)
            if room > 0:
                for run in await self.store.runs(states=[QUEUED], limit=room,
                                                 oldest_first=True):
                    try:
                        async with self._lock:
                            current = await self.store.get(run.id)  # still queued?
                            if current is not None and current.state == QUEUED:
                                await self._launch(current)
                    except Exception as exc:  # the run fails; the queue goes on
                        logger.exception("run %s (%s) could not start", run.id, run.spider)
                        run.state, run.finished = FAILED, time.time()
                        run.finish_reason = f"could not start: {type(exc).__name__}: {exc}"
                        await self.store.save(run)
            if time.monotonic() >= self._next_forget:  # history past its bounds, a minute
                self._next_forget = time.monotonic() + 60.0
                before = time.time() - self.keep_days * 86400 if self.keep_days else None
                for old in await self.store.forget(self.keep, before):  # with their files
                    await asyncio.to_thread(shutil.rmtree, self.paths(old.id)["dir"], True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _WATCH)
            await self._rotate_logs()

    def _command(self, run: Run, port: int, token: str) -> list[str]:
        paths = self.paths(run.id)
        cmd = [self.python, "-m", "crawler", "run", run.spider, "--no-progress",
               # = joined: a token may start with "-", which would read as an option
               f"--status-port={port}", f"--status-token={token}"]
        if run.workers > 1:  # a fleet on the run's Redis frontier, its crawl named by the
            # run (a resume joins it again); each worker writes its own file
            cmd += ["--workers", str(run.workers), "--job", run.id,
                    "-o", str(paths["dir"] / "items.{worker}.jsonl")]
        else:
            cmd += ["--job-dir", str(paths["job"]), "-o", str(paths["items"]),
                    "--stats", str(paths["stats"])]
        for name, value in run.args.items():
            cmd += ["-a", f"{name}={value}"]
        for name, value in run.settings.items():
            cmd += ["-s", f"{name}={value}"]
        return cmd

    async def _launch(self, run: Run) -> None:
        paths = self.paths(run.id)
        log = await asyncio.to_thread(_open_log, paths["log"])  # the child appends: O_APPEND
        port, token = _free_port(), secrets.token_urlsafe(16)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._command(run, port, token), cwd=self.project,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,  # the service's terminal signals reach it through us
                preexec_fn=die_with_parent)
        finally:
            os.close(log)
        self._procs[run.id] = proc
        self._status[run.id] = (port, token)
        run.state, run.pid, run.attempts = RUNNING, proc.pid, run.attempts + 1
        run.exit_code = run.finish_reason = None  # the last attempt's, until this one ends
        run.started = run.started or time.time()
        await self.store.save(run)
        logger.info("run %s (%s) started: pid %d", run.id, run.spider, proc.pid)
        self._waits[run.id] = asyncio.create_task(self._wait(run.id, proc),
                                                  name=f"run {run.id}")

    async def _wait(self, run_id: str, proc: asyncio.subprocess.Process) -> None:
        try:
            code = await proc.wait()
        finally:
            self._procs.pop(run_id, None)
            self._status.pop(run_id, None)
            self._waits.pop(run_id, None)
        async with self._lock:
            await self._ended(run_id, code)
        self._wake.set()

    async def _ended(self, run_id: str, code: int) -> None:
        run = await self.store.get(run_id)
        if run is None:
            return
        stats = await asyncio.to_thread(_read_json, self.paths(run_id)["stats"])
        run.exit_code, run.pid, run.stats = code, None, stats or run.stats
        run.finish_reason = str(stats.get("finish_reason")) if stats else None
        if self._closing and run.state in (RUNNING, PAUSING):
            run.state = QUEUED  # the service stops: this run resumes at its next start
        elif run.state == CANCELLING:
            run.state = CANCELLED
        elif run.state == PAUSING:  # stopped as asked, unless it had finished meanwhile
            finished = run.finish_reason == "finished"
            run.state = FINISHED if finished and code == 0 else \
                FAILED if finished and code == _EXIT_MONITOR else PAUSED
        else:
            run.state = FINISHED if code == 0 else FAILED
        if run.state in FINAL:
            run.finished = time.time()
        await self.store.save(run)
        logger.info("run %s (%s) ended: exit %s, %s", run_id, run.spider, code, run.state)

    def _signal(self, run_id: str, sig: int) -> None:
        proc = self._procs.get(run_id)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    def _kill(self, run_id: str) -> None:
        proc = self._procs.get(run_id)
        if proc is not None and proc.returncode is None:
            logger.warning("run %s did not stop within %g s: killed", run_id, self.grace)
            self._signal(run_id, signal.SIGKILL)

    async def _rotate_logs(self) -> None:
        for run_id in list(self._procs):
            log = self.paths(run_id)["log"]
            with contextlib.suppress(OSError):
                if (await asyncio.to_thread(os.path.getsize, log)) > self.log_cap:
                    await asyncio.to_thread(_rotate, log)

def _open_log(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def _rotate(log: Path) -> None:
    """The log so far to log.1; the child goes on appending to the emptied file."""
    shutil.copyfile(log, log.with_name(log.name + ".1"))
    os.truncate(log, 0)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
