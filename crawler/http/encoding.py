"""Which character encoding a body is in: the HTML Standard's sniffing, made safe.

Order: a byte-order mark; the HTTP `charset`; for HTML a `<meta charset>` in the first
1 KiB (where the Standard's prescan looks); then, with no usable label, UTF-8 if the bytes
are valid UTF-8, else what charset-normalizer detects, else windows-1252 (the Standard's
fallback). Only labels of the WHATWG Encoding Standard count (looked up with
`webencodings`): a page that declares `base64`, `rot13`, `zlib` or `undefined` cannot make
Python run a codec that is not a text encoding; such a label is skipped like an unknown one.
"""

from __future__ import annotations

import codecs
import re

import webencodings

__all__ = ["declared", "decode"]

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-z0-9_:.\-]+)""")  # lowered
_META_BYTES = 1024
_DETECT_BYTES = 64 * 1024  # charset detection looks at this much of a body
_FALLBACK = "cp1252"
# Python's spellings of WHATWG encodings (what detection returns, what some servers send)
_PY_ALIASES = {"cp932": "shift_jis", "cp949": "euc-kr", "latin-1": "windows-1252",
               "cp874": "windows-874", "mac-cyrillic": "x-mac-cyrillic", "utf-16": "utf-16le"}


def declared(body: bytes, content_type: str, html: bool) -> str | None:
    """The encoding a body declares (BOM, HTTP charset, <meta>), as a Python codec name;
    None when nothing usable is declared."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec
    name = _whatwg(_header_charset(content_type))
    if name is None and html:
        name = _whatwg(_meta_charset(body))
        if name is not None and name.startswith("utf-16"):
            name = "utf-8"  # a <meta> read as ASCII cannot be UTF-16 (the Standard's rule)
    return name


def decode(body: bytes, content_type: str, html: bool) -> tuple[str, str]:
    """The body as text, and the encoding used. Never raises: undecodable bytes become
    U+FFFD."""
    name = declared(body, content_type, html)
    if name is None:
        try:
            return body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            name = _detect(body)
    if name.startswith("utf-8") and body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8):]
    elif name.startswith("utf-16") and body[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        body = body[2:]
    return body.decode(name, errors="replace"), name


def _whatwg(label: str | None) -> str | None:
    """The Python codec for a WHATWG encoding label; None for anything else."""
    if not label:
        return None
    encoding = webencodings.lookup(label) or webencodings.lookup(
        _PY_ALIASES.get(label.strip().lower().replace("_", "-"), ""))
    if encoding is None or encoding.name == "replacement":
        return None
    if encoding.name == "x-user-defined":
        return _FALLBACK
    return str(encoding.codec_info.name)


def _detect(body: bytes) -> str:
    from charset_normalizer import from_bytes  # imported on the first unlabelled non-UTF-8 page

    best = from_bytes(body[:_DETECT_BYTES]).best()
    if best is None:
        return _FALLBACK
    # only what a browser could have decoded: on short or odd input the detector may name
    # an exotic code page (cp1006 for a few stray bytes), where windows-1252 is the answer
    return _whatwg(best.encoding) or _FALLBACK


def _header_charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _meta_charset(body: bytes) -> str | None:
    head = body[:_META_BYTES].lower()
    start = head.find(b"<meta")  # the regex from there: scanning for "<" is the slow part
    match = _META_CHARSET.search(head, start) if start != -1 else None
    return match.group(1).decode("ascii") if match else None
