from __future__ import annotations

import pytest

from crawler import Request, Response


def make(body: bytes, content_type: str = "text/html", url: str = "http://h.test/a/b.html"):
    return Response(url, 200, {"Content-Type": content_type}, body, Request(url))


@pytest.mark.parametrize(("body", "ctype", "expected"), [
    ("café".encode("latin-1"), "text/html; charset=ISO-8859-1", "café"),
    ('<meta charset="windows-1251"><p>Привет</p>'.encode("cp1251"), "text/html", "Привет"),
    ('<meta http-equiv="Content-Type" content="text/html; charset=cp1251">Да'.encode("cp1251"),
     "text/html", "Да"),
    ("naïve".encode(), "text/html; charset=bogus-charset", "naïve"),
    (b"ok \xff\xfe bad", "text/html", "ok \xff\xfe bad"),  # windows-1252: the fallback
])
def test_text_decoding_order(body, ctype, expected):
    assert expected in make(body, ctype).text


def test_header_charset_wins_over_meta():
    body = '<meta charset="utf-8">é'.encode("latin-1")
    assert make(body, "text/html; charset=latin-1").text.endswith("é")


def test_css_is_lazy_and_empty_for_non_html():
    r = make(b"<a href='x'>x</a>")
    assert r._parser is None
    assert [n.attributes["href"] for n in r.css("a")] == ["x"]
    assert make(b"\x89PNG\0\0", "image/png").css("a") == []
    assert make(b"", "text/html").css_first("a") is None


def test_follow_and_urljoin_with_base_href():
    r = make(b"<head><base href='/base/'></head><a href='c?d=1#frag'>x</a>")
    assert r.urljoin("c") == "http://h.test/base/c"
    req = r.follow(r.css_first("a"), callback=None, priority=3)
    assert req.url == "http://h.test/base/c?d=1" and req.priority == 3


def test_follow_all_and_bad_hrefs_never_raise():
    r = make(b"<a href='/ok'></a><a href='http://[::1'></a><a>no href</a><a href='mailto:x'>")
    urls = [req.url for req in r.follow_all(css="a")]
    assert urls[0] == "http://h.test/ok"
    assert len(urls) == 4  # the bad ones are dropped and counted at scheduling


def test_json():
    assert make(b'{"a": [1]}', "application/json").json() == {"a": [1]}


def test_request_replace_copies_meta():
    a = Request("http://h.test/", meta={"k": 1})
    b = a.replace(url="http://h.test/2")
    b.meta["k"] = 2
    assert a.meta == {"k": 1} and b.url == "http://h.test/2"


def test_plain_links_take_the_no_parse_path_and_match_the_slow_one():
    import random

    from yarl import URL

    from crawler.http.urls import canonical_url, fingerprint

    rng = random.Random(1)
    for base in ("http://Ex.com:80/a/b.html", "https://ex.com:8443/x", "http://h.test/"):
        r = make(b"<a>x</a>", url=base)
        assert r.follow("/plain/page.html")._canonical is not None
        assert r.follow(str(URL(base).origin()) + "/plain")._canonical is not None
        fast = 0
        for _ in range(3000):
            path = "/" + "".join(rng.choice("ab.-_~/0Z%?") for _ in range(rng.randint(0, 9)))
            for href in (path, str(URL(base).origin()) + path):
                request = r.follow(href)
                expected = canonical_url(URL(base).join(URL(href)).with_fragment(None))
                if request._canonical is not None:
                    fast += 1
                    assert request._canonical == expected, (base, href)
                    assert fingerprint(request) == fingerprint(Request(expected))
                assert canonical_url(request.yurl) == expected, (base, href)
                assert r.urljoin(href) == str(URL(base).join(URL(href)).with_fragment(None)) \
                    or request._canonical is not None
        assert fast > 1500, fast  # most of these links take the fast path: it is tested


def test_plain_link_fast_path_honours_base_href_and_rejects_lookalikes():
    r = make(b"<head><base href='http://other.test/x/'></head>")
    assert r.follow("/abs")._canonical == "http://other.test/abs"
    assert r.follow("/a/../b")._canonical is None  # dot segments: parsed the slow way
    assert r.follow("/a/../b").url == "http://other.test/b"
    assert r.follow("http://other.test.evil/x")._canonical is None
    assert r.follow("http://other.test:81/x")._canonical is None
    assert r.follow("http://other.test/x?q=1")._canonical is None


def test_compact_keeps_url_and_host_and_parses_again_on_demand():
    from yarl import URL

    req = Request(URL("HTTP://Example.COM:80/a%7e?q=1"))
    req.compact()
    assert req._yurl is None
    assert req.url == "http://example.com/a~?q=1"
    assert req.host == "http://example.com:80"
    assert req.yurl == URL("http://example.com/a~?q=1")


# -- what Request() accepts (issue 7.1) and JSON/form requests (7.24) ---------------------


