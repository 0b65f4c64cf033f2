"""Every packed form of a request, in one place: a compact tuple for a queue in memory,
and text for stores outside the process (a job directory, Redis): callbacks by method
name on the spider, never pickled code, and never a credential in the text.

A plain request (a GET of a URL with a callback of the spider, a depth, a priority, the
page it was found on and the store's id in its meta: what most followed links are)
packs small; any other is kept whole in memory and as `Request.to_json` in text.

A request's credentials (the password in its URL, its `Authorization`,
`Proxy-Authorization`, `Cookie` and other secret-named headers, its cookies, the password
of its `meta["proxy"]`) are not written: they stay in this process's memory, under a
random token the stored text names, and come back when this process reads the request
again. A request read by another process (a resumed job, another worker of a fleet) has
none: it is sent without them, said once and counted (`credentials_not_restored`);
credentials that must survive a restart belong where they are added at fetch time (a
downloader middleware, `http_proxy`, the cookie jar).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import Counter, OrderedDict
from typing import Any, TypeAlias

import orjson
from yarl import URL

from crawler.http import Request, request_callback_name
from crawler.redact import carries_secret

__all__ = ["STORE_ID", "Packed", "RequestCodec", "store_id"]

logger = logging.getLogger(__name__)

STORE_ID = "_store_id"  # the meta key of a request's id in a store outside the process
_CREDENTIALS = "_credentials"  # the stored text's token for the credentials kept here
VAULT = 100_000  # stored requests whose credentials this process keeps, at most

Packed: TypeAlias = tuple[Any, ...]
"""A plain request queued in memory: (seq, URL, callback name, depth, referer), and its
id in a store when it has one. A tuple of strings and ints takes a third of a Request's
memory and is not tracked by the garbage collector, which matters when a frontier holds
millions."""


def store_id(request: Request) -> Any:
    """The id of the stored row (or record) `request` lives in, if it has one."""
    return request._meta.get(STORE_ID) if request._meta else None


def _plain(request: Request, id_key: str | None) -> bool:
    """Whether `request` holds nothing a packed form leaves out."""
    meta = request._meta
    return request.method == "GET" and not (
        request.body or request.headers or request.dropped_headers or request.cookies
        or request._cb_kwargs or request.errback is not None or request.dont_filter) and (
        not meta or (id_key is not None and len(meta) == 1 and id_key in meta))


class RequestCodec:
    """Usage: `codec = RequestCodec(spider)`; in memory `codec.pack(request, seq)` and
    `codec.unpack(packed, priority, host)`; as text `codec.encode(request)` and
    `codec.decode(text, rid)` (a plain request a short JSON array, any other
    `Request.to_json`, its credentials kept in memory: see the module docstring).
    """

    def __init__(self, spider: Any, id_key: str | None = STORE_ID, *,
                 counters: Counter[str] | None = None, vault: int = VAULT) -> None:
        self._spider = spider
        self._id_key = id_key
        self._names: dict[Any, str] = {}  # callback function -> its name on the spider
        self._vault: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._vault_size = vault
        self._counters = counters if counters is not None else Counter()
        self._warned: set[str] = set()

    def pack(self, request: Request, seq: int) -> Packed | Request:
        """`request` as a Packed tuple after `seq` (the frontier's arrival order) when it
        is plain and its callback is the spider's; else the request itself."""
        if not _plain(request, self._id_key):
            return request
        callback = request.callback
        name = None
        if callback is not None:
            name = self._method_name(callback)
            if name is None:
                return request  # not a method of the spider: it cannot be named
        meta = request._meta
        url = request._url if request._url is not None else request.url
        if meta:  # (plain: it holds only the id)
            return (seq, url, name, request.depth, request.referer, *meta.values())
        return (seq, url, name, request.depth, request.referer)

    def unpack(self, packed: Packed | Request, priority: int, host: str | None) -> Request:
        """The request `pack` gave (`host`: its origin, when the caller knows it)."""
        if isinstance(packed, Request):
            return packed
        url, name, depth, referer = packed[1], packed[2], packed[3], packed[4]
        key = self._id_key
        meta = {key: packed[5]} if key is not None and len(packed) == 6 else None
        request = Request(url, None if name is None else getattr(self._spider, name),
                          priority=priority, depth=depth, meta=meta, referer=referer)
        request._host = host
        return request

    def encode(self, request: Request) -> str:
        """ValueError when the request cannot be stored (a callback that is not a spider
        method, meta or cb_kwargs that JSON cannot hold), naming what."""
        if _plain(request, self._id_key) and not _has_userinfo(request.url):
            callback = request.callback
            name = None if callback is None else self._name(callback)
            fields = [request.url, name, request.depth, request.priority]
            if request.referer is not None:
                fields.append(request.referer)
            return orjson.dumps(fields).decode()
        data = request.to_dict(self._spider)
        kept = _take_credentials(data)
        if kept:
            token = secrets.token_hex(8)
            self._keep(token, kept)
            data[_CREDENTIALS] = token
        try:
            return orjson.dumps(data).decode()  # as str: orjson's bytes keep a 4 KB buffer
        except TypeError:
            request.to_json(self._spider)  # raises the ValueError naming the key
            raise

    def decode(self, data: str, rid: Any) -> Request:
        """The stored request, `rid` under the id key of its meta; ValueError or TypeError
        when it cannot be restored (the spider lost a method since)."""
        if data[0] == "[":
            fields = orjson.loads(data)  # [url, name, depth, priority(, referer)]
            name = fields[1]
            callback = None if name is None else getattr(self._spider, name, None)
            if name is not None and not callable(callback):
                raise ValueError(f"the spider has no method {name!r} (the callback of a "
                                 "stored request)")
            return Request(fields[0], callback, priority=fields[3],
                           meta=None if self._id_key is None else {self._id_key: rid},
                           depth=fields[2], referer=fields[4] if len(fields) > 4 else None)
        fields = orjson.loads(data)
        token = fields.pop(_CREDENTIALS, None)
        if token is not None:
            kept = self._vault.pop(token, None)
            if kept is not None:
                _put_back(fields, kept)
            else:
                self._missing(fields)
        request = Request.from_dict(fields, self._spider)
        if self._id_key is not None:
            request.meta[self._id_key] = rid
        return request

    def _keep(self, token: str, kept: dict[str, Any]) -> None:
        vault = self._vault
        vault[token] = kept
        if len(vault) > self._vault_size:
            vault.popitem(last=False)
            self._once("full", "more than %d stored requests hold credentials: the oldest "
                       "lose theirs (they are sent without them)", self._vault_size)

    def _missing(self, fields: dict[str, Any]) -> None:
        self._counters["credentials_not_restored"] += 1
        self._once("missing", "a stored request had credentials (a URL password, "
                   "Authorization, cookies or a proxy password), which are never written to "
                   "the job or the fleet's Redis, and this process does not hold them: %s "
                   "is sent without them (counted as credentials_not_restored); add them "
                   "at fetch time instead (a downloader middleware, http_proxy, the cookie "
                   "jar)", fields.get("url", "?"))

    def _once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    def _method_name(self, callback: Any) -> str | None:
        """The name of `callback` as a method of the spider (cached), or None."""
        func = getattr(callback, "__func__", None)
        if func is None or callback.__self__ is not self._spider:
            return None
        name = self._names.get(func)
        if name is None:
            name = func.__name__
            if getattr(self._spider, name, None) != callback:
                return None
            self._names[func] = name
        return name

    def _name(self, callback: Any) -> str:
        """`_method_name`, or ValueError saying why a stored request needs one."""
        name = self._method_name(callback)
        if name is None:
            return request_callback_name(callback, self._spider)  # raises, naming it
        return name


def _has_userinfo(url: str) -> bool:
    if "@" not in url:
        return False  # the common case, at once
    authority = re.split(r"[/?#]", url.split("//", 1)[-1], maxsplit=1)[0]
    return "@" in authority


def _take_credentials(data: dict[str, Any]) -> dict[str, Any]:
    """Take the credentials out of a request's dict; what was taken (empty: none)."""
    kept: dict[str, Any] = {}
    url = URL(data["url"])
    if url.user is not None or url.password is not None:
        kept["userinfo"] = (url.user, url.password)
        data["url"] = str(url.with_user(None))
    headers = data.get("headers")
    if headers:
        secret = [pair for pair in headers if pair[1] is not None and carries_secret(pair[0])]
        if secret:
            kept["headers"] = secret
            data["headers"] = [pair for pair in headers if pair not in secret]
            if not data["headers"]:
                del data["headers"]
    if "cookies" in data:
        kept["cookies"] = data.pop("cookies")
    meta = data.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("proxy"), str) and "@" in meta["proxy"]:
        proxy_url = URL(meta["proxy"])
        if proxy_url.user is not None:
            kept["proxy"] = meta["proxy"]
            data["meta"] = {**meta, "proxy": str(proxy_url.with_user(None))}
    return kept


def _put_back(data: dict[str, Any], kept: dict[str, Any]) -> None:
    if "userinfo" in kept:
        user, password = kept["userinfo"]
        data["url"] = str(URL(data["url"]).with_user(user).with_password(password))
    if "headers" in kept:
        data["headers"] = [*data.get("headers", []), *kept["headers"]]
    if "cookies" in kept:
        data["cookies"] = kept["cookies"]
    if "proxy" in kept:
        data["meta"] = {**data.get("meta", {}), "proxy": kept["proxy"]}
