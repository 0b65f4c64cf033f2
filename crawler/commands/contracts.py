"""Spider contracts: checks written in callback docstrings, run by `python -m crawler check`
(Scrapy's contracts, same lines).

    async def parse_book(self, response):
        \"\"\"One item per book page.

        @url http://127.0.0.1:8000/catalogue/a-book-1/index.html
        @cb_kwargs {"source": "check"}
        @meta {"page": 1}
        @returns items 1 1
        @returns requests 0 2
        @scrapes title price
        \"\"\"

`@url` is required; `@returns items|requests MIN [MAX]` bounds what the callback yields for
that page; `@scrapes FIELD...` requires every item to have those fields.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from crawler.commands.probe import Level, ProbeRequest, ProbeResult
from crawler.exceptions import CrawlerError, UsageError
from crawler.outputs.items import is_item, item_fields
from crawler.spider import Spider

__all__ = ["Contract", "contracts_of", "judge"]


@dataclass
class Contract:
    """One callback's contract lines."""

    method: str
    url: str
    meta: dict[str, Any] = field(default_factory=dict)
    cb_kwargs: dict[str, Any] = field(default_factory=dict)
    returns: list[tuple[str, int, int | None]] = field(default_factory=list)
    scrapes: list[str] = field(default_factory=list)

    def request(self) -> ProbeRequest:
        return ProbeRequest(self.url, self.method, meta=self.meta, cb_kwargs=self.cb_kwargs,
                            key=self.method)


def contracts_of(spider_cls: type[Spider]) -> list[Contract]:
    """The contracts in `spider_cls`'s callback docstrings; UsageError for a malformed
    line (naming the method and the line)."""
    found = []
    for name, method in inspect.getmembers(spider_cls, callable):
        doc = inspect.getdoc(method) or ""
        lines = [line.strip() for line in doc.splitlines() if line.strip().startswith("@")]
        if not lines or name.startswith("__"):
            continue
        found.append(_parse(spider_cls, name, lines))
    return found


def _parse(spider_cls: type[Spider], method: str, lines: list[str]) -> Contract:
    where = f"{spider_cls.__name__}.{method}"
    url = None
    contract = Contract(method, "")
    for line in lines:
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            if word == "@url":
                url = rest
            elif word in ("@meta", "@cb_kwargs"):
                value = orjson.loads(rest)
                if not isinstance(value, dict):
                    raise ValueError("expects a JSON object")
                setattr(contract, word[1:], value)
            elif word == "@returns":
                contract.returns.append(_returns(rest))
            elif word == "@scrapes":
                if not rest:
                    raise ValueError("expects field names")
                contract.scrapes += rest.split()
            else:
                raise ValueError("unknown contract (known: @url, @meta, @cb_kwargs, "
                                 "@returns, @scrapes)")
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise UsageError(f"{where}: bad contract line {line!r}: {exc}") from None
    if not url:
        raise UsageError(f"{where}: contracts need an @url line")
    contract.url = url
    return contract


def _returns(text: str) -> tuple[str, int, int | None]:
    parts = text.split()
    if not 2 <= len(parts) <= 3:
        raise ValueError("expects: items|requests MIN [MAX]")
    kind = {"item": "items", "items": "items", "request": "requests",
            "requests": "requests"}.get(parts[0])
    if kind is None:
        raise ValueError(f"{parts[0]!r} is neither items nor requests")
    low = int(parts[1])
    high = int(parts[2]) if len(parts) == 3 else None
    return kind, low, high


def judge(contract: Contract, result: ProbeResult) -> Iterator[str]:
    """Why the contract failed, one reason per line; nothing when it held."""
    level = result.by_key.get(contract.method)
    if level is None:
        failure = next((f for f in result.failures
                        if f.request.url == contract.url), None)
        detail = f"{failure.kind}: {failure.exception}" if failure is not None \
            else "the callback never ran (see the log)"
        yield f"@url {contract.url}: could not be fetched ({detail})"
        return
    yield from _judge_level(contract, level)


def _judge_level(contract: Contract, level: Level) -> Iterator[str]:
    for kind, low, high in contract.returns:
        count = len(level.items) if kind == "items" else len(level.requests)
        if count < low or (high is not None and count > high):
            wanted = f"{low}..{high}" if high is not None else f">= {low}"
            yield f"@returns {kind}: {wanted} expected, {count} returned"
    for index, item in enumerate(level.items):
        try:
            fields = item_fields(item) if is_item(item) else {}
        except CrawlerError:
            fields = {}
        missing = [name for name in contract.scrapes if name not in fields]
        if missing:
            yield f"@scrapes: item {index + 1} lacks {', '.join(missing)}"
