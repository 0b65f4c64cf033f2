"""HTML parsing within bounds of time, whatever the page.

Lexbor's tree builder checks "is there a <p> in scope" by walking the stack of open
elements, so a page of deeply nested block elements costs time quadratic in its depth:
20,000 nested `<div>`s take ~1 s, 100,000 over a minute, all in C that no timeout or
signal interrupts. Browsers cap the tree depth; we bound the work and refuse a page that
would take too long (`too_complex`).

- A page with at most `LOOP_TAGS` tags parses in a few milliseconds however it nests: it
  is parsed on the event loop, where that is cheaper than a thread hop.
- A larger page is parsed in a thread (Lexbor releases the GIL).
- n tags cost at most n * n stack-walk steps, so only a page with more than
  sqrt(MAX_WORK) (~31,600) tags can exceed MAX_WORK (~4 s of Lexbor). Such a page is first
  walked by `estimate_steps`, tag by tag with the tree builder's costly cases in mind, on
  the event loop in slices (pure Python in a thread would fight the loop for the GIL), and
  refused when the estimate passes the limit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

from crawler.exceptions import CrawlerError

__all__ = ["TooComplex", "check", "check_async", "estimate_steps", "estimate_work", "tag_count"]

LOOP_TAGS = 2000  # '<' count up to which a page parses on the loop (< ~10 ms, any nesting)
MAX_WORK = 1_000_000_000  # estimated stack-walk steps (~4 s of Lexbor, in a thread) allowed
_SLICE = 5000  # tags walked between yields to the event loop (~2 ms)

_TAGS = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9:-]*)(?:[^<>]*?(/))?>?")
# comments and the content of raw-text elements: text to the tree builder, not tags
_OPAQUE = re.compile(rb"<!--.*?(?:-->|\Z)|<(script|style|textarea|title|xmp|iframe|noembed|"
                     rb"noframes|plaintext)\b.*?(?:</\1\s*>|\Z)", re.DOTALL | re.IGNORECASE)
_VOID = frozenset(b"area base br col embed hr img input link meta source track wbr param "
                  b"keygen frame basefont bgsound image".split())
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


def estimate_work(body: bytes, limit: int = MAX_WORK) -> int:
    """See `estimate_steps`, run to the end."""
    for work in estimate_steps(body, limit):
        if work >= 0:
            return work
    raise AssertionError("unreachable")  # pragma: no cover


def estimate_steps(body: bytes, limit: int = MAX_WORK) -> Iterator[int]:
    """Roughly how many stack-walk steps Lexbor's tree builder will take on `body`: the
    depth at every start tag that walks the stack, and at every end tag that matches no
    open element. Tracks void elements, raw text, comments, implied end tags and
    self-closing tags in SVG/MathML; each element is pushed and popped once. Stops as soon
    as the count passes `limit`. Yields -1 every `_SLICE` tags, then the count.

    Comments and raw text are cut out and the tags found by regular expressions (C speed);
    only the walk itself is Python."""
    tags = _TAGS.finditer(_OPAQUE.sub(b"", body))  # lazily: the walk yields between slices
    stack: list[bytes] = []
    open_count: dict[bytes, int] = {}
    work = 0
    foreign = 0  # depth of open svg/math elements
    for index, match in enumerate(tags):
        if index % _SLICE == 0 and index:
            yield -1
        end_tag, name, self_closing = match.groups()
        if not name.islower():
            name = name.lower()
        if end_tag:
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
                if work > limit:
                    break
            continue
        if name in _VOID or (foreign and self_closing):
            continue
        closes = _SIBLINGS.get(name)
        if closes is not None and stack and stack[-1] in closes:
            open_count[stack.pop()] -= 1
        if name in _WALKS:
            work += len(stack)
            if work > limit:
                break  # enough to refuse it: no need to read the rest
        stack.append(name)
        open_count[name] = open_count.get(name, 0) + 1
        if name in _FOREIGN:
            foreign += 1
    yield work


def _may_exceed(body: bytes) -> bool:
    """Whether the page has tags enough to exceed MAX_WORK at all: every stack walk is at
    most as deep as there are tags, so n tags cost at most n * n steps (a 100 KB manual
    page is never walked; a 15,000-tag index page is)."""
    return tag_count(body) ** 2 > MAX_WORK


def check(body: bytes) -> None:
    """Raise TooComplex when parsing `body` would take too long."""
    if _may_exceed(body):
        _judge(estimate_work(body))


async def check_async(body: bytes) -> None:
    """`check`, letting the event loop run between slices of the walk."""
    if _may_exceed(body):
        for work in estimate_steps(body):
            if work >= 0:
                _judge(work)
                return
            await asyncio.sleep(0)


def _judge(work: int) -> None:
    if work > MAX_WORK:
        raise TooComplex(f"the page nests too deeply to parse in bounded time "
                         f"(over {MAX_WORK:,} tree-building steps)")
