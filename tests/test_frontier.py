"""The frontier's contract, run against every store: the memory frontier, the journaled one
(a job directory's), the shared one (Redis) and one registered from outside the package
(tests/registered_store.py), which must queue, order and pace exactly alike."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from crawler import Request, Spider
from crawler.core.ratelimit import HostPolicy
from crawler.frontier import JournaledFrontier, MemoryFrontier, RedisFrontier
from crawler.frontier.jobdir import Job
from crawler.frontier.jobstatus import read_job
from crawler.frontier.journaled import WINDOW
from crawler.http.urls import fingerprint
from crawler.stats import Stats
from tests.registered_store import ListFrontier

Make = Callable[..., Any]


class _JobSpider(Spider):
    name = "contract"


@pytest.fixture(params=["memory", "journaled", "redis", "registered"])
async def make(request, tmp_path) -> AsyncIterator[Make]:
    """Builds a frontier of the store under test (opened), given a HostPolicy or none."""
    jobs: list[Job] = []
    shared: list[RedisFrontier] = []

    async def build(policy: HostPolicy | None = None, *, dfs: bool = False) -> Any:
        if request.param == "memory":
            return MemoryFrontier(policy, clock=FakeClock(), dfs=dfs)
        if request.param == "registered":
            frontier = ListFrontier(policy, clock=FakeClock(), dfs=dfs)
            await frontier.open(_JobSpider())
            return frontier
        if request.param == "redis":
            url = request.getfixturevalue("redis_url")
            frontier = RedisFrontier(url, spider="contract", job=f"t{os.getpid()}-{id(jobs)}"
                                     f"-{len(shared)}", policy=policy, clock=FakeClock(),
                                     heartbeat=None, dfs=dfs)
            await frontier.open(_JobSpider())
            shared.append(frontier)
            return frontier
        job = Job(tmp_path / f"job{len(jobs)}", _JobSpider())
        jobs.append(job)
        await job.open()
        frontier = JournaledFrontier(job, fingerprint, policy, clock=FakeClock(), dfs=dfs)
        await frontier.open(job._spider)
        return frontier

    yield build
    for job in jobs:
        await job.close()
    for frontier in shared:
        await frontier.close()


async def add(frontier: MemoryFrontier, url: str, priority: int = 0) -> bool:
    req = Request(url, priority=priority)
    return (await frontier.add_many([(req, fingerprint(req), False)]))[0]


class FakeClock:
    """The frontier's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def pop(frontier: MemoryFrontier, now: float) -> Request | None:
    if isinstance(frontier.clock, FakeClock):
        frontier.clock.now = now
    return await pop_one(frontier)


async def pop_one(frontier: Any) -> Request | None:
    popped = await frontier.pop_many(1)
    return popped[0] if popped else None


async def done(frontier: MemoryFrontier, request: Request, now: float, **kw: Any) -> None:
    if isinstance(frontier.clock, FakeClock):
        frontier.clock.now = now
    await frontier.done(request, **kw)


async def hosts_held(frontier: Any) -> int:
    """Per-host records the store keeps."""
    return await frontier.hosts_kept()


async def drain(frontier: MemoryFrontier, now: float = 0.0) -> list[str]:
    out = []
    while (req := await pop(frontier, now)) is not None:
        out.append(req.url)
        await done(frontier, req, now)
        await frontier.ack(req)  # complete, as the engine says once its outputs are written
    return out


async def test_depth_first_takes_the_newest_of_a_priority_first(make):
    f = await make(HostPolicy(concurrency=100, delay=0.0), dfs=True)
    for url in ("http://a/1", "http://a/2", "http://b/3", "http://a/4"):
        await add(f, url)
    await add(f, "http://a/high", priority=5)
    assert await drain(f) == ["http://a/high", "http://a/4", "http://b/3", "http://a/2",
                              "http://a/1"]


