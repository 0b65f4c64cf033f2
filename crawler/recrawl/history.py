"""What a job remembers of each page it fetched, and how a new response of it is judged.

The judgement, for a page the job knows (`previous`):

- `304 Not Modified` (an answer to the validators sent): unchanged;
- a 2xx whose body has the digest stored: unchanged, whatever its validators say (a
  server that sends a new ETag with every response, or a Last-Modified of now, is judged
  by what it sent); another digest: changed;
- `404` or `410`: gone (and a redirect to another URL: see crawler/storage/jobdir.py);
- anything else (a 5xx that outlived its retries, a 3xx not followed): no judgement, the
  page's record stays as it was.

With `recrawl_digest = "items"`, a page whose body changed is parsed and then judged by a
digest of its items instead (crawler/storage/jobdir.py): the same items, unchanged.

A page the job does not know is new when it answers 2xx; its interval starts at
`recrawl_interval`, or at what its sitemap entry's `changefreq` says (hourly, daily, ...),
and when it last changed is its sitemap `lastmod` when that is given and not in the
future. Each judgement moves the page's
revisit interval the way Nutch's adaptive schedule does: x (1 + `recrawl_inc_rate`) when
unchanged, x (1 - `recrawl_dec_rate`) when changed, within `recrawl_min_interval` and
`recrawl_max_interval`.

Validators are kept only when they can be trusted: an ETag must be an entity-tag (quoted,
`W/` for a weak one, which If-None-Match may carry), a Last-Modified must parse and not lie
in the future (a server's clock ahead of ours would otherwise make every later change look
older than our copy).
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from crawler.http import Response
    from crawler.settings import Settings

__all__ = ["Change", "Visit", "body_digest", "judge", "next_interval"]

_CLOCK_SKEW = 60.0  # seconds a Last-Modified may lie ahead of our clock and still be used
# a sitemap's <changefreq> as a first revisit interval, in seconds
_CHANGEFREQ = {"always": 0.0, "hourly": 3600.0, "daily": 86400.0, "weekly": 7 * 86400.0,
               "monthly": 30 * 86400.0, "yearly": 365 * 86400.0, "never": float("inf")}
_MAX_ETAG = 256  # characters: a longer one is not kept (nor sent back)


class Change(StrEnum):
    """What a visit found."""

    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    GONE = "gone"


class Visit(NamedTuple):
    """A page as the job remembers it (one row of its history)."""

    fp: str  # the request's fingerprint, hex: the key
    url: str
    host: str
    priority: int
    data: str  # the request that fetches it again, as the job stores requests
    etag: str | None
    modified: str | None  # Last-Modified, as the server sent it
    digest: str | None  # of the body
    fetched: float  # wall time of the last visit
    changed: float  # wall time of the last visit that found it new or changed
    interval: float  # seconds until it is due again
    items: str | None = None  # a digest of the items it gave (recrawl_digest = "items")

    @property
    def due(self) -> float:
        return self.fetched + self.interval


def body_digest(body: bytes) -> str:
    """A digest of a page's body (BLAKE2b, 128 bits: collisions are not a concern)."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def next_interval(interval: float, changed: bool, s: Settings) -> float:
    """A page's revisit interval after a visit that found it `changed` or not."""
    interval *= (1 - s.recrawl_dec_rate) if changed else (1 + s.recrawl_inc_rate)
    return min(max(interval, s.recrawl_min_interval), s.recrawl_max_interval)


def judge(previous: Visit | None, response: Response, now: float, s: Settings,
          ) -> tuple[Change | None, dict[str, Any] | None]:
    """The change `response` shows against `previous` (None: no judgement), and the
    fields of the page's new record (None: forget the page). A sitemap's hints come in
    the request's meta (`sitemap_changefreq`, `sitemap_lastmod`)."""
    status = response.status
    if status == 304:
        if previous is None:  # not asked for: nothing to compare
            return None, None
        etag, modified = _validators(response, now)
        return Change.UNCHANGED, {
            "etag": etag or previous.etag, "modified": modified or previous.modified,
            "digest": previous.digest, "fetched": now, "changed": previous.changed,
            "interval": next_interval(previous.interval, False, s), "items": previous.items}
    if status in (404, 410):
        return (Change.GONE if previous is not None else None), None
    if not 200 <= status < 300:
        return None, None
    digest = body_digest(response.body)
    etag, modified = _validators(response, now)
    fields = {"etag": etag, "modified": modified, "digest": digest, "fetched": now}
    if previous is None:
        interval, changed = _sitemap_hints(response, now, s)
        return Change.NEW, {**fields, "changed": changed, "interval": interval}
    if previous.digest == digest:
        return Change.UNCHANGED, {**fields, "changed": previous.changed,
                                  "interval": next_interval(previous.interval, False, s),
                                  "items": previous.items}
    return Change.CHANGED, {**fields, "changed": now,
                            "interval": next_interval(previous.interval, True, s),
                            "items": previous.items}


def _sitemap_hints(response: Response, now: float, s: Settings) -> tuple[float, float]:
    """A new page's first interval and when it last changed: its sitemap entry's
    changefreq and lastmod when it came from one, else recrawl_interval and now."""
    meta = response.meta
    interval = _CHANGEFREQ.get(str(meta.get("sitemap_changefreq", "")).strip().lower(),
                               s.recrawl_interval)
    interval = min(max(interval, s.recrawl_min_interval), s.recrawl_max_interval)
    changed = now
    lastmod = meta.get("sitemap_lastmod")
    if isinstance(lastmod, str):
        try:
            when = datetime.datetime.fromisoformat(lastmod.strip().replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            if when.timestamp() <= now:
                changed = when.timestamp()
    return interval, changed


def _validators(response: Response, now: float) -> tuple[str | None, str | None]:
    """The response's ETag and Last-Modified, each only when it can be trusted."""
    headers = response.headers
    etag = headers.get("ETag", "").strip()
    opaque = etag[2:] if etag.startswith("W/") else etag
    if not (2 <= len(opaque) and opaque[0] == opaque[-1] == '"' and len(etag) <= _MAX_ETAG
            and '"' not in opaque[1:-1] and etag.isprintable()):
        etag = ""
    modified = headers.get("Last-Modified", "").strip()
    if modified:
        try:
            when = email.utils.parsedate_to_datetime(modified)
        except (TypeError, ValueError, IndexError):
            modified = ""
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            if when.timestamp() > now + _CLOCK_SKEW or not modified.isprintable():
                modified = ""
    return etag or None, modified or None
