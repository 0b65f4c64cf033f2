"""The Scheduler, alone: it hands idle workers what may start now, holds back a busy
host, and starts nothing while paused or stopping."""

from __future__ import annotations

import asyncio

from crawler import Request, Settings
from crawler.core.ratelimit import HostPolicy
from crawler.core.scheduler import Scheduler
from crawler.frontier import MemoryFrontier
from crawler.http.urls import fingerprint
from crawler.stats import Stats


def _scheduler(**settings) -> Scheduler:
    s = Settings(obey_robots=False, randomize_download_delay=False, **settings)
    return Scheduler(MemoryFrontier(HostPolicy.from_settings(s)), stats=Stats(),
                     fingerprint=fingerprint, settings=s)


async def _next(scheduler: Scheduler, wait: float = 0.3) -> Request | None:
    try:
        return await asyncio.wait_for(scheduler.get(), wait)
    except TimeoutError:
        return None


async def test_a_busy_host_waits_while_another_hosts_request_goes():
    scheduler = _scheduler(per_host_concurrency=1)
    dispatcher = asyncio.create_task(scheduler.run())
    try:
        await scheduler.enqueue_many([Request("http://a.test/1"), Request("http://a.test/2"),
                                      Request("http://b.test/1")])
        first, second = await _next(scheduler), await _next(scheduler)
        assert {first.host, second.host} == {"http://a.test:80", "http://b.test:80"}
        assert await _next(scheduler) is None  # a.test is busy
        a = first if first.host.startswith("http://a") else second
        await scheduler.done(a)
        assert (await _next(scheduler)).url == "http://a.test/2"
    finally:
        dispatcher.cancel()
        scheduler.close()


async def test_nothing_starts_while_paused_or_stopping():
    scheduler = _scheduler()
    dispatcher = asyncio.create_task(scheduler.run())
    try:
        scheduler.pause(True)
        await scheduler.enqueue(Request("http://a.test/1"))  # admission goes on
        assert await _next(scheduler) is None and await scheduler.pending() == 1
        scheduler.pause(False)
        assert (await _next(scheduler)).url == "http://a.test/1"
        scheduler.stop()
        await scheduler.enqueue(Request("http://a.test/2"))
        assert await _next(scheduler) is None  # stopping: nothing new is dispatched
    finally:
        dispatcher.cancel()
        scheduler.close()


async def test_a_delayed_host_is_woken_when_its_delay_ends():
    scheduler = _scheduler(download_delay=0.2)
    dispatcher = asyncio.create_task(scheduler.run())
    try:
        await scheduler.enqueue_many([Request("http://a.test/1"), Request("http://a.test/2")])
        first = await _next(scheduler)
        await scheduler.done(first, latency=0.01, status=200)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await _next(scheduler, 2.0)).url == "http://a.test/2"
        assert loop.time() - started >= 0.15  # the delay, not a poll
    finally:
        dispatcher.cancel()
        scheduler.close()
