"""URL canonicalisation and the request fingerprint: the one place dedup is defined.

Replace `fingerprint` with another function of the same shape (``Crawler(fingerprint=...)``)
to change what counts as a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from hashlib import sha1 as _sha1
from typing import TYPE_CHECKING

from yarl import URL

from crawler.exceptions import Kind

if TYPE_CHECKING:
    from crawler.http import Request

__all__ = ["AllowedDomains", "canonical_url", "fingerprint", "host_key", "parse_url",
           "proxy_address"]

FETCHABLE_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 65_536  # beyond any setting of max_url_length: not even parsed


def parse_url(url: str | URL, schemes: frozenset[str] = FETCHABLE_SCHEMES) -> URL | Kind:
    """Parse an absolute URL of one of `schemes` (http and https: those a download handler
    takes), or say why not: `Kind.INVALID_URL` (unparseable, relative, no host, over 64
    KiB) or `Kind.UNSUPPORTED_SCHEME` (mailto:, javascript:, data:, ftp:, ...).
    An already parsed URL is only checked."""
    if isinstance(url, str) and len(url) > MAX_URL_LENGTH:
        return Kind.INVALID_URL
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        scheme = parsed.scheme
        host = parsed.host
    except (ValueError, TypeError):
        return Kind.INVALID_URL
    if scheme not in schemes:
        return Kind.UNSUPPORTED_SCHEME if scheme else Kind.INVALID_URL
    if not host or len(parsed.raw_path_qs) > MAX_URL_LENGTH:
        return Kind.INVALID_URL
    return parsed


def proxy_address(text: str) -> URL | None:
    """`text` as a proxy's URL (http:// or https:// with a host), or None: the one rule of
    the `proxies` setting, a proxies file and `meta["proxy"]`."""
    try:
        url = URL(text)
    except ValueError:
        return None
    return url if url.scheme in ("http", "https") and url.host else None


def canonical_url(url: URL) -> str:
    """Scheme and host lower-cased, default port and fragment dropped, percent-encoding
    normalised (yarl decodes unreserved characters and re-quotes the rest), query order kept."""
    return f"{url.scheme}://{url.host_port_subcomponent}{url.raw_path_qs}"


def fingerprint(request: Request) -> bytes:
    """Identity of a request for the duplicate filter: SHA-1 of method, canonical URL and
    body (`GET http://host/path`, one call for the common case)."""
    key = f"{request.method} {request._canonical or canonical_url(request.yurl)}".encode()
    if request.body:
        key += b" " + request.body
    return _sha1(key, usedforsecurity=False).digest()


def host_key(url: URL) -> str:
    """The politeness unit: scheme + host + port (RFC 9309's robots.txt scope)."""
    return f"{url.scheme}://{url.host}:{url.port}"


class AllowedDomains:
    """A spider's `allowed_domains`: "example.com" admits that host and its subdomains on any
    port; "example.com:8080" (or "127.0.0.1:8082") only on that port. An entry written as a
    URL is reduced to its host (and port), with a warning.

    Usage:
        allowed = AllowedDomains(["example.com", "127.0.0.1:8082"])
        assert allowed.admits(URL("http://www.example.com/"))
    """

    __slots__ = ("_any_port", "_ports", "entries", "warnings")

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entries)
        self.warnings: list[str] = []
        self._any_port: set[str] = set()
        self._ports: dict[str, set[int]] = {}
        if isinstance(entries, str):
            raise ValueError(f"allowed_domains must be a list of domains, got the string "
                             f"{entries!r}")
        for entry in self.entries:
            host, port = self._parse(entry)
            if port is None:
                self._any_port.add(host)
            else:
                self._ports.setdefault(host, set()).add(port)

    def _parse(self, entry: str) -> tuple[str, int | None]:
        text = str(entry).strip()
        is_url = "://" in text
        try:
            url = URL(text if is_url else f"http://{text}")
            host = (url.host or "").strip(".").lower()
        except ValueError:
            host = ""
        if not host:
            raise ValueError(f"allowed_domains entry {entry!r} is not a domain")
        if is_url or url.raw_path not in ("", "/") or url.raw_query_string:
            self.warnings.append(f"allowed_domains entry {entry!r} is not a bare domain: "
                                 f"using {host}" + (f":{url.explicit_port}"
                                                   if url.explicit_port else ""))
        return host, url.explicit_port

    def __bool__(self) -> bool:
        return bool(self.entries)

    def admits(self, url: URL) -> bool:
        """True when the URL's host (and port, for entries with one) is allowed."""
        host = url.host or ""
        port = url.port
        for candidate in _suffixes(host):
            if candidate in self._any_port:
                return True
            ports = self._ports.get(candidate)
            if ports is not None and port in ports:
                return True
        return False


def _suffixes(host: str) -> Iterator[str]:
    """The host, then each parent domain: a.b.c, b.c, c."""
    yield host
    dot = host.find(".")
    while dot != -1:
        yield host[dot + 1 :]
        dot = host.find(".", dot + 1)
