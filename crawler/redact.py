"""Credentials out of everything the crawler shows: one helper for log lines, errors, stats,
the status page and the `status` command.

`redact(text)` masks, wherever they appear in a text, the password of a URL's userinfo
(`redis://:secret@host`, `http://user:secret@host/`, a PostgreSQL DSN) and the value of a
password parameter in a query string (`?password=secret`): they become `***`. The user
name stays, to tell which account was meant. `RedactingFilter` applies it to every log
record that passes through a handler (the CLI installs it on its handlers).

Stored requests never hold credentials either (crawler/frontier/codec.py keeps them in memory
only); redirects to another origin drop them (crawler/middlewares/redirect.py).
"""

from __future__ import annotations

import logging
import re

__all__ = ["MASK", "RedactingFilter", "carries_secret", "redact", "redact_handlers"]

MASK = "***"
# scheme://user:password@ (the password up to the last @ before the host: it may hold :)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:?#]*:)"
                       r"(?P<secret>[^\s/?#]*)(?P<at>@)")
# ?password=... or &passwd=... (query strings, DSNs), up to the next & or blank
_PARAM = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|pass)=)(?P<secret>[^&\s#'\"]*)",
                    re.IGNORECASE)


# request header names that carry credentials (besides Authorization and Cookie)
_SECRET_HEADER = re.compile(r"auth|token|api[-_]?key|secret|session|passw|credential|csrf|xsrf",
                            re.IGNORECASE)


def carries_secret(name: str) -> bool:
    """Whether a request header carries a credential (`Authorization`, `Cookie`,
    `X-Api-Key`, `X-Auth-Token`, ...): it stays with its origin and is never stored."""
    lowered = name.lower()
    return lowered in ("cookie", "authorization", "proxy-authorization") or \
        bool(_SECRET_HEADER.search(lowered))


def redact(text: str) -> str:
    """`text` with every URL password and password parameter masked."""
    if "@" not in text and "=" not in text:
        return text  # the common case, at once
    text = _USERINFO.sub(_masked, text)
    return _PARAM.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    if not match.group("secret"):
        return match.group(0)
    return match.group("head") + MASK + (match.groupdict().get("at") or "")


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's message (its arguments merged in) and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_handlers(logger: logging.Logger | None = None) -> None:
    """Put a RedactingFilter on every handler of `logger` (default: the root logger) that
    has none: what the crawl logs through them is masked, whoever set them up."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
