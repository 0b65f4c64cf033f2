"""Autoscaled concurrency (`concurrency = "auto"`): how many requests may be in flight,
decided every `autoscale_interval` seconds from what the crawl's machine can take.

The crawl keeps `max_concurrency` workers; the dispatcher starts no more than `limit`
requests at once. Each sample reads three pressures:

- CPU: the share of one core the event loop's thread used (`time.thread_time`); the loop
  is one thread, so a loop near a full core cannot go faster with more requests;
- event-loop lag: the longest stall the loop probe saw (crawler/extensions/monitor.py);
- memory: what the crawl's processes hold (their PSS: a browser's too) against the memory
  limit: the container's cgroup limit when there is one (cgroup v2 `memory.max`, v1
  `memory.limit_in_bytes`, the lowest on the way up the hierarchy), else the machine's.
  Crawlee's autoscaling reads the machine's memory only, and pods are OOM-killed.

Any pressure over its bound (`autoscale_max_cpu`, `autoscale_max_loop_lag`,
`autoscale_max_memory`) shrinks the limit by a fifth; with none, a limit the crawl is using
(90 % in flight) grows by a fifth, up to `max_concurrency`. It starts at 16 (the default
`concurrency`). The status page shows the limit and why it last changed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawler.handlers.proctree import tree_memory
from crawler.settings import Settings

__all__ = ["Autoscaler", "memory_limit"]

logger = logging.getLogger(__name__)

START = 16
_STEP = 0.2  # a fifth up or down
_USED = 0.9  # in flight / limit from which the limit is what holds the crawl back
_UNLIMITED_V1 = 1 << 60  # cgroup v1 writes a huge number for "no limit"


def _machine_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None  # "max": no limit here
    value = int(text)
    return value if value < _UNLIMITED_V1 else None


def memory_limit(*, cgroup_root: Path = Path("/sys/fs/cgroup"),
                 proc_cgroup: Path = Path("/proc/self/cgroup")) -> tuple[int, str]:
    """The bytes this process's tree may hold, and where that limit comes from
    ("cgroup v2", "cgroup v1" or "machine"). Blocking (small file reads)."""
    best, source = _machine_memory(), "machine"
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, controllers, path = [*line.split(":", 2), "", ""][:3]
        if hierarchy == "0" and controllers == "":
            base, name, version = cgroup_root, "memory.max", "cgroup v2"
        elif "memory" in controllers.split(","):
            base, name, version = cgroup_root / "memory", "memory.limit_in_bytes", "cgroup v1"
        else:
            continue
        # the process's own group and each above it, up to the mount: the lowest holds
        here = base / path.strip("/")
        while True:
            limit = _read_limit(here / name)
            if limit is not None and limit < best:
                best, source = limit, version
            if here == base or base not in here.parents:
                break
            here = here.parent
    return best, source


def _mb(n: float) -> str:
    return f"{n / 2**20:.0f} MB"


class Autoscaler:
    """Usage: `scaler = Autoscaler(settings, busy=lambda: scheduler.in_flight, ...)`; run
    `scaler.run()` as a task; the dispatcher starts no more than `scaler.limit`."""

    def __init__(self, settings: Settings, *, busy: Callable[[], int],
                 stall: Callable[[], float], wake: Callable[[], None] = lambda: None,
                 counters: Counter[str] | None = None,
                 cgroup_root: Path = Path("/sys/fs/cgroup"),
                 proc_cgroup: Path = Path("/proc/self/cgroup"),
                 memory: Callable[[], int] | None = None,
                 cpu: Callable[[], float] = time.thread_time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        s = settings
        self.max = s.max_concurrency
        self.limit = min(START, self.max)
        self.reason = f"started at {self.limit}"
        self._max_cpu, self._max_lag = s.autoscale_max_cpu, s.autoscale_max_loop_lag
        self._max_memory, self._interval = s.autoscale_max_memory, s.autoscale_interval
        self._busy, self._stall, self._wake = busy, stall, wake
        self._counters = counters if counters is not None else Counter()
        self._cgroup = (cgroup_root, proc_cgroup)
        self._memory = memory or (lambda: tree_memory(os.getpid()))
        self._cpu, self._clock = cpu, clock
        self._started = clock()
        self.changed = 0.0  # seconds into the crawl of the last change
        self.last: dict[str, Any] = {}  # the last sample

    async def run(self) -> None:
        """Sample and decide every interval, until cancelled."""
        cpu0, t0 = self._cpu(), self._clock()
        while True:
            await asyncio.sleep(self._interval)
            cpu1, t1 = self._cpu(), self._clock()
            share = (cpu1 - cpu0) / max(t1 - t0, 1e-6)
            cpu0, t0 = cpu1, t1
            try:
                used, (limit, source) = await asyncio.to_thread(self._measure)
            except (OSError, ValueError) as exc:  # /proc or the cgroup files unreadable
                logger.debug("autoscale: no memory sample (%s)", exc)
                continue
            self.decide(cpu=share, lag=self._stall(), memory=used, memory_limit=limit,
                        source=source, busy=self._busy())

    def _measure(self) -> tuple[int, tuple[int, str]]:
        root, proc = self._cgroup
        return self._memory(), memory_limit(cgroup_root=root, proc_cgroup=proc)

    def decide(self, *, cpu: float, lag: float, memory: int, memory_limit: int,
               source: str, busy: int) -> None:
        """One decision from one sample (see the module docstring)."""
        self.last = {"cpu": round(cpu, 3), "loop_lag": round(lag, 4), "memory": memory,
                     "memory_limit": memory_limit, "memory_limit_from": source}
        pressure = []
        if cpu >= self._max_cpu:
            pressure.append(f"CPU {cpu:.0%} of a core")
        if lag >= self._max_lag:
            pressure.append(f"event-loop lag {lag * 1000:.0f} ms")
        if memory >= self._max_memory * memory_limit:
            pressure.append(f"memory {_mb(memory)} of {_mb(memory_limit)} ({source})")
        old = self.limit
        if pressure:
            new = max(1, min(old - 1, int(old * (1 - _STEP))))
            why = "shrank: " + ", ".join(pressure)
        elif busy >= old * _USED and old < self.max:
            new = min(self.max, old + max(1, int(old * _STEP)))
            why = (f"grew: {busy} in flight; CPU {cpu:.0%}, lag {lag * 1000:.0f} ms, memory "
                   f"{_mb(memory)} of {_mb(memory_limit)} ({source})")
        else:
            return
        if new == old:
            return
        self.limit = new
        self.reason = f"{why} ({old} -> {new})"
        self.changed = round(self._clock() - self._started, 1)
        self._counters["autoscale/grew" if new > old else "autoscale/shrank"] += 1
        logger.debug("concurrency %s", self.reason)
        if new > old:
            self._wake()  # room for more: the dispatcher may be waiting

    def snapshot(self) -> dict[str, Any]:
        """What the status page shows."""
        return {"concurrency": {"limit": self.limit, "max": self.max, "reason": self.reason,
                                "changed": self.changed, **self.last}}
