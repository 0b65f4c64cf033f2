"""What the declarations tell people: the README's settings table and the command-line
flags of the settings that have one."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crawler.settings._model import HINTS, Settings

__all__ = ["Flag", "flags", "settings_table"]

_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Flag:
    """A setting's command-line option."""

    name: str  # the setting
    options: tuple[str, ...]  # "--job-dir", ...
    metavar: str | None
    help: str
    switch: bool  # a bool: the option takes no value and sets it true


def _fields() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Settings))


def _default(field: dataclasses.Field[Any]) -> str:
    meta = field.metadata
    if meta["shown"] is not None:
        return str(meta["shown"])
    value = field.default
    if value is None:
        return "unset"
    if value == ():
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, str) and (value.startswith(".") or "/" in value):
        return f"`{value}`"
    return str(value)


def _limit(value: float) -> str:
    if value == _DAY:
        return "a day"
    if value == 1 << 30:
        return "1 GiB"
    return f"{int(value):,}"


def _meaning(field: dataclasses.Field[Any]) -> str:
    meta = field.metadata
    text = str(meta["help"])
    if meta["le"] is not None and meta["bound"] is None:
        text += f" (at most {_limit(meta['le'])})"
    flag = meta["flag"]
    if flag:
        text += f" (`{flag[-1]}`)"
    return text


def settings_table() -> str:
    """The README's settings table, in declaration order."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for field in _fields():
        name = "NAME.KEY" if field.name == "plugin" else field.name
        rows.append(f"| `{name}` | {_default(field)} | {_meaning(field)} |")
    return "\n".join(rows) + "\n"


def flags() -> list[Flag]:
    """The settings given by an option of their own (`--job-dir DIR`), in order."""
    out = []
    for field in _fields():
        meta: Mapping[str, Any] = field.metadata
        if meta["flag"]:
            out.append(Flag(field.name, tuple(meta["flag"]), meta["metavar"],
                            f"{meta['help']} (the {field.name} setting)",
                            HINTS[field.name] is bool))
    return out
