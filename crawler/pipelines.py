"""Item pipelines: ordered steps every item passes before it is written.

Usage:
    class RequirePrice:
        async def process_item(self, item, spider):
            if not item.get("price"):
                raise DropItem("no price")
            return item

    custom_settings = {"item_pipelines": [RequirePrice]}   # or "myproject.pipelines.RequirePrice"
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any, Protocol

from crawler.exceptions import DropItem, SettingsError

if TYPE_CHECKING:
    from crawler.spider import Spider


class Pipeline(Protocol):
    """`process_item` is required; `open_spider` and `close_spider` are optional."""

    def process_item(self, item: Any, spider: Spider) -> Any:
        """Return the item (possibly changed), or None / raise DropItem to drop it."""


def load_pipelines(specs: tuple[Any, ...]) -> list[Any]:
    """Instantiate pipelines from classes, instances or dotted 'module.Class' paths."""
    pipelines = []
    for spec in specs:
        obj = _import(spec) if isinstance(spec, str) else spec
        instance = obj() if isinstance(obj, type) else obj
        if not callable(getattr(instance, "process_item", None)):
            raise SettingsError(f"item pipeline {spec!r} has no process_item() method")
        pipelines.append(instance)
    return pipelines


def _import(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SettingsError(f"cannot import item pipeline {path!r}: {exc}") from None


async def call_hook(pipeline: Any, hook: str, spider: Spider) -> None:
    """Run an optional open_spider/close_spider hook, sync or async."""
    method = getattr(pipeline, hook, None)
    if method is not None:
        result = method(spider)
        if inspect.isawaitable(result):
            await result


async def process(pipelines: list[Any], item: Any, spider: Spider) -> Any:
    """Pass `item` through every pipeline; raises DropItem when one drops it."""
    for pipeline in pipelines:
        result = pipeline.process_item(item, spider)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            raise DropItem(f"{type(pipeline).__name__} returned None")
        item = result
    return item