def test_header_values_scrapy_accepts():
    from crawler.http import Request as R

    r = R("http://h.test/", headers={"X-Page": 1, "Referer": None, "X-B": b"bytes",
                                     "X-L": ["a", b"b"]})
    assert r.headers is not None
    assert r.headers["X-Page"] == "1" and r.headers["X-B"] == "bytes"
    assert r.headers.getall("X-L") == ["a", "b"]
    assert r.dropped_headers == {"referer"} and "Referer" not in r.headers
    pairs = R("http://h.test/", headers=[("A", "1"), ("A", "2")])
    assert pairs.headers is not None and pairs.headers.getall("A") == ["1", "2"]
    copy = r.replace(url="http://h.test/2")
    assert copy.headers == r.headers and copy.dropped_headers == r.dropped_headers


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"headers": {"X": 1.5}}, TypeError, "header 'X' must be str, bytes, int"),
    ({"headers": {"X": {"a": 1}}}, TypeError, "header 'X'"),
    ({"headers": {"X": True}}, TypeError, "header 'X'"),
    ({"headers": {"X": "a\r\nInjected: 1"}}, ValueError, "CR, LF or NUL"),
    ({"headers": {"Bad Name": "v"}}, ValueError, "invalid header name"),
    ({"headers": {"X": b"\xff"}}, ValueError, "not UTF-8"),
    ({"headers": "X: 1"}, TypeError, "mapping or"),
    ({"priority": "high"}, TypeError, "priority must be an int"),
    ({"priority": 1.5}, TypeError, "priority must be an int"),
    ({"callback": "parse"}, TypeError, "not its name"),
    ({"errback": 3}, TypeError, "errback must be callable"),
    ({"body": 12}, TypeError, "body must be bytes or str"),
    ({"method": "GE T"}, ValueError, "HTTP method"),
    ({"meta": [1]}, TypeError, "meta and cb_kwargs must be dicts"),
])
def test_request_rejects_bad_arguments_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        Request("http://h.test/", **kwargs)
    with pytest.raises(TypeError, match="url must be str"):
        Request(b"http://h.test/")  # type: ignore[arg-type]


def test_json_request():
    from crawler import JsonRequest

    r = JsonRequest("http://h.test/api", data={"b": 1, "a": [2]})
    assert r.method == "POST" and r.body == b'{"a":[2],"b":1}'
    assert r.headers is not None
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Accept"].startswith("application/json")
    get = JsonRequest("http://h.test/api", method="GET", headers={"Accept": "x/y"})
    assert get.method == "GET" and get.body == b"" and get.headers["Accept"] == "x/y"
    assert type(r.replace(priority=1)) is JsonRequest


def test_form_request():
    from crawler import FormRequest

    post = FormRequest("http://h.test/login", formdata={"user": "a b", "tags": ["1", "2"]})
    assert post.method == "POST" and post.body == b"user=a+b&tags=1&tags=2"
    assert post.headers is not None
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    get = FormRequest("http://h.test/s?x=1", method="GET", formdata=[("q", "é")])
    assert get.method == "GET" and get.body == b""
    assert get.url == "http://h.test/s?x=1&q=%C3%A9"


# -- only WHATWG labels are charsets (issue 8.2) --------------------------------------------


@pytest.mark.parametrize("label", ["base64", "hex", "rot13", "undefined", "idna", "zlib", "uu",
                                   "bz2", "quopri", "utf-7", "unicode_internal"])
def test_codecs_that_are_not_charsets_are_ignored(label):
    body = "<a href='/x'>café</a>".encode()
    header = make(body, f"text/html; charset={label}")
    assert header.text == "<a href='/x'>café</a>" and header.encoding == "utf-8"
    assert [a.text() for a in header.css("a")] == ["café"]
    meta = make(f'<meta charset="{label}">'.encode() + body, "text/html")
    assert meta.text.endswith("café</a>") and len(meta.css("a")) == 1


@pytest.mark.parametrize(("body", "ctype", "text", "encoding"), [
    (b"\xef\xbb\xbfcaf\xc3\xa9", "text/html; charset=latin1", "café", "utf-8"),  # BOM first
    ("café".encode("utf-16-le"), "text/html; charset=utf-16", "café", "utf-16-le"),
    ("café".encode("latin-1"), "text/html; charset=latin-1", "café", "cp1252"),  # Python's name
    ("Привет, как дела? Это страница без метки.".encode("cp1251"), "text/html",
     "Привет, как дела? Это страница без метки.", "cp1251"),  # detected
])
def test_encoding_sources(body, ctype, text, encoding):
    response = make(body, ctype)
    assert response.text == text
    assert response.encoding == encoding


def test_relative_links_take_the_no_parse_path_and_match_the_slow_one():
    import random

    from yarl import URL

    rng = random.Random(3)
    pieces = ["a", "b", ".", "..", "/", "-", "_", "~", "%", "?", "#", "x.html", "0", "Z", "//",
              ":", "#frag"]
    for base in ("http://Ex.com:80/a/b.html", "https://ex.com:8443/x/y/", "http://h.test/",
                 "http://h.test/a/b/c/d.html", "http://h.test/a?q=1", "http://h.test/%7Ea/b"):
        r = make(b"<a>x</a>", url=base)
        fast = 0
        for _ in range(5000):
            href = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
            request = r.follow(href)
            try:
                expected = URL(base).join(URL(href)).with_fragment(None)
                canonical = f"{expected.scheme}://{expected.host_port_subcomponent}" \
                            f"{expected.raw_path_qs}"
            except (ValueError, IndexError):  # hrefs yarl itself cannot resolve
                assert request._canonical is None
                continue
            if request._canonical is not None:
                fast += 1
                assert request._canonical == canonical, (base, href)
                assert request.path_qs == expected.raw_path_qs
                assert request.host == f"{expected.scheme}://{expected.host}:{expected.port}"
        # the shortcut is taken wherever the base is plain (not under a query or a %7E)
        assert fast > 1000 if "?" not in base and "%" not in base else fast > 0
