"""`settings [--get NAME] [--markdown]`: every setting with its default and meaning, or
one setting's value in this project (Scrapy's `scrapy settings --get`)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from crawler.commands.common import EXIT_OK, pairs
from crawler.exceptions import UsageError
from crawler.project import find_project
from crawler.settings import Settings, known_setting, settings_table


def add(commands: Any) -> None:
    """The `settings` command's options."""
    parser = commands.add_parser("settings", help="list the settings, or show one's value")
    parser.add_argument("--get", metavar="NAME",
                        help="print NAME's value in this project (after -s)")
    parser.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting; repeatable")
    parser.add_argument("--markdown", action="store_true",
                        help="every setting as one Markdown table")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_table(), end="")
        return EXIT_OK
    settings = find_project().base().merge_strings(pairs(args.set, "-s"))
    if args.get is not None:
        if not known_setting(args.get) and "." not in args.get:
            Settings().merge({args.get: None})  # the error naming what it may have meant
            raise UsageError(f"unknown setting {args.get!r}")
        print(_text(settings.get(args.get)))
        return EXIT_OK
    for field in dataclasses.fields(Settings):
        if field.name != "plugin":
            print(f"{field.name} = {_text(getattr(settings, field.name))}\n"
                  f"    {field.metadata['help']}")
    return EXIT_OK


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v if not isinstance(v, tuple) else "=".join(map(str, v)))
                        for v in value)
    return str(value)
