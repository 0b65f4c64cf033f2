"""`version [-v]`: the crawler's version; with -v also Python's, the platform's and those
of the libraries a crawl runs on (Scrapy's `scrapy version -v`), for bug reports."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
from typing import Any

from crawler._version import __version__
from crawler.commands.common import EXIT_OK

# what a crawl runs on, then the optional extras' parts (shown when installed)
_LIBRARIES = ("aiohttp", "yarl", "selectolax", "orjson", "protego", "aiodns",
              "charset-normalizer", "rich", "parsel", "itemloaders", "extruct",
              "html-to-markdown", "jsonschema", "redis", "asyncpg", "playwright", "curl_cffi",
              "publicsuffixlist", "croniter")


def add(commands: Any) -> None:
    """The `version` command's options."""
    parser = commands.add_parser("version", help="the crawler's version (-v: and its "
                                 "libraries', for bug reports)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also Python, the platform and each library's version")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    if not args.verbose:
        print(f"crawler {__version__}")
        return EXIT_OK
    rows = [("crawler", __version__), ("Python", sys.version.split()[0]),
            ("platform", platform.platform())]
    for name in _LIBRARIES:
        try:
            rows.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    width = max(len(name) for name, _ in rows)
    for name, version in rows:
        print(f"{name:<{width}} : {version}")
    return EXIT_OK
