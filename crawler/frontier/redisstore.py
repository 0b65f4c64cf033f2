"""A frontier in Redis, shared by every crawler process of one crawl, on any machine.

Keys (prefix `crawler:{spider}:{job}:`; one Redis server, not Redis Cluster; HOST is the
politeness key, `politeness_by`'s, which every worker derives alike):

    gen        the crawl's generation: a token set when its state was made; every script
               checks it, so state deleted or evicted mid-crawl stops the crawl
    seq        INCR: request ids, which are also the arrival order
    req        HASH id -> "priority|host|data" (data: crawler.frontier.codec's text)
    q:HOST     ZSET ids of one host's queued requests, by (-priority, id)
    ready      ZSET hosts with queued requests that may start one now, by their best
    sleeping   ZSET hosts held back by their delay, by when they may start again
    slot:HOST  HASH the host's politeness: a (in flight), d (delay), cd (Crawl-delay),
               ns (next start), ls (last start), ps (next start before the last start);
               deleted when the host is idle
    cdelay     HASH host -> its robots.txt Crawl-delay, kept while its slot comes and goes
    delayed    ZSET ids of retries waiting out a backoff, by when they may start
    leased     ZSET ids taken by a worker and not acknowledged, by their lease deadline
    owner      HASH id -> the worker holding its lease (the fencing token: only the
               holder acknowledges it, and a worker writes a page's items only while it
               holds its lease)
    wl:WORKER  SET ids leased by WORKER
    alive      HASH worker -> its last heartbeat (server time): a worker silent for
               `dead_after` seconds has its leases given back, without waiting for them
               to expire
    fetching   SET ids whose fetch holds their host's slot (done() not yet called)
    seen       SET 12-byte digests of the fingerprints seen
    counts     HASH queued, pages, acked, redelivered
    items      HASH each worker process's items written (absolute: a report sent twice
               counts once); the fleet's items are their sum
    ack:TOKEN  what an acknowledgement answered (the ids it found lost), for ten minutes:
               the same call sent again gets the same answer
    seeding    the worker running start(), while it does (expires unless renewed)
    seeded     set once start() ran to its end
    started    the crawl's start, wall time (max_duration)
    stop       why the crawl stops for everyone (max_pages, max_items, max_duration)
    workers    HASH worker id -> its last heartbeat, as JSON
    robots:ORIGIN  what ORIGIN's robots.txt said, for a day (and ...:lock while one
               worker fetches it for the fleet)

Every change is one Lua script, so no interleaving of workers loses or double-takes a
request; a script also applies the fetch ends this worker kept since its last one (done()
is not a round trip of its own). A request taken by pop() is leased: the worker extends
the lease while it works on it and acknowledges it once its items are flushed; an
expired lease, or a worker silent for `dead_after` seconds (dead, or frozen), puts the
request back in the queue, counted as redelivered. A worker writes a page's items only
while it holds the page's lease: it knows it does when its own last heartbeat is recent
(nobody reclaims before `dead_after`), else it asks (one script); a page whose lease was
lost is dropped, counted (`frontier/lease_lost`), since another worker redoes it. The
acknowledgement is the fence: it ends only the leases the worker still holds and returns
the others, whose items a worker that stalled after writing them takes back out of its
files (crawler/storage/fleet.py). So output to files is exactly once (unless the worker
also dies within the milliseconds of that repair: two faults at once).
Times are the Redis server's clock (`clock` is wall time corrected by the offset
measured at open), so that workers on several machines agree on delays and leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import orjson

from crawler.core.ratelimit import BACKOFF_STATUSES, HostPolicy
from crawler.exceptions import FrontierUnavailable
from crawler.frontier.codec import STORE_ID, RequestCodec, store_id
from crawler.frontier.fleetrobots import FleetRobots
from crawler.frontier.redislink import VANISHED, RedisLink
from crawler.http import Request
from crawler.redact import redact
from crawler.stats import Stats
from crawler.tasks import cancel_and_wait

__all__ = ["RedisFrontier", "default_worker_id"]

logger = logging.getLogger(__name__)

_DIGEST = 12  # bytes of a fingerprint kept in the seen-set: 96 bits, no collision in 10^12
_PRIORITY = 4000  # |priority| beyond this ranks as this (scores are doubles)
_HEARTBEAT = 0.5  # seconds between heartbeats: leases extended, expired ones reclaimed
_OUTAGE = 60.0  # seconds of Redis outage ridden out before the crawl gives up
_QUEUED_FRESH = 1.0  # seconds a non-zero queued count is used again
_KNOWN = 1_000_000  # fingerprints remembered as recorded, for seen_many(): ~70 MB at most
DEAD_AFTER = 6.0  # seconds without a heartbeat after which a worker's leases are given back

def _script(name: str) -> str:
    """A script of crawler/frontier/lua/: the shared preamble (common.lua), then its own."""
    folder = resources.files("crawler.frontier") / "lua"
    text = (folder / "common.lua").read_text() + (folder / f"{name}.lua").read_text()
    return text.replace("VANISHED", VANISHED)


_SCRIPTS = ("add", "pop", "done", "ack", "retry", "heartbeat", "pause", "claim", "owns")


def default_worker_id() -> str:
    """This process's name in the fleet: host name and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class RedisFrontier:
    """Usage: `RedisFrontier("redis://127.0.0.1:6379/0", spider="books", job="books",
    policy=HostPolicy.from_settings(settings))`, one per worker process."""

    id_key = STORE_ID
    poll: float | None = 0.05

    def __init__(self, url: str, *, spider: str, job: str | None = None,
                 policy: HostPolicy | None = None, worker: str | None = None,
                 lease: float = 30.0, max_pages: int | None = None,
                 max_items: int | None = None, max_duration: float | None = None,
                 outage: float = _OUTAGE, clock: Callable[[], float] | None = None,
                 heartbeat: float | None = _HEARTBEAT, stats: Stats | None = None,
                 dfs: bool = False) -> None:
        self.url = url
        self.dfs = dfs  # the newest of a priority first (every worker must say the same)
        self.policy = policy or HostPolicy()
        # hosts below are politeness keys (politeness_by): every worker derives the same
        self._slot_of = self.policy.keys.of
        self._grouped = self.policy.keys.grouped
        self.worker = worker or default_worker_id()
        self.prefix = f"crawler:{spider}:{job or spider}:"
        self._lease = lease
        self._max_pages = max_pages
        self._max_items = max_items
        self._max_duration = max_duration
        self._offset = 0.0  # Redis time - local wall time
        self.clock: Callable[[], float] = clock or self._now  # injected: a test's
        self._every = heartbeat  # seconds between heartbeats; None: only beat() (tests)
        # the connection, riding out outages; broken for good: _broken()
        self._link = RedisLink(url, prefix=self.prefix, outage=outage, broken=self._broken)
        self._call = self._link.call
        self._scripts: dict[str, Any] = {}
        self._codec: RequestCodec | None = None
        self._leased: set[str] = set()  # ids this worker holds
        self._in_flight = 0  # popped here, done() not yet called
        # fetches that ended, sent with the next script: (id, host, latency, status,
        # cached, backoff, when)
        self._dones: list[tuple[str, str, float, int, int, int, float]] = []
        # digests this worker saw recorded (bounded; a dict of ints, untracked by the GC)
        self._known: dict[int, None] = {}
        self._queued = (0, 0.0)  # the fleet's queued count, and when it was read
        self._dry = False  # the last pop found nothing to take
        self._wake: float | None = None  # from the last pop
        self._heartbeat: asyncio.Task[None] | None = None
        self._changed: Callable[[], None] = lambda: None
        self._stop: Callable[[str], None] = lambda reason: None
        self._seeder = False
        self._items: Callable[[], int] = lambda: 0
        self._pages: Callable[[], int] = lambda: 0
        self._reported = (0, 0, time.monotonic())  # pages, items, when: the last report
        self.stopped: str | None = None
        self.failure: str | None = None  # why this store stopped the crawl, one line
        self._stats = stats or Stats()  # the crawl's: requests that cannot be restored
        self._gen = ""  # the crawl's generation, read at open
        self._dead_after = min(DEAD_AFTER, lease)
        self._beat_ok = -1e9  # monotonic time of this worker's last heartbeat that ran
        # ids whose leases were given back while this worker was silent (bounded by what
        # it had in flight: each leaves when its page completes or is popped again)
        self._lost: set[str] = set()
        self._lost_logged = 0
        self._run_id = f"{self.worker}#{uuid.uuid4().hex[:8]}"  # this process's, in `items`
        self._sending: dict[str, asyncio.Future[None]] = {}  # id -> the script carrying
        # its fetch end, while it is under way

    def _now(self) -> float:
        return time.time() + self._offset

    # -- opening and closing -------------------------------------------------------------

    @property
    def where(self) -> str:
        """The frontier's URL without its password, for every message."""
        return self._link.where

    @property
    def _redis(self) -> Any:
        return self._link.client

    @property
    def shared_rules(self) -> FleetRobots:
        """robots.txt, fetched once for the fleet (crawler/frontier/fleetrobots.py)."""
        return FleetRobots(self._link, self.worker)

    def _broken(self, reason: str, message: str) -> None:
        """The link broke for good: the crawl stops (said once, by the link)."""
        self.stopped, self.failure = reason, message
        self._stop(reason)

    async def open(self, spider: object | None = None) -> None:
        self._codec = RequestCodec(spider, counters=self._stats.counters)
        self._offset, self._gen = await self._link.open()
        client = self._link.client
        arrival = "-" if self.dfs else "+"  # depth first: the newest of a priority first
        for name in _SCRIPTS:
            self._scripts[name] = client.register_script(
                _script(name).replace("ARRIVAL", arrival))
        await self._call(client.set, self.prefix + "started", str(self.clock()), nx=True)
        if self._every is not None:
            self._heartbeat = asyncio.create_task(self._beat(), name="frontier-heartbeat")

    async def close(self) -> None:
        await self.policy.keys.close()
        await cancel_and_wait(self._heartbeat)
        self._heartbeat = None
        if self._redis is not None:
            with contextlib.suppress(Exception):  # the last ends and counts; then it leaves
                await asyncio.wait_for(self.flush(), 5)
                await asyncio.wait_for(self._release(), 5)
                await asyncio.wait_for(self._report(), 5)
                await self._link.pipeline([
                    ("hdel", self.prefix + "workers", self.worker),
                    ("hdel", self.prefix + "alive", self.worker)], retry=False)
                if self._seeder:
                    await self._redis.delete(self.prefix + "seeding")
            await self._link.close()

    def watch(self, changed: Callable[[], None], stop: Callable[[str], None], *,
              pages: Callable[[], int], items: Callable[[], int]) -> None:
        """`changed` when other workers may have changed what is pending; `stop(reason)`
        when the crawl stops for everyone (a global limit). `pages` and `items`: this
        worker's counts, reported in its heartbeat."""
        self._changed, self._stop, self._pages, self._items = changed, stop, pages, items

    async def claim_seeding(self) -> bool:
        """True when this worker should run start(): none did, or the one that did died
        before it finished. Only one worker at a time gets True."""
        won = bool(await self._run("claim", [self.prefix, self.worker,
                                             max(5, int(self._lease))]))
        self._seeder = won
        return won

    async def seeding_done(self) -> None:
        if self._seeder:
            await self._call(self._redis.set, self.prefix + "seeded", "1")
            await self._call(self._redis.delete, self.prefix + "seeding")
            self._seeder = False

    # -- the Frontier protocol -----------------------------------------------------------

    async def seen_many(self, fingerprints: Sequence[bytes]) -> list[bool]:
        """From what this worker saw recorded, without a round trip: False may be a
        fingerprint another worker recorded (add_many() decides, in Redis)."""
        known = self._known
        return [hash(fp[:_DIGEST]) in known for fp in fingerprints]

    def _saw(self, digest: bytes) -> None:
        if len(self._known) >= _KNOWN:
            self._known.clear()  # a cache: forgetting costs a duplicate's admission work
        self._known[hash(digest)] = None

    async def mark_seen(self, fingerprint: bytes, request: Request | None = None) -> bool:
        digest = fingerprint[:_DIGEST]
        self._saw(digest)
        return bool(await self._call(self._redis.sadd, self.prefix + "seen", digest))

    async def add_many(self, entries: Sequence[tuple[Request, bytes, bool]]) -> list[bool]:
        codec = self._codec
        assert codec is not None
        if self.policy.keys.by == "ip":  # the names' addresses first
            await self.policy.keys.prepare(request for request, _, _ in entries)
        args: list[Any] = [self.prefix, self.clock(), self.policy.concurrency]
        slot_of = self._slot_of
        for request, fp, force in entries:  # encoded first: an unstorable one raises here
            sid = store_id(request)
            args += (fp[:_DIGEST], "1" if force else "0", _priority(request),
                     slot_of(request._host or request.host), codec.encode(request),
                     "" if sid is None else str(sid))
        if len(args) == 3:
            return []
        added = await self._run("add", args, ending=[
            str(sid) for sid in map(store_id, (r for r, _, _ in entries)) if sid is not None])
        for request, fp, _ in entries:
            self._saw(fp[:_DIGEST])
            sid = store_id(request)
            if sid is not None:
                self._leased.discard(str(sid))
        return [bool(x) for x in added]

    async def retry(self, request: Request, delay: float) -> None:
        codec = self._codec
        assert codec is not None
        sid = store_id(request)
        data = codec.encode(request)
        if sid is None:  # not from this store (an extension's): queue it as new
            await self.add_many([(request, b"", True)])
            return
        self._leased.discard(str(sid))
        await self._run("retry", ending=[str(sid)], args=[
            self.prefix, str(sid), _priority(request),
            request._slot or self._slot_of(request.host), data,
            self.clock() + delay])

    async def pop_many(self, n: int) -> list[Request]:
        """Up to `n` requests whose hosts may start one now, leased to this worker."""
        if self.stopped is not None:
            return []
        policy, now = self.policy, self.clock()
        delay0 = max(policy.delay, policy.start_delay) if policy.autothrottle \
            else policy.delay
        factors = [random.uniform(0.5, 1.5) if policy.randomize else 0 for _ in range(n)]
        out, wake = await self._run("pop", [
            self.prefix, now, policy.concurrency, delay0, now + self._lease, n,
            -1 if self._max_pages is None else self._max_pages, self.worker, *factors])
        self._wake = min((float(w) for w in wake), default=None)
        self._dry = not out  # nothing to take: queued() asks Redis again
        codec = self._codec
        assert codec is not None
        requests = []
        for i in range(0, len(out), 2):
            rid, rec = out[i].decode(), out[i + 1].decode()
            self._leased.add(rid)
            self._lost.discard(rid)
            self._in_flight += 1
            _, host, data = rec.split("|", 2) if rec.count("|") >= 2 else ("", "", "")
            try:
                request = codec.decode(data, rid)
            except (ValueError, TypeError, IndexError) as exc:
                # a record another version wrote, or a callback the spider lost
                logger.error("a shared request cannot be restored (%s): dropped", exc)
                self._stats.errors["unrestorable_request"] += 1
                self._done_id(rid, host)
                await self.ack_ids([rid])
                continue
            request._slot = host
            if not self._grouped:
                request._host = host
            requests.append(request)
        return requests

    async def done(self, request: Request, *, latency: float | None = None,
                   status: int | None = None, cached: bool = False) -> None:
        """Kept, and sent with the next script (a pop, an add, the acks that follow within
        0.5 s): not a round trip of its own."""
        sid = store_id(request)
        if sid is None:
            return
        self._done_id(str(sid), request._slot or self._slot_of(request.host), latency,
                      status, cached)

    def _done_id(self, rid: str, host: str, latency: float | None = None,
                 status: int | None = None, cached: bool = True) -> None:
        self._in_flight -= 1
        self._dones.append((rid, host, -1 if latency is None else latency,
                            -1 if status is None else status, int(cached),
                            int(status in BACKOFF_STATUSES), self.clock()))

    async def flush(self) -> None:
        """Send the fetches that ended and were not sent yet."""
        if self._dones:
            await self._run("done", [self.prefix])

    async def _run(self, name: str, args: list[Any], *,
                   ending: Sequence[str] = ()) -> Any:
        """Script `name` with `args` (the prefix first), carrying the fetches that ended
        since the last script. Sent again as it is if the connection drops: applying the
        same ends twice changes nothing (a slot is freed once per id). `ending`: ids whose
        leases the script ends (an ack, a retry, a redirect): it goes after any script
        under way with their fetch ends (on another connection, Redis may run it first,
        and the fetch end would then find its lease gone: its host's slot never freed,
        its page never counted)."""
        under_way = self._sending
        if ending and under_way:
            waits = {under_way[rid] for rid in ending if rid in under_way}
            if waits:
                await asyncio.wait(waits)
        if not self._dones:
            return await self._call(self._scripts[name],
                                    args=[args[0], self._gen, b"", *args[1:]])
        p = self.policy
        ends, self._dones = self._dones, []
        dones = orjson.dumps([self.clock(), p.concurrency, int(p.autothrottle), p.delay,
                              p.target_concurrency, p.max_delay, ends])
        sent = asyncio.get_running_loop().create_future()
        for end in ends:
            under_way[end[0]] = sent
        try:
            return await self._call(self._scripts[name],
                                    args=[args[0], self._gen, dones, *args[1:]])
        finally:
            for end in ends:
                if under_way.get(end[0]) is sent:
                    del under_way[end[0]]
            sent.set_result(None)

    async def ack(self, request: Request) -> None:
        sid = store_id(request)
        if sid is not None:
            await self.ack_ids([str(sid)])

    async def ack_many(self, requests: Sequence[Request]) -> None:
        await self.ack_held(requests)

    async def ack_held(self, requests: Sequence[Request]) -> set[str]:
        """`ack_ids` for requests: the store ids of those not acknowledged."""
        ids = [str(sid) for sid in map(store_id, requests) if sid is not None]
        return await self.ack_ids(ids) if ids else set()

    async def ack_ids(self, ids: list[str]) -> set[str]:
        """Acknowledge complete requests; the ids whose leases this worker no longer held
        (another worker redoes those) are returned, not acknowledged."""
        for rid in ids:
            self._leased.discard(rid)
        token = uuid.uuid4().hex  # the same answer if the script is sent again
        lost = await self._run("ack", [self.prefix, self.worker, token, *ids], ending=ids)
        return {x.decode() if isinstance(x, bytes) else str(x) for x in lost or ()}

    # -- fencing: a page's items are written only under its lease ------------------------

    def lease_fresh(self, request: Request) -> bool:
        """Whether this worker still holds `request`'s lease, known without asking: its
        last heartbeat ran less than half of `dead_after` ago (nobody gives back a
        worker's leases before it has been silent that long) and did not find the lease
        given back."""
        return time.monotonic() - self._beat_ok < self._dead_after / 2 and \
            str(store_id(request)) not in self._lost

    async def owns(self, requests: Sequence[Request]) -> list[bool]:
        """Whether this worker still holds each request's lease (one script)."""
        ids = [str(store_id(r)) for r in requests]
        answer = await self._run("owns", [self.prefix, self.worker, *ids])
        return [bool(x) for x in answer]

    def written_twice(self, pages: int) -> None:
        """`pages` were written after their leases were lost, to an output that cannot
        take them back: another worker redoes them, so their items appear twice."""
        self._stats.counters["frontier/lease_lost_after_write"] += pages
        logger.warning("%d page(s) were written after their lease was lost (this worker "
                       "stalled past %.0f s) to an output that cannot be cut back: another "
                       "worker redoes them, so their items appear twice", pages,
                       self._dead_after)

    def lease_lost(self, request: Request, items: int) -> None:
        """`request`'s lease was lost before its items were written: they are dropped
        (another worker redoes the page), counted and logged."""
        sid = store_id(request)
        if sid is not None:
            self._leased.discard(str(sid))
            self._lost.discard(str(sid))
        self._stats.counters["frontier/lease_lost"] += 1
        self._lost_logged += 1
        log = logger.warning if self._lost_logged <= 5 else logger.debug
        log("%s: this worker lost its lease (it stalled past %.0f s); another worker redoes "
            "the page: its %d item(s) here are dropped", request.url, self._dead_after, items)

    async def pause_host(self, host: str, seconds: float) -> None:
        await self._run("pause", [self.prefix, self._slot_of(host),
                                                       self.clock() + seconds])

    async def set_crawl_delay(self, host: str, delay: float) -> None:
        p = self.policy
        await self._run("pause", [
            self.prefix, self._slot_of(host), 0, min(delay, p.max_delay),
            max(p.delay, p.start_delay) if p.autothrottle else p.delay])

    async def hosts_kept(self) -> int:
        await self.flush()
        return len([k async for k in self._redis.scan_iter(self.prefix + "slot:*")])

    def host_states(self, hosts: Sequence[str]) -> dict[str, tuple[int, float]]:
        return {}  # a host's slot is the fleet's, in Redis: not read for the status page

    async def wakeup_at(self) -> float | None:
        """As of the last pop: other workers change it too (the dispatcher polls)."""
        return self._wake

    async def queued(self) -> int:
        """Requests waiting, fleet-wide; a start() under way anywhere counts as one. A
        count above zero may be up to 1 s old (admission asks for every page) while pops
        find work; zero, or after a pop that found none, is asked for again each time (the
        crawl may be over)."""
        now = time.monotonic()
        if self._queued[0] and now - self._queued[1] < _QUEUED_FRESH and not self._dry:
            return self._queued[0]
        p = self.prefix
        queued, seeding = await self._link.pipeline([
            ("hget", p + "counts", "queued"), ("exists", p + "seeding")])
        count = int(queued or 0) + int(seeding)
        self._queued = (count, now)
        return count

    async def in_flight(self) -> int:
        """Requests leased by any worker and not acknowledged."""
        return int(await self._call(self._redis.zcard, self.prefix + "leased"))

    # -- heartbeats and fleet-wide limits -----------------------------------------------------

    async def beat(self) -> int:
        """Extend this worker's leases and give back every expired one, and every lease of
        a worker silent for `dead_after` seconds; how many were given back. A worker that
        was itself silent that long (an outage, a stall) gives back no other's this time:
        the others were as silent as it was."""
        now, started = self.clock(), time.monotonic()
        reclaim = started - self._beat_ok < self._dead_after
        back, lost = await self._run("heartbeat", [
            self.prefix, now, self.policy.concurrency, now + self._lease, self.worker,
            self._dead_after, "1" if reclaim else "0", *self._leased])
        for rid in lost:  # given back while this worker was silent: not its own any more
            self._leased.discard(rid.decode())
            self._lost.add(rid.decode())
        self._beat_ok = started
        return int(back)

    async def _report(self) -> list[Any]:
        """This worker's heartbeat record and its items since the last report; the fleet's
        items, pages, start and stop reason."""
        p = self.prefix
        pages, items = self._pages(), self._items()
        now = time.monotonic()
        elapsed = max(now - self._reported[2], 1e-3)
        record = {"heartbeat": self.clock(), "pages": pages, "items": items,
                  "pages_per_second": round((pages - self._reported[0]) / elapsed, 1),
                  "in_flight": self._in_flight}
        # this process's items as an absolute count under its own key: a report that was
        # cut short (a cancelled heartbeat) and sent again counts them once, where an
        # increment counted them twice
        answer = await self._link.pipeline([
            ("hset", p + "workers", self.worker, orjson.dumps(record)),
            ("hset", p + "items", self._run_id, items), ("hvals", p + "items"),
            ("hget", p + "counts", "pages"), ("get", p + "started"), ("get", p + "stop")])
        self._reported = (pages, items, now)
        return [sum(int(v) for v in answer[2]), *answer[3:]]

    async def _release(self) -> None:
        """Give back at once what this worker still holds (taken and not done when it
        stopped), rather than after its leases expire: ends the fleet's wait for them."""
        if not self._leased:
            return
        held, self._leased = sorted(self._leased), set()
        await self._call(self._redis.zadd, self.prefix + "leased", dict.fromkeys(held, 0),
                         xx=True)
        await self.beat()

    async def _beat(self) -> None:
        r, p = self._redis, self.prefix
        assert self._every is not None
        failures = 0
        while True:
            await asyncio.sleep(self._every)
            if self._link.reason is not None:
                return  # said already, once
            try:
                now = self.clock()
                await self.beat()
                if self._seeder:
                    await self._call(r.expire, p + "seeding", max(5, int(self._lease)))
                items_total, pages_total, started, stop = await self._report()
                reason = stop.decode() if stop else self._limit(
                    now, int(pages_total or 0), int(items_total), float(started or now))
                if reason is not None and self.stopped is None:
                    self.stopped = reason
                    await self._call(r.set, p + "stop", reason, nx=True)
                    self._stop(reason)
                self._changed()
                failures = 0
            except asyncio.CancelledError:
                raise
            except FrontierUnavailable:
                return  # the crawl stops; the error was said once
            except Exception as exc:  # a heartbeat failing must not end the crawl: try again
                failures += 1
                if failures == 1:
                    logger.warning("frontier heartbeat failed (%s): trying again",
                                   redact(f"{type(exc).__name__}: {exc}"))

    def _limit(self, now: float, pages: int, items: int, started: float) -> str | None:
        if self._max_pages is not None and pages >= self._max_pages:
            return "max_pages"
        if self._max_items is not None and items >= self._max_items:
            return "max_items"
        if self._max_duration is not None and now - started >= self._max_duration:
            return "max_duration"
        return None


def _priority(request: Request) -> int:
    return max(-_PRIORITY, min(_PRIORITY, request.priority))
