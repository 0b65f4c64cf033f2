"""Parse time bounded whatever the page (issue 8.1)."""

from __future__ import annotations

import time

import pytest

from crawler import Request, Response
from crawler.http.parsing import MAX_WORK, TooComplex, check, estimate_work


def html(body: str) -> bytes:
    return f"<html><head><title>t</title></head><body>{body}</body></html>".encode()


@pytest.mark.parametrize(("body", "low", "high"), [
    ("<div>" * 20_000, 1.9e8, 2.1e8),  # nested blocks: each walks the whole stack
    ("<span>" * 20_000 + "<p>x</p>", 19_000, 21_000),  # inline nesting is cheap to build
    ("<div></div>" * 20_000, 0, 100_000),  # siblings
    ("<p>para" * 20_000, 0, 100_000),  # unclosed <p>s close each other
    ("<li>item" * 20_000, 0, 100_000),
    ("<img src=x><br>" * 20_000, 0, 100),  # void elements
    ("<script>" + "if (a<b) {}" * 20_000 + "</script>", 0, 100),  # raw text is not tags
    ("<!--" + "<div>" * 20_000 + "-->", 0, 100),  # nor are comments
    ("<svg>" + "<path d='M0'/>" * 20_000 + "</svg>", 0, 100),  # self-closing in SVG
    ("<span>" * 20_000 + "</div>" * 1000, 1.9e7, 2.1e7),  # stray end tags walk the stack
])
def test_estimated_work_follows_the_tree_builders_costly_cases(body, low, high):
    assert low <= estimate_work(html(body), limit=10**12) <= high


def test_deep_pages_are_refused_quickly_and_others_parse():
    deep = b"<div>" * 100_000 + b"<a href='/x'>x</a>"
    started = time.perf_counter()
    with pytest.raises(TooComplex, match="nests too deeply"):
        check(deep)
    assert time.perf_counter() - started < 1.0  # the walk stops once past the limit
    assert estimate_work(deep) > MAX_WORK
    response = Response("http://h.test/", 200, {"Content-Type": "text/html"}, deep,
                        Request("http://h.test/"))
    with pytest.raises(TooComplex):
        response.css("a")
    assert response.css("a") == []  # refused once, empty after
    check(html("<span>" * 100_000))  # deep but cheap: parsed
    check(b"<div>" * 15_000)  # too few tags to reach the limit: not even walked


async def test_small_pages_are_parsed_on_the_loop_big_ones_are_heavy():
    def response(body: bytes, ctype: str = "text/html; charset=utf-8") -> Response:
        return Response("http://h.test/", 200, {"Content-Type": ctype}, body,
                        Request("http://h.test/"))

    assert not response(html("<a href='/x'>x</a>" * 100)).heavy()
    assert response(html("<a href='/x'>x</a>" * 3000)).heavy()  # many tags
    assert response(b"x" * 300_000).heavy()  # a large body
    assert response("ñ".encode("latin-1") * 10, "text/html").heavy()  # needs detection
