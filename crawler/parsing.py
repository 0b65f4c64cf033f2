"""HTML parsing within bounds of time, whatever the page.

Lexbor's tree builder checks "is there a <p> in scope" by walking the stack of open
elements, so a page of deeply nested block elements costs time quadratic in its depth:
20,000 nested `<div>`s take ~1 s, 100,000 over a minute, all in C that no timeout or
signal interrupts. Browsers cap the tree depth; we estimate the work first and refuse a
page that would take too long (`too_complex`).

- A page with at most `LOOP_TAGS` tags parses in a few milliseconds however it nests: it
  is parsed on the event loop, where that is cheaper than a thread hop.
- A larger page is parsed in a thread (Lexbor releases the GIL), after `estimate_work`
  has walked its tags with the tree builder's costly cases in mind (in that thread too).
"""

from __future__ import annotations

import re

from crawler.exceptions import CrawlerError

LOOP_TAGS = 2000  # '<' count up to which a page parses on the loop (< ~10 ms, any nesting)
MAX_WORK = 250_000_000  # estimated stack-walk steps (~1 s of Lexbor) before refusing a page

_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9:-]*)|<!--")
_VOID = frozenset(b"area base br col embed hr img input link meta source track wbr param "
                  b"keygen frame basefont bgsound image".split())
_RAW_TEXT = frozenset(b"script style textarea title xmp iframe noembed noframes "
                      b"plaintext".split())  # (noscript is markup: scripting is off)
# start tags whose handling walks the stack of open elements ("close a p in button scope")
_WALKS = frozenset(b"address article aside blockquote center details dialog dir div dl "
                   b"fieldset figcaption figure footer header hgroup main menu nav ol p "
                   b"search section summary ul h1 h2 h3 h4 h5 h6 pre listing form li dd dt "
                   b"table xmp".split())
# start tags that close an open element of the same kind (unclosed <p>, <li>, <td>, ...)
_SIBLINGS = {b"p": {b"p"}, b"li": {b"li"}, b"dt": {b"dt", b"dd"}, b"dd": {b"dt", b"dd"},
             b"option": {b"option"}, b"tr": {b"tr", b"td", b"th"}, b"td": {b"td", b"th"},
             b"th": {b"td", b"th"}, b"rt": {b"rt", b"rp"}, b"rp": {b"rt", b"rp"}}
_FOREIGN = frozenset((b"svg", b"math"))


class TooComplex(CrawlerError):
    """A page whose parse would take too long (deep nesting): refused, not parsed."""


def tag_count(body: bytes) -> int:
    """An upper bound on the page's tags, at C speed."""
    return body.count(b"<")


def estimate_work(body: bytes) -> int:
    """Roughly how many stack-walk steps Lexbor's tree builder will take on `body`: the
    depth at every start tag that walks the stack, and at every end tag that matches no
    open element. Tracks void elements, raw text, comments, implied end tags and
    self-closing tags in SVG/MathML; each element is pushed and popped once."""
    stack: list[bytes] = []
    open_count: dict[bytes, int] = {}
    work = 0
    foreign = 0  # depth of open svg/math elements
    pos = 0
    search = _TAG.search
    while True:
        match = search(body, pos)
        if match is None:
            return work
        pos = match.end()
        if match.group(2) is None:  # a comment: skip to its end
            end = body.find(b"-->", pos)
            pos = len(body) if end == -1 else end + 3
            continue
        name = match.group(2).lower()
        if match.group(1):  # an end tag
            if open_count.get(name):
                while stack:
                    top = stack.pop()
                    open_count[top] -= 1
                    if top in _FOREIGN:
                        foreign -= 1
                    if top == name:
                        break
            else:
                work += len(stack)  # a stray end tag walks the whole stack
            continue
        if name in _VOID:
            continue
        closes = _SIBLINGS.get(name)
        if closes is not None and stack and stack[-1] in closes:
            open_count[stack.pop()] -= 1
        if name in _WALKS:
            work += len(stack)
        if name in _RAW_TEXT:  # its content is text: skip to its end tag
            end = body.find(b"</" + name, pos)
            pos = len(body) if end == -1 else end
            continue
        if foreign:
            gt = body.find(b">", pos)
            if gt > 0 and body[gt - 1:gt] == b"/":
                continue  # self-closing inside SVG/MathML
        stack.append(name)
        open_count[name] = open_count.get(name, 0) + 1
        if name in _FOREIGN:
            foreign += 1


def check(body: bytes) -> None:
    """Raise TooComplex when parsing `body` would take too long."""
    if tag_count(body) > LOOP_TAGS:
        work = estimate_work(body)
        if work > MAX_WORK:
            raise TooComplex(f"the page nests too deeply to parse in bounded time "
                             f"(~{work:,} tree-building steps; limit {MAX_WORK:,})")
