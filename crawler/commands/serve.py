"""`serve`: the crawl service (crawler/service/): the project's spiders run, queued,
paused, resumed and cancelled over HTTP; every run kept; Scrapyd's endpoints too."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from crawler.commands.common import EXIT_OK
from crawler.exceptions import UsageError
from crawler.project import find_project
from crawler.service.server import ServiceOptions, bind, serve


def add(commands: Any) -> None:
    """The `serve` command's options."""
    parser = commands.add_parser("serve", help="run the crawl service (HTTP API, Scrapyd's "
                                 "endpoints)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; any other needs "
                        "--token)")
    parser.add_argument("--port", type=int, default=6800, help="default 6800 (Scrapyd's)")
    parser.add_argument("--token", help="the token every change needs (and, off loopback, "
                        "every request); default: a new one, printed")
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="where runs, logs, outputs and records are kept (default: "
                        ".crawler-service/ in the project)")
    parser.add_argument("--max-runs", type=int, default=os.cpu_count() or 2, metavar="N",
                        help="runs at once; the others wait (default: the cores)")
    parser.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                        help="how long a cancelled run may take to stop before it is killed")
    parser.add_argument("--log-cap", type=int, default=10, metavar="MB",
                        help="a run's log rotates past this size (default 10)")
    parser.add_argument("--keep", type=int, default=1000, metavar="N",
                        help="finished runs kept, with their files (default 1000)")
    parser.add_argument("--keep-days", type=float, metavar="DAYS",
                        help="forget finished runs older than this, with their files")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    if args.max_runs < 1 or args.grace < 0 or args.log_cap < 1 or args.keep < 1 or (
            args.keep_days is not None and args.keep_days <= 0):
        raise UsageError("--max-runs, --log-cap and --keep must be >= 1, --grace >= 0, "
                         "--keep-days > 0")
    if not 0 <= args.port < 65536:
        raise UsageError("--port must be 0-65535")
    project = find_project().root
    options = ServiceOptions(
        project=project, data=(args.data or project / ".crawler-service").resolve(),
        host=args.host, port=args.port, token=args.token, max_runs=args.max_runs,
        grace=args.grace, log_cap=args.log_cap << 20, keep=args.keep,
        keep_days=args.keep_days)
    sock = bind(options)
    asyncio.run(serve(options, sock))
    return EXIT_OK
