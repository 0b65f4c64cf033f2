"""Monitors: checks of a crawl that fail it when it went wrong (Spidermon's job, built in).

Each is a setting, in the project file or a spider's `custom_settings` (or `-s`):

    monitor_min_items / monitor_min_pages      at least this many (checked at the end)
    monitor_max_error_rate                     failed requests / requests that ended
    monitor_max_error_rates                    the same, per failure kind: {"timeout": 0.05}
    monitor_field_coverage                     share of items with a field set: {"price": 0.95}
    monitor_item_schema                        a pydantic model or a JSON Schema every item
    monitor_max_invalid_items                  ... may fail for this share of items (0)
    monitor_max_duration                       seconds
    monitor_finish_reasons                     the finish reasons that pass ("finished")
    monitor_checks                             your own: functions of the stats dict

They are evaluated every `monitor_interval` seconds while the crawl runs (a check that fails
then is logged once, and shown on the status page) and at the end, when their results go
into the stats (`monitors`), the summary and the notifications (crawler/extensions/notify.py:
a JSON or Slack webhook, email over SMTP). A failed monitor makes `run` exit with 3.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from crawler.core.plugins import describe, load_object
from crawler.exceptions import NotConfigured, SettingsError
from crawler.outputs.items import encode, item_fields
from crawler.signals import Signal
from crawler.tasks import cancel_and_wait

if TYPE_CHECKING:
    from crawler.core.state import CrawlerProtocol

__all__ = ["MonitorResult", "Monitors", "load_schema"]

logger = logging.getLogger(__name__)

_SCHEMA_ERRORS_KEPT = 5  # the first few invalid items' errors, in the stats


@dataclass(frozen=True, slots=True)
class MonitorResult:
    """One check: its name, whether it passed, and what it saw against what it allows."""

    name: str  # "min_items", "error_rate/timeout", "field_coverage/price", ...
    passed: bool
    message: str  # "12 items, at least 10 expected"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Monitors:
    """The built-in extension that counts what the checks need and evaluates them."""

    def __init__(self, crawler: CrawlerProtocol) -> None:
        self._crawler = crawler
        s = self._settings = crawler.settings
        self._schema = load_schema(s.monitor_item_schema) \
            if s.monitor_item_schema is not None else None
        self._fields = dict(s.monitor_field_coverage)
        self._checks = [load_object(c, "monitor check") if isinstance(c, str) else c
                        for c in s.monitor_checks]
        self._field_counts: Counter[str] = Counter()
        self._items_seen = 0
        self._invalid = 0
        self._schema_errors: list[str] = []
        self._started = 0.0
        self._task: asyncio.Task[None] | None = None
        self._failing: set[str] = set()  # failing at the last periodic evaluation
        self.results: list[MonitorResult] = []

    @classmethod
    def from_crawler(cls, crawler: CrawlerProtocol) -> Monitors:
        if not declared(crawler.settings):
            raise NotConfigured
        ext = cls(crawler)
        signals = crawler.signals
        signals.connect(Signal.SPIDER_OPENED, ext.spider_opened)
        signals.connect(Signal.SPIDER_CLOSED, ext.spider_closed)
        if ext._fields or ext._schema is not None:
            signals.connect(Signal.ITEM_SCRAPED, ext.item_scraped)
        return ext

    # -- counting --------------------------------------------------------------------------

    def item_scraped(self, item: Any) -> None:
        fields = item_fields(item)
        self._items_seen += 1
        for name in self._fields:
            if _is_set(fields.get(name)):
                self._field_counts[name] += 1
        if self._schema is not None:
            error = self._schema(fields)
            if error is not None:
                self._invalid += 1
                if len(self._schema_errors) < _SCHEMA_ERRORS_KEPT:
                    self._schema_errors.append(error)

    # -- evaluating ------------------------------------------------------------------------

    def spider_opened(self) -> None:
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._periodic(), name="monitors")

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self._settings.monitor_interval)
            self._publish(self.evaluate(final=False), final=False)

    async def spider_closed(self, reason: str) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._publish(self.evaluate(final=True, reason=reason), final=True)
        failed = [r for r in self.results if not r.passed]
        for result in failed:
            logger.error("monitor %s failed: %s", result.name, result.message)
        from crawler.extensions.notify import notify

        await notify(self._settings, self._crawler.stats, self.results,
                     spider=self._crawler.spider.name, reason=reason)

    def _publish(self, results: list[MonitorResult], *, final: bool) -> None:
        self.results = results
        stats = self._crawler.stats
        stats.monitors = [r.as_dict() for r in results]
        if self._schema_errors:
            stats.counters["monitors/invalid_items"] = self._invalid
        failing = {r.name for r in results if not r.passed}
        for name in sorted(failing - self._failing if not final else ()):
            message = next(r.message for r in results if r.name == name)
            logger.warning("monitor %s is failing: %s", name, message)
        self._failing = failing

    def evaluate(self, *, final: bool, reason: str = "") -> list[MonitorResult]:
        """The checks as of now; those that only mean something at the end (minimums,
        the finish reason) only when `final`."""
        s, stats = self._settings, self._crawler.stats
        out: list[MonitorResult] = []
        pages, items, failed = stats.pages, stats.items, stats.requests_failed
        if final and s.monitor_min_items is not None:
            out.append(MonitorResult("min_items", items >= s.monitor_min_items,
                                     f"{items} items, at least {s.monitor_min_items} expected"))
        if final and s.monitor_min_pages is not None:
            out.append(MonitorResult("min_pages", pages >= s.monitor_min_pages,
                                     f"{pages} pages, at least {s.monitor_min_pages} expected"))
        # requests that ended: pages (an HTTP error status is one, and a failure) and
        # failures without a response
        answered = sum(v for k, v in stats.errors.items() if str(k).startswith("http_"))
        finished = pages + max(failed - answered, 0)
        if s.monitor_max_error_rate is not None:
            out.append(_rate("error_rate", failed, finished, s.monitor_max_error_rate,
                             "requests failed"))
        for kind, limit in sorted(s.monitor_max_error_rates.items()):
            out.append(_rate(f"error_rate/{kind}", stats.errors.get(kind, 0), finished, limit,
                             f"requests failed with {kind}"))
        seen = self._items_seen
        for name, least in sorted(self._fields.items()):
            share = self._field_counts[name] / seen if seen else 1.0
            out.append(MonitorResult(
                f"field_coverage/{name}", share >= least,
                f"{self._field_counts[name]} of {seen} items ({share:.1%}) have {name!r} set, "
                f"at least {least:.1%} expected"))
        if self._schema is not None:
            share = self._invalid / seen if seen else 0.0
            first = f"; first: {self._schema_errors[0]}" if self._schema_errors else ""
            out.append(MonitorResult(
                "item_schema", share <= s.monitor_max_invalid_items,
                f"{self._invalid} of {seen} items ({share:.1%}) fail the schema, at most "
                f"{s.monitor_max_invalid_items:.1%} allowed{first}"))
        if s.monitor_max_duration is not None:
            elapsed = time.monotonic() - self._started
            out.append(MonitorResult(
                "max_duration", elapsed <= s.monitor_max_duration,
                f"{elapsed:.1f} s, at most {s.monitor_max_duration:g} s allowed"))
        if final and s.monitor_finish_reasons:
            expected = ", ".join(s.monitor_finish_reasons)
            out.append(MonitorResult("finish_reason", reason in s.monitor_finish_reasons,
                                     f"finished with {reason!r}, expected {expected}"))
        if final and self._checks:
            view = {**stats.as_dict(), "finish_reason": reason}
            out += [_custom(check, view) for check in self._checks]
        return out


def _custom(check: Any, stats: dict[str, Any]) -> MonitorResult:
    """A check of the `monitor_checks` setting: its None passes, its text fails it, and so
    does an exception (named)."""
    name = getattr(check, "__name__", type(check).__name__)
    try:
        problem = check(stats)
    except Exception as exc:
        return MonitorResult(name, False, f"the check raised {describe(exc)}")
    return MonitorResult(name, problem is None, "ok" if problem is None else str(problem))


def declared(settings: Any) -> bool:
    """Whether any monitor is declared."""
    return any(v not in (None, (), {}) for v in (
        settings.monitor_min_items, settings.monitor_min_pages,
        settings.monitor_max_error_rate, settings.monitor_max_error_rates,
        settings.monitor_field_coverage, settings.monitor_item_schema,
        settings.monitor_max_duration, settings.monitor_finish_reasons,
        settings.monitor_checks))


def _rate(name: str, count: int, total: int, limit: float, what: str) -> MonitorResult:
    share = count / total if total else 0.0
    return MonitorResult(name, share <= limit, f"{count} of {total} {what} ({share:.1%}), at "
                         f"most {limit:.1%} allowed")


def _is_set(value: Any) -> bool:
    """A field counts as set unless missing, None, or an empty string or container."""
    if value is None:
        return False
    if isinstance(value, str | bytes | list | tuple | dict | set):
        return bool(value.strip() if isinstance(value, str) else value)
    return True


def load_schema(spec: Any) -> Any:
    """A checker of item fields (None when valid, else the first error, in one line) from
    a pydantic model class, a JSON Schema (a dict, or a .json file), or an import path
    ("myproject.items:Product") to either. SettingsError when it cannot be had."""
    where = spec
    if isinstance(spec, str):
        if spec.endswith(".json"):
            try:
                spec = orjson.loads(Path(spec).read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                raise SettingsError(f"setting 'monitor_item_schema': cannot read {where}: "
                                    f"{exc}") from None
        else:
            module, _, name = spec.partition(":") if ":" in spec else spec.rpartition(".")
            try:
                spec = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError) as exc:
                raise SettingsError(f"setting 'monitor_item_schema': cannot import {where!r}: "
                                    f"{exc}") from None
    if isinstance(spec, type) and hasattr(spec, "model_validate"):
        return _pydantic_checker(spec)
    if isinstance(spec, dict):
        return _json_schema_checker(spec, where)
    raise SettingsError("setting 'monitor_item_schema' expects a pydantic model, a JSON Schema "
                        f"(a dict or a .json file) or an import path to one, got {where!r}")


def _pydantic_checker(model: Any) -> Any:
    from pydantic import ValidationError

    def check(fields: dict[str, Any]) -> str | None:
        try:
            model.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "item"
            return f"{where}: {first.get('msg', 'invalid')}"
        return None

    return check


def _json_schema_checker(schema: dict[str, Any], where: Any) -> Any:
    try:
        import jsonschema
    except ImportError:
        raise SettingsError("setting 'monitor_item_schema': a JSON Schema needs jsonschema: "
                            "pip install 'crawler[monitors]'") from None
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        name = where if isinstance(where, str) else "the schema"
        raise SettingsError(f"setting 'monitor_item_schema': {name} is not a valid JSON "
                            f"Schema: {exc.message}") from None
    validator = cls(schema)

    def check(fields: dict[str, Any]) -> str | None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(
            orjson.loads(encode(fields))))  # as the outputs write it (dates as text, ...)
        if error is None:
            return None
        path = ".".join(str(p) for p in error.absolute_path) or "item"
        return f"{path}: {error.message}"

    return check
