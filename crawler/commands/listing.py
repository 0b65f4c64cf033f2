"""`list`: the project's spiders."""

from __future__ import annotations

import argparse
import inspect
import sys
from typing import Any

import orjson

from crawler.commands.common import (
    EXIT_OK,
)
from crawler.loader import discover
from crawler.project import find_project
from crawler.spider import Spider


def add(commands: Any) -> None:
    """The `list` command's options."""
    parser = commands.add_parser("list", help="list the spiders in ./spiders/")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: each spider's summary and arguments, and the "
                        "problems met (what the crawl service shows)")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    spiders, errors = discover(find_project().root)
    if args.json:
        print(orjson.dumps({"spiders": [describe(spiders[name]) for name in sorted(spiders)],
                            "errors": errors}).decode())
        return EXIT_OK
    for error in errors:
        print(f"warning: {error}", file=sys.stderr)
    for name in sorted(spiders):
        print(name)
    return EXIT_OK


def describe(cls: type[Spider]) -> dict[str, Any]:
    """A spider's name, the first line of its docstring, and its arguments: the keyword
    parameters of its __init__ (with their defaults), as `-a NAME=VALUE` takes them."""
    doc = inspect.getdoc(cls) if cls.__doc__ else ""
    params = []
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = None if param.default is param.empty else repr(param.default)
        params.append({"name": param.name, "default": default,
                       "required": param.default is param.empty})
    return {"name": cls.name, "summary": (doc or "").split("\n", 1)[0], "arguments": params,
            "start_urls": list(getattr(cls, "start_urls", []) or [])[:10]}

