"""Request: what a spider asks for, checked where it is made."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import orjson
from multidict import CIMultiDict
from yarl import URL

from crawler.http.urls import host_key

if TYPE_CHECKING:
    from crawler._types import Callback, Errback

__all__ = ["HeadersArg", "Request", "request_callback_name"]

HeadersArg: TypeAlias = Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None
"""Request headers: a mapping or (name, value) pairs; values str, bytes, int, list or None."""


class Request:
    """A URL to fetch and what to do with the response.

    Usage:
        yield Request("https://example.com/", callback=self.parse_page, meta={"page": 1})
    """

    __slots__ = ("_canonical", "_cb_kwargs", "_host", "_meta", "_slot", "_url", "_yurl", "body",
                 "callback", "cookies", "depth", "dont_filter", "dropped_headers", "errback",
                 "headers", "method", "priority", "referer")

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
        referer: str | None = None,
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
        # the politeness slot the frontier took for it (politeness_by), to free on done()
        self._slot: str | None = None
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
        # the page this request was found on (no credentials, no fragment): the Referer
        # header sent is derived from it by the referer_policy setting
        self.referer = referer
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
        request._slot = None
        request.callback = callback
        request.method = "GET"
        request.headers = None
        request.dropped_headers = _NOTHING
        request.body = b""
        request._meta = request._cb_kwargs = None
        request.priority = request.depth = 0
        request.dont_filter = False
        request.errback = None
        request.cookies = request.referer = None
        return request

    @property
    def path_qs(self) -> str:
        """The path and query as sent (what robots.txt rules match), without parsing a
        plain link."""
        canonical = self._canonical
        if canonical is not None:
            return canonical[canonical.index("/", canonical.index("://") + 3):]
        return self.yurl.raw_path_qs

    def replace(self, **changes: Any) -> Request:
        """A copy with some attributes changed (Scrapy's `Request.replace`); the copy is of
        the same class, and its meta a new dict."""
        fields: dict[str, Any] = {name: getattr(self, name) for name in (
            "url", "callback", "method", "body", "priority", "dont_filter", "errback",
            "depth")}
        fields["meta"] = dict(self._meta) if self._meta else None
        fields["cb_kwargs"] = self._cb_kwargs
        fields["cookies"] = self.cookies
        fields["referer"] = self.referer
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
        if self.referer is not None:
            data["referer"] = self.referer
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
