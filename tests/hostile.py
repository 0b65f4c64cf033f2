"""A hostile web site for robustness tests: every way a server can misbehave, on one app."""

from __future__ import annotations

import asyncio
import gzip
import struct
import time
import zlib
from functools import cache

from aiohttp import web

from tests.conftest import HITS

COUNTS = web.AppKey("counts", dict)

# path -> the failure kind the crawl must record for it (None: a healthy page)
EXPECTED_FAILURES = {
    "/slow": "timeout",
    "/always-500": "http_500",
    "/reset": "payload",
    "/truncated": "payload",
    "/gzip-bomb": "too_large",
    "/endless": "too_large",
    "/declared-huge": "too_large",
    "/loop-a": "redirect_loop",
    "/chain/0": "too_many_redirects",
    "/bad-chunked": "protocol",
    "/deep": "too_complex",
    "/gzip-truncated": "payload",
}
HOSTILE_CHARSETS = ("base64", "hex", "rot13", "undefined", "idna", "zlib", "uu", "bz2",
                    "quopri", "utf-7")
HEALTHY = ["/", "/latin1", "/cp1251", "/bad-utf8", "/png-as-html", "/doc.pdf", "/malformed",
           "/nul", "/empty", "/weird-links", "/503-then-200", "/429-then-200", "/huge",
           "/binary-garbage", "/json", "/deep-inline", "/meta-undefined",
           *(f"/charset/{label}" for label in HOSTILE_CHARSETS)]