async def test_priority_then_fifo(make):
    f = await make()
    for url, prio in [("http://a/1", 0), ("http://a/2", 5), ("http://a/3", 0), ("http://a/4", 5)]:
        await add(f, url, prio)
    assert await drain(f) == ["http://a/2", "http://a/4", "http://a/1", "http://a/3"]


async def test_priority_across_ready_hosts(make):
    f = await make()
    await add(f, "http://a/1")
    await add(f, "http://b/1", 10)
    await add(f, "http://a/2", 20)
    assert await drain(f) == ["http://a/2", "http://b/1", "http://a/1"]


async def test_duplicates_and_force(make):
    f = await make()
    assert await add(f, "http://a/1")
    assert not await add(f, "http://a/1")
    req = Request("http://a/1")
    assert (await f.add_many([(req, fingerprint(req), True)]))[0]
    assert await f.queued() == 2


async def test_per_host_concurrency_holds_back_only_that_host(make):
    f = await make(HostPolicy(concurrency=1))
    for url in ("http://a/1", "http://a/2", "http://b/1"):
        await add(f, url)
    first = await pop(f, 0.0)
    second = await pop(f, 0.0)
    assert (first.url, second.url) == ("http://a/1", "http://b/1")
    assert await pop(f, 0.0) is None  # a is full
    await done(f, first, 0.0)
    assert (await pop(f, 0.0)).url == "http://a/2"


async def test_delay_puts_host_to_sleep_with_wakeup_time(make):
    f = await make(HostPolicy(concurrency=4, delay=2.0, randomize=False))  # exact gaps
    for url in ("http://a/1", "http://a/2", "http://b/1"):
        await add(f, url)
    assert (await pop(f, 10.0)).url == "http://a/1"
    assert (await pop(f, 10.0)).url == "http://b/1"
    assert await pop(f, 10.5) is None
    assert await f.wakeup_at() == 12.0
    assert await pop(f, 11.9) is None
    assert (await pop(f, 12.0)).url == "http://a/2"


async def test_a_shared_request_that_cannot_be_restored_is_dropped_and_counted(redis_url):
    """A record the spider cannot turn back into a request (a callback it lost, another
    version's text) is logged, counted and acknowledged, never handed out or left leased."""
    import redis.asyncio as aioredis

    stats = Stats()
    f = RedisFrontier(redis_url, spider="contract", job=f"bad-{os.getpid()}",
                      clock=FakeClock(), heartbeat=None, stats=stats)
    await f.open(_JobSpider())
    try:
        req = Request("http://a/2")
        await f.add_many([(req, fingerprint(req), False)])
        client = aioredis.from_url(redis_url)  # its record now names a callback that is gone
        await client.hset(f.prefix + "req", "1", '0|http://a:80|["http://a/2","gone",0,0]')
        await client.aclose()
        assert await pop(f, 0.0) is None
        assert stats.errors == {"unrestorable_request": 1}
        await f.flush()
        assert await f.in_flight() == 0 and await f.queued() == 0
    finally:
        await f.close()


async def test_hosts_are_forgotten_when_idle(make):
    f = await make()
    await add(f, "http://a/1")
    await drain(f)
    assert await hosts_held(f) == 0
    assert await f.queued() == await f.in_flight() == 0


