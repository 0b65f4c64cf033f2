"""`fetch URL`: a page as a spider would fetch it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from crawler.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    check_url,
    spider_options,
)
from crawler.commands.crawl import (
    tool_setup,
)
from crawler.commands.probe import ProbeRequest, probe

_FETCH_EPILOG = """\
examples:
  python -m crawler fetch https://example.com/ > page.html
  python -m crawler fetch --headers --no-redirect http://example.com/old
  python -m crawler fetch --spider books http://127.0.0.1:8000/
exit codes: 0 a response came back (any status); 1 it could not be fetched; 2 usage.
"""

def add(commands: Any) -> None:
    """The `fetch` command's options."""
    parser = commands.add_parser(
        "fetch", help="fetch a URL with a spider's settings and print it",
        epilog=_FETCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the URL to fetch")
    parser.add_argument("--spider", metavar="NAME",
                        help="use this spider's settings (user agent, robots.txt, cache, "
                        "middlewares)")
    parser.add_argument("--headers", action="store_true",
                        help="print the status line and response headers, not the body")
    parser.add_argument("--no-redirect", action="store_true", help="do not follow redirects")
    parser.add_argument("--browser", action="store_true",
                        help="render the page in Chromium and print the rendered DOM")
    spider_options(parser)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    url = check_url(args.url)
    spider, settings, spider_args = tool_setup(args, args.spider)
    meta = {"browser": True} if args.browser else {}
    result = asyncio.run(probe(type(spider), [ProbeRequest(url, redirect=not args.no_redirect,
                                                           meta=meta)],
                               settings, spider_args=spider_args))
    if not result.responses:
        why = f"{result.failures[0].kind}: {result.failures[0].exception}" \
            if result.failures else "nothing came back (see the log)"
        print(f"crawler: error: cannot fetch {url}: {why}", file=sys.stderr)
        return EXIT_FAILED
    response = result.responses[-1]
    if args.headers:
        print(f"{response.status} {response.url}")
        for name, value in response.headers.items():
            print(f"{name}: {value}")
    else:
        sys.stdout.buffer.write(response.body)
        sys.stdout.buffer.flush()
    return EXIT_OK

