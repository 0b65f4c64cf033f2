"""A page's main content as Markdown and plain text, with its title, headings and language:
what `response.main_content()`, `markdown()` and `main_text()` give, and what the built-in
`markdown` spider writes.

The main content is found in two steps, on a copy of the page (the response's own parse is
left alone):

1. its root: the page's landmark (`<main>`, `role="main"`, `itemprop="articleBody"`, its one
   `<article>`); else, below `<body>` with navigation taken out, the deepest element that
   holds at least 80% of the paragraph text of the one above it (so a page wrapped in layout
   divs is followed down to its text, and one whose text is spread stays whole);
2. boilerplate under the root taken out: scripts and styles, `<nav>`, `<aside>`, forms,
   hidden elements, ARIA navigation, banner and footer roles, headers and footers outside an
   article, and elements whose class or id reads as boilerplate (Mozilla Readability's list:
   sidebar, footer, menu, comment, share, ...) unless they also read as content or hold the
   page's heading.

The root is converted by html-to-markdown (a Rust converter: ~4 ms for a 50 KB page, where
markdownify takes 48 ms and trafilatura's extraction 40 ms and turns inline code into
blocks; benchmarks/results/markdown.txt): ATX headings, fenced code with its language,
pipe tables, links made absolute against the page's base URL.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag, urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawler.exceptions import CrawlerError

__all__ = ["MainContent", "MissingExtract", "extract_content", "markdown_of", "page_links"]


class MissingExtract(CrawlerError):
    """An extraction helper without its library installed (the `extract` extra)."""


@dataclass(frozen=True, slots=True)
class MainContent:
    """A page's main content, ready for search or an LLM pipeline, and the page's links."""

    title: str  # <title>, else og:title, else the first <h1>
    headings: list[dict[str, Any]] = field(default_factory=list)  # {"level": 2, "text": ...}
    markdown: str = ""
    text: str = ""  # the same content as plain text
    language: str | None = None  # <html lang>, else Content-Language, else og:locale
    links: list[str] = field(default_factory=list)  # the whole page's http(s) links

    @property
    def content_hash(self) -> str:
        """SHA-256 of the Markdown (hex): unchanged text, unchanged hash."""
        return hashlib.sha256(self.markdown.encode()).hexdigest()


_LANDMARKS = ("main", "[role=main]", "[itemprop=articleBody]")
_SCRIPTS = "script, style, noscript, template"  # out of the whole page too
_ALWAYS_OUT = (_SCRIPTS, "iframe, object, embed", "svg, canvas",
               "nav, aside", "form, dialog", "button, select, textarea, input", "[hidden]",
               "[aria-hidden=true]", "[role=navigation], [role=banner]",
               "[role=contentinfo], [role=complementary]", "[role=search], [role=dialog]",
               "[role=alertdialog], [role=menu]", "[role=menubar], [role=toolbar]")
# Mozilla Readability's unlikelyCandidates (Readability.js), and a few more, matched in
# class and id by Lexbor (a Python regex over every element costs more than the rest)
_UNLIKELY_WORDS = (
    "-ad-", "ai2html", "banner", "breadcrumbs", "combx", "comment", "community", "cover-wrap",
    "disqus", "extra", "footer", "gdpr", "header", "legends", "menu", "related", "remark",
    "replies", "rss", "shoutbox", "sidebar", "skyscraper", "social", "sponsor",
    "supplemental", "ad-break", "agegate", "pagination", "pager", "popup", "yom-remote",
    "cookie", "consent", "newsletter", "share", "sharing", "toolbar", "skip-link", "navbar")
# (These and _ALWAYS_OUT are matched a few selectors at a time: Lexbor holds the GIL for a
# whole css() call, and one call with all of them takes 200 ms on a 5 MB page, which would
# stall the event loop even from a thread; a few at a time, each call takes a few ms.)
_UNLIKELY = (*(f"[class*={word} i], [id*={word} i]" for word in _UNLIKELY_WORDS),
             "[class~=nav i], [id=nav i]")
_MAYBE = re.compile(r"and|article|body|column|content|main|shadow", re.IGNORECASE)
_PARAGRAPHS = "p, pre, li, td, dd, blockquote, h1, h2, h3, h4, h5, h6"
_DESCEND = 0.8  # a child holding this share of its parent's paragraph text becomes the root
_SPACE = re.compile(r"\s+")


def extract_content(html: str | bytes, *, base_url: str = "", content_language: str = "",
                    formats: tuple[str, ...] = ("markdown", "text")) -> MainContent:
    """The page's main content, in the `formats` asked for (the others are left empty);
    blocking: a large page takes milliseconds, so callers on the event loop run it in a
    thread. Raises MissingExtract without html-to-markdown."""
    converter = _converter()
    tree = LexborHTMLParser(html)
    title, language = _title(tree), _language(tree, content_language)
    links = page_links(tree, base_url)  # before any part of the page is taken out
    root = _root(tree)
    if root is None:
        return MainContent(title=title, language=language, links=links)
    _strip(root)
    headings: list[dict[str, Any]] = []
    for node in root.css("h1, h2, h3, h4, h5, h6"):
        if heading := _clean(node.text(deep=True)):
            headings.append({"level": int((node.tag or "h1")[1]), "text": heading})
    fragment = root.html or ""
    markdown = converter(fragment, base_url, "markdown") if "markdown" in formats else ""
    text = converter(fragment, base_url, "plain") if "text" in formats else ""
    if not title and headings:
        title = str(headings[0]["text"])
    return MainContent(title=title, headings=headings, markdown=markdown, text=text,
                       language=language, links=links)


def markdown_of(html: str | bytes, *, base_url: str = "") -> str:
    """The whole page's body as Markdown, boilerplate and all (blocking)."""
    converter = _converter()
    body = LexborHTMLParser(html).body
    if body is None:
        return ""
    _remove(body, _select(body, (_SCRIPTS,)))
    return converter(body.html or "", base_url, "whole")


