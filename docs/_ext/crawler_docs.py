"""The references the documentation generates from the code, never kept by hand.

Before each build this writes `docs/_generated/`: the settings (from their declarations
in `crawler/settings/_model.py`), the command line (from the argument parser), the
signals (from `crawler.signals.Signal`), the failure kinds (from
`crawler.exceptions.Kind`) and every usage and startup error message (from the source);
the reference pages include them.
"""

from __future__ import annotations

import argparse
import ast
import enum
import inspect
import io
import re
import tokenize
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.commands.main import _parser
from crawler.exceptions import Kind
from crawler.settings._docs import settings_reference
from crawler.signals import Signal

if TYPE_CHECKING:  # the generators run without Sphinx too (tests/test_docs.py)
    from sphinx.application import Sphinx

_MARKDOWN = re.compile(r"([*<\[\]|])")


def _plain(text: str) -> str:
    """Help text written for a terminal, as Markdown that shows it as it is."""
    return _MARKDOWN.sub(r"\\\1", " ".join(text.split()))


def enum_comments(cls: type[enum.Enum]) -> dict[str, str]:
    """Each member's comment in the class's source: the one on its line and the comment
    lines that follow it (how signals and kinds document themselves)."""
    source = inspect.getsource(cls)
    comments: dict[str, str] = {}
    member = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in cls.__members__:
            member = tok.string
        elif tok.type == tokenize.COMMENT and member is not None:
            text = tok.string.lstrip("#").strip()
            comments[member] = f"{comments[member]} {text}" if member in comments else text
        elif tok.type == tokenize.NAME and tok.start[1] == 4:
            member = None
    return comments


def signals_reference() -> str:
    rows = ["| signal | arguments | sent |", "|---|---|---|"]
    comments = enum_comments(Signal)
    for member in Signal:
        arguments, _, when = comments.get(member.name, "").partition(";")
        rows.append(f"| `{member.value}` (`Signal.{member.name}`) | {arguments.strip()} "
                    f"| {when.strip()} |")
    return "\n".join(rows) + "\n"


def kinds_reference() -> str:
    rows = ["| kind | meaning |", "|---|---|"]
    comments = enum_comments(Kind)
    for member in Kind:
        rows.append(f"| `{member.value}` (`Kind.{member.name}`) | "
                    f"{comments.get(member.name, '')} |")
    rows.append("| `http_<status>` | a response whose status the spider does not handle "
                "(`http_kind(404) == \"http_404\"`) |")
    return "\n".join(rows) + "\n"


def _option(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if action.option_strings:
        metavar = "" if action.nargs == 0 else \
            " " + formatter._format_args(action, action.dest.upper())
        names = ", ".join(f"`{option}{metavar}`" for option in action.option_strings)
    else:
        names = f"`{formatter._format_args(action, action.dest)}`"
    text = formatter._expand_help(action) if action.help else ""
    return f"{names}\n: {_plain(text)}\n"


def cli_reference() -> str:
    parser = _parser()
    commands = next(a for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction))
    summaries = {a.dest: a.help or "" for a in commands._choices_actions}
    out = []
    for name, sub in commands.choices.items():
        formatter = sub._get_formatter()
        out += [f"(cli-{name})=", f"### `{name}`", "", _plain(summaries.get(name, "")).capitalize()
                + ".", "", "```text", sub.format_usage().strip(), "```", ""]
        if sub.description:
            out += ["```text", sub.description.strip(), "```", ""]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            out.append(_option(action, formatter))
        if sub.epilog:
            out += ["```text", sub.epilog.strip(), "```", ""]
    return "\n".join(out)


_ERRORS = frozenset({"UsageError", "SettingsError", "StartupError", "OutputError"})  # exit 2
_PACKAGE = Path(__file__).resolve().parents[2] / "crawler"


def _template(node: ast.expr) -> str | None:
    """A message as written in the source, its computed parts as `…`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "…"
                       for part in node.values)
    return None


def error_messages() -> dict[str, list[tuple[str, str]]]:
    """Every message the crawler raises as a usage or startup error (the `crawler: error:`
    lines of exit code 2), by the part of the package that raises it: (error, message)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(_PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in _ERRORS and node.args):
                continue
            message = _template(node.args[0])
            if message and re.search(r"[A-Za-z]{3}", message):  # not "…: …" alone
                part = path.relative_to(_PACKAGE.parent).parent.as_posix()
                entry = (node.func.id, " ".join(message.split()))
                if entry not in found.setdefault(part, []):
                    found[part].append(entry)
    return found


_PARTS = {  # the package's parts, as a user meets their errors
    "crawler": "Projects, spiders and the project file",
    "crawler/commands": "The command line",
    "crawler/core": "Starting a crawl: start URLs and plugins",
    "crawler/settings": "Settings",
    "crawler/outputs": "Outputs",
    "crawler/storage": "Job directories and fleets",
    "crawler/frontier": "Job directories and fleets",
    "crawler/handlers": "Download handlers, the browser and the HTTP stacks",
    "crawler/middlewares": "Middlewares, sessions and proxies",
    "crawler/extensions": "Monitors and the status page",
    "crawler/service": "The crawl service",
    "crawler/spiders": "Built-in spiders",
}


def errors_reference() -> str:
    grouped: dict[str, list[tuple[str, str]]] = {}
    for part, messages in error_messages().items():
        grouped.setdefault(_PARTS.get(part, part), []).extend(messages)
    out = []
    for title, messages in grouped.items():
        out += [f"### {title}", "", "| error | message |", "|---|---|"]
        out += [f"| {error} | {_plain(message)} |" for error, message in messages]
        out.append("")
    return "\n".join(out)


def _write(directory: Path, name: str, text: str) -> None:
    path = directory / name
    if not path.exists() or path.read_text() != text:  # unchanged: no rebuild
        path.write_text(text)


def generate(app: Sphinx) -> None:
    directory = Path(app.srcdir) / "_generated"
    directory.mkdir(exist_ok=True)
    _write(directory, "settings.md", settings_reference())
    _write(directory, "cli.md", cli_reference())
    _write(directory, "signals.md", signals_reference())
    _write(directory, "kinds.md", kinds_reference())
    _write(directory, "errors.md", errors_reference())


def usage_blocks(app: Sphinx, what: str, name: str, obj: object, options: object,
                 lines: list[str]) -> None:
    """A docstring's `Usage:` section (the code under it, indented) as a literal block."""
    for i, line in enumerate(lines):
        if line.strip() == "Usage:" and i + 1 < len(lines) and lines[i + 1][:1] == " ":
            lines[i] = line.replace("Usage:", "Usage::")
            lines.insert(i + 1, "")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-docstring", usage_blocks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
