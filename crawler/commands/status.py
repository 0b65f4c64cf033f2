"""`status SPIDER --frontier URL`: a shared crawl's progress."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from crawler.commands.common import (
    EXIT_OK,
)
from crawler.frontier.fleetstatus import read_status
from crawler.settings import Settings


def add(commands: Any) -> None:
    """The `status` command's options."""
    parser = commands.add_parser("status", help="show a shared crawl's progress (--frontier)")
    parser.add_argument("spider", help="the spider's name")
    parser.add_argument("--frontier", required=True, metavar="URL",
                        help="the shared frontier (redis://HOST:PORT/DB)")
    parser.add_argument("--job", metavar="NAME", help="the crawl's name (default: the spider's)")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    Settings(frontier=args.frontier, frontier_job=args.job)  # the same checks as run's
    state = asyncio.run(read_status(args.frontier, args.spider, args.job))
    counts = state["counts"]
    print(f"crawl:       {state['prefix'].rstrip(':')}\n"
          f"queued:      {counts.get('queued', 0)}\n"
          f"leased:      {state['leased']}\n"
          f"done:        {counts.get('acked', 0)}\n"
          f"pages:       {counts.get('pages', 0)}\n"
          f"items:       {counts.get('items', 0)}\n"
          f"redelivered: {counts.get('redelivered', 0)}\n"
          f"seen:        {state['seen']}\n"
          f"state:       {state['state']}")
    workers = state["workers"]
    print(f"workers:     {len(workers)}")
    for name, w in sorted(workers.items()):
        print(f"  {name}: last heartbeat {w['age']:.1f} s ago, {w['pages']} pages "
              f"({w['pages_per_second']}/s), {w['items']} items, {w['in_flight']} in flight")
    return EXIT_OK

