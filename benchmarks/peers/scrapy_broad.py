"""Scrapy on the broad-crawl benchmark (benchmarks/broad.py --scrapy): the same hosts
(names given to 127.0.0.1 by a resolver of its own, as `resolve` does for ours), the same
delay per host, one request per host at a time, no randomisation.

    python benchmarks/peers/scrapy_broad.py HOSTS PORT DELAY CONCURRENCY OUT.jsonl [tuned]

`tuned`: also what Scrapy's "Broad Crawls" page recommends for many domains: the
DownloaderAwarePriorityQueue and breadth-first order.
"""

import sys

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.resolver import CachingThreadedResolver
from twisted.internet import defer


class LoopbackResolver(CachingThreadedResolver):
    """*.test -> 127.0.0.1; other names as Scrapy resolves them."""

    def getHostByName(self, name, timeout=()):  # (Twisted's name)
        if name.endswith(".test"):
            return defer.succeed("127.0.0.1")
        return super().getHostByName(name, timeout)


class Broad(scrapy.Spider):
    name = "broad"

    async def start(self):
        for i in range(int(self.hosts)):
            yield scrapy.Request(f"http://www.h{i}.test:{self.port}/p/0.html")

    def parse(self, response):
        yield {"url": response.url}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)


if __name__ == "__main__":
    HOSTS, PORT, DELAY, CONCURRENCY, OUT = sys.argv[1:6]
    tuned = {"SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
             "DEPTH_PRIORITY": 1,
             "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
             "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue"} \
        if sys.argv[6:] == ["tuned"] else {}
    process = CrawlerProcess(settings={**tuned,
        "DNS_RESOLVER": "__main__.LoopbackResolver",
        "DOWNLOAD_DELAY": float(DELAY), "RANDOMIZE_DOWNLOAD_DELAY": False,
        "CONCURRENT_REQUESTS": int(CONCURRENCY), "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
        "ROBOTSTXT_OBEY": False, "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False,
        "FEEDS": {OUT: {"format": "jsonlines", "overwrite": True}},
    })
    process.crawl(Broad, hosts=HOSTS, port=PORT)
    process.start()
