"""URL canonicalisation and the request fingerprint: the one place dedup is defined.

Replace `fingerprint` with another function of the same shape (``Crawler(fingerprint=...)``)
to change what counts as a duplicate.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from yarl import URL

if TYPE_CHECKING:
    from crawler.http import Request

FETCHABLE_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 8192


def parse_url(url: str | URL) -> URL | str:
    """Parse an absolute http(s) URL, or say why not: "invalid_url" (unparseable, relative,
    no host, over 8 KiB) or "unsupported_scheme" (mailto:, javascript:, data:, ftp:, ...).
    An already parsed URL is only checked."""
    if isinstance(url, str) and len(url) > MAX_URL_LENGTH:
        return "invalid_url"
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        scheme = parsed.scheme
        host = parsed.host
    except (ValueError, TypeError):
        return "invalid_url"
    if scheme not in FETCHABLE_SCHEMES:
        return "unsupported_scheme" if scheme else "invalid_url"
    if not host or len(parsed.raw_path_qs) > MAX_URL_LENGTH:
        return "invalid_url"
    return parsed


def canonical_url(url: URL) -> str:
    """Scheme and host lower-cased, default port and fragment dropped, percent-encoding
    normalised (yarl decodes unreserved characters and re-quotes the rest), query order kept."""
    return f"{url.scheme}://{url.host_port_subcomponent}{url.raw_path_qs}"


def fingerprint(request: Request) -> bytes:
    """Identity of a request for the duplicate filter: method + canonical URL + body."""
    digest = hashlib.sha1(request.method.encode(), usedforsecurity=False)
    digest.update(b" ")
    digest.update((request._canonical or canonical_url(request.yurl)).encode())
    if request.body:
        digest.update(b" ")
        digest.update(request.body)
    return digest.digest()


def host_key(url: URL) -> str:
    """The politeness unit: scheme + host + port (RFC 9309's robots.txt scope)."""
    return f"{url.scheme}://{url.host}:{url.port}"


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """True when `host` is one of `allowed` or a subdomain of one."""
    if host in allowed:
        return True
    dot = host.find(".")
    while dot != -1:
        if host[dot + 1 :] in allowed:
            return True
        dot = host.find(".", dot + 1)
    return False
