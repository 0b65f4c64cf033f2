"""`parse URL --spider NAME`: a callback run on one page."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from crawler.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    check_url,
    json_object,
    spider_options,
)
from crawler.commands.crawl import (
    tool_setup,
)
from crawler.commands.probe import ProbeRequest, callback_for, probe
from crawler.exceptions import UsageError
from crawler.outputs.items import encode

_PARSE_EPILOG = """\
examples:
  python -m crawler parse --spider books -c parse_book URL
  python -m crawler parse --spider books --depth 2 http://127.0.0.1:8000/
  python -m crawler parse --spider books -c parse_page --meta '{"page": 2}' URL
Items and requests are printed, never written to outputs. Exit code 1 when the page could
not be fetched or the callback raised.
"""

def add(commands: Any) -> None:
    """The `parse` command's options."""
    parser = commands.add_parser(
        "parse", help="run a spider's callback on one URL and print what it yields",
        epilog=_PARSE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the URL to run the callback on")
    parser.add_argument("--spider", required=True, metavar="NAME",
                        help="the spider whose callback, settings and middlewares are used")
    parser.add_argument("-c", "--callback", metavar="CB",
                        help="the method to run (default: a CrawlSpider rule's, else parse)")
    parser.add_argument("-d", "--depth", type=int, default=1, metavar="N",
                        help="follow the requests it yields N-1 levels further (default 1)")
    parser.add_argument("-m", "--meta", metavar="JSON", help="the request's meta, a JSON object")
    parser.add_argument("--cb-kwargs", metavar="JSON",
                        help="keyword arguments for the callback, a JSON object")
    parser.add_argument("--noitems", action="store_true", help="do not print items")
    parser.add_argument("--browser", action="store_true",
                        help="render the page in Chromium before the callback runs")
    parser.add_argument("--nolinks", action="store_true", help="do not print requests")
    spider_options(parser)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    url = check_url(args.url)
    if args.depth < 1:
        raise UsageError("--depth must be >= 1")
    meta = json_object(args.meta, "--meta")
    if args.browser:
        meta["browser"] = True
    cb_kwargs = json_object(args.cb_kwargs, "--cb-kwargs")
    spider, settings, spider_args = tool_setup(args, args.spider)
    callback = callback_for(spider, url, args.callback)
    wanted = ProbeRequest(url, callback, meta=meta, cb_kwargs=cb_kwargs)
    result = asyncio.run(probe(type(spider), [wanted], settings, depth=args.depth,
                               spider_args=spider_args))
    for depth, level in enumerate(result.levels, 1):
        print(f">>> depth {depth}: {len(level.items)} items, {len(level.requests)} "
              "requests <<<")
        if not args.noitems:
            for item in level.items:
                print(encode(item).decode())
        if not args.nolinks:
            for request in level.requests:
                name = getattr(request.callback, "__name__", "parse")
                print(f"{request.method} {request.url}  -> {name}")
    for failure in result.failures:
        print(f"crawler: error: {failure.request.url}: {failure.kind}: {failure.exception}",
              file=sys.stderr)
    if not result.responses:
        return EXIT_FAILED
    if result.errors:
        print(f"crawler: error: the callback raised {result.errors} time(s) (logged above)",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK

