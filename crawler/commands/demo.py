"""`demo`: the bundled bookshop, served and crawled."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from crawler.commands.common import (
    EXIT_OK,
    crawl_options,
)
from crawler.commands.crawl import (
    build_crawler,
    finish,
    run_with_signals,
)
from crawler.core.state import CrawlResult


def add(commands: Any) -> None:
    """The `demo` command's options."""
    parser = commands.add_parser(
        "demo", help="serve the bundled bookshop on 127.0.0.1 and crawl it")
    parser.add_argument("--port", type=int, default=0, help="port for the demo site (default: any)")
    parser.add_argument("--serve", action="store_true",
                        help="only serve the site until interrupted; do not crawl")
    crawl_options(parser)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    from crawler.commands.bookshop import BooksSpider, serve_forever, serving

    if args.serve:
        try:
            asyncio.run(serve_forever(args.port))
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
        return EXIT_OK

    async def crawl_demo() -> tuple[CrawlResult, bool]:
        async with serving(args.port) as base_url:
            print(f"demo bookshop at {base_url}", file=sys.stderr)
            crawler = build_crawler(BooksSpider, args, {"base_url": base_url},
                                    default_overwrite=True)
            return await run_with_signals(crawler)

    return finish(asyncio.run(crawl_demo()), args)

