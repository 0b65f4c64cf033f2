"""Request, Response and Failure: what spiders create and receive."""

from __future__ import annotations

import codecs
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlencode

import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError
from yarl import URL

from crawler import encoding, parsing
from crawler.urls import FETCHABLE_SCHEMES, host_key

if TYPE_CHECKING:
    from crawler._types import Callback, Errback

__all__ = ["Failure", "FormRequest", "JsonRequest", "Request", "Response",
           "request_callback_name"]

_LOOP_BYTES = 256 * 1024  # larger bodies are decoded and parsed in a thread
_HEAD_BYTES = 64 * 1024  # where a <base> is looked for (it must be in the <head>)
_RELATIVE = re.compile(r"[A-Za-z0-9\-_~./]+\Z")  # a relative path of plain characters only
_PLAIN_CHARS = re.compile(r"/[A-Za-z0-9\-_~./]*\Z")  # with the checks of _plain_path()

HeadersArg: TypeAlias = Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None
"""Request headers: a mapping or (name, value) pairs; values str, bytes, int, list or None."""
# (seq, URL, callback name, depth), and the request's id in a store when it has one
PackedRequest: TypeAlias = tuple[Any, ...]
"""A queued request that holds nothing but its URL, its callback's name and its depth,
after the frontier's arrival sequence number."""

_NON_HTML_PREFIXES = ("image/", "audio/", "video/", "font/", "application/pdf",
                      "application/octet-stream", "application/zip", "application/json",
                      "text/plain", "text/css", "text/javascript", "application/javascript")


