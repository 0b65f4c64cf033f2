"""How fresh a stored response is, as an HTTP cache reckons it (RFC 9111 section 4.2, for
a private cache): what the HTTP cache's `rfc9111` policy asks before replaying one; and the
conditional request that asks a server whether a copy is still current (the cache's
revalidations and a recrawl's visits, crawler/recrawl/visits.py)."""

from __future__ import annotations

import email.utils
from typing import Any

from multidict import CIMultiDict

__all__ = ["CONDITIONAL_HEADERS", "ask_if_changed", "cache_directives", "fresh"]

CONDITIONAL_HEADERS = ("If-None-Match", "If-Modified-Since")  # what ask_if_changed adds

_HEURISTIC = 0.1  # of the time since Last-Modified (RFC 9111 4.2.2's suggestion)


def cache_directives(headers: CIMultiDict[str] | Any) -> dict[str, str | None]:
    """The Cache-Control directives of `headers`, lower-cased (`max-age` -> its value)."""
    directives: dict[str, str | None] = {}
    for value in headers.getall("Cache-Control", ()):
        for part in value.split(","):
            name, _, argument = part.strip().partition("=")
            if name:
                directives[name.lower()] = argument.strip().strip('"') or None
    return directives


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(int(value or "")))
    except ValueError:
        return None


def _date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def lifetime(headers: Any, stored: float) -> float:
    """How long a response stays fresh from when it was generated."""
    directives = cache_directives(headers)
    if "no-cache" in directives:
        return 0.0
    max_age = _seconds(directives.get("max-age"))
    if max_age is not None:
        return max_age
    date = _date(headers.get("Date")) or stored
    if "Expires" in headers:
        expires = _date(headers.get("Expires"))
        return max(0.0, expires - date) if expires is not None else 0.0  # invalid: expired
    modified = _date(headers.get("Last-Modified"))
    if modified is not None and modified < date:
        return (date - modified) * _HEURISTIC
    return 0.0


def fresh(request: Any, headers: Any, stored: float, now: float) -> bool:
    """Whether the response stored at `stored` with `headers` may answer `request` at
    `now` without asking the server."""
    if request.headers is not None:
        asked = cache_directives(request.headers)
        if "no-cache" in asked or _seconds(asked.get("max-age")) == 0:
            return False
    age = (_seconds(headers.get("Age")) or 0.0) + max(0.0, now - stored)
    return lifetime(headers, stored) > age


def ask_if_changed(request: Any, etag: str | None, modified: str | None) -> bool:
    """Make `request` conditional on a copy's validators (`If-None-Match` for its ETag,
    `If-Modified-Since` for its Last-Modified); False when it has none to send."""
    asked = {name: value for name, value in zip(CONDITIONAL_HEADERS, (etag, modified),
                                                 strict=True) if value}
    if asked:
        if request.headers is None:
            request.headers = CIMultiDict()
        request.headers.update(asked)
    return bool(asked)
