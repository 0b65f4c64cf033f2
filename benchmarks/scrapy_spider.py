"""Scrapy's contender: the same work as spiders/bench.py (title, h1, follow same-host links).

    scrapy runspider benchmarks/scrapy_spider.py -a start=URL[,URL...] -O out.jsonl
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import scrapy


class ScrapyBench(scrapy.Spider):
    name = "scrapy_bench"
    custom_settings = {
        "CONCURRENT_REQUESTS": 64,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 64,
        "ROBOTSTXT_OBEY": False,
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
        "COOKIES_ENABLED": False,
        "RETRY_ENABLED": False,
    }

    def __init__(self, start: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = start.split(",")
        self.allowed_domains = ["127.0.0.1"]

    def parse(self, response: Any) -> Iterator[Any]:
        yield {"url": response.url, "title": response.css("title::text").get(),
               "h1": response.css("h1::text").get()}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, callback=self.parse)
