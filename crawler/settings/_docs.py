"""What the declarations tell people: the settings table (`settings --markdown`), the
documentation's settings reference and the command-line flags of the settings that have
one."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crawler.settings._model import HINTS, Settings

__all__ = ["Flag", "flags", "settings_reference", "settings_table"]

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
    """The settings as one Markdown table, in declaration order (`settings --markdown`)."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for field in _fields():
        name = "NAME.KEY" if field.name == "plugin" else field.name
        rows.append(f"| `{name}` | {_default(field)} | {_meaning(field)} |")
    return "\n".join(rows) + "\n"


_KINDS = {
    "plugins": "a list of classes or dotted paths",
    "ordered": "`{class or path: order}` (None leaves one out), or a list",
    "handlers": "`{name or scheme: class or path}`",
    "sinks": "`{scheme: class or path}`",
    "feeds": "`{uri: {format, fields, overwrite, indent}}`",
    "rates": "`{name: share from 0 to 1}`",
    "schema": "a pydantic model, a JSON Schema (a dict or a .json file) or "
              "`\"package.module:Name\"`",
    "concurrency": "an integer, or `\"auto\"`",
}
_TYPES = {int: "integer", float: "number", str: "string",
          bool: "boolean (`true`/`false`; on the command line also `1`/`0`, `yes`/`no`)"}


def _type(field: dataclasses.Field[Any]) -> str:
    kind = field.metadata["kind"]
    if kind in _KINDS:
        return _KINDS[kind]
    hint = HINTS.get(field.name, field.type)
    if hint in _TYPES:
        return _TYPES[hint]
    text = str(hint).replace("typing.", "").replace("collections.abc.", "")
    return {"int | None": "integer, or none", "float | None": "number, or none",
            "str | None": "string, or none", "tuple[str, ...]": "a list of strings",
            "tuple[int, ...]": "a list of integers",
            "tuple[str, ...] | None": "a list of strings, or none",
            "Mapping[str, Any]": "a table (mapping)"}.get(text, text)


def _bounds(field: dataclasses.Field[Any]) -> str:
    meta = field.metadata
    if meta["bound"] is not None:
        return str(meta["bound"])
    parts = []
    if meta["ge"] is not None:
        parts.append(f">= {meta['ge']:g}")
    if meta["gt"] is not None:
        parts.append(f"> {meta['gt']:g}")
    if meta["le"] is not None:
        parts.append(f"<= {_limit(meta['le'])}" + (f" ({meta['le_why']})"
                                                   if meta["le_why"] else ""))
    if meta["choices"]:
        parts.append(str(meta["choices_text"] or "one of " + ", ".join(
            f"`{c}`" for c in meta["choices"])))
    return "; ".join(parts)


def _groups() -> dict[str, str]:
    """Each setting's group: the `# -- title ---` comment above it in the declarations."""
    groups, title = {}, ""
    for line in inspect.getsource(Settings).splitlines():
        if heading := re.match(r"\s+# -- (.+?) -+$", line):
            title = re.sub(r" \(crawler/[^)]*\)", "", heading.group(1))
            title = title[:1].upper() + title[1:]
        elif field := re.match(r"    (\w+): ", line):
            groups[field.group(1)] = title
    return groups


def settings_reference() -> str:
    """Every setting as a section of the documentation (MyST Markdown), in declaration
    order under its group, each with an anchor `setting-NAME`: its type, default, bounds,
    Scrapy names, spider attribute, option and help, all read from the declarations."""
    out: list[str] = []
    groups, group = _groups(), None
    for field in _fields():
        meta = field.metadata
        if groups.get(field.name, "") != group:
            group = groups.get(field.name, "")
            out += [f"### {group or 'General'}", ""]
        name = "NAME.KEY" if field.name == "plugin" else field.name
        out += [f"({'setting-' + field.name})=", f"#### `{name}`", "", str(meta["help"]), ""]
        facts = [("type", _type(field)), ("default", _default(field)),
                 ("bounds", _bounds(field))]
        if meta["scrapy"]:
            facts.append(("Scrapy", ", ".join(
                f"`{scrapy.upper()}`" + (f" ({how.lstrip('; ')})" if how else "")
                for scrapy, how in meta["scrapy"].items())))
        if meta["attribute"]:
            facts.append(("spider attribute", f"`{meta['attribute']}`"))
        if meta["flag"]:
            facts.append(("option", ", ".join(f"`{flag}`" for flag in meta["flag"])))
        if meta["note"]:
            facts.append(("note", str(meta["note"])))
        out += [f"- {label}: {value}" for label, value in facts if value]
        out.append("")
    return "\n".join(out)


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
