"""Stats as JSON: whatever the keys of their counters."""

from __future__ import annotations

import orjson

from crawler.exceptions import Kind
from crawler.stats import Stats


def test_enum_keys_are_written_as_their_text():
    stats = Stats()
    stats.errors[Kind.INTERNAL] += 1  # an internal task's failure counts under the enum
    stats.errors["timeout"] += 2
    stats.counters[Kind.TIMEOUT] += 1
    data = orjson.loads(orjson.dumps(stats.as_dict()))  # raised "Dict key must be str"
    assert data["errors"] == {"internal": 1, "timeout": 2}
    assert data["counters"] == {"timeout": 1}


def test_peak_memory_is_the_crawls_own_not_its_parents():
    """ru_maxrss survives exec(): a crawl started by a large process (a test runner, the
    crawl service) would report the parent's size as its own peak."""
    import subprocess
    import sys

    ballast = bytearray(400 << 20)  # the parent at 400+ MiB resident when it forks
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])
    done = subprocess.run([sys.executable, "-c", "from crawler.stats import Stats; "
                           "print(Stats().as_dict()['peak_rss_mb'])"],
                          capture_output=True, text=True, check=True)
    del ballast
    assert float(done.stdout) < 200, done.stdout
