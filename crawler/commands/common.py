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
from crawler.settings import Settings, flags
from crawler.spider import Spider

logger = logging.getLogger(__name__)

EXIT_CODES = """\
exit codes: 0 the crawl fetched something and every output was closed; 1 the crawl ran but
no page could be fetched, or an output could not be written; 2 a usage or startup error
(nothing was crawled or overwritten); 3 the crawl ran but a monitor failed; 130 stopped at
once by a second signal.
"""

EXIT_OK = 0

EXIT_FAILED = 1

EXIT_USAGE = 2

EXIT_MONITOR = 3  # the crawl ran, and a monitor failed (crawler/extensions/monitors.py)

def log_options(parser: argparse.ArgumentParser) -> None:
    level = next(f for f in flags() if f.name == "log_level")
    parser.add_argument(*level.options, dest="loglevel", metavar=level.metavar, type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help=level.help)
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
        help="append items to PATH: .jsonl, .json, .csv or .xml (or PATH:FORMAT), a file:// URI, "
             "or - for standard output; %%(name)s and %%(time)s are replaced; repeatable")
    parser.add_argument("-O", "--overwrite-output", action="append", default=[], metavar="PATH",
                        help="like -o but replace the file")
    parser.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting; repeatable")
    parser.add_argument("-a", "--arg", action="append", default=[], metavar="NAME=VALUE",
                        help="spider argument, passed to the spider's __init__; repeatable")
    parser.add_argument("--stats", metavar="PATH", help="write the final stats as JSON to PATH")
    for flag in flags():  # the settings with an option of their own (their declarations)
        if flag.name == "log_level":
            continue  # log_options()
        if flag.switch:
            parser.add_argument(*flag.options, dest=flag.name, action="store_true",
                                help=flag.help)
        else:
            parser.add_argument(*flag.options, dest=flag.name, metavar=flag.metavar,
                                help=flag.help)
    parser.add_argument("--cache-clear", action="store_true",
                        help="empty this spider's HTTP cache first (implies --cache)")
    parser.add_argument("--restart", action="store_true",
                        help="with --job-dir: forget the job in DIR and start it over")


def flagged_settings(args: argparse.Namespace) -> dict[str, str]:
    """The settings given by their own options (`--job-dir DIR`), as strings for
    Settings.merge_strings."""
    given = {}
    for flag in flags():
        value = getattr(args, flag.name, None)
        if value is not None and value is not False:
            given[flag.name] = "true" if value is True else value
    return given

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

