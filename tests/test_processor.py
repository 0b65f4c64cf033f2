"""The Processor, alone: one request through the downloader middlewares and a fake
network, its outcome to the callback, the errback, a retry or the scheduler, and its
completion to the storage mode, whatever happens."""

from __future__ import annotations

from crawler import Request, Response, Settings
from crawler.exceptions import DownloadError
from crawler.middlewares import Retry
from tests.core_fakes import Parts, TableNetwork


async def _queued(parts: Parts, request: Request) -> Request:
    await parts.scheduler.enqueue(request)
    (popped,) = await parts.scheduler.frontier.pop_many(1)
    parts.scheduler.in_flight += 1
    return popped


async def test_a_response_reaches_the_callback_and_the_page_completes():
    parts = Parts(Settings(obey_robots=False))
    network = TableNetwork({"http://a.test/": (200, '<a href="/b">b</a>')})
    request = await _queued(parts, Request("http://a.test/", parts.spider.parse))
    await parts.processor(network).process(request)
    assert parts.storage.items == [{"url": "http://a.test/"}]
    assert parts.storage.completed == [("http://a.test/", False, 1)]
    assert parts.stats.pages == 1 and parts.stats.status_counts[200] == 1
    assert await parts.scheduler.queued() == 1  # the link
    assert parts.scheduler.in_flight == 0 and await parts.scheduler.frontier.in_flight() == 0


async def test_a_failure_goes_to_the_errback_and_still_completes():
    parts = Parts(Settings(obey_robots=False, retries=0))
    request = await _queued(parts, Request("http://a.test/gone", parts.spider.parse,
                                           errback=parts.spider.failed))
    await parts.processor(TableNetwork({})).process(request)
    assert parts.storage.items == [{"failed": "http://a.test/gone", "kind": "connection"}]
    assert parts.storage.completed == [("http://a.test/gone", False, 1)]
    assert parts.stats.requests_failed == 1 and parts.stats.errors["connection"] == 1


async def test_a_retry_keeps_the_entry_and_is_bounded_by_the_retries_setting():
    class AlwaysRetry:
        def process_response(self, request, response):
            return Retry(request, 0.0)

    parts = Parts(Settings(obey_robots=False, retries=1))
    network = TableNetwork({"http://a.test/": (200, "")})
    processor = parts.processor(network, [AlwaysRetry()])
    request = await _queued(parts, Request("http://a.test/", parts.spider.parse))
    await processor.process(request)
    assert parts.storage.completed == [("http://a.test/", True, 0)]  # goes on, same entry
    (retry,) = await parts.scheduler.frontier.pop_many(1)
    parts.scheduler.in_flight += 1
    assert retry.meta["retry_times"] == 1 and parts.stats.retries == 1
    await processor.process(retry)  # a second Retry is one more than the setting allows
    assert parts.stats.errors["too_many_retries"] == 1
    assert parts.storage.completed[-1] == ("http://a.test/", False, 0)


async def test_a_middleware_answer_frees_the_host_without_the_network():
    class Cache:
        def process_request(self, request):
            return Response(request.url, 200, {}, b"<html></html>", request, flags=["cached"])

    parts = Parts(Settings(obey_robots=False))
    network = TableNetwork({})
    request = await _queued(parts, Request("http://a.test/", parts.spider.parse))
    await parts.processor(network, [Cache()]).process(request)
    assert network.fetched == [] and parts.stats.pages == 1  # a cached page counts
    assert await parts.scheduler.frontier.in_flight() == 0
    assert parts.storage.items == [{"url": "http://a.test/"}]


async def test_a_stopping_crawl_leaves_the_request_for_the_next_run():
    parts = Parts(Settings(obey_robots=False))
    network = TableNetwork({"http://a.test/": (200, "")})
    request = await _queued(parts, Request("http://a.test/", parts.spider.parse))
    parts.running = False
    await parts.processor(network).process(request)
    assert network.fetched == [] and parts.storage.completed == [("http://a.test/", True, 0)]


async def test_max_pages_stops_the_crawl():
    parts = Parts(Settings(obey_robots=False, max_pages=1))
    network = TableNetwork({"http://a.test/": (200, "")})
    request = await _queued(parts, Request("http://a.test/", parts.spider.parse))
    await parts.processor(network).process(request)
    assert parts.stopped == ["max_pages"]


async def test_a_download_error_raised_by_a_middleware_is_the_requests_failure():
    class Refuse:
        def process_request(self, request):
            raise DownloadError("forbidden_address", "no", request)

    parts = Parts(Settings(obey_robots=False))
    request = await _queued(parts, Request("http://a.test/", parts.spider.parse,
                                           errback=parts.spider.failed))
    await parts.processor(TableNetwork({}), [Refuse()]).process(request)
    assert parts.storage.items == [{"failed": "http://a.test/", "kind": "forbidden_address"}]
