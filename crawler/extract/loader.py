"""Scrapy's `ItemLoader` over our responses: the `itemloaders` library (which Scrapy's own
is built on), given `response.sel` as its selector, so loaders, processors and
`add_css`/`add_xpath`/`add_value` written for Scrapy run unchanged.

Usage:
    loader = ItemLoader(response=response)
    loader.default_output_processor = TakeFirst()
    loader.add_css("title", "h1::text")
    loader.add_xpath("price", "//p[@class='price']/text()", re=r"[\\d.]+")
    yield loader.load_item()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.extract.content import MissingExtract

try:
    import itemloaders
    from itemloaders.processors import Compose, Identity, Join, MapCompose, SelectJmes, TakeFirst
except ImportError:  # pragma: no cover (the extra is installed wherever tests run)
    raise MissingExtract("ItemLoader needs itemloaders: pip install 'crawler[extract]'") \
        from None

if TYPE_CHECKING:
    from crawler.http import Response

__all__ = ["Compose", "Identity", "ItemLoader", "Join", "MapCompose", "SelectJmes",
           "TakeFirst"]


class ItemLoader(itemloaders.ItemLoader):
    """Fills an item from a response with selectors and processors, as Scrapy's does: the
    selector is `response.sel` (parsel), the response is in the loader's context, and a
    loader without an item makes a dict (Scrapy's makes a `scrapy.Item`)."""

    default_item_class = dict

    def __init__(self, item: Any = None, selector: Any = None,
                 response: Response | None = None, parent: Any = None,
                 **context: Any) -> None:
        if selector is None and response is not None and response.is_html:
            selector = response.sel
        context.update(response=response)
        super().__init__(item=item, selector=selector, parent=parent, **context)
