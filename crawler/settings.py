"""One frozen, typed Settings object; merged defaults -> spider custom_settings -> command line.

Usage:
    settings = Settings().merge({"concurrency": 32}).merge_strings({"max_pages": "100"})
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crawler import __version__
from crawler.exceptions import SettingsError

DEFAULT_USER_AGENT = f"crawler/{__version__} (+https://github.com/crawler-dev/crawler)"
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a crawl, with its default. Unknown names and bad values are errors."""

    concurrency: int = 16
    per_host_concurrency: int = 8
    download_delay: float = 0.0
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_depth: int | None = None
    max_pages: int | None = None
    max_items: int | None = None
    max_duration: float | None = None
    max_response_size: int = 32 * 1024 * 1024
    max_redirects: int = 10
    user_agent: str = DEFAULT_USER_AGENT
    item_pipelines: tuple[Any, ...] = ()
    feed_fields: tuple[str, ...] | None = None
    log_level: str = "INFO"
    log_interval: float = 10.0
    shutdown_timeout: float | None = None
    # politeness
    obey_robots: bool = True
    randomize_download_delay: bool = True
    autothrottle: bool = False
    autothrottle_start_delay: float = 5.0
    autothrottle_target_concurrency: float = 1.0
    autothrottle_max_delay: float = 60.0
    # retries
    retries: int = 3
    retry_http_codes: tuple[int, ...] = (408, 429, 500, 502, 503, 504, 522, 524)
    retry_backoff_base: float = 1.0
    retry_backoff_max: float = 60.0

    def __post_init__(self) -> None:
        for name in ("concurrency", "per_host_concurrency", "max_response_size"):
            _check(name, getattr(self, name) >= 1, "must be >= 1")
        for name in ("download_delay", "max_redirects", "retries", "log_interval",
                     "retry_backoff_base", "retry_backoff_max", "autothrottle_max_delay",
                     "autothrottle_start_delay"):
            _check(name, getattr(self, name) >= 0, "must be >= 0")
        for name in ("timeout", "connect_timeout", "autothrottle_target_concurrency"):
            _check(name, getattr(self, name) > 0, "must be > 0")
        for name in ("max_depth", "max_pages", "max_items", "max_duration", "shutdown_timeout"):
            value = getattr(self, name)
            _check(name, value is None or value >= 0, "must be >= 0 or unset")
        _check("log_level", self.log_level.upper() in _LOG_LEVELS, f"must be one of {_LOG_LEVELS}")

    @property
    def log_level_number(self) -> int:
        return int(getattr(logging, self.log_level.upper()))

    def merge(self, overrides: Mapping[str, Any]) -> Settings:
        """Return a copy with typed values from `overrides` (e.g. a spider's custom_settings)."""
        return _replace(self, {k: _coerce(k, _field_type(k), v) for k, v in overrides.items()})

    def merge_strings(self, overrides: Mapping[str, str]) -> Settings:
        """Return a copy with values parsed from command-line strings (`-s key=value`)."""
        return _replace(self, {k: _parse(k, _field_type(k), v) for k, v in overrides.items()})


def _replace(settings: Settings, changes: dict[str, Any]) -> Settings:
    try:
        return dataclasses.replace(settings, **changes)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from exc


def _check(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise SettingsError(f"setting {name!r} {message}")


_HINTS: dict[str, Any] = {
    k: v for k, v in typing.get_type_hints(Settings).items() if not k.startswith("_")
}


def _field_type(key: str) -> Any:
    if key not in _HINTS:
        close = difflib.get_close_matches(key, list(_HINTS), n=1)
        known = ", ".join(_HINTS)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known settings: {known}"
        raise SettingsError(f"unknown setting {key!r}{hint}")
    return _HINTS[key]


def _split_optional(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check a Python value (from custom_settings) against the field's type."""
    base, optional = _split_optional(hint)
    if value is None:
        if optional:
            return None
        raise SettingsError(f"setting {key!r} cannot be None")
    if isinstance(value, str) and base is not str:
        return _parse(key, hint, value)
    if key == "item_pipelines":
        return _pipelines(value)
    if typing.get_origin(base) is tuple:
        kind = typing.get_args(base)[0]
        if isinstance(value, list | tuple | set | frozenset) and all(
                isinstance(v, kind) and not isinstance(v, bool) for v in value):
            return tuple(value)
        raise SettingsError(
            f"setting {key!r} expects a list of {kind.__name__}s, got {value!r}")
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is an int subclass: True must not pass as a concurrency of 1
    if not isinstance(value, base) or (base is not bool and isinstance(value, bool)):
        raise SettingsError(
            f"setting {key!r} expects {base.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _parse(key: str, hint: Any, text: str) -> Any:
    """Parse a command-line string into the field's type."""
    base, optional = _split_optional(hint)
    stripped = text.strip()
    if optional and stripped.lower() in {"", "none", "null"}:
        return None
    try:
        if base is bool:
            if stripped.lower() in _TRUE:
                return True
            if stripped.lower() in _FALSE:
                return False
            raise ValueError
        if base is int:
            return int(stripped)
        if base is float:
            return float(stripped)
        if key == "item_pipelines":
            return _pipelines([p for p in stripped.split(",") if p])
        if typing.get_origin(base) is tuple:
            kind = typing.get_args(base)[0]
            return tuple(kind(p.strip()) for p in stripped.split(",") if p.strip())
        return text
    except ValueError:
        name = getattr(base, "__name__", str(base))
        if typing.get_origin(base) is tuple:
            name = f"comma-separated {typing.get_args(base)[0].__name__}s"
        raise SettingsError(f"setting {key!r} expects {name}, got {text!r}") from None


def _pipelines(value: Any) -> tuple[Any, ...]:
    """Accept a list of classes or dotted paths, or Scrapy's {path: order} mapping."""
    if isinstance(value, Mapping):
        return tuple(k for k, _ in sorted(value.items(), key=lambda kv: kv[1]))
    if isinstance(value, list | tuple):
        return tuple(value)
    raise SettingsError(f"setting 'item_pipelines' expects a list, got {value!r}")