async def test_random_operations_never_lose_or_duplicate_a_request(make):
    """Adds, pops, done() with feedback, pauses and crawl delays in random order, with time
    moving on: every request comes out exactly once and no host is left stranded."""
    import random

    for seed in range(30):
        rng = random.Random(seed)
        f = await make(HostPolicy(concurrency=rng.randint(1, 3), delay=rng.choice([0, 0.5]),
                                  randomize=True, autothrottle=rng.random() < 0.5,
                                  start_delay=0.2))
        now, added, popped, in_flight = 0.0, set(), [], []
        for step in range(400):
            op = rng.random()
            if op < 0.4:
                url = f"http://h{rng.randint(0, 4)}/{step}"
                if await add(f, url, rng.randint(0, 2)):
                    added.add(url)
            elif op < 0.7:
                req = await pop(f, now)
                if req is not None:
                    popped.append(req.url)
                    in_flight.append(req)
            elif op < 0.85 and in_flight:
                req = in_flight.pop(rng.randrange(len(in_flight)))
                await done(f, req, now, latency=rng.random(), status=rng.choice([200, 429, 500]))
                await f.ack(req)
            elif op < 0.9:
                f.clock.now = now
                await f.pause_host(f"http://h{rng.randint(0, 4)}:80", rng.random() * 3)
            elif op < 0.92:
                await f.set_crawl_delay(f"http://h{rng.randint(0, 4)}:80", rng.random())
            elif op < 0.95 and in_flight:
                req = in_flight.pop()
                await done(f, req, now)
                await f.retry(req, rng.random())
                popped.remove(req.url)
            now += rng.random() * 0.3
        for req in in_flight:
            await done(f, req, now)
            await f.ack(req)
        for _ in range(10_000):  # drain: time moves to each wake-up
            req = await pop(f, now)
            if req is not None:
                popped.append(req.url)
                await done(f, req, now)
                await f.ack(req)
                continue
            wake = await f.wakeup_at()
            if wake is None:
                break
            now = max(now, wake)
        assert sorted(popped) == sorted(added), seed
        assert await f.queued() == 0 and await f.in_flight() == 0


async def test_seen_is_a_precheck_that_add_records(make):
    f = await make()
    req = Request("http://a/1")
    fp = fingerprint(req)
    assert await f.seen_many([fp]) == [False]
    assert (await f.add_many([(req, fp, False)]))[0]
    assert await f.seen_many([fp]) == [True]
    assert await f.queued() == 1


# -- queued requests cost little memory and no GC time (issue 8.7) ----------------------------


class _Spider:
    def parse(self, response): ...

    def parse_item(self, response): ...


async def test_simple_requests_are_queued_as_untracked_tuples_and_come_back_whole():
    import gc

    spider = _Spider()
    f = MemoryFrontier()
    await f.open(spider)
    plain = Request("http://a/1", callback=spider.parse_item, priority=3, depth=2)
    rich = Request("http://a/2", meta={"k": 1}, callback=spider.parse)
    foreign = Request("http://a/3", callback=lambda r: None)
    for req in (plain, rich, foreign):
        await f.add_many([(req, fingerprint(req), False)])
    gc.collect()
    entries = [e for q in f._hosts.values() for b in q.buckets.values() for e in b]
    packed = [e for e in entries if len(e) > 2]  # (seq, request) is kept whole
    assert len(packed) == 1 and not gc.is_tracked(packed[0])  # GC never walks it
    out = [await pop_one(f) for _ in range(3)]
    assert out[0] is not plain and out[0].url == "http://a/1"
    assert out[0].callback == spider.parse_item and out[0].callback.__self__ is spider
    assert (out[0].priority, out[0].depth, out[0].host) == (3, 2, "http://a:80")
    assert out[1] is rich and out[2] is foreign  # what cannot be packed is kept as it is


async def test_a_crawl_delay_outlives_the_hosts_idle_slot(make):
    f = await make(HostPolicy(concurrency=4, randomize=False))  # exact gaps
    await f.set_crawl_delay("http://a:80", 5.0)
    await add(f, "http://a/1")
    first = await pop(f, 0.0)
    await done(f, first, 10.0)
    assert await hosts_held(f) == 0  # idle: its slot is let go
    await add(f, "http://a/2")  # a new slot, with the remembered delay
    assert (await pop(f, 10.0)).url == "http://a/2"
    await add(f, "http://a/3")
    assert await pop(f, 12.0) is None
    assert (await pop(f, 15.0)).url == "http://a/3"


