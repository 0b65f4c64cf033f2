"""`check [SPIDER]`: the contracts in the spiders' docstrings."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from crawler.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    load,
    spider_options,
)
from crawler.commands.contracts import contracts_of, judge
from crawler.commands.crawl import (
    tool_setup,
)
from crawler.commands.probe import probe
from crawler.loader import discover
from crawler.project import find_project

_CHECK_EPILOG = """\
contracts are lines in a callback's docstring:
  @url http://127.0.0.1:8000/catalogue/some-book-1/index.html
  @returns items 1 1
  @returns requests 0 2
  @scrapes title price
  (@meta and @cb_kwargs take JSON objects)
exit codes: 0 every contract held; 1 one failed; 2 usage (a malformed contract).
"""

def add(commands: Any) -> None:
    """The `check` command's options."""
    parser = commands.add_parser(
        "check", help="run the contracts in the spiders' callback docstrings",
        epilog=_CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spider", nargs="?", help="one spider (default: every spider)")
    parser.add_argument("-l", "--list", action="store_true",
                        help="list the contracts, do not run them")
    spider_options(parser)
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    if args.spider:
        targets = {args.spider: load(args.spider)}
    else:
        targets, errors = discover(find_project().root)
        for error in errors:
            print(f"warning: {error}", file=sys.stderr)
    plans = {name: contracts_of(cls) for name, cls in sorted(targets.items())}
    total = sum(len(contracts) for contracts in plans.values())
    if args.list:
        for name, contracts in plans.items():
            for contract in contracts:
                print(f"{name}.{contract.method}  {contract.url}")
        return EXIT_OK
    failed = 0
    for name, contracts in plans.items():
        if not contracts:
            continue
        spider, settings, spider_args = tool_setup(args, name)
        result = asyncio.run(probe(type(spider), [c.request() for c in contracts], settings,
                                   spider_args=spider_args))
        for contract in contracts:
            problems = list(judge(contract, result))
            failed += bool(problems)
            print(f"{'FAIL' if problems else 'ok  '}  {name}.{contract.method}")
            for problem in problems:
                print(f"        {problem}")
    print(f"{total} contract(s) run, {failed} failed", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK

