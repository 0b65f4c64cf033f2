"""Find spiders: by `name` in the `spiders/` package of a directory, or in a .py file."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from crawler.exceptions import UsageError
from crawler.spider import Spider
from crawler.spiders import BUILTIN

__all__ = ["discover", "load_spider"]


def discover(root: Path) -> tuple[dict[str, type[Spider]], list[str]]:
    """Spiders by name in `root/spiders/`, and the problems met on the way (import errors,
    a name used twice: such a name maps to none of its spiders)."""
    package_dir = root / "spiders"
    if not (package_dir / "__init__.py").is_file():
        return {}, [f"no spiders/ package in {root} (a folder with an __init__.py)"]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    found: dict[str, list[type[Spider]]] = {}
    errors: list[str] = []
    try:
        package = importlib.import_module("spiders")
    except Exception as exc:
        return {}, [f"cannot import spiders/: {type(exc).__name__}: {exc}"]
    for info in pkgutil.iter_modules(package.__path__, "spiders."):
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:
            errors.append(f"cannot import {info.name}: {_one_line(exc)}")
            continue
        for cls in _spiders_in(module):
            found.setdefault(cls.name, []).append(cls)
    spiders: dict[str, type[Spider]] = {}
    for name, classes in found.items():
        if len(classes) > 1:
            where = " and ".join(f"{c.__qualname__} in {_file_of(c)}" for c in classes)
            errors.append(f"spider name {name!r} is used by {where}: rename one")
        else:
            spiders[name] = classes[0]
    return spiders, errors


def load_spider(target: str, root: Path | None = None) -> tuple[type[Spider], list[str]]:
    """A spider class from a name in `root/spiders/` or from a path to a .py file, and
    warnings about other spider files (import errors)."""
    if target.endswith(".py"):
        return _from_file(Path(target)), []
    spiders, errors = discover(root or Path.cwd())
    if target in spiders:
        return spiders[target], errors
    if target in BUILTIN:  # the project's own spider of that name came first
        module, _, cls = BUILTIN[target].rpartition(".")
        return getattr(importlib.import_module(module), cls), []
    clash = next((e for e in errors if e.startswith(f"spider name {target!r} ")), None)
    if clash is not None:
        raise UsageError(clash)
    known = (", ".join(sorted(spiders)) or "none") + f"; built in: {', '.join(BUILTIN)}"
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise UsageError(f"unknown spider {target!r}; available: {known}{detail}")


def _file_of(cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    return str(Path(path).relative_to(Path.cwd())) if path and Path(path).is_relative_to(
        Path.cwd()) else str(path or cls.__module__)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({Path(exc.filename or '?').name}, line {exc.lineno})"
    return f"{type(exc).__name__}: {exc}"


def _from_file(path: Path) -> type[Spider]:
    if not path.is_file():
        raise UsageError(f"no such spider file: {path}")
    name = f"_crawler_spider_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UsageError(f"cannot import {path}: {_one_line(exc)}") from None
    spiders = _spiders_in(module)
    if len(spiders) != 1:
        names = ", ".join(c.__name__ for c in spiders) or "none"
        raise UsageError(f"{path} must define exactly one Spider subclass with a name "
                         f"(found: {names})")
    return spiders[0]


def _spiders_in(module: ModuleType) -> list[type[Spider]]:
    return [cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, Spider) and cls is not Spider and cls.name
            and cls.__module__ == module.__name__]
