"""`run SPIDER`: a crawl, or `--workers N` processes on one shared frontier."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from crawler.commands.common import (
    EXIT_CODES,
    crawl_options,
    load,
)
from crawler.commands.crawl import (
    build_crawler,
    finish,
    run_with_signals,
)
from crawler.commands.fleet import run_workers, without_workers_flag
from crawler.exceptions import UsageError
from crawler.frontier.redisstore import default_worker_id


def add(commands: Any) -> None:
    """The `run` command's options."""
    parser = commands.add_parser("run", help="run a spider", epilog=EXIT_CODES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spider", help="a spider name from ./spiders/, or a path to a .py file")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="with --frontier: run N worker processes on this machine (one per "
                        "core), each writing its own outputs ({worker} in -o)")
    crawl_options(parser)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    spider_cls = load(args.spider)
    crawler = build_crawler(spider_cls, args, {}, default_overwrite=True)
    if args.workers != 1:  # checked, now run as N processes
        if args.workers < 1:
            raise UsageError("--workers must be >= 1")
        if crawler.settings.frontier is None:
            raise UsageError("--workers needs a shared frontier: give --frontier "
                             "redis://HOST:PORT/DB (or the frontier setting)")
        if any("{worker}" not in spec for spec in (*args.output, *args.overwrite_output)):
            raise UsageError("with --workers, each output needs {worker} in its name (one "
                             "file per worker), e.g. -o 'output/items.{worker}.jsonl'")
        crawler.discard()  # its status port: the first worker serves the page
        return run_workers(without_workers_flag(args.argv), args.workers,
                           crawler.settings.worker_id or default_worker_id())
    return finish(asyncio.run(run_with_signals(crawler)), args)

