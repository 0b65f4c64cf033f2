"""Settings: every knob of a crawl, each declared once (crawler/settings/_declare.py)."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import ssl
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crawler._version import __version__
from crawler.settings._declare import check, check_declared, setting
from crawler.storage import BUILT_IN, storage_schemes

__all__ = ["DEFAULT_USER_AGENT", "REFERRER_POLICIES", "Settings"]

DEFAULT_USER_AGENT = f"crawler/{__version__} (+https://github.com/crawler-dev/crawler)"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
# the W3C Referrer-Policy names (https://www.w3.org/TR/referrer-policy/)
REFERRER_POLICIES = ("no-referrer", "no-referrer-when-downgrade", "same-origin", "origin",
                     "strict-origin", "origin-when-cross-origin",
                     "strict-origin-when-cross-origin", "unsafe-url")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_DAY = 86400.0
_LATER = "a longer gap is better done by a scheduled crawl"
_ZERO_IS_NOT_OFF = (" (0 would crawl nothing; Scrapy's '0 means off' is spelled none "
                    "here)")
_NAME_RULE = (lambda v: v.strip() != "" and "/" not in v and not _CONTROL_CHARS.search(v),
              "must be a non-empty name without / or control characters")
_CODES_RULE = (lambda codes: all(100 <= c <= 599 for c in codes),
               "must be HTTP status codes (100-599)")


def _dns_servers(entries: tuple[str, ...]) -> bool:
    for entry in entries:
        address, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            return False
    return True


def _resolve_entries(entries: tuple[str, ...]) -> bool:
    from crawler.handlers.dns import parse_resolve

    try:
        parse_resolve(entries)
    except ValueError:
        return False
    return True


def _proxy_urls(entries: tuple[str, ...]) -> bool:
    from crawler.http.urls import proxy_address

    return all(proxy_address(entry.strip()) is not None for entry in entries)


def _impersonation(name: str) -> bool:
    try:
        from curl_cffi import BrowserType
    except ImportError:
        return True  # checked when the curl stack starts (it needs curl_cffi)
    known = {b.value for b in BrowserType}
    return name in known or any(k.startswith(name) for k in known)


def _failure_kinds(rates: Mapping[str, float]) -> bool:
    from crawler.exceptions import Kind

    known = {k.value for k in Kind}
    return all(k in known or re.fullmatch(r"http_\d{3}", k) for k in rates)


def _failure_kinds_text() -> str:
    from crawler.exceptions import Kind

    return ("must name failure kinds (" + ", ".join(k.value for k in Kind) +
            ", or http_NNN)")


def _http_url(url: str) -> bool:
    from yarl import URL

    try:
        parsed = URL(url)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def _frontier_scheme(url: str) -> bool:
    return url.split("://")[0].lower() in storage_schemes()


def _frontier_schemes() -> str:
    return "must be a redis://HOST:PORT/DB URL (or rediss://, unix://" + "".join(
        f", {s}://" for s in sorted(storage_schemes() - BUILT_IN)) + ")"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a crawl, with its default. Unknown names and bad values are errors."""

    # -- how much at once ------------------------------------------------------------------
    concurrency: int | str = setting(
        16, "requests in flight in total (worker tasks), or `auto`: grown while CPU, "
        "event-loop lag and memory (the container's cgroup limit when there is one) allow, "
        "shrunk under pressure, up to `max_concurrency`", ge=1, le=10_000,
        le_why="each unit is a worker task and a connection; more only adds memory",
        kind="concurrency", scrapy={"concurrent_requests": ""})
    max_concurrency: int = setting(
        256, "with `concurrency = \"auto\"`: the most it grows to", ge=1, le=10_000,
        le_why="each unit is a worker task and a connection; more only adds memory")
    autoscale_max_cpu: float = setting(
        0.9, "with `auto`: the share of one core the event loop's thread may use before "
        "concurrency shrinks", gt=0, le=1, le_why="the loop runs on one core")
    autoscale_max_loop_lag: float = setting(
        0.1, "with `auto`: seconds the event loop may fall behind (its longest stall in a "
        "sample) before concurrency shrinks", gt=0)
    autoscale_max_memory: float = setting(
        0.7, "with `auto`: the share of the memory limit (the cgroup's, else the machine's) "
        "the crawl's processes may hold before concurrency shrinks", gt=0, le=1,
        le_why="a share of the limit")
    autoscale_interval: float = setting(
        1.0, "with `auto`: seconds between two decisions", ge=0.05)
    per_host_concurrency: int = setting(
        8, "requests in flight per host (per `politeness_by` key)", ge=1, le=10_000,
        le_why="no server serves more to one client", attribute="max_concurrent_requests",
        scrapy={"concurrent_requests_per_domain": "", "concurrent_requests_per_ip":
                "; with politeness_by = 'ip'"})
    politeness_by: str = setting(
        "host", "what a politeness slot (per-host concurrency, delay, Crawl-delay, "
        "autothrottle) is kept for: `host` (scheme + host + port), `domain` (the registrable "
        "domain, from the Public Suffix List: the `broad` extra) or `ip` (the host's address)",
        choices=("host", "domain", "ip"),
        choices_text="must be 'host', 'domain' or 'ip'")
    download_delay: float = setting(
        0.0, "seconds between the starts of two requests to the same host", ge=0, le=_DAY,
        le_why=_LATER, attribute="download_delay", scrapy={"download_delay": ""})
    timeout: float = setting(
        30.0, "total seconds per request", gt=0, le=_DAY,
        le_why="a request that takes longer is lost", attribute="download_timeout",
        scrapy={"download_timeout": ""})
    connect_timeout: float = setting(
        10.0, "seconds to connect", gt=0, le=_DAY,
        le_why="a connection that takes longer is lost")
    # -- limits ----------------------------------------------------------------------------
    max_depth: int | None = setting(
        None, "drop requests deeper than this (start requests are depth 0, so 0 crawls the "
        "start pages only; Scrapy's `DEPTH_LIMIT=0` means no limit)", ge=0,
        scrapy={"depth_limit": "; there 0 means no limit, here it means the start pages "
                "only: use none for no limit"})
    max_pages: int | None = setting(
        None, "fetch at most this many responses, then stop; 0 is an error, not \"no "
        "limit\" as in Scrapy", ge=1, note=_ZERO_IS_NOT_OFF,
        scrapy={"closespider_pagecount": "; there 0 means off, here use none"})
    max_items: int | None = setting(
        None, "write at most this many items, then stop", ge=1, note=_ZERO_IS_NOT_OFF,
        scrapy={"closespider_itemcount": "; there 0 means off, here use none"})
    max_duration: float | None = setting(
        None, "stop gracefully after this many seconds", gt=0,
        bound="must be > 0 seconds, or none for no limit",
        scrapy={"closespider_timeout": "; there 0 means off, here use none"})
    max_response_size: int = setting(
        32 * 1024 * 1024, "bytes of decoded body; a larger response fails as `too_large`",
        ge=1, le=1 << 30, le_why="bodies are held in memory", attribute="download_maxsize",
        scrapy={"download_maxsize": ""})
    max_redirects: int = setting(
        10, "redirect hops per request", ge=0, le=100,
        le_why="browsers give up after about 20", scrapy={"redirect_max_times": ""})
    # trap guards: a frontier, a host and a path cannot grow without bound
    max_queued: int = setting(
        1_000_000, "requests the frontier holds (about 300 bytes each, seen-set included); "
        "new ones beyond are refused, counted (`queue_full`) and warned about once; start "
        "requests wait for room instead", ge=1, le=100_000_000,
        le_why="each queued request holds memory (about 250 bytes)")
    max_requests_per_host: int | None = setting(
        None, "requests scheduled per host; more are dropped (`host_limited`)", ge=1,
        note=_ZERO_IS_NOT_OFF)
    max_url_length: int = setting(
        2083, "longer URLs are dropped (`url_too_long`; Scrapy's `URLLENGTH_LIMIT`)", ge=1,
        le=65_536, le_why="no server takes a longer URL", scrapy={"urllength_limit": ""})
    max_query_variants: int | None = setting(
        10_000, "distinct query strings of one path on one host (`/calendar?day=...`); more "
        "are dropped (`query_variants_limited`); `none` for no limit", ge=1,
        note=_ZERO_IS_NOT_OFF)
    # -- what is sent, and to whom ---------------------------------------------------------
    user_agent: str = setting(
        DEFAULT_USER_AGENT, "User-Agent header; control characters (CR, LF) are refused",
        rule=(lambda v: not _CONTROL_CHARS.search(v), "must not contain control characters "
              "(CR, LF, NUL...): it is sent as a header"),
        attribute="user_agent", scrapy={"user_agent": ""},
        shown="`crawler/<version> (+https://github.com/crawler-dev/crawler)`")
    tls_verify: bool = setting(
        True, "verify HTTPS certificates (Scrapy does not verify by default; we do)")
    tls_ca_bundle: str | None = setting(
        None, "a PEM file of CA certificates to trust as well (a company proxy, a test "
        "server); checked at startup")
    dns_servers: tuple[str, ...] = setting(
        (), "DNS servers to ask (`IP` or `IP:PORT`) instead of the system's",
        rule=(_dns_servers, "must be IP or IP:PORT entries"))
    dns_timeout: float = setting(
        10.0, "seconds a DNS lookup may take; past it the request fails as `dns`", gt=0,
        le=120, le_why="a resolver that slow is down")
    dns_negative_ttl: float = setting(
        60.0, "seconds a failed lookup is remembered: a dead domain costs one lookup per "
        "period, not one per link", ge=0)
    dns_max_ttl: float = setting(
        3600.0, "the longest an answer is kept, whatever its TTL (it is kept its TTL, and "
        "at least a second)", ge=1)
    dns_cache_size: int = setting(
        10_000, "names whose answers are kept (least recently used first out)", ge=1)
    resolve: tuple[str, ...] = setting(
        (), "names given addresses, as curl's `--resolve`: `HOST:PORT:ADDRESS` entries "
        "(HOST may be `*` or `*.suffix`, PORT `*`), answered before DNS is asked",
        rule=(_resolve_entries, "must be HOST:PORT:ADDRESS entries (PORT a number or *, "
              "ADDRESS an IP address)"))
    allow_private_addresses: bool = setting(
        True, "false: refuse every request (and redirect hop) whose target resolves to a "
        "loopback, private, link-local (the cloud metadata address 169.254.169.254), "
        "shared, unspecified or multicast address, as `forbidden_address` (see Security)")
    referer_enabled: bool = setting(
        True, "send a followed link's page as its Referer header (Scrapy's "
        "`REFERER_ENABLED`)", scrapy={"referer_enabled": ""})
    referer_policy: str = setting(
        "no-referrer-when-downgrade", "how much of that page the Referer tells: a W3C "
        "Referrer-Policy name (Scrapy's default; `meta[\"referrer_policy\"]` per request)",
        choices=REFERRER_POLICIES, scrapy={"referrer_policy": ""})
    cookies_enabled: bool = setting(
        True, "keep a cookie jar per crawl (Set-Cookie stored and sent back; "
        "`meta[\"cookiejar\"]` for separate sessions; at most 100,000 cookies and 10,000 "
        "jars, past which new ones are refused, logged once and counted). Turn it off for "
        "broad crawls. Off, a request's own `Request(cookies=...)` are still sent",
        scrapy={"cookies_enabled": ""})
    # -- the HTTP client ---------------------------------------------------------------------
    http_stack: str = setting(
        "aiohttp", "the client of http(s) pages: `aiohttp`, or `curl` (libcurl through "
        "curl_cffi: HTTP/2 and a browser's TLS fingerprint; the `broad` extra). A request "
        "picks one with `meta[\"download_handler\"]` = `\"curl\"` or `\"aiohttp\"`",
        choices=("aiohttp", "curl"), choices_text="must be 'aiohttp' or 'curl'")
    impersonate: str | None = setting(
        "chrome", "with the curl stack: the browser whose TLS and HTTP/2 fingerprint requests "
        "carry (curl_cffi's names: `chrome`, `firefox`, `safari`, `edge`, `chrome131`, ...); "
        "none: libcurl's own", rule=(_impersonation, "must be a browser curl_cffi can "
                                     "impersonate (chrome, firefox, safari, edge, ...)"))
    http2: bool = setting(
        True, "with the curl stack: offer HTTP/2 over TLS (ALPN); off: HTTP/1.1 only")
    # -- sessions and proxies (crawler/middlewares/sessions.py) -----------------------------
    proxies: tuple[str, ...] = setting(
        (), "proxy URLs (`http://user:pass@host:port`) requests rotate through, round robin; "
        "one that fails `proxy_max_failures` times in a row is rested. Its credentials are "
        "sent as Proxy-Authorization and never shown (logs, stats, errors name host:port)",
        rule=(_proxy_urls, "must be http:// or https:// proxy URLs"), metavar="URL,...")
    proxies_file: str | None = setting(
        None, "a file of proxy URLs, one per line (# comments), added to `proxies`")
    proxy_max_failures: int = setting(
        3, "failures in a row (a refused or timed-out connection, a 407, a ban) before a "
        "proxy is rested", ge=1)
    proxy_rest: float = setting(
        60.0, "seconds a failing proxy rests before it is tried again (doubling each time it "
        "fails again, up to 16x)", gt=0)
    sessions: int = setting(
        0, "a pool of this many sessions (a cookie jar, a proxy, headers; Crawlee's "
        "SessionPool): a banned one (`ban_statuses`, the spider's `is_blocked(response)`) is "
        "retired and its request retried on another. 0: no sessions", ge=0, le=100_000,
        le_why="each session keeps a cookie jar in memory")
    session_scope: str = setting(
        "request", "`request`: each request takes the next session of the pool; `host`: a "
        "host keeps its session until the session is retired", choices=("request", "host"),
        choices_text="must be 'request' or 'host'")
    session_max_uses: int = setting(
        50, "requests a session makes before it is retired (Crawlee's max_usage_count)", ge=1)
    ban_statuses: tuple[int, ...] = setting(
        (401, 403, 429), "statuses that mean a session was banned (with `sessions`)",
        rule=_CODES_RULE)
    # -- plugins ---------------------------------------------------------------------------
    item_pipelines: tuple[Any, ...] = setting(
        (), "pipeline classes or dotted paths, in order", kind="plugins",
        scrapy={"item_pipelines": ""})
    extensions: tuple[Any, ...] = setting(
        (), "extension classes or dotted paths, after the built-in ones (see Signals "
        "and extensions)", kind="plugins")
    downloader_middlewares: tuple[tuple[Any, int | None], ...] = setting(
        (), "`{class or path: order}` added to the built-ins; None leaves one out; on the "
        "command line `path=order,...`", kind="ordered",
        scrapy={"downloader_middlewares": ""})
    spider_middlewares: tuple[tuple[Any, int | None], ...] = setting(
        (), "`{class or path: order}` around the callbacks (see Middlewares); on the "
        "command line `path=order,...`", kind="ordered", scrapy={"spider_middlewares": ""})
    download_handlers: tuple[tuple[str, Any], ...] = setting(
        (), "`{scheme or name: handler class or path}` replacing or adding to the built-in "
        "http and https handler (None disables one); `meta[\"download_handler\"]` names one "
        "per request", kind="handlers", scrapy={"download_handlers": ""})
    sinks: tuple[tuple[str, Any], ...] = setting(
        (), "`{scheme: sink class or path}`: what `-o SCHEME://...` writes with",
        kind="sinks")
    # -- pages rendered in a browser (crawler/handlers/browser.py) --------------------------
    render: str = setting(
        "http", "how http(s) pages are fetched: `http` (aiohttp), or `browser` (rendered in "
        "Chromium through Playwright, `pip install -e '.[browser]'`); `meta[\"browser\"]` "
        "decides per request", choices=("http", "browser"),
        choices_text="must be 'http' or 'browser'")
    browser_executable: str | None = setting(
        None, "the Chromium to drive (default: `chromium` or `chromium-browser` on PATH; "
        "nothing is ever downloaded)", rule=(lambda v: bool(v.strip()),
                                            "must name an executable"),
        shown="`chromium` on PATH")
    browsers: int = setting(
        1, "Chromium browsers a crawl runs (a page without a context of its own goes to the "
        "one with the fewest pages open; a named context lives in one)", ge=1, le=16,
        le_why="each browser costs hundreds of MB")
    browser_max_pages: int = setting(
        4, "pages open in the browsers at once, over all of them (each is a tab: memory)",
        ge=1, le=256,
        le_why="each open page costs tens of MB")
    browser_timeout: float = setting(
        30.0, "seconds a page may take to load and settle, and every page action; past it "
        "the request fails as `browser_timeout`", gt=0, le=_DAY,
        le_why="a page that takes longer is lost")
    browser_recycle_pages: int = setting(
        200, "pages a browser context renders before it is replaced by a fresh one (what "
        "pages leak goes with it)", ge=1)
    browser_max_memory: int = setting(
        2048, "MB a browser's processes may hold together (read from the process tree "
        "every few pages); past it that browser is restarted once its open pages finish",
        ge=64)
    browser_files_dir: str = setting(
        "output/browser", "where `meta[\"browser_screenshot\"]` and `meta[\"browser_pdf\"]` "
        "files are written (response.meta names each)",
        rule=(lambda v: bool(v.strip()), "must name a directory"))
    browser_block: tuple[str, ...] = setting(
        ("image", "media", "font"), "resource types a rendered page does not load "
        "(Playwright's names: image, media, font, stylesheet, script, ...)")
    # -- where the crawl's state lives (crawler/storage/) ----------------------------------
    job_dir: str | None = setting(
        None, "keep the crawl's state in this directory and resume from it", flag=(
            "--job-dir",), metavar="DIR", scrapy={"jobdir": "; a killed job resumes here too"})
    frontier: str | None = setting(
        None, "a frontier shared by many processes: `redis://HOST:PORT/DB` (see Fleets on "
        "Redis)", rule=(_frontier_scheme, _frontier_schemes), flag=("--frontier",),
        metavar="URL")
    frontier_job: str | None = setting(
        None, "the crawl's name in the shared frontier", rule=_NAME_RULE, flag=("--job",),
        metavar="NAME", shown="spider name")
    worker_id: str | None = setting(
        None, "this process's name in the fleet and in `{worker}`", rule=_NAME_RULE,
        flag=("--worker-id",), metavar="ID", shown="host-pid")
    frontier_lease: float = setting(
        30.0, "seconds a request taken by a worker stays leased without a heartbeat; then "
        "another worker takes it", ge=1, bound="must be >= 1 second")
    frontier_outage: float = setting(
        60.0, "seconds a shared frontier may be unreachable mid-crawl before the worker "
        "stops", ge=0, bound="must be >= 0 seconds")
    # -- the HTTP cache: responses kept on disk and replayed instead of fetched ------------
    http_cache: bool = setting(
        False, "store responses in `http_cache_dir/<spider>.sqlite3` and replay them "
        "instead of fetching: no network, no politeness delay, no robots.txt fetch for what "
        "is stored", flag=("--cache",), scrapy={"httpcache_enabled": ""})
    http_cache_dir: str = setting(
        ".crawler-cache", "where the cache lives",
        rule=(lambda v: bool(v.strip()), "must name a directory"),
        scrapy={"httpcache_dir": ""})
    http_cache_expiration: float = setting(
        0.0, "seconds a stored response stays fresh; 0 keeps it forever", ge=0,
        scrapy={"httpcache_expiration_secs": ""})
    http_cache_policy: str = setting(
        "store", "`store`: every stored response is replayed (until `http_cache_expiration`); "
        "`rfc9111`: as an HTTP cache does: `Cache-Control` (max-age, no-store, no-cache, "
        "must-revalidate), `Expires` and `Vary` honoured, stale entries revalidated with "
        "conditional requests and their body served on `304`", choices=("store", "rfc9111"),
        choices_text="must be 'store' or 'rfc9111'", scrapy={"httpcache_policy": ""})
    http_cache_codes: tuple[int, ...] = setting(
        (), "statuses stored besides 2xx (and a robots.txt's 4xx), e.g. `301,404`",
        rule=_CODES_RULE)
    # -- recrawls: a job's pages visited again (crawler/recrawl/) --------------------------
    recrawl: bool = setting(
        False, "a job dir that has finished starts a new round: every page it knows is "
        "visited again with conditional requests (`If-None-Match`, `If-Modified-Since`); "
        "unchanged pages are counted, not parsed again", flag=("--recrawl",))
    changes_file: str | None = setting(
        None, "the change feed of a job dir: one JSON line per page visited, its URL, its "
        "change (new, changed, unchanged or gone) and the time", flag=("--changes",),
        metavar="FILE", rule=(lambda v: bool(v.strip()), "must name a file"))
    continuous: bool = setting(
        False, "a job dir's crawl does not end: once nothing is left it sleeps until the "
        "next page of its history is due (its revisit interval) and visits it again; a "
        "signal stops it", flag=("--continuous",))
    emit_unchanged: bool = setting(
        False, "in a recrawl, unchanged pages are parsed and their items written again "
        "(conditional requests are then not sent: the body is needed)",
        flag=("--emit-unchanged",))
    recrawl_digest: str = setting(
        "body", "what tells a page changed: `body` (a digest of it), or `items` (of the "
        "items its callback yields: a page whose markup changes while its data does not "
        "is unchanged; its callback runs whenever its body changed)",
        choices=("body", "items"), choices_text="must be 'body' or 'items'")
    recrawl_interval: float = setting(
        86400.0, "seconds before a page seen for the first time is due again (a sitemap's "
        "`changefreq` says otherwise for its pages)", gt=0)
    recrawl_min_interval: float = setting(
        3600.0, "the shortest a page's revisit interval becomes", gt=0)
    recrawl_max_interval: float = setting(
        30 * 86400.0, "the longest a page's revisit interval becomes", gt=0)
    recrawl_inc_rate: float = setting(
        0.4, "a page found unchanged: its interval x (1 + this) (Nutch's adaptive "
        "schedule)", ge=0, le=10)
    recrawl_dec_rate: float = setting(
        0.2, "a page found changed: its interval x (1 - this)", ge=0, le=0.9,
        le_why="an interval must stay above 0")
    # -- outputs ---------------------------------------------------------------------------
    plugin: Mapping[str, Any] = setting(
        help="any name with a dot is a plugin's own setting, passed through unchecked",
        factory=dict, compare=False, shown="-")
    feed_fields: tuple[str, ...] | None = setting(
        None, "CSV columns (comma-separated on the command line)",
        rule=(all, "must be non-empty field names"), scrapy={"feed_export_fields": ""})
    feeds: tuple[tuple[str, Mapping[str, Any]], ...] = setting(
        (), "outputs the project or spider declares (Scrapy's `FEEDS`): `{uri: {\"format\": "
        "\"json\"\\|\"jsonlines\"\\|\"csv\"\\|\"xml\", \"fields\": [...], \"overwrite\": false, "
        "\"indent\": 2}}`, used when no `-o`/`-O` is given; on the command line a JSON "
        "object", kind="feeds", compare=False, scrapy={"feeds": ""})
    feed_indent: int | None = setting(
        None, "`.json` outputs: each item indented this many spaces (Scrapy's "
        "`FEED_EXPORT_INDENT`)", ge=0, le=16, bound="must be 0-16 spaces, or none",
        scrapy={"feed_export_indent": ""})
    # -- monitors (crawler/extensions/monitors.py): a failing one makes `run` exit 3 --------
    monitor_min_items: int | None = setting(
        None, "monitor: at least this many items by the end", ge=0)
    monitor_min_pages: int | None = setting(
        None, "monitor: at least this many pages by the end", ge=0)
    monitor_max_error_rate: float | None = setting(
        None, "monitor: at most this share (0-1) of requests failed (failed / (pages + "
        "failed))", ge=0, le=1, bound="must be a share from 0 to 1")
    monitor_max_error_rates: Mapping[str, float] = setting(
        help="monitor: the same per failure kind: `{\"timeout\": 0.05, \"http_404\": 0.1}` "
        "(`timeout=0.05,http_404=0.1` on the command line)", factory=dict, kind="rates",
        compare=False, shown="-", rule=(_failure_kinds, _failure_kinds_text))
    monitor_field_coverage: Mapping[str, float] = setting(
        help="monitor: the share (0-1) of items that must have each field set (not missing, "
        "None or empty): `{\"price\": 0.95}` (`price=0.95,title=1`)", factory=dict,
        kind="rates", compare=False, shown="-")
    monitor_item_schema: object = setting(
        None, "monitor: every item must fit this pydantic model or JSON Schema (a class, a "
        "dict, a `.json` file, or an import path `package.module:Name`)", kind="schema",
        compare=False)
    monitor_max_invalid_items: float = setting(
        0.0, "monitor: the share (0-1) of items that may fail `monitor_item_schema`", ge=0,
        le=1, bound="must be a share from 0 to 1")
    monitor_max_duration: float | None = setting(
        None, "monitor: the crawl takes at most this many seconds (it is not stopped: see "
        "`max_duration`)", gt=0)
    monitor_finish_reasons: tuple[str, ...] = setting(
        (), "monitor: the finish reasons that pass (`finished`, `max_pages`, ...)")
    monitor_checks: tuple[Any, ...] = setting(
        (), "monitor: your own checks, judged at the end: functions (or dotted paths) given "
        "the stats dict, returning None when all is well or what is wrong",
        kind="plugins", compare=False)
    monitor_interval: float = setting(
        60.0, "seconds between evaluations of the monitors while the crawl runs (a failing "
        "one is logged and shown on the status page)", gt=0, le=_DAY, le_why=_LATER)
    monitor_notify: str = setting(
        "failure", "when to send the monitors' results: on a `failure`, or `always`",
        choices=("failure", "always"), choices_text="must be 'failure' or 'always'")
    monitor_webhook: str | None = setting(
        None, "POST the monitors' results as JSON to this URL (never logged: only its "
        "origin is)", rule=(_http_url, "must be an http:// or https:// URL"))
    monitor_webhook_format: str = setting(
        "json", "the webhook's body: our `json`, or `slack` (an incoming webhook's `text` and "
        "blocks)", choices=("json", "slack"), choices_text="must be 'json' or 'slack'")
    monitor_email_to: tuple[str, ...] = setting(
        (), "email the monitors' results to these addresses",
        rule=(lambda v: all("@" in a for a in v), "must be email addresses"))
    monitor_email_from: str = setting("crawler@localhost", "the email's From address")
    monitor_smtp: str = setting(
        "smtp://127.0.0.1:25", "the SMTP server: `smtp://[user:password@]host[:port]` "
        "(STARTTLS when offered) or `smtps://...` (TLS)",
        rule=(lambda v: v.startswith(("smtp://", "smtps://")),
              "must be an smtp:// or smtps:// URL"))
    # -- how responses and the queue behave ------------------------------------------------
    selectors: str = setting(
        "selectolax", "what `response.css()`/`css_first()` answer with: selectolax nodes "
        "(fast, CSS only), or `parsel` SelectorLists as in Scrapy",
        choices=("selectolax", "parsel"), choices_text="must be 'selectolax' or 'parsel'")
    crawl_order: str = setting(
        "bfs", "requests of the same priority: the oldest first (`bfs`, breadth first) or "
        "the newest (`dfs`, depth first; Scrapy's LIFO queues)", choices=("bfs", "dfs"),
        choices_text="must be 'bfs' (breadth first) or 'dfs' (depth first)",
        scrapy={"depth_priority": "; DEPTH_PRIORITY=1 with FIFO queues is crawl_order "
                "'bfs' (the default here), 0 with LIFO queues 'dfs'"})
    # -- what the crawl says ---------------------------------------------------------------
    log_level: str = setting(
        "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL",
        rule=(lambda v: v.upper() in LOG_LEVELS, f"must be one of {LOG_LEVELS}"),
        flag=("-L", "--loglevel"), metavar="LEVEL", scrapy={"log_level": ""})
    progress: bool = setting(
        False, "the live display instead of progress lines (the CLI turns it on when "
        "stderr is a terminal, unless `--no-progress`)")
    log_interval: float = setting(
        10.0, "seconds between progress lines (pages, pages/s, items, in flight, queued, "
        "failed, retries); 0 disables", ge=0, le=_DAY,
        le_why="progress lines that rare say nothing", scrapy={"logstats_interval": ""})
    # the live status page: served by the crawl itself; any address but 127.0.0.1 needs
    # the token for every page, the controls always need it
    status_port: int | None = setting(
        None, "serve the live status page of the crawl on this port, with pause/resume/stop "
        "(0: any free one)", ge=0, le=65535,
        bound="must be a TCP port (0-65535; 0 picks a free one)", flag=("--status-port",),
        metavar="PORT")
    status_host: str = setting(
        "127.0.0.1", "the status page's address; any other needs the token for every "
        "request", rule=(lambda v: bool(v.strip()), "must be an address to bind"),
        flag=("--status-host",), metavar="ADDR")
    status_token: str | None = setting(
        None, "the status page's token (at least 8 characters; default: a random one, "
        "logged with the page's URL)", rule=(lambda v: len(v) >= 8, "must be at least 8 "
                                             "characters (it guards the pause and stop "
                                             "buttons)"),
        flag=("--status-token",), metavar="TOKEN", shown="random")
    shutdown_timeout: float | None = setting(
        None, "seconds a graceful stop waits for requests in progress", ge=0, le=_DAY,
        le_why="a stop should not wait longer", shown="unset (= `timeout`)")
    # -- politeness ------------------------------------------------------------------------
    obey_robots: bool = setting(
        True, "fetch each host's robots.txt before its first request and obey it (see "
        "Politeness)", scrapy={"robotstxt_obey": "; it is on by default here"})
    randomize_download_delay: bool = setting(
        True, "each gap is `download_delay` x uniform(0.5, 1.5) (never below a "
        "Crawl-delay)", scrapy={"randomize_download_delay": ""})
    autothrottle: bool = setting(
        False, "adapt each host's delay to its latency; back off sharply on 429/503",
        scrapy={"autothrottle_enabled": ""})
    autothrottle_start_delay: float = setting(
        5.0, "autothrottle's delay before any latency is known", ge=0, le=_DAY,
        le_why=_LATER, scrapy={"autothrottle_start_delay": ""})
    autothrottle_target_concurrency: float = setting(
        1.0, "requests each host should be serving at once; delay -> latency / this", gt=0,
        scrapy={"autothrottle_target_concurrency": ""})
    autothrottle_max_delay: float = setting(
        60.0, "ceiling for autothrottle and Crawl-delay", ge=0, le=_DAY, le_why=_LATER,
        scrapy={"autothrottle_max_delay": ""})
    # -- retries ---------------------------------------------------------------------------
    retries: int = setting(
        3, "extra tries for timeouts, connection/DNS errors, broken bodies and "
        "`retry_http_codes`", ge=0, le=100,
        le_why="past a few tries a request is not coming back",
        scrapy={"retry_times": "", "retry_enabled": "; set it to 0 to turn retries off"})
    retry_http_codes: tuple[int, ...] = setting(
        (408, 429, 500, 502, 503, 504, 522, 524), "statuses that are retried",
        rule=_CODES_RULE, scrapy={"retry_http_codes": ""})
    retry_backoff_base: float = setting(
        1.0, "backoff before try n+1: uniform(0, min(max, base x 2^n)) (full jitter)", ge=0,
        le=_DAY, le_why="a longer wait is better done by a scheduled crawl")
    retry_backoff_max: float = setting(
        60.0, "cap on a backoff and on a Retry-After pause", ge=0, le=_DAY,
        le_why="a longer wait is better done by a scheduled crawl")

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check_declared(field.name, getattr(self, field.name), field.metadata,
                           HINTS[field.name] if field.name in HINTS else field.type)
        from crawler.settings._values import check_feed

        for uri, options in self.feeds:
            check_feed(uri, options)
        if self.tls_ca_bundle is not None:
            try:
                self.tls_context()
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                check("tls_ca_bundle", False, f"cannot be loaded as PEM certificates: {exc}")

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
    def workers(self) -> int:
        """Worker tasks (and connections) the crawl keeps: `concurrency`, or with `auto` the
        most it may grow to."""
        return self.max_concurrency if self.concurrency == "auto" else int(self.concurrency)

    @property
    def log_level_number(self) -> int:
        return int(getattr(logging, self.log_level.upper()))

    @classmethod
    def for_spider(cls, spider: object, base: Settings | None = None) -> Settings:
        """`base` (the defaults, or the project's settings) < the spider's Scrapy-style
        attributes (`download_delay = 2`, ...) < its `custom_settings`. A mistake there
        is an error naming the spider."""
        from crawler.exceptions import SettingsError
        from crawler.settings._values import spider_settings

        try:
            return (base or cls()).merge(spider_settings(spider)).merge(
                getattr(spider, "custom_settings", None) or {})
        except SettingsError as exc:
            name = getattr(spider, "name", "") or getattr(spider, "__name__", "?")
            raise SettingsError(f"spider {name!r} (its custom_settings or attributes): "
                                f"{exc}") from None

    def get(self, name: str, default: Any = None) -> Any:
        """A setting by name: ours, or a plugin's namespaced one ("myext.api_key")."""
        if name in HINTS:
            return getattr(self, name)
        return self.plugin.get(name, default)

    def merge(self, overrides: Mapping[str, Any]) -> Settings:
        """Return a copy with typed values from `overrides` (e.g. a spider's custom_settings)."""
        from crawler.settings._values import merged

        return merged(self, overrides, parse=False)

    def merge_strings(self, overrides: Mapping[str, str]) -> Settings:
        """Return a copy with values parsed from command-line strings (`-s key=value`)."""
        from crawler.settings._values import merged

        return merged(self, overrides, parse=True)


HINTS: dict[str, Any] = {
    k: v for k, v in typing.get_type_hints(Settings).items()
    if not k.startswith("_") and k != "plugin"
}
"""Each setting's type, by name (the plugin namespace excluded)."""
