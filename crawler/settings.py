"""One frozen, typed Settings object; merged defaults -> spider custom_settings -> command line.

Usage:
    settings = Settings().merge({"concurrency": 32}).merge_strings({"max_pages": "100"})
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import re
import ssl
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crawler._version import __version__
from crawler.exceptions import SettingsError
from crawler.storage import BUILT_IN, storage_schemes

__all__ = ["Settings", "known_setting", "spider_settings"]

DEFAULT_USER_AGENT = f"crawler/{__version__} (+https://github.com/crawler-dev/crawler)"
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_TRUE = {"1", "true", "yes", "on"}
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DAY = 86400.0
_UPPER_BOUNDS: tuple[tuple[str, float, str], ...] = (
    ("concurrency", 10_000, "each unit is a worker task and a connection; more only adds memory"),
    ("per_host_concurrency", 10_000, "no server serves more to one client"),
    ("max_response_size", 1 << 30, "bodies are held in memory"),
    ("max_redirects", 100, "browsers give up after about 20"),
    ("max_queued", 100_000_000, "each queued request holds memory (about 250 bytes)"),
    ("max_url_length", 65_536, "no server takes a longer URL"),
    ("retries", 100, "past a few tries a request is not coming back"),
    ("timeout", _DAY, "a request that takes longer is lost"),
    ("connect_timeout", _DAY, "a connection that takes longer is lost"),
    ("download_delay", _DAY, "a longer gap is better done by a scheduled crawl"),
    ("autothrottle_start_delay", _DAY, "a longer gap is better done by a scheduled crawl"),
    ("autothrottle_max_delay", _DAY, "a longer gap is better done by a scheduled crawl"),
    ("retry_backoff_base", _DAY, "a longer wait is better done by a scheduled crawl"),
    ("retry_backoff_max", _DAY, "a longer wait is better done by a scheduled crawl"),
    ("shutdown_timeout", _DAY, "a stop should not wait longer"),
    ("log_interval", _DAY, "progress lines that rare say nothing"),
)
_FALSE = {"0", "false", "no", "off"}
# the W3C Referrer-Policy names (https://www.w3.org/TR/referrer-policy/)
REFERRER_POLICIES = ("no-referrer", "no-referrer-when-downgrade", "same-origin", "origin",
                     "strict-origin", "origin-when-cross-origin",
                     "strict-origin-when-cross-origin", "unsafe-url")


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
    # trap guards: a frontier, a host and a path cannot grow without bound
    max_queued: int = 1_000_000
    max_requests_per_host: int | None = None
    max_url_length: int = 2083
    max_query_variants: int | None = 10_000
    user_agent: str = DEFAULT_USER_AGENT
    tls_verify: bool = True  # Scrapy does not verify certificates by default; we do
    tls_ca_bundle: str | None = None  # a PEM file of CA certificates to trust as well
    # false: refuse targets that resolve to loopback, private, link-local (the cloud
    # metadata address), unspecified or multicast addresses (crawls of submitted URLs)
    allow_private_addresses: bool = True
    item_pipelines: tuple[Any, ...] = ()
    extensions: tuple[Any, ...] = ()  # extension classes or dotted paths (after built-ins)
    # (middleware, order) pairs, from {path: order} (None disables a built-in) or a list
    downloader_middlewares: tuple[tuple[Any, int | None], ...] = ()
    # ... and spider middlewares around the callbacks (none built in)
    spider_middlewares: tuple[tuple[Any, int | None], ...] = ()
    # (scheme or name, handler class or dotted path, or None to disable) pairs, from
    # {scheme: handler}: what fetches a request (crawler/handlers/)
    download_handlers: tuple[tuple[str, Any], ...] = ()
    # the Referer header of a followed link: the page it was found on, as this policy
    # (a W3C Referrer-Policy name; Scrapy's default) allows
    referer_enabled: bool = True
    referer_policy: str = "no-referrer-when-downgrade"
    # the HTTP cache: responses kept on disk and replayed instead of fetched
    http_cache: bool = False
    http_cache_dir: str = ".crawler-cache"
    http_cache_expiration: float = 0.0  # seconds a stored response stays fresh; 0: forever
    http_cache_codes: tuple[int, ...] = ()  # statuses kept besides 2xx (e.g. 301,404)
    cookies_enabled: bool = True  # one cookie jar per crawl, as a browser keeps (Scrapy too)
    job_dir: str | None = None  # keep the crawl's state there and resume from it (--job-dir)
    # a frontier shared by many processes (--frontier redis://HOST:PORT/DB), the crawl's
    # name in it (--job; default: the spider's), this process's name (--worker-id;
    # default: host-pid), and how long a taken request stays leased without a heartbeat
    frontier: str | None = None
    frontier_job: str | None = None
    worker_id: str | None = None
    frontier_lease: float = 30.0
    frontier_outage: float = 60.0  # seconds a shared frontier may be unreachable mid-crawl
    # (scheme, sink class or dotted path) pairs, from {scheme: sink}: -o SCHEME://...
    sinks: tuple[tuple[str, Any], ...] = ()
    # plugins' own settings: any name with a dot ("myext.api_key"), read with get()
    plugin: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    feed_fields: tuple[str, ...] | None = None
    # outputs a project or spider declares (Scrapy's FEEDS): {uri: {"format": "json",
    # "overwrite": false, "fields": [...], "indent": 2}}, used when no -o/-O is given
    feeds: tuple[tuple[str, Mapping[str, Any]], ...] = dataclasses.field(default=(),
                                                                         hash=False)
    feed_indent: int | None = None  # JSON outputs: items indented this much (Scrapy's)
    # what response.css()/css_first() answer with: selectolax nodes (fast, CSS only), or
    # parsel selectors, exactly as Scrapy's (::text, ::attr(), .get(), .getall())
    selectors: str = "selectolax"
    # which of a host's requests of the same priority go first: the oldest (bfs, breadth
    # first) or the newest (dfs, depth first; Scrapy's LIFO queues)
    crawl_order: str = "bfs"
    log_level: str = "INFO"
    # the live display on a terminal instead of the progress line (the CLI turns it on
    # when stderr is a terminal; --no-progress keeps it off)
    progress: bool = False
    # the live status page (--status-port): served by the crawl itself; any address but
    # 127.0.0.1/localhost needs the token for every page, the controls always need it
    status_port: int | None = None
    status_host: str = "127.0.0.1"
    status_token: str | None = None
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
        for name, value in ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self)):
            if isinstance(value, float):
                _check(name, math.isfinite(value), "must be a finite number")
        for name in ("concurrency", "per_host_concurrency", "max_response_size", "max_queued",
                     "max_url_length"):
            _check(name, getattr(self, name) >= 1, "must be >= 1")
        for name in ("download_delay", "max_redirects", "retries", "log_interval",
                     "http_cache_expiration",
                     "retry_backoff_base", "retry_backoff_max", "autothrottle_max_delay",
                     "autothrottle_start_delay"):
            _check(name, getattr(self, name) >= 0, "must be >= 0")
        for name in ("timeout", "connect_timeout", "autothrottle_target_concurrency"):
            _check(name, getattr(self, name) > 0, "must be > 0")
        for name in ("max_depth", "shutdown_timeout"):
            value = getattr(self, name)
            _check(name, value is None or value >= 0, "must be >= 0, or none for no limit")
        for name in ("max_pages", "max_items", "max_requests_per_host", "max_query_variants"):
            value = getattr(self, name)
            _check(name, value is None or value >= 1,
                   "must be >= 1, or none for no limit (0 would crawl nothing; Scrapy's "
                   "'0 means off' is spelled none here)")
        _check("max_duration", self.max_duration is None or self.max_duration > 0,
               "must be > 0 seconds, or none for no limit")
        for name, limit, why in _UPPER_BOUNDS:
            value = getattr(self, name)
            _check(name, value is None or value <= limit, f"must be <= {limit:g}: {why}")
        for name in ("retry_http_codes", "http_cache_codes"):
            _check(name, all(100 <= c <= 599 for c in getattr(self, name)),
                   "must be HTTP status codes (100-599)")
        _check("http_cache_dir", bool(self.http_cache_dir.strip()), "must name a directory")
        _check("frontier", self.frontier is None
               or self.frontier.split("://")[0].lower() in storage_schemes(),
               "must be a redis://HOST:PORT/DB URL (or rediss://, unix://" + "".join(
                   f", {s}://" for s in sorted(storage_schemes() - BUILT_IN)) + ")")
        _check("status_port", self.status_port is None or 0 <= self.status_port <= 65535,
               "must be a TCP port (0-65535; 0 picks a free one)")
        _check("status_host", bool(self.status_host.strip()), "must be an address to bind")
        _check("status_token", self.status_token is None or len(self.status_token) >= 8,
               "must be at least 8 characters (it guards the pause and stop buttons)")
        _check("frontier_lease", self.frontier_lease >= 1, "must be >= 1 second")
        _check("frontier_outage", self.frontier_outage >= 0, "must be >= 0 seconds")
        for name in ("frontier_job", "worker_id"):
            value = getattr(self, name)
            _check(name, value is None or (value.strip() != "" and "/" not in value
                                           and not _CONTROL_CHARS.search(value)),
                   "must be a non-empty name without / or control characters")
        _check("user_agent", not _CONTROL_CHARS.search(self.user_agent),
               "must not contain control characters (CR, LF, NUL...): it is sent as a header")
        _check("feed_fields", self.feed_fields is None or all(self.feed_fields),
               "must be non-empty field names")
        _check("log_level", self.log_level.upper() in _LOG_LEVELS, f"must be one of {_LOG_LEVELS}")
        _check("selectors", self.selectors in ("selectolax", "parsel"),
               "must be 'selectolax' or 'parsel'")
        _check("crawl_order", self.crawl_order in ("bfs", "dfs"),
               "must be 'bfs' (breadth first) or 'dfs' (depth first)")
        _check("referer_policy", self.referer_policy in REFERRER_POLICIES,
               f"must be one of {', '.join(REFERRER_POLICIES)}")
        _check("feed_indent", self.feed_indent is None or 0 <= self.feed_indent <= 16,
               "must be 0-16 spaces, or none")
        for uri, options in self.feeds:
            _check_feed(uri, options)
        if self.tls_ca_bundle is not None:
            try:
                self.tls_context()
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                _check("tls_ca_bundle", False, f"cannot be loaded as PEM certificates: {exc}")

    def tls_context(self) -> ssl.SSLContext | bool:
        """What the HTTP client verifies certificates with: True (the system's CAs), False
        (nothing: `tls_verify=False`) or a context trusting `tls_ca_bundle` as well."""
        if not self.tls_verify:
            return False
        if self.tls_ca_bundle is None:
            return True
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=self.tls_ca_bundle)
        return context

    @property
    def log_level_number(self) -> int:
        return int(getattr(logging, self.log_level.upper()))

    @classmethod
    def for_spider(cls, spider: object, base: Settings | None = None) -> Settings:
        """`base` (the defaults, or the project's settings) < the spider's Scrapy-style
        attributes (`download_delay = 2`, ...) < its `custom_settings`. A mistake there
        is an error naming the spider."""
        try:
            return (base or cls()).merge(spider_settings(spider)).merge(
                getattr(spider, "custom_settings", None) or {})
        except SettingsError as exc:
            name = getattr(spider, "name", "") or getattr(spider, "__name__", "?")
            raise SettingsError(f"spider {name!r} (its custom_settings or attributes): "
                                f"{exc}") from None

    def get(self, name: str, default: Any = None) -> Any:
        """A setting by name: ours, or a plugin's namespaced one ("myext.api_key")."""
        if name in _HINTS:
            return getattr(self, name)
        return self.plugin.get(name, default)

    def merge(self, overrides: Mapping[str, Any]) -> Settings:
        """Return a copy with typed values from `overrides` (e.g. a spider's custom_settings)."""
        _known_names(overrides)
        return _replace(self, _with_plugin(self, {
            k: v if "." in k else _coerce(k, _field_type(k), v) for k, v in overrides.items()}))

    def merge_strings(self, overrides: Mapping[str, str]) -> Settings:
        """Return a copy with values parsed from command-line strings (`-s key=value`)."""
        _known_names(overrides)
        return _replace(self, _with_plugin(self, {
            k: v if "." in k else _parse(k, _field_type(k), v) for k, v in overrides.items()}))


_FEED_OPTIONS = frozenset({"format", "overwrite", "fields", "indent"})
_FEED_FORMATS = frozenset({"json", "jsonlines", "jsonl", "jl", "csv"})


def _check_feed(uri: str, options: Mapping[str, Any]) -> None:
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


def _with_plugin(settings: Settings, changes: dict[str, Any]) -> dict[str, Any]:
    """Namespaced names ("myext.api_key") go to `plugin`, unchecked: the plugin reads them.
    Names without a dot stay checked against ours, typos included."""
    dotted = {k: changes.pop(k) for k in [k for k in changes if "." in k]}
    for name in dotted:
        _check(name, all(name.split(".")), "is not a namespaced name (like 'myext.key')")
    if dotted:
        changes["plugin"] = {**settings.plugin, **dotted}
    return changes


def _replace(settings: Settings, changes: dict[str, Any]) -> Settings:
    try:
        return dataclasses.replace(settings, **changes)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from exc


def _check(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise SettingsError(f"setting {name!r} {message}")


_HINTS: dict[str, Any] = {
    k: v for k, v in typing.get_type_hints(Settings).items()
    if not k.startswith("_") and k != "plugin"
}


def known_setting(name: str) -> bool:
    """Whether `name` is one of ours (not a plugin's)."""
    return name in _HINTS


_PLUGIN_LISTS = frozenset({"item_pipelines", "extensions"})


# Scrapy's names for our settings, and how the meaning differs where it does
_SCRAPY_NAMES: dict[str, tuple[str, str]] = {
    "concurrent_requests": ("concurrency", ""),
    "concurrent_requests_per_domain": ("per_host_concurrency", ""),
    "concurrent_requests_per_ip": ("per_host_concurrency", ""),
    "download_delay": ("download_delay", ""),
    "download_timeout": ("timeout", ""),
    "download_maxsize": ("max_response_size", ""),
    "depth_limit": ("max_depth", "; there 0 means no limit, here it means the start pages "
                    "only: use none for no limit"),
    "closespider_pagecount": ("max_pages", "; there 0 means off, here use none"),
    "closespider_itemcount": ("max_items", "; there 0 means off, here use none"),
    "closespider_timeout": ("max_duration", "; there 0 means off, here use none"),
    "redirect_max_times": ("max_redirects", ""),
    "user_agent": ("user_agent", ""),
    "item_pipelines": ("item_pipelines", ""),
    "feed_export_fields": ("feed_fields", ""),
    "log_level": ("log_level", ""),
    "logstats_interval": ("log_interval", ""),
    "robotstxt_obey": ("obey_robots", "; it is on by default here"),
    "randomize_download_delay": ("randomize_download_delay", ""),
    "autothrottle_enabled": ("autothrottle", ""),
    "autothrottle_start_delay": ("autothrottle_start_delay", ""),
    "autothrottle_max_delay": ("autothrottle_max_delay", ""),
    "autothrottle_target_concurrency": ("autothrottle_target_concurrency", ""),
    "retry_times": ("retries", ""),
    "retry_enabled": ("retries", "; set it to 0 to turn retries off"),
    "retry_http_codes": ("retry_http_codes", ""),
    "downloader_middlewares": ("downloader_middlewares", ""),
    "spider_middlewares": ("spider_middlewares", ""),
    "download_handlers": ("download_handlers", ""),
    "referer_enabled": ("referer_enabled", ""),
    "referrer_policy": ("referer_policy", ""),
    "httpcache_enabled": ("http_cache", ""),
    "httpcache_dir": ("http_cache_dir", ""),
    "httpcache_expiration_secs": ("http_cache_expiration", ""),
    "cookies_enabled": ("cookies_enabled", ""),
    "feeds": ("feeds", ""),
    "feed_export_indent": ("feed_indent", ""),
    "depth_priority": ("crawl_order", "; DEPTH_PRIORITY=1 with FIFO queues is crawl_order "
                       "'bfs' (the default here), 0 with LIFO queues 'dfs'"),
    "jobdir": ("job_dir", "; a killed job resumes here too"),
    "urllength_limit": ("max_url_length", ""),
}


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
               if "." not in key and key not in _HINTS]
    if len(unknown) == 1:
        raise SettingsError(unknown[0])
    if unknown:
        raise SettingsError(f"{len(unknown)} unknown settings: " + "; ".join(
            problem.removeprefix("unknown setting ") for problem in unknown))


def _unknown(key: str) -> str:
    """Why `key` is not one of ours, and what it may have meant."""
    scrapy = _SCRAPY_NAMES.get(key.lower())
    if scrapy is not None:
        ours, note = scrapy
        return (f"unknown setting {key!r}; did you mean {ours!r}? (the name for Scrapy's "
                f"{key.upper()}{note})")
    elsewhere = _SCRAPY_ELSEWHERE.get(key.lower())
    if elsewhere is not None:
        return f"unknown setting {key!r}: for Scrapy's {key.upper()}, use {elsewhere}"
    close = difflib.get_close_matches(key.lower(), list(_HINTS), n=1)
    known = ", ".join(_HINTS)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known settings: {known}"
    return f"unknown setting {key!r}{hint}"


def _field_type(key: str) -> Any:
    if key in _HINTS:
        return _HINTS[key]
    raise SettingsError(_unknown(key))


# Spider attributes Scrapy honours as settings, and ours they set
SPIDER_ATTRIBUTES: dict[str, str] = {
    "download_delay": "download_delay",
    "max_concurrent_requests": "per_host_concurrency",
    "download_timeout": "timeout",
    "download_maxsize": "max_response_size",
    "user_agent": "user_agent",
}


def spider_settings(spider: object) -> dict[str, Any]:
    """Settings from a spider's Scrapy-style attributes (`download_delay = 2`, ...), which
    rank below its `custom_settings`."""
    return {ours: getattr(spider, attr) for attr, ours in SPIDER_ATTRIBUTES.items()
            if getattr(spider, attr, None) is not None}


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
    if key in _PLUGIN_LISTS:
        return _plugin_list(key, value)
    if key in _ORDERED:
        return _ordered(key, value)
    if key == "download_handlers":
        return _handlers(key, value)
    if key == "sinks":
        return _schemes(key, value)
    if key == "feeds":
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
        if key in _PLUGIN_LISTS:
            return _plugin_list(key, [p for p in stripped.split(",") if p])
        if key == "sinks":  # scheme=path,...
            return _schemes(key, dict(p.strip().partition("=")[::2]
                                      for p in stripped.split(",") if p.strip()))
        if key == "feeds":  # a JSON object, as in the project file
            import json

            try:
                return _coerce(key, hint, json.loads(stripped))
            except ValueError:
                raise SettingsError(f"setting {key!r} expects a JSON object {{uri: "
                                    f"{{options}}}}, got {text!r}") from None
        if key == "download_handlers":  # scheme=path,...; path "none" disables
            return _handlers(key, {k.strip(): None if v.strip().lower() == "none" else v.strip()
                                   for k, v in (p.partition("=")[::2]
                                                for p in stripped.split(",") if p.strip())})
        if key in _ORDERED:  # path[=order],...; order "none" disables
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


_ORDERED = frozenset({"downloader_middlewares", "spider_middlewares"})


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
