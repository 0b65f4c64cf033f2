"""Scrapy-style selectors (parsel) over a response, built only when a spider asks.

`response.css()` stays selectolax (fast, CSS only); `response.sel` is a parsel `Selector`
for code written for Scrapy: `::text`, `::attr(name)`, `.get()`, `.getall()`, `.re()` and
XPath. parsel brings lxml, so it is the optional `selectors` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.exceptions import CrawlerError

if TYPE_CHECKING:
    from crawler.http import Response

__all__ = ["MissingParsel", "selector_for"]

_XML_TYPES = ("application/xml", "text/xml", "application/rss+xml", "application/atom+xml")


class MissingParsel(CrawlerError):
    """`response.sel` or `response.xpath()` without parsel installed."""


def selector_for(response: Response) -> Any:
    """A parsel Selector over the response's text: XML for XML content types, else HTML."""
    try:
        from parsel import Selector
    except ImportError:
        raise MissingParsel("response.sel and response.xpath() need parsel: "
                            "pip install 'crawler[selectors]'") from None
    content_type = response.content_type
    kind = "xml" if content_type in _XML_TYPES or content_type.endswith("+xml") else "html"
    return Selector(text=response.text, type=kind, base_url=response.url)