def _converter() -> Callable[[str, str, str], str]:
    try:
        import html_to_markdown
    except ImportError:
        raise MissingExtract("response.markdown() and main_text() need html-to-markdown: "
                             "pip install 'crawler[extract]'") from None

    def convert(fragment: str, base_url: str, fmt: str) -> str:
        """`fmt`: markdown, plain (text), or whole (Markdown with the converter's own
        navigation removal off: the whole page was asked for)."""
        whole = fmt == "whole"
        options = html_to_markdown.ConversionOptions(
            extract_metadata=False, output_format="markdown" if whole else fmt,
            code_block_style="backticks", heading_style="atx", skip_images=fmt == "plain",
            base_url=base_url or None,
            preprocessing=html_to_markdown.PreprocessingOptions(enabled=not whole))
        return str(html_to_markdown.convert(fragment, options).content).strip()

    return convert


def page_links(tree: LexborHTMLParser, base_url: str) -> list[str]:
    """Every http(s) link of a parsed page, absolute, without its fragment, once each, in
    page order (blocking: a page may have tens of thousands)."""
    seen: dict[str, None] = {}
    for node in tree.css("a[href]"):
        href = (node.attributes.get("href") or "").strip()
        if not href or href.startswith(("#", "javascript:", "mailto:")):
            continue
        try:
            url = urldefrag(urljoin(base_url, href)).url if base_url else href
        except ValueError:  # an invalid IPv6 literal, ...
            continue
        if url.startswith(("http://", "https://")) and url not in seen:
            seen[url] = None
    return list(seen)


def _title(tree: LexborHTMLParser) -> str:
    node = tree.css_first("title")
    if node is not None and (text := _clean(node.text(deep=True))):
        return text
    meta = tree.css_first('meta[property="og:title"]')
    return _clean(meta.attributes.get("content") or "") if meta is not None else ""


