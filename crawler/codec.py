"""Requests as text and back, for stores outside the process (a job directory, Redis):
callbacks by method name on the spider, never pickled code."""

from __future__ import annotations

from typing import Any

import orjson

from crawler.http import Request, request_callback_name

__all__ = ["STORE_ID", "RequestCodec", "store_id"]

STORE_ID = "_store_id"  # the meta key of a request's id in a store outside the process


def store_id(request: Request) -> Any:
    """The id of the stored row (or record) `request` lives in, if it has one."""
    return request._meta.get(STORE_ID) if request._meta else None


class RequestCodec:
    """A plain GET (most followed links: URL, callback, depth, priority and the store's own
    id in its meta) becomes a short JSON array; any other request `Request.to_json`.

    Usage: `codec = RequestCodec(spider); request = codec.decode(codec.encode(r), rid)`.
    """

    def __init__(self, spider: Any, id_key: str = STORE_ID) -> None:
        self._spider = spider
        self._id_key = id_key
        self._names: dict[Any, str] = {}  # callback function -> its name on the spider

    def encode(self, request: Request) -> str:
        """ValueError when the request cannot be stored (a callback that is not a spider
        method, meta or cb_kwargs that JSON cannot hold), naming what."""
        meta = request._meta
        if (not meta or (len(meta) == 1 and self._id_key in meta)) and \
                request.method == "GET" and not (
                request.body or request.headers or request.dropped_headers or request.cookies
                or request._cb_kwargs or request.errback is not None or request.dont_filter):
            callback = request.callback
            name = None if callback is None else self._name(callback)
            return orjson.dumps([request.url, name, request.depth, request.priority]).decode()
        return request.to_json(self._spider)

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
        request = Request.from_dict(orjson.loads(data), self._spider)
        request.meta[self._id_key] = rid
        return request

    def _name(self, callback: Any) -> str:
        func = getattr(callback, "__func__", None)
        name = self._names.get(func) if getattr(callback, "__self__", None) is self._spider \
            else None
        if name is None:
            name = self._names[func] = request_callback_name(callback, self._spider)
        return name
