"""scrapy-playwright on the JavaScript benchmark site (benchmarks/browser.py --peers):
every page rendered, the system's Chromium, the same number of pages open.

    python benchmarks/peers/scrapy_playwright_js.py BASE OUT.jsonl PAGES_OPEN
"""

import sys

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy_playwright.page import PageMethod

SCROLL = "window.scrollTo(0, document.body.scrollHeight)"


class JsBench(scrapy.Spider):
    name = "jsbench"

    async def start(self):
        yield scrapy.Request(self.base + "p/0.html", meta={"playwright": True})

    def parse(self, response):
        content = response.css("p.content::text").get()
        yield {"url": response.url, "content": content}
        for href in response.css("li a::attr(href)").getall():
            meta = {"playwright": True}
            if "/l/" in href:  # a lazy page: scrolled, and its content waited for
                meta["playwright_page_methods"] = [PageMethod("evaluate", SCROLL),
                                                   PageMethod("wait_for_selector", "p.content")]
            yield response.follow(href, meta=meta)


if __name__ == "__main__":
    BASE, OUT, OPEN = sys.argv[1], sys.argv[2], int(sys.argv[3])
    process = CrawlerProcess(settings={
        "DOWNLOAD_HANDLERS": {
            "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
            "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"},
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": "/usr/bin/chromium",
                                      "headless": True},
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": OPEN,
        "PLAYWRIGHT_ABORT_REQUEST": lambda req: req.resource_type in ("image", "media",
                                                                        "font"),
        "CONCURRENT_REQUESTS": OPEN, "CONCURRENT_REQUESTS_PER_DOMAIN": OPEN,
        "ROBOTSTXT_OBEY": False, "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False,
        "FEEDS": {OUT: {"format": "jsonlines", "overwrite": True}},
    })
    process.crawl(JsBench, base=BASE)
    process.start()
