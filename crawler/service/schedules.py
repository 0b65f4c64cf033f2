"""Schedules: runs made by the clock, a cron expression (croniter, in the schedule's time
zone) or an interval.

A firing's run has an id made of the schedule's and the due time's (`SCHEDULE-DUETIME`),
and the run is stored before the schedule's next time is: a service killed between the
two fires that due time again at its next start, finds the run there, and makes no
second one. So a due time fires at most once, across any restart.

Firings missed while the service was down (more than `_LATE` seconds overdue) run once
(`missed = "once"`: one run for all of them) or not at all (`"skip"`). A firing whose
schedule still has a run queued or going is skipped (`overlap = "skip"`) or queued behind
it (`"queue"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crawler.service.runs import RunError, Runner
from crawler.service.store import FINAL, Schedule

__all__ = ["Scheduler", "check_schedule", "next_time"]

logger = logging.getLogger(__name__)

_LATE = 60.0  # seconds overdue past which a firing counts as missed
_TICK = 1.0  # seconds between looks at the schedules, at most


def next_time(schedule: Schedule, after: float) -> float:
    """The schedule's first due time strictly after `after` (epoch seconds)."""
    if schedule.every is not None:
        base = schedule.last_fire if schedule.last_fire is not None else schedule.created
        steps = max(1, int((after - base) // schedule.every) + 1)
        return base + steps * schedule.every
    from croniter import croniter

    assert schedule.cron is not None
    start = datetime.fromtimestamp(after, ZoneInfo(schedule.timezone))
    return float(croniter(schedule.cron, start).get_next(float))


def check_schedule(data: dict[str, Any]) -> str | None:
    """Why these fields do not make a schedule, or None."""
    cron, every = data.get("cron"), data.get("every")
    if (cron is None) == (every is None):
        return "give one of cron (an expression) or every (seconds)"
    if every is not None and (not isinstance(every, int | float) or isinstance(every, bool)
                              or every < 1):
        return "every: seconds, at least 1"
    if cron is not None:
        try:
            from croniter import croniter
        except ImportError:
            return "cron schedules need croniter: pip install 'crawler[service]'"
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            return f"cron: {cron!r} is not a cron expression"
    try:
        ZoneInfo(str(data.get("timezone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError):
        return f"timezone: {data.get('timezone')!r} is not a time zone"
    for name, allowed in (("overlap", ("skip", "queue")), ("missed", ("once", "skip"))):
        if data.get(name, allowed[0]) not in allowed:
            return f"{name}: one of {', '.join(allowed)}"
    return None


class Scheduler:
    """Usage: `scheduler = Scheduler(runner)`; `await scheduler.start()`; `await
    scheduler.tick()` fires what is due (the loop calls it; a test may with its clock)."""

    def __init__(self, runner: Runner, *, clock: Callable[[], float] = time.time) -> None:
        self.runner = runner
        self.store = runner.store
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="schedules")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def create(self, data: dict[str, Any]) -> Schedule:
        schedule = Schedule(id=str(data.get("id") or uuid.uuid4().hex[:12]),
                            spider=data["spider"], cron=data.get("cron"),
                            every=data.get("every"), timezone=data.get("timezone", "UTC"),
                            args=data.get("args", {}), settings=data.get("settings", {}),
                            priority=data.get("priority", 0),
                            overlap=data.get("overlap", "skip"),
                            missed=data.get("missed", "once"),
                            enabled=data.get("enabled", True), created=self.clock())
        schedule.next_fire = next_time(schedule, self.clock())
        await self.store.save_schedule(schedule)
        self._wake.set()
        return schedule

    async def get(self, schedule_id: str) -> Schedule:
        for schedule in await self.store.schedules():
            if schedule.id == schedule_id:
                return schedule
        raise RunError(f"no schedule {schedule_id}", 404)

    async def update(self, schedule_id: str, data: dict[str, Any]) -> Schedule:
        schedule = await self.get(schedule_id)
        fields = {k: v for k, v in data.items() if k in (
            "cron", "every", "timezone", "args", "settings", "priority", "overlap", "missed",
            "enabled")}
        for name, value in fields.items():
            setattr(schedule, name, value)
        schedule.next_fire = next_time(schedule, self.clock())
        await self.store.save_schedule(schedule)
        self._wake.set()
        return schedule

    async def delete(self, schedule_id: str) -> None:
        if not await self.store.delete_schedule(schedule_id):
            raise RunError(f"no schedule {schedule_id}", 404)

    async def run_now(self, schedule_id: str) -> Any:
        schedule = await self.get(schedule_id)
        return await self.runner.submit(schedule.spider, args=schedule.args,
                                        settings=schedule.settings,
                                        priority=schedule.priority, schedule=schedule.id)

    async def tick(self) -> float | None:
        """Fire every schedule that is due; when the next one is."""
        now = self.clock()
        upcoming = []
        for schedule in await self.store.schedules():
            if not schedule.enabled:
                continue
            if schedule.next_fire <= now:
                await self._fire(schedule, now)
            upcoming.append(schedule.next_fire)
        return min(upcoming, default=None)

    async def _fire(self, schedule: Schedule, now: float) -> None:
        due = schedule.next_fire
        run_id = f"{schedule.id}-{int(due)}"
        missed = now - due > _LATE
        made = False
        if missed and schedule.missed == "skip":
            schedule.skipped += 1
            logger.info("schedule %s: the firing due at %s was missed: skipped",
                        schedule.id, _shown(due))
        elif await self.store.get(run_id) is not None:
            pass  # fired before a restart: that run stands
        elif schedule.overlap == "skip" and await self._going(schedule):
            schedule.skipped += 1
            logger.info("schedule %s: its previous run is still going: skipped",
                        schedule.id)
        else:
            await self.runner.submit(schedule.spider, args=schedule.args,
                                     settings=schedule.settings, priority=schedule.priority,
                                     schedule=schedule.id, run_id=run_id)
            made = True
        if made:
            schedule.fired += 1
            schedule.last_fire = due
        # missed firings collapse into this one: the next time is after now
        schedule.next_fire = next_time(schedule, max(now, due))
        await self.store.save_schedule(schedule)

    async def _going(self, schedule: Schedule) -> bool:
        runs = await self.store.runs(limit=50)
        return any(r.schedule == schedule.id and r.state not in FINAL for r in runs)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                upcoming = await self.tick()
            except Exception:  # a broken schedule must not end the others
                logger.exception("schedules: a firing failed")
                upcoming = None
            wait = _TICK if upcoming is None else min(_TICK, max(0.0, upcoming - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)


def _shown(stamp: float) -> str:
    return datetime.fromtimestamp(stamp).isoformat(timespec="seconds")
