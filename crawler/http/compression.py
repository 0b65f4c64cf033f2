"""Content-Encoding, decoded by us rather than by aiohttp: bounded and checked for a whole
stream.

aiohttp's decompression accepts a gzip body cut short (a truncated download looks like a
complete 200), and inflates before any size check. Here every chunk is inflated with
`max_length` so a decompression bomb stops at the limit, and a stream that ends before its
gzip/deflate end marker fails as `payload`, like any broken body.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from crawler.exceptions import Kind

__all__ = ["DecodingError", "Inflater"]

ACCEPT_ENCODING = "gzip, deflate"
_GZIP_MAGIC = b"\x1f\x8b"
_PIECE = 1 << 20  # bytes inflated per step


class DecodingError(Exception):
    """The body is not what its Content-Encoding says: `kind` is the stats key."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Inflater:
    """Inflates a gzip or deflate stream chunk by chunk, never past `limit` bytes.

    Usage:
        inflater = Inflater.for_encoding("gzip", limit)   # None for identity
        out = inflater.feed(chunk)  # for each chunk as it arrives, then
        out += inflater.finish()
    """

    def __init__(self, gzip: bool, limit: int) -> None:
        self._gzip = gzip
        self._limit = limit
        self._size = 0
        self._inflate: zlib._Decompress | None = zlib.decompressobj(31) if gzip else None
        self._ended = False  # the last stream reached its end marker
        self._fed = False  # an empty body (HEAD, 204, 304) is fine whatever its encoding

    @classmethod
    def for_encoding(cls, content_encoding: str, limit: int) -> Inflater | None:
        coding = content_encoding.strip().lower()
        if coding in ("", "identity"):
            return None
        if coding in ("gzip", "x-gzip"):
            return cls(True, limit)
        if coding == "deflate":
            return cls(False, limit)
        raise DecodingError(Kind.CONTENT_ENCODING, f"unsupported Content-Encoding {coding!r} "
                                                f"(we asked for {ACCEPT_ENCODING})")

    def feed(self, data: bytes) -> Iterator[bytes]:
        """What `data` inflates to, in pieces of at most 1 MiB (so the caller can let the
        event loop run between them); at most one byte past the limit in all, so the caller
        sees that it was passed (a bomb stops there)."""
        self._fed = self._fed or bool(data)
        if self._inflate is None:  # deflate: zlib-wrapped as the RFC says, or raw as some send
            zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and \
                (data[0] << 8 | data[1]) % 31 == 0
            self._inflate = zlib.decompressobj(15 if zlib_header else -15)
        while data and self._size <= self._limit:
            if self._ended:
                if not (self._gzip and data.startswith(_GZIP_MAGIC)):
                    return  # trailing bytes after the stream: ignored, as browsers do
                self._inflate = zlib.decompressobj(31)  # another gzip member
                self._ended = False
            try:
                piece = self._inflate.decompress(
                    data, min(_PIECE, self._limit - self._size + 1))
            except zlib.error as exc:
                raise DecodingError(Kind.PAYLOAD, f"broken {'gzip' if self._gzip else 'deflate'} "
                                               f"stream: {exc}") from None
            self._size += len(piece)
            if self._inflate.eof:
                self._ended = True
                data = self._inflate.unused_data
            else:
                data = self._inflate.unconsumed_tail
            yield piece

    def finish(self) -> None:
        """The body has ended: it must have ended with its stream."""
        if self._fed and not self._ended:
            raise DecodingError(Kind.PAYLOAD, "the body ends before its "
                                           f"{'gzip' if self._gzip else 'deflate'} stream does")
