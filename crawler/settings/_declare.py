"""How a setting is declared: its default, type (the annotation), bounds, other rules,
Scrapy names, spider attribute, command-line flag and one-line help, in one `setting(...)`
call beside its annotation (crawler/settings/_model.py). Everything else about a setting
(its checks, the Scrapy-name answers, the CLI flag, the documentation) is derived here
from that declaration."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from crawler.exceptions import SettingsError

__all__ = ["Rule", "check", "check_declared", "setting"]

Rule = tuple[Callable[[Any], bool], str | Callable[[], str]]
"""A check of a value (not None) and the message when it fails ("must be ..."), or what
makes that message."""


def setting(default: Any = None, help: str = "", *, factory: Callable[[], Any] | None = None,
            ge: float | None = None, gt: float | None = None, le: float | None = None,
            le_why: str = "", note: str = "", bound: str | None = None,
            choices: tuple[str, ...] | None = None, choices_text: str | None = None,
            rule: Rule | None = None, kind: str | None = None,
            scrapy: Mapping[str, str] | None = None, attribute: str | None = None,
            flag: tuple[str, ...] = (), metavar: str | None = None, shown: str | None = None,
            compare: bool = True) -> Any:
    """Declare a setting (a dataclass field of Settings).

    `ge`/`gt`: the lowest value ("must be >= 1"; for an optional setting ", or none for
    no limit", then `note`); `le` the highest ("must be <= 10000: `le_why`"); `bound`,
    when given, is the whole message for either; `choices` the values allowed
    (`choices_text` says them); `rule` any other check; `kind` how a mapping or list is
    read (plugins, ordered, sinks, handlers, feeds); `scrapy` Scrapy's names for it
    ({name: how the meaning differs}); `attribute` the spider attribute Scrapy honours
    for it; `flag` its command-line option; `shown` its default as the documentation shows it."""
    metadata = {"help": help, "ge": ge, "gt": gt, "le": le, "le_why": le_why, "note": note,
                "bound": bound, "choices": choices, "choices_text": choices_text,
                "rule": rule, "kind": kind, "scrapy": dict(scrapy or {}),
                "attribute": attribute, "flag": flag, "metavar": metavar, "shown": shown}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata, hash=compare)
    return dataclasses.field(default=default, metadata=metadata, hash=compare)


def optional(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def check(name: str, ok: bool, message: str) -> None:
    """SettingsError naming the setting ("setting 'x' must be ...") unless `ok`."""
    if not ok:
        raise SettingsError(f"setting {name!r} {message}")


def check_declared(name: str, value: Any, meta: Mapping[str, Any], hint: Any) -> None:
    """The checks a declaration makes; SettingsError naming the setting."""
    check(name, not isinstance(value, float) or math.isfinite(value),
          "must be a finite number")
    if meta["kind"] == "concurrency":
        check(name, value == "auto" or (isinstance(value, int) and not isinstance(value, bool)),
              "must be a number or 'auto'")
    if value is None or value == "auto":
        return
    low, op = (meta["ge"], ">=") if meta["ge"] is not None else (meta["gt"], ">")
    if low is not None:
        check(name, value >= low if op == ">=" else value > low, meta["bound"] or (
            f"must be {op} {low:g}" + (", or none for no limit" if optional(hint) else "")
            + meta["note"]))
    if meta["le"] is not None:
        check(name, value <= meta["le"],
              meta["bound"] or f"must be <= {meta['le']:g}: {meta['le_why']}")
    choices = meta["choices"]
    if choices is not None:
        check(name, value in choices,
              meta["choices_text"] or f"must be one of {', '.join(choices)}")
    rule = meta["rule"]
    if rule is not None and not rule[0](value):
        check(name, False, rule[1]() if callable(rule[1]) else rule[1])
