"""Structured data embedded in a page: JSON-LD, microdata, RDFa and OpenGraph (also
Dublin Core and microformats when asked), what `response.structured_data()` gives.

JSON-LD is read here, one `<script type="application/ld+json">` at a time, so that a broken
block (the web has many: trailing commas, comments, HTML inside) costs only itself: it is
read again without comments, then skipped and counted (`structured_data/jsonld_broken`).
The other syntaxes are extruct's (Zyte's library, the one Scrapy users reach for), each run
on its own so that one failing loses no other, in extruct's uniform shape (`@type`,
`@context`, properties).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from selectolax.lexbor import LexborHTMLParser

from crawler.extract.content import MissingExtract

__all__ = ["SYNTAXES", "Structured", "extract"]

logger = logging.getLogger(__name__)

SYNTAXES = ("json-ld", "microdata", "opengraph", "rdfa")  # the default set
_ALL = (*SYNTAXES, "dublincore", "microformat")
_HTML_COMMENT_MARKS = re.compile(r"^\s*(<!--|-->)|(<!--|-->)\s*$")
_CONTROL = re.compile(r"[\n\r\t]")
_TRAILING_COMMAS = re.compile(r",(\s*[\]}])")

Structured = dict[str, list[Any]]


def extract(html: str | bytes, *, base_url: str = "",
            syntaxes: tuple[str, ...] = SYNTAXES) -> tuple[Structured, int]:
    """The page's structured data by syntax, and how many JSON-LD blocks were broken
    (blocking: callers on the event loop run it in a thread for a large page)."""
    unknown = [s for s in syntaxes if s not in _ALL]
    if unknown:
        raise ValueError(f"unknown structured data syntax {unknown[0]!r} (known: "
                         f"{', '.join(_ALL)})")
    out: Structured = {}
    broken = 0
    if "json-ld" in syntaxes:
        out["json-ld"], broken = _json_ld(html)
    others = [s for s in syntaxes if s != "json-ld"]
    if others:
        out.update(_extruct(html, base_url, others))
    return {s: out[s] for s in syntaxes}, broken


def _json_ld(html: str | bytes) -> tuple[list[Any], int]:
    items: list[Any] = []
    broken = 0
    for script in LexborHTMLParser(html).css('script[type="application/ld+json" i]'):
        text = script.text(deep=True).strip()
        if not text:
            continue
        data = _loads(text)
        if data is _BROKEN:
            broken += 1
            logger.debug("a broken JSON-LD block skipped: %.80r", text)
        elif isinstance(data, list):
            items.extend(data)
        else:
            items.append(data)
    return items, broken


_BROKEN = object()


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    # what sites get wrong most: HTML comment marks around the block, JS comments and
    # trailing commas (jstyleson, extruct's own fallback, knows strings from comments),
    # raw newlines and tabs inside strings
    cleaned = _HTML_COMMENT_MARKS.sub("", text)
    try:
        import jstyleson

        cleaned = jstyleson.dispose(cleaned)
    except ImportError:  # pragma: no cover (extruct brings it): trailing commas at least
        cleaned = _TRAILING_COMMAS.sub(r"\1", cleaned)
    try:
        return orjson.loads(_CONTROL.sub(" ", cleaned))
    except orjson.JSONDecodeError:
        return _BROKEN


def _extruct(html: str | bytes, base_url: str, syntaxes: list[str]) -> Structured:
    try:
        import extruct
        from extruct.utils import parse_html, parse_xmldom_html
    except ImportError:
        raise MissingExtract("response.structured_data() needs extruct: "
                             "pip install 'crawler[extract]'") from None
    out: Structured = {}
    trees: dict[bool, Any] = {}
    for syntax in syntaxes:
        xmldom = syntax == "rdfa"  # RDFa reads a DOM with namespaces
        try:
            if syntax == "microformat":
                document: Any = html  # (a string, as extruct asks)
            else:
                if xmldom not in trees:
                    parse = parse_xmldom_html if xmldom else parse_html
                    trees[xmldom] = parse(html, encoding="UTF-8")
                document = trees[xmldom]
            found = extruct.extract(document, base_url=base_url or None, syntaxes=[syntax],
                                    uniform=True, errors="strict")
            out[syntax] = found.get(syntax, [])
        except Exception as exc:
            logger.debug("no %s read from the page: %s", syntax, exc)
            out[syntax] = []
    return out
