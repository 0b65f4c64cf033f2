"""`bench`: pages/s against a generated local site."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
from typing import Any

from crawler.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
)
from crawler.commands.interrupts import EXIT_KILLED
from crawler.exceptions import UsageError


def add(commands: Any) -> None:
    """The `bench` command's options."""
    parser = commands.add_parser("bench", help="measure pages/s against a generated local site")
    parser.add_argument("--pages", type=int, default=5000, help="site size (default 5000)")
    parser.add_argument("--concurrency", type=int, default=64, help="default 64")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    from crawler.commands.benchsite import main as bench

    if args.pages < 1 or args.concurrency < 1:
        raise UsageError("--pages and --concurrency must be >= 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        stats = bench(args.pages, args.concurrency)
    except KeyboardInterrupt:
        print("crawler: bench interrupted", file=sys.stderr)
        return EXIT_KILLED
    return EXIT_OK if stats.items == args.pages else EXIT_FAILED

