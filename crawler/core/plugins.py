"""Building and calling user plugins (pipelines, middlewares, extensions, download
handlers, sinks): one helper for each.

`build(spec, crawler)` turns a class, an instance or a dotted "module.Class" path into an
object, calling `from_crawler(crawler)` when the class defines it (Scrapy's
`build_from_crawler`), so a plugin can read `crawler.settings`, `crawler.stats` and
`crawler.spider`. `call(fn, ...)` calls user plugin code: `async def` on the event loop
(`is_async` is the one place that tells them apart), plain functions in the crawl's
`PluginThread`, so that a pipeline's blocking driver or `time.sleep` never holds the loop,
as Starlette runs sync endpoints. `until(awaitable, event)` awaits user code that a stop may
cut short, so a hook that never returns cannot hold the crawl.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import queue
import threading
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from crawler.exceptions import NotConfigured, StartupError, UsageError

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = [
    "Interrupted", "PluginThread", "build", "call", "describe", "is_async", "load_object",
    "start", "until",
]

logger = logging.getLogger(__name__)

_STILL_WAITING = 10.0  # seconds before saying which hook the crawl is waiting for


class Interrupted(Exception):
    """The event fired before the awaited user code finished; that code was cancelled."""


def load_object(path: str, what: str) -> Any:
    """The object a dotted path names ("package.module.Name")."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise StartupError(f"cannot import {what} {path!r}: {exc}") from None


def build(spec: Any, crawler: CrawlerProtocol, what: str) -> Any:
    """An instance from a class, an instance or a dotted path; `from_crawler(crawler)` is
    used when the class defines it. None when it raises NotConfigured (left out)."""
    obj = load_object(spec, what) if isinstance(spec, str) else spec
    if not isinstance(obj, type):
        return obj
    factory = getattr(obj, "from_crawler", None)
    try:
        return factory(crawler) if callable(factory) else obj()
    except NotConfigured:
        return None
    except (StartupError, UsageError):  # the plugin's own one-line reason, or a setting's
        raise
    except Exception as exc:
        hint = "" if callable(factory) else \
            " (a plugin that needs arguments gets them in a from_crawler(crawler) classmethod)"
        raise StartupError(f"cannot build {what} {obj.__name__}: {describe(exc)}{hint}") \
            from exc


def describe(exc: BaseException) -> str:
    """`Type: message (file:line)` of where user code raised: one line for the CLI."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def is_async(fn: Any) -> bool:
    """Whether `fn` is declared async: `async def`, through functools.partial too, or an
    object whose `__call__` is."""
    return inspect.iscoroutinefunction(fn) or \
        inspect.iscoroutinefunction(getattr(type(fn), "__call__", None))  # noqa: B004


class PluginThread:
    """Runs sync plugin code, one call at a time and in order, in a daemon thread of its
    own. Calls never overlap (plugins need not be thread-safe among themselves), and a call
    stuck forever cannot keep the process from exiting. `close()` lets the thread end.

    Usage: `result = await thread.run(pipeline.process_item, item, spider)`.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="crawler-plugins",
                                            daemon=True)
            self._thread.start()
        self._jobs.put((loop, future, fn, args))
        return future

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, fn, args = job
            try:
                outcome: tuple[bool, Any] = (True, fn(*args))
            except Exception as exc:
                outcome = (False, exc)
            except BaseException as exc:  # SystemExit in a pipeline: an error, not ours
                outcome = (False, RuntimeError(f"{type(exc).__name__} raised in {fn!r}"))
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # abandoned by a stop
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def start(fn: Any, *args: Any, thread: PluginThread | None = None) -> Any:
    """Call user code: a sync function in `thread` (giving a future), anything else (or
    everything, without a thread) directly, giving its value or its awaitable."""
    if thread is not None and not is_async(fn):
        return thread.run(fn, *args)
    return fn(*args)


async def call(fn: Any, *args: Any, stop: asyncio.Event | None = None, what: str = "",
               thread: PluginThread | None = None) -> Any:
    """Call a user function (see `start`). The call is abandoned if `stop` fires first
    (raising Interrupted), and one that runs long is named in a warning."""
    what = what or getattr(fn, "__qualname__", repr(fn))
    result = start(fn, *args, thread=thread)
    for _ in range(2):  # the thread's future, then a coroutine a sync function returned
        if inspect.isawaitable(result):
            result = await until(result, stop, what)
    return result


async def until(awaitable: Awaitable[Any], stop: asyncio.Event | None, what: str) -> Any:
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    waiting = {task} | ({stopper} if stopper is not None else set())
    try:
        while True:
            done, _ = await asyncio.wait(waiting, timeout=_STILL_WAITING,
                                         return_when=asyncio.FIRST_COMPLETED)
            if done:
                break
            logger.warning("still waiting for %s (a second Ctrl-C stops now)", what)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        if stopper is not None:
            stopper.cancel()
    if task in done:
        return task.result()
    task.cancel()  # not awaited: code that ignores cancellation must not hold us
    task.add_done_callback(_retrieve)
    raise Interrupted(what)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
