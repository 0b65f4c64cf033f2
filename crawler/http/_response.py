"""Response and Failure: what callbacks and errbacks receive; lazy decoding and parsing,
and the canonical-link fast path that spares most followed links a URL parse."""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError
from yarl import URL

from crawler.http import encoding, parsing
from crawler.http._request import Request
from crawler.http.urls import FETCHABLE_SCHEMES, host_key
from crawler.stats import count

if TYPE_CHECKING:
    from crawler._types import Callback
    from crawler.extract.content import MainContent

__all__ = ["Failure", "Response"]

_LOOP_BYTES = 256 * 1024  # larger bodies are decoded and parsed in a thread
_EXTRACT_ON_LOOP_BYTES = 16 * 1024  # larger pages are taken apart (Markdown...) in a thread
_HEAD_BYTES = 64 * 1024  # where a <base> is looked for (it must be in the <head>)
_RELATIVE = re.compile(r"[A-Za-z0-9\-_~./]+\Z")  # a relative path of plain characters only
_PLAIN_CHARS = re.compile(r"/[A-Za-z0-9\-_~./]*\Z")  # with the checks of _plain_path()


_NON_HTML_PREFIXES = ("image/", "audio/", "video/", "font/", "application/pdf",
                      "application/octet-stream", "application/zip", "application/json",
                      "text/plain", "text/css", "text/javascript", "application/javascript")


