"""Admission, alone: which requests enter the frontier, and what each refusal counts."""

from __future__ import annotations

from crawler import Request, Settings
from crawler.core.admission import Admission
from crawler.frontier import MemoryFrontier
from crawler.http.urls import AllowedDomains, fingerprint
from crawler.stats import Stats


class Robots:
    """A robots.txt cache that already knows: /private is disallowed, b.test unknown."""

    def permission(self, request):
        if request.host.startswith("http://b.test"):
            return None
        return "/private" not in request.url


def _admission(stats: Stats, **kwargs) -> tuple[Admission, list]:
    woken: list = []
    refused: list = []

    async def refuse(request, exc, kind):
        refused.append((request.url, kind))

    settings = kwargs.pop("settings", Settings())
    admission = Admission(MemoryFrontier(), stats=stats, fingerprint=fingerprint,
                          wake=lambda: woken.append(1), settings=settings, refused=refuse,
                          **kwargs)
    return admission, refused


async def test_what_must_never_be_fetched_is_dropped_and_counted():
    stats = Stats()
    admission, _ = _admission(stats, allowed_domains=AllowedDomains(["a.test"]),
                              settings=Settings(max_depth=1, max_url_length=40))
    requests = [Request("http://a.test/1"), Request("http://a.test/1"),
                Request("http://a.test/1", dont_filter=True), Request("http://b.test/"),
                Request("mailto:x@a.test"), Request("http://a.test/deep", depth=2),
                Request("http://a.test/" + "x" * 50), Request("http://")]
    assert await admission.enqueue_many(requests) == 2
    assert (stats.duplicates_filtered, stats.offsite_dropped, stats.unsupported_scheme,
            stats.depth_limited, stats.url_too_long, stats.invalid_url) == (1, 1, 1, 1, 1, 1)


async def test_robots_refusals_go_to_the_errback_and_unknown_hosts_wait_or_not():
    stats = Stats()
    admission, refused = _admission(stats)
    admission.robots = Robots()  # (the scheduler's use_robots)
    admission._load_robots = _never  # type: ignore[method-assign]  # b.test stays unknown
    queued = await admission.enqueue_many([Request("http://a.test/private/x"),
                                           Request("http://a.test/ok"),
                                           Request("http://b.test/")])
    assert queued == 2 and admission.awaiting == 1  # b.test waits for its robots.txt
    assert refused == [("http://a.test/private/x", "robots_disallowed")]
    assert stats.robots_disallowed == 1
    fleet, _ = _admission(Stats(), robots_at_fetch=True)
    fleet.robots = Robots()
    assert await fleet.enqueue_many([Request("http://b.test/")]) == 1
    assert fleet.awaiting == 0 and await fleet.frontier.queued() == 1  # checked when fetched


async def _never(host, first):
    return None


async def test_a_full_frontier_refuses_and_start_waits_for_room():
    stats = Stats()
    admission, _ = _admission(stats, settings=Settings(max_queued=2))
    assert await admission.enqueue_many([Request(f"http://a.test/{n}") for n in range(4)]) == 2
    assert stats.queue_full == 2
    admission.stop()
    await admission.wait_for_room()  # a stopping crawl does not wait
