"""HTTPS against a local server with a certificate from a throwaway CA (trustme): a
certificate failure is its own kind (`tls`), is not retried, says why at WARNING, and the
settings `tls_ca_bundle` and `tls_verify` let the crawl through."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest
import trustme

from crawler import Request, Settings, Spider
from crawler.core.retry import RetryPolicy
from crawler.exceptions import Kind, SettingsError
from tests.conftest import HITS, crawl, links, make_site


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_site(aiohttp_server, ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    site = make_site({"/": links("/a"), "/a": links()})
    server = await aiohttp_server(site, ssl=context)
    return site, server


class _Pages(Spider):
    name = "pages"

    def __init__(self, start: str, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start]
        self.failures: list[str] = []

    def start_requests(self):
        yield Request(self.start_urls[0], errback=self.failed)

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all(css="a")

    def failed(self, failure):
        self.failures.append(failure.kind)


@pytest.fixture(params=["aiohttp", "curl"])
def stack(request) -> str:
    """Both HTTP stacks (crawler/handlers/http.py, curl.py) pass these tests."""
    return str(request.param)


def _url(server) -> str:
    url = str(server.make_url("/"))
    assert url.startswith("https://")
    return url


async def test_an_untrusted_certificate_fails_as_tls_once_without_retries(https_site, caplog,
                                                                         stack):
    site, server = https_site
    spider = _Pages(_url(server))
    caplog.set_level(logging.WARNING)
    # were a TLS failure retried, the backoff (up to 1,000 s) would hold the crawl
    stats, items = await asyncio.wait_for(crawl(
        spider, obey_robots=False, retry_backoff_base=1000.0, retry_backoff_max=1000.0,
        http_stack=stack), 20)
    assert items == [] and spider.failures == ["tls"]
    assert stats.errors == {"tls": 1} and stats.retries == 0
    warnings = [r.getMessage() for r in caplog.records
                if r.name == f"crawler.handlers.{'http' if stack == 'aiohttp' else 'curl'}"]
    assert len(warnings) == 1 and "certificate" in warnings[0]
    assert "tls_ca_bundle" in warnings[0]
    assert site[HITS] == []


async def test_an_untrusted_robots_txt_is_not_retried_and_fails_its_pages_as_tls(https_site,
                                                                                stack):
    site, server = https_site
    spider = _Pages(_url(server))
    stats, items = await asyncio.wait_for(crawl(
        spider, retry_backoff_base=1000.0, retry_backoff_max=1000.0, http_stack=stack), 20)
    assert items == [] and spider.failures == ["tls"]
    assert stats.errors == {"tls": 1}


async def test_a_ca_bundle_makes_the_certificate_trusted(https_site, ca, tmp_path, stack):
    site, server = https_site
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    stats, items = await crawl(_Pages(_url(server)), tmp_path, tls_ca_bundle=str(bundle),
                               http_stack=stack)
    assert sorted(i["url"].rsplit("/", 1)[1] for i in items) == ["", "a"]
    assert stats.errors == {}


async def test_verification_can_be_turned_off(https_site, tmp_path, stack):
    site, server = https_site
    stats, items = await crawl(_Pages(_url(server)), tmp_path, tls_verify=False,
                               http_stack=stack)
    assert len(items) == 2 and stats.errors == {}


def test_a_bad_ca_bundle_is_a_settings_error(tmp_path: Path):
    with pytest.raises(SettingsError, match="tls_ca_bundle"):
        Settings(tls_ca_bundle=str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(SettingsError, match="tls_ca_bundle"):
        Settings().merge_strings({"tls_ca_bundle": str(junk)})


def test_tls_failures_are_not_retryable():
    assert not RetryPolicy().retryable(Kind.TLS)
    assert RetryPolicy().retryable(Kind.TIMEOUT)
