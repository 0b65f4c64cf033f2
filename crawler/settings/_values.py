"""Reading settings: values from Python (custom_settings, the project file) and from
command-line strings, checked against each setting's declaration; answers for names that
are not ours (Scrapy's, typos)."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from crawler.exceptions import SettingsError
from crawler.settings._declare import check
from crawler.settings._model import HINTS, Settings

__all__ = ["check_feed", "known_setting", "merged", "spider_settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_META = {f.name: f.metadata for f in dataclasses.fields(Settings)}


def _kind(key: str) -> str | None:
    meta = _META.get(key)
    return meta["kind"] if meta is not None else None


# Scrapy's names for our settings, and how the meaning differs where it does (declared
# with each setting)
SCRAPY_NAMES: dict[str, tuple[str, str]] = {
    scrapy: (name, note) for name, meta in _META.items()
    for scrapy, note in meta["scrapy"].items()}

# Spider attributes Scrapy honours as settings, and ours they set (declared likewise)
SPIDER_ATTRIBUTES: dict[str, str] = {
    meta["attribute"]: name for name, meta in _META.items() if meta["attribute"]}


def known_setting(name: str) -> bool:
    """Whether `name` is one of ours (not a plugin's)."""
    return name in HINTS


def merged(settings: Settings, overrides: Mapping[str, Any], *, parse: bool) -> Settings:
    """`settings` with `overrides`: Python values (checked against each declaration), or
    command-line strings (`parse`)."""
    _known_names(overrides)
    read = _parse if parse else _coerce
    return _replace(settings, _with_plugin(settings, {
        k: v if "." in k else read(k, _field_type(k), v) for k, v in overrides.items()}))


def spider_settings(spider: object) -> dict[str, Any]:
    """Settings from a spider's Scrapy-style attributes (`download_delay = 2`, ...), which
    rank below its `custom_settings`."""
    return {ours: getattr(spider, attr) for attr, ours in SPIDER_ATTRIBUTES.items()
            if getattr(spider, attr, None) is not None}


def _with_plugin(settings: Settings, changes: dict[str, Any]) -> dict[str, Any]:
    """Namespaced names ("myext.api_key") go to `plugin`, unchecked: the plugin reads them.
    Names without a dot stay checked against ours, typos included."""
    dotted = {k: changes.pop(k) for k in [k for k in changes if "." in k]}
    for name in dotted:
        check(name, all(name.split(".")), "is not a namespaced name (like 'myext.key')")
    if dotted:
        changes["plugin"] = {**settings.plugin, **dotted}
    return changes


def _replace(settings: Settings, changes: dict[str, Any]) -> Settings:
    try:
        return dataclasses.replace(settings, **changes)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from exc


_FEED_OPTIONS = frozenset({"format", "overwrite", "fields", "indent"})
_FEED_FORMATS = frozenset({"json", "jsonlines", "jsonl", "jl", "csv", "xml"})


def check_feed(uri: str, options: Mapping[str, Any]) -> None:
    where = f"setting 'feeds': {uri!r}"
    if not isinstance(options, Mapping):
        raise SettingsError(f"{where} needs a mapping of options, got {options!r}")
    unknown = set(options) - _FEED_OPTIONS
    if unknown:
        raise SettingsError(f"{where}: unknown option(s) {sorted(unknown)} (known: "
                            f"{sorted(_FEED_OPTIONS)})")
    fmt = options.get("format")
    if fmt is not None and str(fmt).lower() not in _FEED_FORMATS:
        raise SettingsError(f"{where}: format {fmt!r} is not one of {sorted(_FEED_FORMATS)}")
    indent = options.get("indent")
    if indent is not None and (not isinstance(indent, int) or not 0 <= indent <= 16):
        raise SettingsError(f"{where}: indent must be 0-16 spaces")
    fields = options.get("fields")
    if fields is not None and (not isinstance(fields, list | tuple)
                               or not all(isinstance(f, str) and f for f in fields)):
        raise SettingsError(f"{where}: fields must be a list of field names")
    if not isinstance(options.get("overwrite", False), bool):
        raise SettingsError(f"{where}: overwrite must be true or false")


# Scrapy's names for what is not a setting here: where it is instead, or that there is none
_SCRAPY_ELSEWHERE: dict[str, str] = {
    "log_file": "the --log-file option",
    "log_enabled": "the --nolog option (or -L LEVEL)",
    "log_stdout": "nothing here: log lines go to stderr or --log-file",
    "log_format": "nothing here: the format is fixed",
    "log_dateformat": "nothing here: the format is fixed",
    "httperror_allowed_codes": "the spider's handle_httpstatus_list attribute (or "
                               "meta['handle_httpstatus_list'])",
    "httperror_allow_all": "meta['handle_httpstatus_all'] on a request",
    "feed_uri": "the feeds setting, or -o",
    "feed_format": "the feeds setting, or -o PATH:FORMAT",
    "feed_export_encoding": "nothing here: outputs are UTF-8",
    "telnetconsole_enabled": "nothing here: there is no telnet console (the live status "
                             "page, --status-port, shows and controls a crawl)",
    "telnetconsole_port": "nothing here: there is no telnet console (see --status-port)",
    "bot_name": "nothing here: name the bot in user_agent",
    "spider_modules": "nothing here: spiders are found in the project's spiders/ package",
    "newspider_module": "nothing here: python -m crawler new writes spiders/NAME.py",
    "robotstxt_user_agent": "user_agent (robots.txt is matched against it)",
    "default_request_headers": "nothing here: give Request(headers=...), or a downloader "
                               "middleware",
    "dupefilter_class": "nothing here: Crawler(fingerprint=...) replaces the fingerprint",
    "dupefilter_debug": "nothing here: -L DEBUG logs dropped duplicates",
    "concurrent_items": "nothing here: async process_item calls run concurrently, sync ones "
                        "one at a time in the plugin thread",
    "dns_timeout": "connect_timeout (the lookup is part of connecting)",
    "dnscache_enabled": "nothing here: lookups are cached (300 s)",
    "httpproxy_enabled": "nothing here: meta['proxy'] and http_proxy/https_proxy are always "
                         "honoured",
    "memusage_enabled": "nothing here: memory is bounded by max_queued and the job dir",
    "memusage_limit_mb": "nothing here: memory is bounded by max_queued and the job dir",
    "autothrottle_debug": "nothing here: -L DEBUG",
    "cookies_debug": "nothing here: -L DEBUG",
    "twisted_reactor": "nothing here: asyncio is the only event loop",
    "reactor_threadpool_maxsize": "nothing here: asyncio is the only event loop",
    "stats_dump": "the --stats PATH option",
    "retry_priority_adjust": "get_retry_request(priority_adjust=...)",
    "compression_enabled": "nothing here: responses are always decompressed (within "
                           "max_response_size)",
    "scheduler": "nothing here: the frontier is chosen by job_dir or frontier",
    "scheduler_disk_queue": "crawl_order (bfs or dfs)",
    "scheduler_memory_queue": "crawl_order (bfs or dfs)",
    "scheduler_priority_queue": "nothing here: requests go by priority, then crawl_order",
}


def _known_names(overrides: Mapping[str, Any]) -> None:
    """Every unknown name, in one error (each with what it may have meant)."""
    unknown = [_unknown(key) for key in overrides
               if "." not in key and key not in HINTS]
    if len(unknown) == 1:
        raise SettingsError(unknown[0])
    if unknown:
        raise SettingsError(f"{len(unknown)} unknown settings: " + "; ".join(
            problem.removeprefix("unknown setting ") for problem in unknown))


def _unknown(key: str) -> str:
    """Why `key` is not one of ours, and what it may have meant."""
    scrapy = SCRAPY_NAMES.get(key.lower())
    if scrapy is not None:
        ours, note = scrapy
        return (f"unknown setting {key!r}; did you mean {ours!r}? (the name for Scrapy's "
                f"{key.upper()}{note})")
    elsewhere = _SCRAPY_ELSEWHERE.get(key.lower())
    if elsewhere is not None:
        return f"unknown setting {key!r}: for Scrapy's {key.upper()}, use {elsewhere}"
    close = difflib.get_close_matches(key.lower(), list(HINTS), n=1)
    known = ", ".join(HINTS)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known settings: {known}"
    return f"unknown setting {key!r}{hint}"


def _field_type(key: str) -> Any:
    if key in HINTS:
        return HINTS[key]
    raise SettingsError(_unknown(key))


def _split_optional(hint: Any) -> tuple[Any, bool]:
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check a Python value (from custom_settings) against the field's type."""
    if _kind(key) == "concurrency":
        return _concurrency(key, value)
    if _kind(key) == "schema":  # a model class, a dict, a path: read when the crawl starts
        if value is None or isinstance(value, str | dict | type):
            return value
        raise SettingsError(f"setting {key!r} expects a pydantic model, a JSON Schema dict "
                            f"or a path, got {value!r}")
    base, optional = _split_optional(hint)
    if value is None:
        if optional:
            return None
        raise SettingsError(f"setting {key!r} cannot be None")
    if isinstance(value, str) and base is not str:
        return _parse(key, hint, value)
    kind = _kind(key)
    if kind == "rates":
        return _rates(key, value)
    if kind == "plugins":
        return _plugin_list(key, value)
    if kind == "ordered":
        return _ordered(key, value)
    if kind == "handlers":
        return _handlers(key, value)
    if kind == "sinks":
        return _schemes(key, value)
    if kind == "feeds":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise SettingsError(f"setting {key!r} expects a {{uri: {{options}}}} mapping, got "
                                f"{value!r}")
        return tuple((str(uri), dict(options) if isinstance(options, Mapping) else options)
                     for uri, options in value.items())
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


def _rates(key: str, value: Any) -> dict[str, float]:
    """{name: share from 0 to 1}."""
    if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, int | float) and not isinstance(v, bool)
            and 0 <= v <= 1 for k, v in value.items()):
        raise SettingsError(f"setting {key!r} expects {{name: share from 0 to 1}}, got "
                            f"{value!r}")
    return {k: float(v) for k, v in value.items()}


