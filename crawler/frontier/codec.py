"""Requests as text and back, for stores outside the process (a job directory, Redis):
callbacks by method name on the spider, never pickled code, and never a credential.

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
from typing import Any

import orjson
from yarl import URL

from crawler.http import Request, request_callback_name
from crawler.redact import carries_secret

__all__ = ["STORE_ID", "RequestCodec", "store_id"]

logger = logging.getLogger(__name__)

STORE_ID = "_store_id"  # the meta key of a request's id in a store outside the process
_CREDENTIALS = "_credentials"  # the stored text's token for the credentials kept here
VAULT = 100_000  # stored requests whose credentials this process keeps, at most


def store_id(request: Request) -> Any:
    """The id of the stored row (or record) `request` lives in, if it has one."""
    return request._meta.get(STORE_ID) if request._meta else None


class RequestCodec:
    """A plain GET (most followed links: URL, callback, depth, priority and the store's own
    id in its meta) becomes a short JSON array; any other request `Request.to_json`, its
    credentials kept in memory (see the module docstring).

    Usage: `codec = RequestCodec(spider); request = codec.decode(codec.encode(r), rid)`.
    """

    def __init__(self, spider: Any, id_key: str = STORE_ID, *,
                 counters: Counter[str] | None = None, vault: int = VAULT) -> None:
        self._spider = spider
        self._id_key = id_key
        self._names: dict[Any, str] = {}  # callback function -> its name on the spider
        self._vault: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._vault_size = vault
        self._counters = counters if counters is not None else Counter()
        self._warned: set[str] = set()

    def encode(self, request: Request) -> str:
        """ValueError when the request cannot be stored (a callback that is not a spider
        method, meta or cb_kwargs that JSON cannot hold), naming what."""
        meta = request._meta
        if (not meta or (len(meta) == 1 and self._id_key in meta)) and \
                request.method == "GET" and not (
                request.body or request.headers or request.dropped_headers or request.cookies
                or request._cb_kwargs or request.errback is not None or request.dont_filter
                or _has_userinfo(request.url)):
            callback = request.callback
            name = None if callback is None else self._name(callback)
            return orjson.dumps([request.url, name, request.depth, request.priority]).decode()
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
            url, name, depth, priority = orjson.loads(data)
            callback = None if name is None else getattr(self._spider, name, None)
            if name is not None and not callable(callback):
                raise ValueError(f"the spider has no method {name!r} (the callback of a "
                                 "stored request)")
            return Request(url, callback, priority=priority, meta={self._id_key: rid},
                           depth=depth)
        fields = orjson.loads(data)
        token = fields.pop(_CREDENTIALS, None)
        if token is not None:
            kept = self._vault.pop(token, None)
            if kept is not None:
                _put_back(fields, kept)
            else:
                self._missing(fields)
        request = Request.from_dict(fields, self._spider)
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

    def _name(self, callback: Any) -> str:
        func = getattr(callback, "__func__", None)
        name = self._names.get(func) if getattr(callback, "__self__", None) is self._spider \
            else None
        if name is None:
            name = self._names[func] = request_callback_name(callback, self._spider)
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
