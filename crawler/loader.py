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


def discover(root: Path) -> tuple[dict[str, type[Spider]], list[str]]:
    """Spiders by name in `root/spiders/`, and the import errors met on the way."""
    package_dir = root / "spiders"
    if not (package_dir / "__init__.py").is_file():
        return {}, [f"no spiders/ package in {root} (a folder with an __init__.py)"]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    found: dict[str, type[Spider]] = {}
    errors: list[str] = []
    try:
        package = importlib.import_module("spiders")
    except Exception as exc:
        return {}, [f"cannot import spiders/: {type(exc).__name__}: {exc}"]
    for info in pkgutil.iter_modules(package.__path__, "spiders."):
        try:
            module = importlib.import_module(info.name)
        except Exception as exc:
            errors.append(f"cannot import {info.name}: {type(exc).__name__}: {exc}")
            continue
        for cls in _spiders_in(module):
            other = found.get(cls.name)
            if other is not None and other is not cls:
                errors.append(f"spider name {cls.name!r} is used by {other.__module__} "
                              f"and {cls.__module__}")
            found[cls.name] = cls
    return found, errors


def load_spider(target: str, root: Path | None = None) -> type[Spider]:
    """A spider class from a name in `root/spiders/` or from a path to a .py file."""
    if target.endswith(".py"):
        return _from_file(Path(target))
    spiders, errors = discover(root or Path.cwd())
    if target in spiders:
        return spiders[target]
    known = ", ".join(sorted(spiders)) or "none"
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise UsageError(f"unknown spider {target!r}; available: {known}{detail}")


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
        raise UsageError(f"cannot import {path}: {type(exc).__name__}: {exc}") from None
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
