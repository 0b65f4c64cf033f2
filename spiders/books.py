"""Crawls the demo bookshop (`python -m crawler demo`): categories, pagination, book pages.

    python -m crawler demo --serve          # in one terminal: serves the shop
    python -m crawler run books -a base_url=http://127.0.0.1:PORT/

The spider lives in crawler.commands.bookshop so that `python -m crawler demo` works anywhere; this
module makes it a project spider, and an example to copy.
"""

from __future__ import annotations

from crawler.commands.bookshop import BooksSpider as _BooksSpider


class BooksSpider(_BooksSpider):
    name = "books"
