"""`run --workers N`: N crawler processes on this machine sharing one frontier, so that
every core is used. Each is the same `run` command with its own --worker-id; a signal to
this process is passed to each of them once (they stop gracefully on the first, at once on
the second); the exit code is the worst of theirs."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from crawler.handlers.proctree import die_with_parent

__all__ = ["run_workers", "without_workers_flag"]

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def without_workers_flag(argv: Sequence[str]) -> list[str]:
    """`argv` for one worker: without `--workers N` and --worker-id (given per worker),
    and --cache-clear as --cache (cleared once, before they start)."""
    # cleared once, here, before the workers start
    return ["--cache" if arg == "--cache-clear" else arg
            for arg in _without(argv, ("--workers", "--worker-id"))]


def _without(argv: Sequence[str], options: tuple[str, ...]) -> list[str]:
    """`argv` without `options` and their values (`--opt VALUE` and `--opt=VALUE`)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in options)):
            out.append(arg)
    return out


def run_workers(argv: Sequence[str], count: int, name: str) -> int:
    """Run `python -m crawler` with `argv` in `count` processes, worker ids NAME-1..N.
    Only the first serves --status-port: its page shows the whole fleet."""
    children = [subprocess.Popen(  # own sessions: a terminal's Ctrl-C reaches them once, here
        # one live display per worker on one terminal would be noise: log lines instead
        [sys.executable, "-m", "crawler", *(argv if i == 1 else _without(argv, ("--status-port",))),
         "--no-progress", "--worker-id", f"{name}-{i}"],
        start_new_session=True,
        preexec_fn=die_with_parent) for i in range(1, count + 1)]  # not orphans: killed with us

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [code for code in codes if code != 0]
    return max(failed, key=abs) if failed else 0