class Request:
    """A URL to fetch and what to do with the response.

    Usage:
        yield Request("https://example.com/", callback=self.parse_page, meta={"page": 1})
    """

    __slots__ = ("_canonical", "_cb_kwargs", "_host", "_meta", "_url", "_yurl", "body",
                 "callback", "cookies", "depth", "dont_filter", "dropped_headers", "errback",
                 "headers", "method", "priority")

    def __init__(
        self,
        url: str | URL,
        callback: Callback | None = None,
        method: str = "GET",
        headers: HeadersArg = None,
        body: bytes | str | None = None,
        meta: dict[str, Any] | None = None,
        cb_kwargs: dict[str, Any] | None = None,
        priority: int = 0,
        dont_filter: bool = False,
        errback: Errback | None = None,
        *,
        depth: int = 0,
        cookies: Mapping[str, str] | Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        # the string of a parsed URL is made on first use: most followed links are duplicates
        # that never need it
        self._yurl: URL | None
        self._url: str | None
        if type(url) is str:
            self._yurl, self._url = None, url
        elif isinstance(url, URL):
            self._yurl, self._url = url, None
        elif isinstance(url, str):
            self._yurl, self._url = None, str(url)
        else:
            raise TypeError(f"Request url must be str or yarl.URL, got {type(url).__name__}")
        self._host: str | None = None
        self._canonical: str | None = None  # set when the URL is known to be canonical
        self.callback = callback
        self.method = method if method == "GET" else _method(method)
        self.headers: CIMultiDict[str] | None = None
        self.dropped_headers: frozenset[str] = _NOTHING
        if headers:
            self.headers, self.dropped_headers = _headers(headers)
        self.body = b"" if body is None else body if type(body) is bytes else _body(body)
        self._meta = meta  # made on first use: most requests never carry any
        self._cb_kwargs = cb_kwargs
        self.priority = priority
        self.dont_filter = dont_filter
        self.errback = errback
        self.depth = depth
        # sent as a Cookie header; with cookies_enabled also stored in the crawl's jar
        self.cookies: dict[str, str] | None = _cookies(cookies) if cookies else None
        # checked here, where the mistake is made, rather than failing a fetch later
        if type(priority) is not int or type(depth) is not int:
            _bad_int(priority, depth)
        if callback is not None and not callable(callback):
            _bad_callable("callback", callback)
        if errback is not None and not callable(errback):
            _bad_callable("errback", errback)
        if (meta is not None and not isinstance(meta, dict)) or (
                cb_kwargs is not None and not isinstance(cb_kwargs, dict)):
            raise TypeError("Request meta and cb_kwargs must be dicts, got "
                            f"{type(meta).__name__} and {type(cb_kwargs).__name__}")

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = str(self._yurl)
        return self._url

    @property
    def meta(self) -> dict[str, Any]:
        """Free-form data carried to the response (`response.meta`) and across retries."""
        if self._meta is None:
            self._meta = {}
        return self._meta

    @meta.setter
    def meta(self, value: dict[str, Any]) -> None:
        self._meta = value

    @property
    def cb_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the callback."""
        if self._cb_kwargs is None:
            self._cb_kwargs = {}
        return self._cb_kwargs

    @cb_kwargs.setter
    def cb_kwargs(self, value: dict[str, Any]) -> None:
        self._cb_kwargs = value

    @property
    def yurl(self) -> URL:
        """The parsed URL; only valid for requests that passed scheduling."""
        if self._yurl is None:
            self._yurl = URL(self.url)
        return self._yurl

    @property
    def host(self) -> str:
        """The politeness key: scheme://host:port."""
        if self._host is None:
            # interned: a frontier holds thousands of requests of one host
            self._host = sys.intern(host_key(self.yurl))
        return self._host

    def compact(self) -> None:
        """Keep the URL as a string only while queued: a parsed URL costs ~800 bytes, and a
        frontier may hold millions of requests. It is parsed again when fetched."""
        if self._yurl is not None:
            if self._url is None:
                self._url = str(self._yurl)
            if self._host is None:
                self._host = sys.intern(host_key(self._yurl))
            self._yurl = None

    @classmethod
    def _plain(cls, canonical: str, callback: Callback | None, host: str | None) -> Request:
        """A GET of a canonical URL with nothing else set: what most followed links are."""
        request = cls.__new__(cls)
        request._url = request._canonical = canonical
        request._yurl = None
        request._host = host
        request.callback = callback
        request.method = "GET"
        request.headers = None
        request.dropped_headers = _NOTHING
        request.body = b""
        request._meta = request._cb_kwargs = None
        request.priority = request.depth = 0
        request.dont_filter = False
        request.errback = None
        request.cookies = None
        return request

    @property
    def path_qs(self) -> str:
        """The path and query as sent (what robots.txt rules match), without parsing a
        plain link."""
        canonical = self._canonical
        if canonical is not None:
            return canonical[canonical.index("/", canonical.index("://") + 3):]
        return self.yurl.raw_path_qs

    def pack(self, spider: object, names: dict[Any, str] | None = None, seq: int = 0,
             id_key: str | None = None) -> PackedRequest | Request:
        """The request as a plain tuple (seq, URL, callback name, depth) when that is all it
        holds, as most followed links do; else the request itself. A tuple of strings and
        ints takes a third of the memory and is not tracked by the garbage collector, which
        matters when a frontier holds millions. `names` caches callback names by function;
        `seq` is the frontier's arrival order, kept in the same tuple. A meta holding only
        `id_key` (a store's id for the request) is kept as a fifth item."""
        meta = self._meta
        if self.method != "GET" or self.body or self.headers is not None or \
                self.dropped_headers or self._cb_kwargs or \
                self.errback is not None or self.dont_filter or self.cookies:
            return self
        tail: tuple[Any, ...] = ()
        if meta:
            if id_key is None or len(meta) != 1 or id_key not in meta:
                return self
            tail = (meta[id_key],)
        callback = self.callback
        url = self._url if self._url is not None else self.url
        if callback is None:
            return (seq, url, None, self.depth, *tail)
        func = getattr(callback, "__func__", None)
        if func is None or callback.__self__ is not spider:  # type: ignore[attr-defined]
            return self  # not a method of the spider: it cannot be named
        name = names.get(func) if names is not None else None
        if name is None:
            name = func.__name__
            if getattr(spider, name, None) != callback:
                return self
            if names is not None:
                names[func] = name
        return (seq, url, name, self.depth, *tail)

    @classmethod
    def unpack(cls, packed: PackedRequest | Request, spider: object, priority: int,
               host: str, id_key: str | None = None) -> Request:
        """The request `pack` gave (with the same `id_key`)."""
        if isinstance(packed, Request):
            return packed
        url, name, depth = packed[1], packed[2], packed[3]
        meta = {id_key: packed[4]} if id_key is not None and len(packed) == 5 else None
        request = cls(url, None if name is None else getattr(spider, name), priority=priority,
                      depth=depth, meta=meta)
        request._host = host
        return request

    def replace(self, **changes: Any) -> Request:
        """A copy with some attributes changed (Scrapy's `Request.replace`); the copy is of
        the same class, and its meta a new dict."""
        fields: dict[str, Any] = {name: getattr(self, name) for name in (
            "url", "callback", "method", "body", "priority", "dont_filter", "errback",
            "depth")}
        fields["meta"] = dict(self._meta) if self._meta else None
        fields["cb_kwargs"] = self._cb_kwargs
        fields["cookies"] = self.cookies
        fields["headers"] = self._header_items()
        fields.update(changes)
        copy = object.__new__(type(self))
        Request.__init__(copy, **fields)
        return copy

    def to_dict(self, spider: object | None = None) -> dict[str, Any]:
        """The request as JSON-ready data (Scrapy's `Request.to_dict`): callbacks by their
        method name on `spider`. ValueError when a callback is not a spider method or meta /
        cb_kwargs hold what JSON cannot (naming the key)."""
        data: dict[str, Any] = {"url": self.url}
        if self.callback is not None:
            data["callback"] = request_callback_name(self.callback, spider, "callback")
        if self.errback is not None:
            data["errback"] = request_callback_name(self.errback, spider, "errback")
        if self.method != "GET":
            data["method"] = self.method
        if self.body:
            data["body"] = self.body.decode("latin-1")
        if self.headers or self.dropped_headers:
            data["headers"] = self._header_items()
        for name, value in (("meta", self._meta), ("cb_kwargs", self._cb_kwargs)):
            if value:
                data[name] = value
        if self.cookies:
            data["cookies"] = self.cookies
        if self.priority:
            data["priority"] = self.priority
        if self.depth:
            data["depth"] = self.depth
        if self.dont_filter:
            data["dont_filter"] = True
        return data

    def to_json(self, spider: object | None = None) -> str:
        """`to_dict` as JSON text; ValueError naming the meta or cb_kwargs key JSON cannot
        hold."""
        data = self.to_dict(spider)
        try:
            return orjson.dumps(data).decode()  # as str: orjson's bytes keep a 4 KB buffer
        except TypeError:
            for name in ("meta", "cb_kwargs"):
                _check_json(name, data.get(name) or {})
            raise

    @classmethod
    def from_dict(cls, data: dict[str, Any], spider: object | None = None) -> Request:
        """The request `to_dict` gave, its callbacks looked up on `spider` by name."""
        fields = dict(data)
        for name in ("callback", "errback"):
            if name in fields:
                fields[name] = _resolve(spider, fields[name], name)
        if "body" in fields:
            fields["body"] = fields["body"].encode("latin-1")
        if "headers" in fields:
            fields["headers"] = [tuple(pair) for pair in fields["headers"]]
        return cls(**fields)

    def _header_items(self) -> list[tuple[str, str | None]] | None:
        items: list[tuple[str, str | None]] = list(self.headers.items()) if self.headers else []
        items += [(name, None) for name in self.dropped_headers]
        return items or None

    def __repr__(self) -> str:
        return f"<{self.method} {self.url}>"


class Response:
    """A downloaded page, with lazy decoding and lazy HTML parsing.

    Usage:
        title = response.css_first("title").text()
        yield from response.follow_all(css="a.next")
    """

    __slots__ = ("_base", "_base_dir", "_base_path", "_encoding", "_host_key", "_is_html",
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
        """The body's encoding (a Python codec name): see crawler/encoding.py."""
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
            source: str | bytes = self.body if self.encoding == "utf-8" and \
                not self.body.startswith(codecs.BOM_UTF8) else self.text
            self._parser = LexborHTMLParser(source)
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
            from crawler.selectors import selector_for

            self._selector = selector_for(self)
        return self._selector

    def xpath(self, query: str, **namespaces: Any) -> Any:
        """`response.sel.xpath(query)`: a parsel SelectorList, as in Scrapy."""
        return self.sel.xpath(query, **namespaces)

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


class JsonRequest(Request):
    """A request with a JSON body (Scrapy's `JsonRequest`): `data` is serialised with sorted
    keys, the method becomes POST unless given, and Content-Type/Accept are set.

    Usage:
        yield JsonRequest("https://api.example.com/search", data={"q": "books"})
    """

    __slots__ = ()

    def __init__(self, url: str | URL, *args: Any, data: Any = None, **kwargs: Any) -> None:
        if data is not None:
            kwargs.setdefault("body", orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
            if len(args) < 2:  # method not given positionally
                kwargs.setdefault("method", "POST")
        headers = _header_list(kwargs.pop("headers", None))
        names = {str(name).lower() for name, _ in headers}
        for name, value in (("Content-Type", "application/json"),
                            ("Accept", "application/json, text/javascript, */*; q=0.01")):
            if name.lower() not in names:
                headers.append((name, value))
        kwargs["headers"] = headers
        super().__init__(url, *args, **kwargs)


class FormRequest(Request):
    """A request carrying form fields (Scrapy's `FormRequest`): POSTed as
    application/x-www-form-urlencoded, or added to the query string when the method is GET.

    Usage:
        yield FormRequest("https://example.com/login", formdata={"user": "a", "pass": "b"})
    """

    __slots__ = ()

    def __init__(self, url: str | URL, *args: Any,
                 formdata: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        if formdata is None:
            super().__init__(url, *args, **kwargs)
            return
        pairs = list(formdata.items() if isinstance(formdata, Mapping) else formdata)
        encoded = urlencode([(k, v) for k, value in pairs
                             for v in (value if isinstance(value, list | tuple) else [value])])
        method = args[1] if len(args) >= 2 else kwargs.pop("method", "POST")
        if str(method).upper() == "GET":
            base = str(url).split("#", 1)[0]
            url = f"{base}{'&' if '?' in base else '?'}{encoded}"
        else:
            kwargs.setdefault("body", encoded)
            headers = _header_list(kwargs.pop("headers", None))
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            kwargs["headers"] = headers
        if len(args) >= 2:
            args = (args[0], method, *args[2:])
        else:
            kwargs["method"] = method
        super().__init__(url, *args, **kwargs)

    @classmethod
    def from_response(cls, response: Response, *, formname: str | None = None,
                      formid: str | None = None, formnumber: int = 0,
                      formxpath: str | None = None, formcss: str | None = None,
                      formdata: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
                      clickdata: Mapping[str, Any] | None = None, dont_click: bool = False,
                      method: str | None = None, **kwargs: Any) -> FormRequest:
        """A request submitting a form of `response`, its fields pre-filled from the page
        and overridden by `formdata` (Scrapy's `FormRequest.from_response`, built on
        form2request as Scrapy recommends; the `selectors` extra).

        The form: by `formxpath`, `formcss`, `formid` or `formname`, else the
        `formnumber`-th. The button clicked: the first submit button, the one whose
        attributes match `clickdata` ({"name": "go"}, or {"nr": 1} for the second), or
        none with `dont_click`. Other keyword arguments go to the Request (callback,
        meta, ...).

        Usage:
            yield FormRequest.from_response(response, formdata={"user": "a", "pass": "b"},
                                            callback=self.after_login)
        """
        from crawler.selectors import form_request_data

        url, form_method, headers, body = form_request_data(
            response, formname=formname, formid=formid, formnumber=formnumber,
            formxpath=formxpath, formcss=formcss, formdata=formdata, clickdata=clickdata,
            dont_click=dont_click, method=method)
        headers = [*headers, *_header_list(kwargs.pop("headers", None))]
        return cls(url, method=form_method, headers=headers, body=body, **kwargs)


# -- argument checks ------------------------------------------------------------------------

_NOTHING: frozenset[str] = frozenset()
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # RFC 9110 token: header names, methods
_BAD_VALUE_CHARS = re.compile(r"[\r\n\0]")


def _method(method: Any) -> str:
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise ValueError(f"Request method must be an HTTP method name, got {method!r}")
    return method.upper()


def _body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    raise TypeError(f"Request body must be bytes or str, got {type(body).__name__} "
                    "(use JsonRequest(data=...) for JSON, FormRequest(formdata=...) for forms)")


def _bad_int(priority: Any, depth: Any) -> None:
    for name, value in (("priority", priority), ("depth", depth)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"Request {name} must be an int, got {type(value).__name__} "
                            f"{value!r}")


def _bad_callable(name: str, value: Any) -> None:
    hint = " (pass the method itself, e.g. self.parse_item, not its name)" \
        if isinstance(value, str) else ""
    raise TypeError(f"Request {name} must be callable or None, got {type(value).__name__} "
                    f"{value!r}{hint}")


def _header_list(headers: HeadersArg) -> list[tuple[Any, Any]]:
    if not headers:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    if isinstance(headers, str | bytes):
        raise TypeError("Request headers must be a mapping or (name, value) pairs, got "
                        f"{type(headers).__name__}")
    return [tuple(pair) for pair in headers]


def request_callback_name(fn: Any, spider: object | None, what: str = "callback") -> str:
    """The name of `fn` as a method of `spider`; ValueError when it is not one."""
    name = getattr(fn, "__name__", None)
    if spider is None or getattr(fn, "__self__", None) is not spider or name is None \
            or getattr(spider, name, None) != fn:
        raise ValueError(f"the {what} {getattr(fn, '__qualname__', fn)!r} is not a method of "
                         "the spider: a request kept in a job directory names its callbacks")
    return str(name)


def _resolve(spider: object | None, name: str, what: str) -> Any:
    fn = getattr(spider, name, None)
    if not callable(fn):
        raise ValueError(f"the spider has no method {name!r} (the {what} of a stored request)")
    return fn


def _check_json(where: str, value: dict[str, Any]) -> None:
    try:
        orjson.dumps(value)
    except TypeError:
        for key, item in value.items():
            try:
                orjson.dumps(item)
            except TypeError as exc:
                raise ValueError(f"request {where}[{key!r}] cannot be stored as JSON: "
                                 f"{exc}") from None
        raise


def _cookies(cookies: Any) -> dict[str, str]:
    """Scrapy's two forms: {name: value}, or a list of {"name": ..., "value": ...} dicts
    (their domain and path are not used: a request's cookies go to its own URL)."""
    pairs = cookies.items() if isinstance(cookies, Mapping) else (
        (c.get("name"), c.get("value")) if isinstance(c, Mapping) else (c, None)
        for c in cookies)
    result = {}
    for name, value in pairs:
        if not isinstance(name, str) or not name or not isinstance(value, str | int | float):
            raise TypeError("Request cookies must be {name: value} strings, or a list of "
                            f"{{'name': ..., 'value': ...}} dicts; got {name!r}: {value!r}")
        if _COOKIE_BAD.search(name) or _COOKIE_BAD.search(str(value)):
            raise ValueError(f"cookie {name!r}: control characters or ';' are not allowed")
        result[name] = str(value)
    return result


_COOKIE_BAD = re.compile(r"[\x00-\x1f\x7f;]")


def _headers(headers: HeadersArg) -> tuple[CIMultiDict[str] | None, frozenset[str]]:
    """Scrapy's header values: str, bytes (UTF-8), int, a list (repeated header) or None
    (the header is not sent at all, not even a default one). Anything else is a TypeError
    here, not a failed fetch later."""
    result: CIMultiDict[str] = CIMultiDict()
    dropped: set[str] = set()
    for pair in _header_list(headers):
        if len(pair) != 2:
            raise TypeError(f"Request headers must be (name, value) pairs, got {pair!r}")
        name = _header_text(pair[0], None)
        if not _TOKEN.match(name):
            raise ValueError(f"invalid header name {name!r}")
        value = pair[1]
        if value is None:
            dropped.add(name.lower())
            continue
        for one in value if isinstance(value, list | tuple) else (value,):
            result.add(name, _header_text(one, name))
    return (result or None), frozenset(dropped)


def _header_text(value: Any, name: str | None) -> str:
    what = f"header {name!r}" if name else "a header name"
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            raise ValueError(f"{what}: bytes that are not UTF-8: {value!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool) and name:
        value = str(value)
    elif not isinstance(value, str):
        raise TypeError(f"{what} must be str, bytes, int, a list of those or None, got "
                        f"{type(value).__name__} {value!r}")
    if _BAD_VALUE_CHARS.search(value):
        raise ValueError(f"{what} contains CR, LF or NUL: {value!r}")
    return str(value)