def _language(tree: LexborHTMLParser, header: str) -> str | None:
    html = tree.css_first("html")
    lang = (html.attributes.get("lang") or "") if html is not None else ""
    if not lang.strip():
        lang = header.split(",")[0]
    if not lang.strip():
        meta = tree.css_first('meta[property="og:locale"]')
        lang = (meta.attributes.get("content") or "") if meta is not None else ""
    return lang.strip().replace("_", "-") or None


def _root(tree: LexborHTMLParser) -> LexborNode | None:
    for selector in _LANDMARKS:
        found = tree.css(selector)
        if found:
            return max(found, key=_text_length)  # several: the one with the text
    articles = tree.css("article")
    if len(articles) == 1:
        return articles[0]
    body = tree.body
    if body is None:
        return None
    _remove(body, _select(body, _ALWAYS_OUT))
    return _densest(body)


def _densest(node: LexborNode) -> LexborNode:
    """Follow the paragraph text down while one child holds most of it."""
    mass = _paragraph_mass(node)
    while True:
        total = mass.get(node.mem_id, 0)
        if not total:
            return node
        best = max(node.iter(), key=lambda child: mass.get(child.mem_id, 0), default=None)
        if best is None or mass.get(best.mem_id, 0) < _DESCEND * total:
            return node
        node = best


def _paragraph_mass(root: LexborNode) -> dict[int, int]:
    """Paragraph text length held under each element (by its node id)."""
    mass: dict[int, int] = {}
    stop = root.mem_id
    for paragraph in root.css(_PARAGRAPHS):
        if paragraph.parent is not None and paragraph.parent.tag in ("li", "td", "dd",
                                                                      "blockquote"):
            continue  # counted with its container
        length = len(paragraph.text(deep=True).strip())
        node: LexborNode | None = paragraph
        while node is not None:
            mass[node.mem_id] = mass.get(node.mem_id, 0) + length
            if node.mem_id == stop:
                break
            node = node.parent
    return mass


def _select(root: LexborNode, selectors: tuple[str, ...]) -> list[LexborNode]:
    return [node for selector in selectors for node in root.css(selector)]


def _strip(root: LexborNode) -> None:
    _remove(root, _select(root, _ALWAYS_OUT))
    _remove(root, [node for node in root.css("header, footer")
                   if not _inside(node, ("article", "main"), root)
                   and node.css_first("h1") is None])
    total = _text_length(root)
    _remove(root, [node for node in _select(root, _UNLIKELY) if _boilerplate(node, total)])


def _boilerplate(node: LexborNode, total: int) -> bool:
    """Whether an element whose class or id reads as boilerplate is: not when they also
    read as content (Readability's okMaybeItsACandidate), nor when it holds the page's
    heading or half its text."""
    names = f"{node.attributes.get('class') or ''} {node.attributes.get('id') or ''}"
    if "headerlink" in names:  # a heading's permalink mark
        return True
    if node.tag in ("body", "html", "a") or _MAYBE.search(names):
        return False
    return node.css_first("h1") is None and _text_length(node) <= total / 2


def _remove(root: LexborNode, nodes: list[LexborNode]) -> None:
    """Take nodes out of the page; one inside another taken out is left to go with it
    (destroying it twice would touch freed memory)."""
    chosen = {node.mem_id: node for node in nodes if node.mem_id != root.mem_id}
    for node in list(chosen.values()):
        parent = node.parent
        while parent is not None and parent.mem_id != root.mem_id:
            if parent.mem_id in chosen:
                del chosen[node.mem_id]
                break
            parent = parent.parent
    for node in chosen.values():
        node.decompose()


def _inside(node: LexborNode, tags: tuple[str, ...], root: LexborNode) -> bool:
    parent = node.parent
    while parent is not None and parent.mem_id != root.mem_id:
        if parent.tag in tags:
            return True
        parent = parent.parent
    return root.tag in tags


def _text_length(node: LexborNode) -> int:
    return len(node.text(deep=True))


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).replace("\u00b6", "").strip()
