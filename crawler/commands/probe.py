"""One URL through a spider's whole stack (settings, robots.txt, middlewares, the HTTP
cache), with what comes back captured instead of crawled on: the engine behind the
`fetch`, `parse`, `shell` and `check` commands.

Usage:
    result = await probe(MySpider, [ProbeRequest("https://example.com/", callback="parse")],
                         settings, depth=1)
    result.levels[0].items, result.levels[0].requests
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crawler.core.crawler import Crawler
from crawler.core.scraper import iterate
from crawler.exceptions import UsageError
from crawler.http import Failure, Request, Response
from crawler.settings import Settings
from crawler.spider import Spider

__all__ = ["Level", "ProbeRequest", "ProbeResult", "callback_for", "probe"]

logger = logging.getLogger(__name__)

_ALL_STATUSES = list(range(100, 600))
_SHOWN = [status for status in _ALL_STATUSES if not 300 <= status < 400]  # redirects followed


@dataclass
class ProbeRequest:
    """A URL to try, the callback to run on its page (a spider method name; None: fetch
    only), and its meta and callback keyword arguments."""

    url: str
    callback: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    cb_kwargs: dict[str, Any] = field(default_factory=dict)
    redirect: bool = True
    key: Any = None  # the caller's tag for this request (check: the contract's method)


@dataclass
class Level:
    """What the callbacks yielded at one depth (1: the probed URL's page)."""

    items: list[Any] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)


@dataclass
class ProbeResult:
    """The pages fetched (by depth), the failures met, and what callbacks yielded."""

    responses: list[Response] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    errors: int = 0  # callback exceptions (logged by the engine)
    by_key: dict[Any, Level] = field(default_factory=dict)

    def level(self, depth: int) -> Level:
        while len(self.levels) < depth:
            self.levels.append(Level())
        return self.levels[depth - 1]


def callback_for(spider: Spider, url: str, name: str | None) -> str:
    """The callback `parse` runs on `url`: the one named, else the first CrawlSpider rule
    whose links would include the URL, else `parse`."""
    if name is not None:
        if not callable(getattr(spider, name, None)):
            raise UsageError(f"spider {spider.name!r} has no method {name!r}")
        return name
    for rule in getattr(spider, "rules", ()):
        matches = getattr(rule.link_extractor, "matches", None)
        if rule.callback is not None and matches is not None and matches(url):
            callback = rule.callback
            return callback if isinstance(callback, str) else str(callback.__name__)
    return "parse"


async def probe(spider_cls: type[Spider], requests: Sequence[ProbeRequest], settings: Settings,
                *, depth: int = 1, spider_args: dict[str, Any] | None = None) -> ProbeResult:
    """Fetch `requests` with `spider_cls`'s stack and run their callbacks; the requests
    those yield are followed `depth - 1` levels further. Items go nowhere but the result."""
    result = ProbeResult()
    spider = _probe_class(spider_cls, requests, result, depth)(**(spider_args or {}))
    settings = settings.merge({"frontier": None, "job_dir": None, "max_depth": None,
                               "status_port": None, "progress": False})
    crawler = Crawler(spider, settings=settings)
    await crawler.run()
    result.errors = crawler.stats.errors.get("callback", 0)
    return result


def _probe_class(spider_cls: type[Spider], requests: Sequence[ProbeRequest],
                 result: ProbeResult, depth: int) -> type[Spider]:
    class Probe(spider_cls):  # type: ignore[valid-type,misc]
        """The user's spider, seeded with the probed requests, its callbacks watched."""

        async def start(self) -> AsyncIterator[Request]:
            for wanted in requests:
                meta = dict(wanted.meta)
                if not wanted.redirect:
                    meta["dont_redirect"] = True
                if wanted.callback is None:  # fetch shows any status; 3xx followed or shown
                    meta.setdefault("handle_httpstatus_list", _SHOWN if wanted.redirect
                                    else _ALL_STATUSES)
                callback = getattr(self, wanted.callback) if wanted.callback else None
                yield Request(wanted.url, meta=meta, cb_kwargs=wanted.cb_kwargs,
                              dont_filter=True,
                              callback=_watched(self, callback, 1, depth, result, wanted.key),
                              errback=_failed(result))

        @classmethod
        def uses_start_urls(cls) -> bool:
            return False

    Probe.__name__ = Probe.__qualname__ = spider_cls.__name__
    return Probe


def _watched(spider: Spider, callback: Callable[..., Any] | None, level: int, depth: int,
             result: ProbeResult, key: Any) -> Callable[..., AsyncIterator[Any]]:
    async def watched(response: Response, **kwargs: Any) -> AsyncIterator[Any]:
        result.responses.append(response)
        if callback is None:
            return
        found = result.level(level)
        mine = result.by_key.setdefault(key, Level()) if key is not None else None
        async for obj in iterate(callback(response, **kwargs)):
            if isinstance(obj, Request):
                found.requests.append(obj)
                if mine is not None:
                    mine.requests.append(obj)
                if level < depth:
                    obj.callback = _watched(spider, obj.callback or spider.parse, level + 1,
                                            depth, result, None)
                    obj.errback = _failed(result, obj.errback)
                    yield obj
            else:
                found.items.append(obj)
                if mine is not None:
                    mine.items.append(obj)

    if callback is not None:  # log lines name the spider's callback, not this wrapper
        watched.__name__ = getattr(callback, "__name__", "callback")
        watched.__qualname__ = getattr(callback, "__qualname__", watched.__name__)
    return watched


def _failed(result: ProbeResult, errback: Callable[..., Any] | None = None
            ) -> Callable[[Failure], AsyncIterator[Any]]:
    async def failed(failure: Failure) -> AsyncIterator[Any]:
        result.failures.append(failure)
        if errback is not None:
            async for obj in iterate(errback(failure)):
                if not isinstance(obj, Request):
                    yield obj

    return failed
