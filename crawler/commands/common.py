"""What every command shares: exit codes, options, spider loading and settings."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
from typing import Any

import orjson

from crawler.core.plugins import describe
from crawler.exceptions import UsageError
from crawler.http.urls import parse_url
from crawler.loader import load_spider
from crawler.project import find_project
from crawler.settings import Settings
from crawler.spider import Spider

logger = logging.getLogger(__name__)

EXIT_CODES = """\
exit codes: 0 the crawl fetched something and every output was closed; 1 the crawl ran but
no page could be fetched, or an output could not be written; 2 a usage or startup error
(nothing was crawled or overwritten); 130 stopped at once by a second signal.
"""

EXIT_OK = 0

EXIT_FAILED = 1

EXIT_USAGE = 2

def log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-L", "--loglevel", metavar="LEVEL", type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (the log_level setting)")
    parser.add_argument("--log-file", metavar="PATH",
                        help="write log lines to PATH (appended) instead of stderr")
    parser.add_argument("--nolog", action="store_true", help="no log lines at all")

def spider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting; repeatable")
    parser.add_argument("-a", "--arg", action="append", default=[], metavar="NAME=VALUE",
                        help="spider argument, passed to the spider's __init__; repeatable")
    log_options(parser)

def crawl_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="periodic log lines instead of the live display on a terminal")
    log_options(parser)
    parser.add_argument(
        "-o", "--output", action="append", default=[], metavar="PATH",
        help="append items to PATH: .jsonl, .json or .csv (or PATH:FORMAT), a file:// URI, "
             "or - for standard output; %%(name)s and %%(time)s are replaced; repeatable")
    parser.add_argument("-O", "--overwrite-output", action="append", default=[], metavar="PATH",
                        help="like -o but replace the file")
    parser.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting; repeatable")
    parser.add_argument("-a", "--arg", action="append", default=[], metavar="NAME=VALUE",
                        help="spider argument, passed to the spider's __init__; repeatable")
    parser.add_argument("--stats", metavar="PATH", help="write the final stats as JSON to PATH")
    parser.add_argument("--cache", action="store_true",
                        help="replay responses stored by earlier runs, and store new ones "
                             "(the http_cache setting; in .crawler-cache/)")
    parser.add_argument("--cache-clear", action="store_true",
                        help="empty this spider's HTTP cache first (implies --cache)")
    parser.add_argument("--job-dir", metavar="DIR",
                        help="keep the crawl's state in DIR: the same command resumes it after "
                             "any stop, kill -9 included (the job_dir setting)")
    parser.add_argument("--restart", action="store_true",
                        help="with --job-dir: forget the job in DIR and start it over")
    parser.add_argument("--frontier", metavar="URL",
                        help="share the crawl with every process given the same URL "
                             "(redis://HOST:PORT/DB; the frontier setting)")
    parser.add_argument("--job", metavar="NAME",
                        help="with --frontier: the crawl's name in it (default: the spider's)")
    parser.add_argument("--status-port", type=int, metavar="PORT",
                        help="serve a live status page of the crawl on PORT (0: any free "
                             "one), with pause/resume/stop; on 127.0.0.1 unless --status-host")
    parser.add_argument("--status-host", metavar="ADDR",
                        help="the status page's address (default 127.0.0.1; any other needs "
                             "the token for every request)")
    parser.add_argument("--status-token", metavar="TOKEN",
                        help="the status page's token (default: a random one, logged with "
                             "the page's URL)")
    parser.add_argument("--worker-id", metavar="ID",
                        help="with --frontier: this process's name in the fleet and in "
                             "{worker} (default: host name and pid)")

def pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects NAME=VALUE, got {value!r}")
        pairs[key.strip()] = text
    return pairs

def load(target: str) -> type[Spider]:
    """A spider class by name (in the project's spiders/) or .py path; warnings printed."""
    spider_cls, warnings = load_spider(target, find_project().root)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return spider_cls

def settings_for(spider: Spider | type[Spider], args: argparse.Namespace,
              **defaults: Any) -> Settings:
    """defaults < the project file < `defaults` (a command's) < the spider's own < -s < -L."""
    base = find_project().base()
    if defaults:
        base = base.merge(defaults)
    settings = Settings.for_spider(spider, base).merge_strings(pairs(args.set, "-s"))
    if args.loglevel:
        settings = settings.merge({"log_level": args.loglevel})
    return settings

def make_spider(spider_cls: type[Spider], args: argparse.Namespace,
            extra_args: dict[str, str] | None = None) -> tuple[Spider, dict[str, str]]:
    """The spider built with `extra_args` (the demo's) and -a's; UsageError if it fails."""
    spider_args = {**(extra_args or {}), **pairs(args.arg, "-a")}
    try:
        return spider_cls(**spider_args), spider_args
    except TypeError as exc:
        raise UsageError(f"bad spider arguments for {spider_cls.name!r}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"spider {spider_cls.name!r} failed to start: {describe(exc)}") \
            from None

def json_object(text: str | None, flag: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{flag}: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} expects a JSON object, got {text!r}")
    return value

def check_url(url: str) -> str:
    parsed = parse_url(url)
    if isinstance(parsed, str):
        raise UsageError(f"bad URL {url!r}: not an absolute http(s) URL "
                         f"({parsed.replace('_', ' ')})")
    return url

