"""The benchmark spider: title and h1 of every page, following same-host links.

    python -m crawler run bench -a start=http://127.0.0.1:8080/p/0.html -s concurrency=64

The class lives in crawler.commands.benchsite so that `python -m crawler bench` works anywhere; this
module makes it a project spider for the benchmark suite in benchmarks/.
"""

from __future__ import annotations

from crawler.commands.benchsite import BenchSpider as _BenchSpider


class BenchSpider(_BenchSpider):
    name = "bench"