class Response:
    """A downloaded page, with lazy decoding and lazy HTML parsing.

    Usage:
        title = response.css_first("title").text()
        yield from response.follow_all(css="a.next")
    """

    __slots__ = ("_base", "_base_dir", "_base_path", "_encoding", "_extracted", "_host_key",
                 "_is_html",
                 "_origin", "_parsel", "_parser", "_refused", "_selector", "_text", "_yurl",
                 "body", "flags", "headers", "request", "status", "url")

    def __init__(
        self,
        url: str | URL,
        status: int,
        headers: CIMultiDictProxy[str] | CIMultiDict[str] | Mapping[str, str],
        body: bytes,
        request: Request,
        flags: tuple[str, ...] = (),
    ) -> None:
        self._yurl = url if isinstance(url, URL) else None  # parsed already: spares a parse
        self.url = str(url)
        self.status = status
        self.headers = headers if isinstance(headers, CIMultiDictProxy | CIMultiDict) \
            else CIMultiDict(headers)
        self.body = body
        self.request = request
        self.flags = flags  # ("cached",) for a response replayed from the HTTP cache
        self._text: str | None = None
        self._encoding: str | None = None
        self._parser: LexborHTMLParser | None = None
        self._refused = False  # too complex to parse: css() finds nothing
        self._is_html: bool | None = None
        self._base: URL | None = None
        self._origin: str | None = None
        self._host_key: str | None = None  # the base's host key, when it is http(s)
        self._base_path: str | None = None  # the base's path when plain (and no query)
        self._base_dir: str | None = None  # ... up to its last "/"
        self._selector: Any = None  # a parsel Selector, built on first use of sel/xpath
        self._parsel = False  # css()/css_first() answer with parsel (`selectors = "parsel"`)
        self._extracted: dict[str, Any] | None = None  # main content, structured data

    @property
    def meta(self) -> dict[str, Any]:
        return self.request.meta

    @property
    def depth(self) -> int:
        return self.request.depth

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    @property
    def encoding(self) -> str:
        """The body's encoding (a Python codec name): see crawler/http/encoding.py."""
        if self._encoding is None:
            self._encoding = encoding.declared(self.body, self._content_type_header,
                                               self.is_html) or self._decode()[1]
        return self._encoding

    @property
    def text(self) -> str:
        """The body decoded: BOM, HTTP charset, <meta charset>, UTF-8 if valid, detection;
        undecodable bytes become U+FFFD."""
        if self._text is None:
            self._decode()
        assert self._text is not None
        return self._text

    def _decode(self) -> tuple[str, str]:
        self._text, self._encoding = encoding.decode(self.body, self._content_type_header,
                                                     self.is_html)
        return self._text, self._encoding

    @property
    def _content_type_header(self) -> str:
        return self.headers.get("Content-Type", "")

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def is_html(self) -> bool:
        """Whether the body may be HTML (anything but images, PDFs, JSON, plain text...)."""
        if self._is_html is None:
            self._is_html = not self.content_type.startswith(_NON_HTML_PREFIXES)
        return self._is_html

    def heavy(self) -> bool:
        """Whether decoding and parsing this page may take more than a few milliseconds (many
        tags, a large body, or charset detection): the engine does it in a thread."""
        body = self.body
        if parsing.tag_count(body) > parsing.LOOP_TAGS or len(body) > _LOOP_BYTES:
            return True
        if self._encoding is None and self._text is None:
            self._encoding = encoding.declared(body, self._content_type_header, self.is_html)
            return self._encoding is None and not _valid_utf8(body)
        return False

    def parse(self, *, checked: bool = False) -> None:
        """Decode and parse now rather than on the first css() call (the engine does this
        in a thread for heavy pages). Raises TooComplex for a page nested too deeply to
        parse in bounded time, unless the caller `checked` it already."""
        self._html(checked=checked)

    async def check_complexity(self) -> None:
        """Raise TooComplex now (walking the page on the event loop in slices) if it nests
        too deeply to parse in bounded time."""
        if self.is_html:
            try:
                await parsing.check_async(self.body)
            except parsing.TooComplex:
                self._refused = True
                raise

    def _html(self, *, checked: bool = False) -> LexborHTMLParser | None:
        if self._parser is None and self.is_html and self.body and not self._refused:
            try:
                if not checked:
                    parsing.check(self.body)
            except parsing.TooComplex:
                self._refused = True
                raise
            # UTF-8 bytes go to Lexbor as they are: no decode here and re-encode there
            self._parser = LexborHTMLParser(self._source())
        return self._parser

    def use_parsel(self) -> None:
        """Make css()/css_first() answer as Scrapy's do (the `selectors = "parsel"`
        setting): parsel SelectorLists, with ::text, ::attr(), .get() and .getall()."""
        self._parsel = True

    def css(self, selector: str) -> Any:
        """All nodes matching a CSS selector (selectolax nodes; empty for non-HTML); with
        `selectors = "parsel"`, a parsel SelectorList, as in Scrapy."""
        if self._parsel:
            return self.sel.css(selector)
        return self.css_nodes(selector)

    def css_first(self, selector: str) -> Any:
        """The first node matching a CSS selector, or None (with `selectors = "parsel"`,
        the first parsel Selector, or None)."""
        if self._parsel:
            found = self.sel.css(selector)
            return found[0] if found else None
        return self.css_node(selector)

    def css_nodes(self, selector: str) -> list[LexborNode]:
        """All selectolax nodes matching a CSS selector, whatever `selectors` says; empty
        for non-HTML responses."""
        parser = self._html()
        if parser is None:
            return []
        try:
            return parser.css(selector)
        except SelectolaxError as exc:
            raise ValueError(_bad_css(selector, exc)) from None

    def css_node(self, selector: str) -> LexborNode | None:
        """The first selectolax node matching a CSS selector, or None."""
        parser = self._html()
        if parser is None:
            return None
        try:
            return parser.css_first(selector)
        except SelectolaxError as exc:
            raise ValueError(_bad_css(selector, exc)) from None

    def css_text(self, selector: str, default: str | None = None) -> str | None:
        """The text of the first node matching `selector`, its descendants' included, with
        runs of whitespace as one space, or `default`: `response.css_text("h1")`."""
        node = self.css_node(selector)
        return default if node is None else " ".join(node.text(deep=True).split())

    def css_texts(self, selector: str) -> list[str]:
        """The text of every node matching `selector` (as `css_text` gives it)."""
        return [" ".join(node.text(deep=True).split()) for node in self.css_nodes(selector)]

    def css_attr(self, selector: str, name: str, default: str | None = None) -> str | None:
        """Attribute `name` of the first node matching `selector` that has it, or `default`:
        `response.css_attr("a.next", "href")`."""
        for node in self.css_nodes(selector):
            value = node.attributes.get(name)
            if value is not None:
                return value
        return default

    @property
    def sel(self) -> Any:
        """A parsel `Selector` over the page, for Scrapy-style code:
        `response.sel.css("h1::text").get()`, `.xpath(...)`, `.re(...)`. Parsed on first use
        (lxml; the `selectors` extra); `css()` stays the fast selectolax path."""
        if self._selector is None:
            from crawler.http.selectors import selector_for

            self._selector = selector_for(self)
        return self._selector

    def xpath(self, query: str, **namespaces: Any) -> Any:
        """`response.sel.xpath(query)`: a parsel SelectorList, as in Scrapy."""
        return self.sel.xpath(query, **namespaces)

    # -- extraction (crawler/extract/): awaited, in a thread for a page over 16 KB ---------

    async def main_content(self, *, text: bool = True) -> MainContent:
        """The page's main content, boilerplate out: title, headings, Markdown, plain text
        (unless `text=False`), language, and the page's links (crawler/extract/content.py).
        Empty for a page that is not HTML."""
        formats = ("markdown", "text") if text else ("markdown",)
        content: MainContent = await self._extract("content:" + ",".join(formats), formats)
        return content

    async def markdown(self, *, main: bool = True) -> str:
        """The main content as Markdown (headings, lists, code blocks, tables, absolute
        links); `main=False`: the whole page's body."""
        if not main:
            return str(await self._extract("page", ()))
        content = await self._extract("markdown", ("markdown",))
        return str(content.markdown)

    async def main_text(self) -> str:
        """The main content as plain text."""
        content = await self._extract("text", ("text",))
        return str(content.text)

    async def structured_data(self, syntaxes: tuple[str, ...] | None = None
                              ) -> dict[str, list[Any]]:
        """JSON-LD, microdata, RDFa and OpenGraph, by syntax (crawler/extract/structured.py);
        a broken JSON-LD block is skipped and counted, never raised."""
        from crawler.extract.structured import SYNTAXES

        wanted = tuple(syntaxes or SYNTAXES)
        return dict(await self._extract("structured:" + ",".join(wanted), wanted))

    async def _extract(self, key: str, what: tuple[str, ...]) -> Any:
        if self._extracted is None:
            self._extracted = {}
        if key not in self._extracted:
            work = partial(self._extract_now, key, what, str(self.base_url))
            result = await asyncio.get_running_loop().run_in_executor(_extractor(), work) \
                if len(self.body) > _EXTRACT_ON_LOOP_BYTES else work()
            if key.startswith("structured:"):
                result, broken = result
                if broken:
                    count("structured_data/jsonld_broken", broken)
            self._extracted[key] = result
        return self._extracted[key]

    def _extract_now(self, key: str, what: tuple[str, ...], base: str) -> Any:
        from crawler.extract import content, structured

        html = self.is_html and bool(self.body)
        if key.startswith("structured:"):
            if not html:
                return {s: [] for s in what}, 0
            return structured.extract(self._source(), base_url=base, syntaxes=what)
        if not html:
            return "" if key == "page" else content.MainContent(title="")
        if self._parser is None:  # (parsed already: checked then)
            parsing.check(self.body)  # TooComplex: a page nested too deeply to take apart
        if key == "page":
            return content.markdown_of(self._source(), base_url=base)
        return content.extract_content(
            self._source(), base_url=base, formats=what,
            content_language=self.headers.get("Content-Language", ""))

    def _source(self) -> str | bytes:
        """What a parser takes: UTF-8 bytes as they are, anything else decoded."""
        return self.body if self.encoding == "utf-8" and \
            not self.body.startswith(codecs.BOM_UTF8) else self.text

    @property
    def base_url(self) -> URL:
        """The URL relative links resolve against: <base href> if present, else the page URL."""
        if self._base is None:
            base = self._yurl if self._yurl is not None else URL(self.url)
            # most pages have no <base>: a byte search spares them a CSS query
            node = self.css_node("base[href]") if b"<base" in self.body[:_HEAD_BYTES].lower() \
                else None
            href = node.attributes.get("href") if node is not None else None
            if href:
                try:
                    base = base.join(URL(href.strip()))
                except ValueError:
                    pass
            self._base = base
        return self._base

    def urljoin(self, href: str) -> str:
        """Resolve `href` against the base URL; the fragment is dropped. Never raises: an
        unusable href comes back unchanged, and scheduling drops and counts it."""
        joined, _ = self._resolve(href)
        return str(joined)

    def _resolve(self, href: str) -> tuple[URL | str, str | None]:
        """`href` resolved against the base URL, and its canonical form when that is known
        without parsing (see `_canonical_link`)."""
        href = href.strip()
        canonical = self._canonical_link(href)
        if canonical is not None:
            return canonical, canonical
        return self._join(href), None

    def _canonical_link(self, href: str) -> str | None:
        """The canonical URL of `href` without parsing it, when that is plain: an absolute
        path, a URL on the base's own origin, or a relative path (`a.html`, `../b/c.html`)
        from a plain base path, each without a query; a fragment is dropped. None for
        everything else, which takes the parsing path."""
        origin = self._origin
        if origin is None:
            origin = self._link_base()
        cut = href.find("#")
        if cut != -1:
            href = href[:cut]
        if href[:1] == "/":  # the common case, checked inline: see _plain_path()
            if _PLAIN_CHARS.match(href) and "//" not in href and "./" not in href and \
                    ".." not in href and href[-1] != ".":
                return origin + href
            return None  # //host/path (another host), dot segments, %-escapes, a query
        if href.startswith(origin):
            return href if _plain_path(href[len(origin):]) else None
        base_dir = self._base_dir
        if base_dir is None:
            return None
        if not href:  # this document
            return origin + self._base_path if self._base_path is not None else None
        if not _RELATIVE.match(href):
            return None
        path = base_dir + href
        if "." in href:
            path = _remove_dot_segments(path)
        return origin + path if _plain_path(path) else None

    def _link_base(self) -> str:
        base = self.base_url
        origin = self._origin = f"{base.scheme}://{base.host_port_subcomponent}"
        if base.scheme in FETCHABLE_SCHEMES and base.host:
            self._host_key = host_key(base)
        path = base.raw_path or "/"
        if not base.raw_query_string and _plain_path(path):
            self._base_path = path
            self._base_dir = path[: path.rfind("/") + 1]
        return origin

    def _join(self, href: str) -> URL | str:
        try:
            joined = self.base_url.join(URL(href))
        except (ValueError, TypeError):
            return href
        return joined.with_fragment(None) if joined.raw_fragment else joined

    def follow(self, url: str | LexborNode | Request | Any, callback: Callback | None = None,
               **kwargs: Any) -> Request:
        """A Request for a link on this page: an href string, an <a>/<link> node, or a
        parsel Selector (an element's href/src, or a selected attribute's value)."""
        if isinstance(url, str):
            href = url
        elif isinstance(url, LexborNode):
            attributes = url.attributes
            href = attributes.get("href") or attributes.get("src") or ""
        elif isinstance(url, Request):
            return url
        elif hasattr(url, "root") and hasattr(url, "attrib"):  # a parsel Selector
            href = url.get() if isinstance(url.root, str) else \
                url.attrib.get("href") or url.attrib.get("src") or ""
        else:
            href = str(url)
        canonical = self._canonical_link(href.strip())
        if canonical is not None and not kwargs and (callback is None or callable(callback)):
            # the common case (a plain link, no options), built without __init__'s checks
            return Request._plain(canonical, callback, self._host_key)
        joined = canonical if canonical is not None else self._join(href.strip())
        request = Request(joined, callback=callback, **kwargs)
        if canonical is not None:  # known without parsing: its URL, and so its host
            request._canonical = canonical
            request._host = self._host_key
        return request

    def follow_all(self, urls: Iterable[Any] | None = None, css: str | None = None,
                   callback: Callback | None = None, **kwargs: Any) -> Iterator[Request]:
        """Requests for many links: given hrefs/nodes, or every node matching `css`."""
        if urls is None and css is None:
            raise ValueError("follow_all() needs urls or css")
        links: Iterable[Any] = urls if urls is not None else self.css(css or "")
        for link in links:
            yield self.follow(link, callback=callback, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.status} {self.url}>"