async def test_the_journaled_frontier_gives_back_what_was_queued_or_in_flight(tmp_path):
    """What a killed run left: queued, in flight, waiting to retry, all queued again, and
    the seen-set still filters."""
    spider = _JobSpider()
    job = Job(tmp_path / "job", spider)
    await job.open()
    f = JournaledFrontier(job, fingerprint)
    await f.open(spider)
    for url in ("http://a/1", "http://a/2", "http://b/1", "http://b/2"):
        await add(f, url)
    taken = await pop_one(f)  # in flight when the process dies
    finished = await pop_one(f)
    await f.done(finished)
    await f.ack(finished)  # complete: its outputs written
    retried = await pop_one(f)
    await f.done(retried)
    await f.retry(retried, 3600)
    await job.commit(Stats())
    await job.close()
    job = Job(tmp_path / "job", spider)
    await job.open()
    again = JournaledFrontier(job, fingerprint)
    await again.open(spider)
    assert job.resumed and await again.queued() == 3
    assert sorted(await drain_loading(again)) == sorted(
        u for u in ("http://a/1", "http://a/2", "http://b/1", "http://b/2")
        if u not in (finished.url, retried.url))
    assert await again.queued() == 1  # the retry still waits out its backoff
    assert await again.wakeup_at() is not None
    assert not await add(again, finished.url)  # seen before the kill: still a duplicate
    assert taken.url not in (finished.url, retried.url)
    await job.close()


async def drain_loading(frontier: JournaledFrontier, now: float = 0.0) -> list[str]:
    """drain(), letting the frontier load from disk what it holds there."""
    out: list[str] = []
    for _ in range(10_000):
        request = await pop(frontier, now)
        if request is not None:
            out.append(request.url)
            await done(frontier, request, now)
        elif frontier._loading or frontier._starving:
            await asyncio.sleep(0.001)
        else:
            break
    return out


async def test_past_its_window_the_queue_waits_on_disk_in_order(tmp_path):
    """A window of 12 (4 per host): 300 requests on 3 hosts come out once each, a host's
    equal-priority requests in arrival order, and memory never holds more than the window."""
    spider = _JobSpider()
    job = Job(tmp_path / "job", spider)
    await job.open()
    f = JournaledFrontier(job, fingerprint, window=12, host_window=4)
    await f.open(spider)
    urls = [f"http://h{i % 3}/{i}" for i in range(300)]
    for url in urls:
        assert await add(f, url)
    assert await f.queued() == 300 and f._queued <= 12
    out = await drain_loading(f)
    assert sorted(out) == sorted(urls)
    for host in ("h0", "h1", "h2"):
        mine = [int(u.rsplit("/", 1)[1]) for u in out if f"//{host}/" in u]
        assert mine == sorted(mine)  # breadth first within a host
    assert await f.queued() == 0
    await job.close()


@pytest.mark.parametrize("count", [
    100_000,
    pytest.param(1_000_000, marks=pytest.mark.skipif(
        not os.environ.get("CRAWLER_BIG_TESTS"), reason="a minute and 1 GB of allocations: "
        "set CRAWLER_BIG_TESTS=1")),
])
async def test_a_job_frontier_holds_a_window_not_the_queue(tmp_path, count):
    """`count` new requests on 10 hosts: memory holds the window and the seen-set (a hash
    per fingerprint), not the queue, measured with tracemalloc; the memory frontier, as a
    control, holds every request."""
    import tracemalloc

    spider = _JobSpider()
    job = Job(tmp_path / "job", spider)
    await job.open()

    async def fill(frontier: MemoryFrontier) -> int:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, count, 1000):
            batch = [Request(f"http://h{i % 10}/page/{i}") for i in range(start, start + 1000)]
            await frontier.add_many([(r, fingerprint(r), False) for r in batch])
            if start % 20_000 == 0 and frontier is not memory:
                await job.commit(Stats())  # as the engine does every 0.25 s
        await job.commit(Stats())
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return grown

    journaled = JournaledFrontier(job, fingerprint)
    await journaled.open(spider)
    memory = MemoryFrontier()
    on_disk = await fill(journaled)
    in_memory = await fill(memory)
    assert await journaled.queued() == await memory.queued() == count
    # the seen-set's ~75 bytes a request, and a window of at most WINDOW requests; with
    # the whole queue in memory a job frontier took about 1 KB a request
    bound = count * 80 + WINDOW * 800
    assert on_disk < bound, (on_disk / count, bound / count)
    assert in_memory > on_disk  # the control holds every request (~300 bytes each)
    await job.close()


