"""Crawls the demo bookshop (`python -m crawler demo`): categories, pagination, book pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from crawler import Request, Response, Spider


class BooksSpider(Spider):
    name = "books"
    custom_settings = {"per_host_concurrency": 16, "concurrency": 16}

    def __init__(self, base_url: str = "http://127.0.0.1:8000/", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url

    async def start(self) -> AsyncIterator[Request]:
        yield Request(self.base_url, callback=self.parse)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        for link in response.css("ul.categories a"):
            yield response.follow(link, callback=self.parse_category)

    async def parse_category(self, response: Response) -> AsyncIterator[Any]:
        for link in response.css("li.book a"):
            yield response.follow(link, callback=self.parse_book)
        next_page = response.css_first("a.next")
        if next_page is not None:
            yield response.follow(next_page, callback=self.parse_category)

    async def parse_book(self, response: Response) -> AsyncIterator[Any]:
        def text(selector: str) -> str | None:
            node = response.css_first(selector)
            return node.text(strip=True) if node is not None else None

        rating = response.css_first("p.rating")
        yield {
            "url": response.url,
            "title": text("h1"),
            "price": text("p.price"),
            "rating": int(rating.attributes.get("data-stars") or 0) if rating else None,
            "category": text("p.category a"),
        }
        for link in response.css("aside a.related"):
            yield response.follow(link, callback=self.parse_book)
