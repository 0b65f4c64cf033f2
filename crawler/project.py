"""The project: the directory whose `spiders/` the commands use, and its settings file.

Found from the current directory upwards, as Scrapy finds scrapy.cfg: the first directory
with a `crawler.toml`, or a `pyproject.toml` with a `[tool.crawler]` table. Its keys are
settings (checked like `-s`, typos included); a nested table is a plugin's namespace
(`[tool.crawler.myext]` api_key = ... is the setting "myext.api_key").

Precedence: defaults < project file < spider attributes and custom_settings < `-s`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.exceptions import SettingsError, UsageError
from crawler.settings import Settings, known_setting

__all__ = ["Project", "find_project"]


@dataclass(frozen=True)
class Project:
    """Where the project is, the file its settings came from (None: no file), and them."""

    root: Path
    path: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def base(self) -> Settings:
        """The defaults with the project file's settings applied."""
        try:
            return Settings().merge(self.settings)
        except SettingsError as exc:
            raise UsageError(f"{self.path}: {exc}") from None


def find_project(start: Path | None = None) -> Project:
    """The project containing `start` (default: the current directory); with no settings
    file anywhere up the tree, `start` itself with no settings."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        for name, table in (("crawler.toml", ()), ("pyproject.toml", ("tool", "crawler"))):
            path = directory / name
            if not path.is_file():
                continue
            data: Any = _load(path)
            for key in table:
                data = data.get(key) if isinstance(data, dict) else None
            if data is None:
                continue  # a pyproject.toml without [tool.crawler]
            if not isinstance(data, dict):
                raise UsageError(f"{path}: [{'.'.join(table)}] must be a table")
            return Project(directory, path, _flatten(data, path))
    return Project(here)


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: not UTF-8 text (byte {exc.start})") \
            from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None


def _flatten(table: dict[str, Any], path: Path, prefix: str = "") -> dict[str, Any]:
    """Settings by name: a nested table that is not a setting's value becomes dotted names
    (a plugin's namespace)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not (not prefix and known_setting(key)):
            out.update(_flatten(value, path, f"{name}."))
        else:
            out[name] = value
    return out
