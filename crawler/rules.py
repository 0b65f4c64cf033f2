"""CrawlSpider: follow links by rules, with Scrapy's semantics.

Usage:
    class ShopSpider(CrawlSpider):
        name = "shop"
        start_urls = ["https://shop.example/"]
        rules = [
            Rule(LinkExtractor(allow=r"/category/")),  # followed, no callback
            Rule(LinkExtractor(allow=r"/product/"), callback="parse_item"),
        ]

        def parse_item(self, response):
            yield {"name": response.css_text("h1")}

For every page, each rule's links are taken in rule order and a link goes to the first
rule that extracts it. A rule follows the links of the pages it leads to when `follow`
is true (the default when it has no callback). Start pages go to `parse_start_url`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

from crawler.core.scraper import iterate
from crawler.http import Failure, Request, Response
from crawler.http.links import Link, LinkExtractor
from crawler.spider import Spider

__all__ = ["CrawlSpider", "Rule"]

logger = logging.getLogger(__name__)

Hook = str | Callable[..., Any] | None


class Rule:
    """Which links to follow (`link_extractor`), what parses the pages they lead to
    (`callback`, a spider method or its name, with `cb_kwargs`), whether those pages' links
    are followed too (`follow`), and hooks: `process_links(links)` may filter or rewrite a
    page's links, `process_request(request, response)` may change or drop (None) a request,
    `errback(failure)` handles a failed one."""

    def __init__(self, link_extractor: LinkExtractor | None = None, callback: Hook = None,
                 cb_kwargs: dict[str, Any] | None = None, follow: bool | None = None,
                 process_links: Hook = None, process_request: Hook = None,
                 errback: Hook = None) -> None:
        self.link_extractor = link_extractor if link_extractor is not None else LinkExtractor()
        self.callback = callback
        self.cb_kwargs = dict(cb_kwargs or {})
        self.follow = follow if follow is not None else callback is None
        self.process_links = process_links
        self.process_request = process_request
        self.errback = errback

    def __repr__(self) -> str:
        return f"Rule(callback={self.callback!r}, follow={self.follow})"


class _Compiled:
    """A rule with its hooks resolved to the spider's methods."""

    __slots__ = ("callback", "cb_kwargs", "errback", "extractor", "follow", "process_links",
                 "process_request")

    def __init__(self, rule: Rule, spider: Spider) -> None:
        self.extractor = rule.link_extractor
        self.callback = _method(spider, rule.callback, "callback")
        self.cb_kwargs = rule.cb_kwargs
        self.follow = rule.follow
        self.process_links = _method(spider, rule.process_links, "process_links")
        self.process_request = _method(spider, rule.process_request, "process_request")
        self.errback = _method(spider, rule.errback, "errback")


class CrawlSpider(Spider):
    """A spider that follows links by `rules` (see the module docstring). Do not override
    `parse`: it applies the rules; parse start pages in `parse_start_url`."""

    rules: ClassVar[Sequence[Rule]] = ()
    follow_links: bool = True  # False: no rule follows links (Scrapy's CRAWLSPIDER_FOLLOW_LINKS)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if type(self).parse is not CrawlSpider.parse:
            logger.warning("%s overrides parse(): CrawlSpider uses it to apply its rules; "
                           "parse start pages in parse_start_url()", type(self).__name__)
        self._rules = [_Compiled(rule, self) for rule in self.rules]

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        """Start pages (and any request without a callback): `parse_start_url`, then the
        rules' links."""
        async for obj in self._parse_response(response, self.parse_start_url, {}, True):
            yield obj

    def parse_start_url(self, response: Response) -> Any:
        """What to yield for a start page; nothing by default."""
        return ()

    def process_results(self, response: Response, results: Any) -> Any:
        """A hook over what each rule callback returned; returns it as is by default."""
        return results

    async def _rule_callback(self, response: Response) -> AsyncIterator[Any]:
        rule = self._rules[response.meta["rule"]]
        async for obj in self._parse_response(response, rule.callback, rule.cb_kwargs,
                                              rule.follow):
            yield obj

    async def _rule_errback(self, failure: Failure) -> AsyncIterator[Any]:
        rule = self._rules[failure.request.meta["rule"]]
        if rule.errback is not None:
            async for obj in iterate(rule.errback(failure)):
                yield obj

    async def _parse_response(self, response: Response, callback: Callable[..., Any] | None,
                              cb_kwargs: dict[str, Any], follow: bool) -> AsyncIterator[Any]:
        if callback is not None:
            results = self.process_results(response, callback(response, **cb_kwargs))
            async for obj in iterate(results):
                yield obj
        if follow and self.follow_links:
            for request in self._requests_to_follow(response):
                yield request

    def _requests_to_follow(self, response: Response) -> Iterator[Request]:
        if not response.is_html:
            return
        seen: set[str] = set()
        for index, rule in enumerate(self._rules):
            links: Iterable[Link] = [link for link in rule.extractor.extract_links(response)
                                     if link.url not in seen]
            if rule.process_links is not None:
                links = rule.process_links(list(links))
            for link in links:
                seen.add(link.url)
                request: Request | None = Request(
                    link.url, callback=self._rule_callback, errback=self._rule_errback,
                    meta={"rule": index, "link_text": link.text})
                if rule.process_request is not None:
                    request = rule.process_request(request, response)
                if request is not None:
                    yield request


def _method(spider: Spider, hook: Hook, what: str) -> Callable[..., Any] | None:
    if hook is None or callable(hook):
        return hook
    method: Callable[..., Any] | None = getattr(spider, hook, None)
    if not callable(method):
        raise ValueError(f"{type(spider).__name__}: a rule's {what} {hook!r} is not a method "
                        "of the spider")
    return method
