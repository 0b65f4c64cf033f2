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
