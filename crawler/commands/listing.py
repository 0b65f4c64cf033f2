"""`list`: the project's spiders."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from crawler.commands.common import (
    EXIT_OK,
)
from crawler.loader import discover
from crawler.project import find_project


def add(commands: Any) -> None:
    """The `list` command's options."""
    parser = commands.add_parser("list", help="list the spiders in ./spiders/")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    spiders, errors = discover(find_project().root)
    for error in errors:
        print(f"warning: {error}", file=sys.stderr)
    for name in sorted(spiders):
        print(name)
    return EXIT_OK

