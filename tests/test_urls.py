from __future__ import annotations

import pytest
from yarl import URL

from crawler import Request
from crawler.http.urls import AllowedDomains, canonical_url, fingerprint, parse_url


@pytest.mark.parametrize(("a", "b"), [
    ("HTTP://Example.COM:80/a", "http://example.com/a"),
    ("https://example.com:443", "https://example.com/"),
    ("http://example.com/%7euser", "http://example.com/~user"),
    ("http://example.com/a#frag", "http://example.com/a"),
])
def test_canonical_equivalents(a, b):
    assert canonical_url(URL(a)) == canonical_url(URL(b))


def test_query_order_is_kept():
    assert canonical_url(URL("http://e.com/?b=1&a=2")) != canonical_url(URL("http://e.com/?a=2&b=1"))


def test_fingerprint_method_and_body():
    def fp(url: str, method: str = "GET", body: bytes = b"") -> bytes:
        req = Request(url, method=method, body=body)
        return fingerprint(req)

    assert fp("http://e.com/a") == fp("HTTP://E.COM:80/a#x")
    assert fp("http://e.com/a") != fp("http://e.com/a", method="POST")
    assert fp("http://e.com/a", "POST", b"1") != fp("http://e.com/a", "POST", b"2")


@pytest.mark.parametrize(("url", "reason"), [
    ("mailto:a@b.c", "unsupported_scheme"),
    ("javascript:void(0)", "unsupported_scheme"),
    ("http://[::1", "invalid_url"),
    ("/relative", "invalid_url"),
    ("http://e.com/" + "x" * 70_000, "invalid_url"),  # max_url_length drops far shorter ones
])
def test_parse_url_reasons(url, reason):
    assert parse_url(url) == reason


def test_allowed_domains_subdomains():
    allowed = AllowedDomains(["example.com"])
    assert allowed.admits(URL("http://example.com/"))
    assert allowed.admits(URL("https://docs.example.com:8443/"))
    assert not allowed.admits(URL("http://badexample.com/"))
    assert not allowed.admits(URL("http://example.com.evil.org/"))


def test_allowed_domains_with_a_port_match_host_and_port():
    allowed = AllowedDomains(["127.0.0.1:8082", "Example.ORG."])
    assert allowed.admits(URL("http://127.0.0.1:8082/x"))
    assert not allowed.admits(URL("http://127.0.0.1:8083/x"))
    assert not allowed.admits(URL("http://127.0.0.1/x"))
    assert allowed.admits(URL("http://www.example.org/"))


def test_allowed_domains_entries_written_as_urls_or_idn():
    allowed = AllowedDomains(["https://bücher.de/shop"])
    assert allowed.warnings == ["allowed_domains entry 'https://bücher.de/shop' is not a bare "
                                "domain: using bücher.de"]
    assert allowed.admits(URL("http://xn--bcher-kva.de/"))
    with pytest.raises(ValueError, match="not a domain"):
        AllowedDomains(["http://"])
    with pytest.raises(ValueError, match="must be a list"):
        AllowedDomains("example.com")  # type: ignore[arg-type]