@cache
def gzip_bomb(gib: int = 2) -> bytes:
    """A ~2 MB gzip stream that inflates to `gib` GiB of zeros (full-flush blocks repeated)."""
    chunk = b"\0" * (1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    end = comp.flush()
    n = gib * 1024
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + block * n + end + struct.pack("<II", crc, (n << 20) & 0xFFFFFFFF)


def _html(body: str, head: str = "") -> str:
    return f"<html><head><title>t</title>{head}</head><body>{body}</body></html>"


def make_hostile_app(offsite: str, huge_links: int = 50_000) -> web.Application:
    app = web.Application()
    app[HITS] = []
    app[COUNTS] = {}
    links = [*HEALTHY[1:], *EXPECTED_FAILURES, "/private/secret", "/calendar/0", offsite,
             "/go-offsite"]

    def count(request: web.Request) -> int:
        app[COUNTS][request.path] = app[COUNTS].get(request.path, 0) + 1
        return app[COUNTS][request.path]

    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        app[HITS].append((request.path_qs, time.monotonic()))
        return await handler(request)

    app.middlewares.append(web.middleware(record))
    r = app.router

    async def index(request: web.Request) -> web.Response:
        anchors = "".join(f'<a href="{h}">x</a>' for h in links)
        return web.Response(text=_html(anchors), content_type="text/html")

    async def robots(request: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nDisallow: /private/\n")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async def always_500(request: web.Request) -> web.Response:
        return web.Response(status=500, text="error")

    async def then_200(request: web.Request) -> web.Response:
        status = 503 if request.path.startswith("/503") else 429
        if count(request) == 1:
            return web.Response(status=status, headers={"Retry-After": "1"}, text="later")
        return web.Response(text=_html("recovered"), content_type="text/html")

    async def cut_short(request: web.Request) -> web.StreamResponse:
        """Promise a long body, send a little, then RST (/reset) or close cleanly (/truncated)."""
        resp = web.StreamResponse(headers={"Content-Length": "100000"})
        resp.content_type = "text/html"
        await resp.prepare(request)
        await resp.write(b"<html><body>only part of it")
        assert request.transport is not None
        if request.path == "/reset":
            request.transport.abort()
        else:
            request.transport.close()
        return resp

    async def bad_chunked(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\nnot hex\r\n")
        await asyncio.sleep(0.05)
        request.transport.close()
        return web.Response()

    async def gzip_truncated(request: web.Request) -> web.Response:
        whole = gzip.compress(_html("all of it " * 1000).encode())
        return web.Response(body=whole[: len(whole) // 2], headers={
            "Content-Encoding": "gzip", "Content-Type": "text/html"})

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=gzip_bomb(), headers={
            "Content-Encoding": "gzip", "Content-Type": "text/html"})

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "text/html"
        await resp.prepare(request)
        chunk = b"<p>" + b"a" * 65536 + b"</p>"
        for _ in range(100_000):
            await resp.write(chunk)
        return resp

    async def declared_huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(10 * 1024**3)})
        await resp.prepare(request)
        await resp.write(b"x" * 1024)
        await asyncio.sleep(30)
        return resp

    async def redirect(request: web.Request) -> web.Response:
        path = request.path
        if path == "/loop-a":
            raise web.HTTPFound("/loop-b")
        if path == "/loop-b":
            raise web.HTTPFound("/loop-a")
        if path == "/go-offsite":
            raise web.HTTPFound(offsite)
        n = int(path.rsplit("/", 1)[1])
        raise web.HTTPFound(f"/chain/{n + 1}")

    async def content(request: web.Request) -> web.Response:
        path = request.path
        if path == "/latin1":
            return web.Response(body=_html("café").encode("latin-1"),
                                headers={"Content-Type": "text/html; charset=ISO-8859-1"})
        if path == "/cp1251":
            return web.Response(body=_html("Привет", '<meta charset="windows-1251">')
                                .encode("cp1251"), content_type="text/html")
        if path == "/bad-utf8":
            return web.Response(body=b"<html><body>ok \xff\xfe\xc3 bad</body></html>",
                                headers={"Content-Type": "text/html; charset=utf-8"})
        if path == "/png-as-html":
            return web.Response(body=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40,
                                content_type="text/html")
        if path == "/binary-garbage":
            return web.Response(body=bytes((i * 7919) % 256 for i in range(200_000)),
                                headers={"Content-Type": "text/html; charset=bogus-x"})
        if path == "/doc.pdf":
            return web.Response(body=b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF",
                                content_type="application/pdf")
        if path == "/malformed":
            return web.Response(text="<html><body><div><p>unclosed <a href='/'>x<table><td>"
                                     "<<<>>></b></i><!-- never closed", content_type="text/html")
        if path == "/nul":
            return web.Response(body=b"<html>\0<body>\0nul\0bytes<a href='/\0x'>\0</a></body>",
                                content_type="text/html")
        if path == "/empty":
            return web.Response(body=b"", content_type="text/html")
        if path == "/json":
            return web.json_response({"ok": True})
        if path == "/deep":  # quadratic for a tree builder: refused, not parsed for minutes
            return web.Response(text="<div>" * 100_000 + "<a href='/x'>x</a>",
                                content_type="text/html")
        if path == "/deep-inline":  # as deep, but cheap to build: parsed
            return web.Response(text=_html("<span>" * 100_000 + "<a href='/latin1'>x</a>"),
                                content_type="text/html")
        if path.startswith("/charset/"):  # codecs that are not charsets must not be used
            return web.Response(body=_html("caf\u00e9 <a href='/latin1'>l</a>").encode(),
                                headers={"Content-Type": f"text/html; charset={path[9:]}"})
        if path == "/meta-undefined":
            return web.Response(body=_html("ok <a href='/latin1'>l</a>",
                                           '<meta charset="undefined">').encode(),
                                content_type="text/html")
        if path == "/weird-links":
            hrefs = ["http://[::1", "javascript:alert(1)", "mailto:a@b.c", "tel:+1", "data:,x",
                     "ftp://example.org/", "http://", "//", "/" + "x" * 9000, " \t/latin1 ",
                     "http://exa mple.com/", "\x00", "%zz", "?q=%ff"]
            return web.Response(text=_html("".join(f'<a href="{h}">w</a>' for h in hrefs)),
                                content_type="text/html")
        if path == "/huge":
            anchors = "".join(f'<a href="/#{i}">d</a>' for i in range(huge_links))
            return web.Response(text=_html(anchors), content_type="text/html")
        raise web.HTTPNotFound()

    async def calendar(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(text=_html(f'<a href="/calendar/{n + 1}">next</a>'
                                       f'<a href="/calendar/{n - 1}">prev</a>'),
                            content_type="text/html")

    async def private(request: web.Request) -> web.Response:
        return web.Response(text="secret")

    r.add_get("/", index)
    r.add_get("/robots.txt", robots)
    r.add_get("/slow", slow)
    r.add_get("/always-500", always_500)
    r.add_get("/503-then-200", then_200)
    r.add_get("/429-then-200", then_200)
    r.add_get("/reset", cut_short)
    r.add_get("/truncated", cut_short)
    r.add_get("/bad-chunked", bad_chunked)
    r.add_get("/gzip-bomb", bomb)
    r.add_get("/gzip-truncated", gzip_truncated)
    r.add_get("/endless", endless)
    r.add_get("/declared-huge", declared_huge)
    for p in ("/loop-a", "/loop-b", "/go-offsite", "/chain/{n}"):
        r.add_get(p, redirect)
    r.add_get("/calendar/{n:-?\\d+}", calendar)
    r.add_get("/private/{tail:.*}", private)
    r.add_get("/{tail:.*}", content)
    return app
