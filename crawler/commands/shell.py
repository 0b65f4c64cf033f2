"""`shell [URL]`: an asyncio console with a fetched page."""

from __future__ import annotations

import argparse
from typing import Any

from crawler.commands.common import (
    EXIT_OK,
    check_url,
    spider_options,
)
from crawler.commands.crawl import (
    tool_setup,
)

_SHELL_EPILOG = """\
examples:
  python -m crawler shell http://127.0.0.1:8000/
  >>> response.css_text("h1")
  >>> response.sel.css("li.book a::attr(href)").getall()
  >>> fetch(response.urljoin("catalogue/category/travel/page-1.html"))
  >>> view(response)
"""

def add(commands: Any) -> None:
    """The `shell` command's options."""
    parser = commands.add_parser(
        "shell", help="an asyncio console with a fetched page, to try selectors",
        epilog=_SHELL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="a page to fetch first")
    parser.add_argument("--spider", metavar="NAME", help="fetch with this spider's settings")
    spider_options(parser)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    from crawler.commands.console import Shell

    if args.url:
        check_url(args.url)
    spider, settings, spider_args = tool_setup(args, args.spider)
    Shell(spider, settings, spider_args).interact(args.url)
    return EXIT_OK

