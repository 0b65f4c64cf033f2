"""Storage modes: how a crawl keeps its state, chosen by the settings.

    no job_dir, no frontier   memory (crawler/storage/memory.py): this process, until it ends
    job_dir = DIR             a job directory (jobdir.py): SQLite, resumes after any stop
    frontier = redis://...    a fleet (fleet.py): one Redis frontier for many processes

A mode of your own is registered under its frontier URL's scheme, before the settings
naming it are built:

    from crawler.storage import register_storage
    register_storage("mystore", lambda context, url: MyStorage(context, url))
    # then: python -m crawler run books -s frontier=mystore://somewhere

This module is light (the settings check schemes against it); the modes load when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.frontier import Frontier
    from crawler.storage.base import Storage, StorageContext

__all__ = ["StorageFactory", "build_storage", "register_storage", "storage_schemes"]

StorageFactory = Callable[["StorageContext", str], "Storage"]
"""Builds a storage mode from the crawl's context and the frontier setting's URL."""

_FLEET = "crawler.storage.fleet:FleetStorage"
_FACTORIES: dict[str, StorageFactory | str] = {"redis": _FLEET, "rediss": _FLEET,
                                               "unix": _FLEET}
BUILT_IN = frozenset(_FACTORIES)


def register_storage(scheme: str, factory: StorageFactory) -> None:
    """Make `frontier = SCHEME://...` build its storage with `factory(context, url)`."""
    if not scheme or not scheme.isascii() or not scheme.replace("+", "").isalnum():
        raise ValueError(f"{scheme!r} is not a URL scheme")
    _FACTORIES[scheme.lower()] = factory


def storage_schemes() -> frozenset[str]:
    """The frontier URL schemes a storage mode is registered under."""
    return frozenset(_FACTORIES)


def build_storage(context: StorageContext, frontier: Frontier | None = None) -> Storage:
    """The storage mode the settings name; `frontier`: an in-memory crawl on the caller's
    frontier. StartupError for settings that name two."""
    from crawler.exceptions import StartupError
    from crawler.storage.jobdir import JobStorage
    from crawler.storage.memory import MemoryStorage

    s = context.settings
    named = [what for what, given in (("a job dir", s.job_dir is not None),
                                      ("a shared frontier", s.frontier is not None),
                                      ("a frontier object", frontier is not None)) if given]
    if len(named) > 1:
        if s.job_dir is not None and frontier is not None and s.frontier is None:
            raise StartupError("a job dir keeps its own frontier: pass no frontier")
        raise StartupError("a shared frontier (the frontier setting) keeps the crawl's "
                           "state itself: give no job dir and no other frontier")
    if s.job_dir is None:
        for name, flag in (("recrawl", "--recrawl"), ("changes_file", "--changes"),
                           ("emit_unchanged", "--emit-unchanged"),
                           ("continuous", "--continuous")):
            if getattr(s, name):
                raise StartupError(f"{flag} needs a job, whose history it reads: give "
                                   "--job-dir DIR (recrawls are kept in job dirs only)")
    if s.recrawl_min_interval > s.recrawl_max_interval:
        raise StartupError("setting recrawl_min_interval must be <= recrawl_max_interval")
    if s.job_dir is not None:
        return JobStorage(context)
    if s.frontier is not None:
        scheme = s.frontier.split("://", 1)[0].lower()
        factory = _FACTORIES.get(scheme)
        if factory is None:
            raise StartupError(f"frontier {scheme}:// names no storage mode (registered: "
                               f"{', '.join(sorted(_FACTORIES))})")
        if isinstance(factory, str):
            module, _, name = factory.partition(":")
            factory = getattr(importlib.import_module(module), name)
            assert not isinstance(factory, str)
        return factory(context, s.frontier)
    return MemoryStorage(context, frontier)
