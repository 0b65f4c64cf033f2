"""Crawlee for Python's PlaywrightCrawler on the JavaScript benchmark site
(benchmarks/browser.py --peers): the system's Chromium, the same number of pages open.

    python benchmarks/peers/crawlee_js.py BASE OUT.jsonl PAGES_OPEN
"""

import asyncio
import json
import sys
from typing import TextIO

from crawlee import ConcurrencySettings
from crawlee.crawlers import PlaywrightCrawler, PlaywrightCrawlingContext


async def main(base: str, items: TextIO, pages_open: int) -> None:
    crawler = PlaywrightCrawler(
        headless=True, browser_type="chromium",
        browser_launch_options={"executable_path": "/usr/bin/chromium",
                                "chromium_sandbox": False},
        concurrency_settings=ConcurrencySettings(min_concurrency=pages_open,
                                                 max_concurrency=pages_open,
                                                 desired_concurrency=pages_open),
        max_requests_per_crawl=None)

    @crawler.router.default_handler
    async def handler(context: PlaywrightCrawlingContext) -> None:
        if "/l/" in context.request.url:  # a lazy page: scrolled, its content waited for
            await context.page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            await context.page.wait_for_selector("p.content")
        content = await context.page.text_content("p.content")
        items.write(json.dumps({"url": context.request.url, "content": content}) + "\n")
        items.flush()
        await context.enqueue_links(selector="li a")

    await crawler.run([base + "p/0.html"])


if __name__ == "__main__":
    with open(sys.argv[2], "w") as out:
        asyncio.run(main(sys.argv[1], out, int(sys.argv[3])))
