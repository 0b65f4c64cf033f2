"""The benchmark spider: title and h1 of every page, following same-host links.

    python -m crawler run bench -a start=http://127.0.0.1:8080/p/0.html -s concurrency=64
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from crawler import Response, Spider


class BenchSpider(Spider):
    name = "bench"
    custom_settings = {"concurrency": 64, "per_host_concurrency": 64, "log_level": "WARNING"}

    def __init__(self, start: str = "http://127.0.0.1:8080/p/0.html", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = start.split(",")
        self.allowed_domains = ["127.0.0.1"]

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        title, h1 = response.css_first("title"), response.css_first("h1")
        yield {"url": response.url, "title": title.text() if title else None,
               "h1": h1.text() if h1 else None}
        for link in response.css("a[href]"):
            yield response.follow(link)
