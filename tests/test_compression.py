"""Content-Encoding decoded within bounds, to the end of the stream (issue 8.3)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from crawler.http.compression import DecodingError, Inflater


def inflate(coding: str, body: bytes, limit: int = 1 << 20, chunk: int = 100) -> bytes:
    inflater = Inflater.for_encoding(coding, limit)
    assert inflater is not None
    out = b"".join(piece for i in range(0, len(body), chunk)
                   for piece in inflater.feed(body[i:i + chunk]))
    inflater.finish()
    return out


def test_gzip_deflate_and_raw_deflate():
    text = b"hello " * 1000
    assert inflate("gzip", gzip.compress(text)) == text
    assert inflate("x-gzip", gzip.compress(text) + gzip.compress(b"more")) == text + b"more"
    assert inflate("deflate", zlib.compress(text)) == text
    raw = zlib.compressobj(wbits=-15)
    assert inflate("deflate", raw.compress(text) + raw.flush()) == text
    assert inflate("gzip", gzip.compress(text) + b"\n\0trailing junk") == text  # as browsers
    assert Inflater.for_encoding("identity", 10) is None
    empty = Inflater.for_encoding("gzip", 10)
    assert empty is not None
    empty.finish()  # no body at all (HEAD, 304): nothing to check


def test_a_stream_cut_short_is_a_payload_error():
    whole = gzip.compress(b"<html>" + b"x" * 10_000 + b"</html>")
    with pytest.raises(DecodingError, match="ends before its gzip stream") as info:
        inflate("gzip", whole[: len(whole) // 2])
    assert info.value.kind == "payload"
    with pytest.raises(DecodingError, match="broken gzip") as info:
        inflate("gzip", b"\x1f\x8bnot gzip at all")
    assert info.value.kind == "payload"


def test_a_bomb_stops_at_the_limit_in_bounded_pieces():
    bomb = gzip.compress(b"\0" * (50 << 20))
    inflater = Inflater.for_encoding("gzip", 5 << 20)
    assert inflater is not None
    pieces = list(inflater.feed(bomb))
    assert sum(map(len, pieces)) == (5 << 20) + 1  # one past the limit: the caller's signal
    assert max(map(len, pieces)) <= 1 << 20


def test_unsupported_encodings_are_refused():
    with pytest.raises(DecodingError, match="unsupported Content-Encoding 'br'") as info:
        Inflater.for_encoding("br", 10)
    assert info.value.kind == "content_encoding"