async def test_a_hosts_pause_and_crawl_delay_outlive_the_process(tmp_path):
    spider = _JobSpider()
    clock = FakeClock()
    clock.now = 1000.0
    job = Job(tmp_path / "job", spider)
    await job.open()
    f = JournaledFrontier(job, fingerprint, HostPolicy(randomize=False), clock=clock)
    await f.open(spider)
    await f.pause_host("http://a:80", 3600)  # Retry-After: an hour
    await f.set_crawl_delay("http://b:80", 5.0)
    await job.commit(Stats())
    await job.close()
    job = Job(tmp_path / "job", spider)
    await job.open()
    clock.now = 1010.0
    again = JournaledFrontier(job, fingerprint, HostPolicy(randomize=False), clock=clock)
    await again.open(spider)
    await add(again, "http://a/1")
    for url in ("http://b/1", "http://b/2"):
        await add(again, url)
    assert (await pop_one(again)).url == "http://b/1"
    assert await pop_one(again) is None  # a waits out its hour, b its Crawl-delay
    assert await again.wakeup_at() == 1015.0
    clock.now = 1015.0
    assert (await pop_one(again)).url == "http://b/2"
    clock.now = 4599.0
    assert await pop_one(again) is None
    clock.now = 4600.0
    assert (await pop_one(again)).url == "http://a/1"
    await job.close()


async def test_stored_requests_the_spider_cannot_take_back_are_dropped_and_counted(tmp_path):
    """A resumed spider lost the method its stored requests name: they are dropped (logged
    and counted), and the frontier empties instead of waiting for them forever."""

    class Before(_JobSpider):
        def parse_item(self, response): ...

    job = Job(tmp_path / "job", Before())
    await job.open()
    f = JournaledFrontier(job, fingerprint, window=2, host_window=2)
    await f.open(job._spider)
    for i in range(5):
        request = Request(f"http://a/{i}", callback=job._spider.parse_item)
        await f.add_many([(request, fingerprint(request), False)])
    await job.commit(Stats(), finished=True)  # asked, but rows remain: not finished
    await job.close()
    assert not read_job(tmp_path / "job")["finished"]

    job = Job(tmp_path / "job", _JobSpider())  # the same spider, without parse_item
    await job.open()
    stats = Stats()
    await job.commit(stats)
    again = JournaledFrontier(job, fingerprint)
    await again.open(job._spider)
    assert await again.queued() == 5
    assert await drain_loading(again) == []
    assert await again.queued() == 0 and stats.errors == {"unrestorable_request": 5}
    await job.commit(stats, finished=True)
    await job.close()
    assert read_job(tmp_path / "job")["finished"]  # their rows went with them


async def test_the_seen_set_is_not_walked_by_the_garbage_collector():
    """A full collection walks every tracked container's items: a set of a million seen
    fingerprints cost 50 ms of a stalled loop per collection (70,000-page tree crawl:
    max_loop_stall 0.10-0.12 s); a dict of ints to None is not tracked at all."""
    import gc

    f = MemoryFrontier(HostPolicy())
    for i in range(1000):
        req = Request(f"http://a.test/{i}")
        await f.add_many([(req, fingerprint(req), False)])
        await f.mark_seen(f"extra-{i}".encode())
    assert len(f._seen) == 2000 and not gc.is_tracked(f._seen)
