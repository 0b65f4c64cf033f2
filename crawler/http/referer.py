"""The Referer header: which part of the page a link was found on a request tells the
server, by the W3C Referrer Policy (https://www.w3.org/TR/referrer-policy/).

A followed request carries the page's URL (`Request.referer`, set as the callback yields
it, without credentials or fragment); the header is derived from it when the request is
sent, by the `referer_policy` setting or the request's `meta["referrer_policy"]`
(Scrapy's key). Nothing is sent from a page that is not http(s), nor with a request that
sets or drops its own Referer.
"""

from __future__ import annotations

from yarl import URL

__all__ = ["page_referer", "referer_header"]

_WEB = ("http:", "https:")


def page_referer(url: str) -> str | None:
    """What a page's links carry as their referer: its URL without user, password or
    fragment; None for a page that is not http(s)."""
    if not url.startswith(_WEB):
        return None
    if "@" in url or "#" in url:
        return str(URL(url).with_user(None).with_fragment(None))
    return url


def _origin(url: str) -> str:
    return str(URL(url).origin())


def referer_header(source: str, target: str, policy: str) -> str | None:
    """The Referer to send from page `source` (a page_referer) to `target`, or None."""
    downgrade = source.startswith("https:") and not target.startswith("https:")
    if policy == "no-referrer-when-downgrade":  # the default: the URL, unless to http from https
        return None if downgrade else source
    if policy == "unsafe-url":
        return source
    if policy == "no-referrer":
        return None
    same = _origin(source) == _origin(target)
    if policy == "same-origin":
        return source if same else None
    if policy == "origin":
        return _origin(source) + "/"
    if policy == "strict-origin":
        return None if downgrade else _origin(source) + "/"
    if policy == "origin-when-cross-origin":
        return source if same else _origin(source) + "/"
    if policy == "strict-origin-when-cross-origin":
        return source if same else None if downgrade else _origin(source) + "/"
    raise ValueError(f"unknown referrer policy {policy!r}")