def _concurrency(key: str, value: Any) -> int | str:
    """A number of requests, or "auto"."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit():
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    raise SettingsError(f"setting {key!r} expects a number or 'auto', got {value!r}")


def _parse(key: str, hint: Any, text: str) -> Any:
    """Parse a command-line string into the field's type."""
    if _kind(key) == "concurrency":
        return _concurrency(key, text)
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
        kind = _kind(key)
        if kind == "schema":
            return stripped or None
        if kind == "rates":  # name=share,... or a JSON object
            if stripped.startswith("{"):
                import json

                return _rates(key, json.loads(stripped))
            return _rates(key, {k.strip(): float(v) for k, v in (
                p.partition("=")[::2] for p in stripped.split(",") if p.strip())})
        if kind == "plugins":
            return _plugin_list(key, [p for p in stripped.split(",") if p])
        if kind == "sinks":  # scheme=path,...
            return _schemes(key, dict(p.strip().partition("=")[::2]
                                      for p in stripped.split(",") if p.strip()))
        if kind == "feeds":  # a JSON object, as in the project file
            import json

            try:
                return _coerce(key, hint, json.loads(stripped))
            except ValueError:
                raise SettingsError(f"setting {key!r} expects a JSON object {{uri: "
                                    f"{{options}}}}, got {text!r}") from None
        if kind == "handlers":  # scheme=path,...; path "none" disables
            return _handlers(key, {k.strip(): None if v.strip().lower() == "none" else v.strip()
                                   for k, v in (p.partition("=")[::2]
                                                for p in stripped.split(",") if p.strip())})
        if kind == "ordered":  # path[=order],...; order "none" disables
            pairs = [p.strip().partition("=") for p in stripped.split(",") if p.strip()]
            return _ordered(key, {path.strip(): (None if order.strip().lower() == "none"
                                                 else int(order)) if eq else 500 + i
                                  for i, (path, eq, order) in enumerate(pairs)})
        if typing.get_origin(base) is tuple:
            kind = typing.get_args(base)[0]
            return tuple(kind(p.strip()) for p in stripped.split(",") if p.strip())
        return text
    except ValueError:
        name = getattr(base, "__name__", str(base))
        if typing.get_origin(base) is tuple:
            name = f"comma-separated {typing.get_args(base)[0].__name__}s"
        raise SettingsError(f"setting {key!r} expects {name}, got {text!r}") from None