@cache
def _extractor() -> ThreadPoolExecutor:
    """The thread that takes large pages apart: one, because that work holds the GIL much
    of the time, and the more threads want it, the longer the event loop waits for its
    turn. On the Python docs at concurrency 32: six threads (the default executor's) 0.22
    to 0.28 s stalls, two 0.13-0.18 s, one 0.02-0.09 s, for 10% fewer pages/s."""
    return ThreadPoolExecutor(1, "crawler-extract")


class Failure:
    """What an errback receives: the request, the error and, for HTTP errors, the response."""

    __slots__ = ("exception", "kind", "request", "response")

    def __init__(self, request: Request, exception: BaseException, kind: str,
                 response: Response | None = None) -> None:
        self.request = request
        self.exception = exception
        self.kind = kind
        self.response = response

    @property
    def value(self) -> BaseException:
        """Twisted's name for the exception, for Scrapy code that reads `failure.value`."""
        return self.exception

    def check(self, *types: type[BaseException]) -> type[BaseException] | None:
        """The first of `types` the exception is an instance of (Twisted's `Failure.check`)."""
        for exc_type in types:
            if isinstance(self.exception, exc_type):
                return exc_type
        return None

    def __repr__(self) -> str:
        return f"<Failure {self.kind} {self.request.url}>"


def _bad_css(selector: str, exc: Exception) -> str:
    hint = ""
    if "::" in selector:
        hint = ("; ::text and ::attr() are Scrapy's (parsel's) pseudo-elements: use "
                "response.sel.css(...), response.css_text()/css_attr(), or the setting "
                "selectors = \"parsel\"")
    return f"bad CSS selector {selector!r}: {str(exc).rstrip('.')}{hint}"


def _plain_path(path: str) -> bool:
    """An absolute path that yarl would leave as it is: unreserved characters only, no empty
    or dot segments, no query. Joined to the page's origin it is already the canonical URL,
    so such links (most links on most sites) are deduplicated without parsing a URL."""
    return bool(_PLAIN_CHARS.match(path)) and "//" not in path and "./" not in path and \
        ".." not in path and path[-1] != "."


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path: "/a/b/../c/./d" -> "/a/c/d"."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


def _valid_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