def _ordered(key: str, value: Any) -> tuple[tuple[Any, int | None], ...]:
    """Scrapy's {path: order} (None disables) or a list, taken as orders 500, 501, ..."""
    if isinstance(value, list | tuple):
        value = {spec: 500 + i for i, spec in enumerate(value)}
    if not isinstance(value, Mapping):
        raise SettingsError(f"setting {key!r} expects a {{path: order}} mapping or a list, "
                            f"got {value!r}")
    for spec, order in value.items():
        if order is not None and (isinstance(order, bool) or not isinstance(order, int)):
            raise SettingsError(f"setting {key!r}: the order of {spec!r} must be an integer "
                                f"or None, got {order!r}")
    return tuple(value.items())


def _handlers(key: str, value: Any) -> tuple[tuple[str, Any], ...]:
    """{scheme or name: handler class or dotted path, or None}, keys in lower case."""
    if not isinstance(value, Mapping):
        raise SettingsError(f"setting {key!r} expects a {{scheme: handler}} mapping, got "
                            f"{value!r}")
    for scheme, spec in value.items():
        if not isinstance(scheme, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme) \
                or spec == "":
            raise SettingsError(f"setting {key!r}: {scheme!r} is not a URL scheme or handler "
                                "name (letters, digits, + . -), or it names no handler")
    return tuple((scheme.lower(), spec) for scheme, spec in value.items())


def _schemes(key: str, value: Any) -> tuple[tuple[str, Any], ...]:
    """{scheme: sink class or dotted path}, schemes in lower case."""
    if not isinstance(value, Mapping):
        raise SettingsError(f"setting {key!r} expects a {{scheme: sink}} mapping, got {value!r}")
    for scheme, spec in value.items():
        if not isinstance(scheme, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme) \
                or scheme.lower() == "file" or not spec:
            raise SettingsError(f"setting {key!r}: {scheme!r} is not a URI scheme a sink can "
                                "take (file:// is the files')")
    return tuple((scheme.lower(), spec) for scheme, spec in value.items())


def _plugin_list(key: str, value: Any) -> tuple[Any, ...]:
    """Accept a list of classes or dotted paths, or Scrapy's {path: order} mapping."""
    if isinstance(value, Mapping):
        return tuple(k for k, _ in sorted(value.items(), key=lambda kv: kv[1]))
    if isinstance(value, list | tuple):
        return tuple(value)
    raise SettingsError(f"setting {key!r} expects a list, got {value!r}")
