from __future__ import annotations

import pytest

from crawler import Settings, SettingsError


def test_defaults():
    s = Settings()
    assert (s.concurrency, s.per_host_concurrency) == (16, 8)
    assert (s.download_delay, s.timeout) == (0.0, 30.0)
    assert s.max_depth is s.max_pages is s.max_items is s.max_duration is None
    assert s.user_agent.startswith("crawler/")


def test_precedence_defaults_then_custom_then_command_line():
    s = Settings().merge({"concurrency": 4, "download_delay": 1}).merge_strings(
        {"concurrency": "32"})
    assert s.concurrency == 32
    assert s.download_delay == 1.0 and isinstance(s.download_delay, float)


def test_command_line_values_parse_to_field_types():
    s = Settings().merge_strings({"max_pages": "10", "max_duration": "2.5",
                                  "feed_fields": "a, b", "max_depth": "none"})
    assert s.max_pages == 10 and s.max_duration == 2.5
    assert s.feed_fields == ("a", "b")
    assert s.max_depth is None


@pytest.mark.parametrize(("key", "value", "message"), [
    ("concurency", "3", "did you mean 'concurrency'"),
    ("concurrency", "many", "expects int"),
    ("concurrency", "0", "must be >= 1"),
    ("download_delay", "-1", "must be >= 0"),
    ("log_level", "LOUD", "log_level"),
])
def test_bad_command_line_values_name_the_key(key, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings().merge_strings({key: value})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"concurrency": True}, "expects int"),
    ({"timeout": "soon"}, "expects float"),
    ({"nope": 1}, "unknown setting 'nope'"),
    ({"feed_fields": [1, 2]}, "list of strs"),
])
def test_bad_custom_settings(overrides, message):
    with pytest.raises(SettingsError, match=message):
        Settings().merge(overrides)


def test_pipelines_accept_scrapy_order_mapping():
    s = Settings().merge({"item_pipelines": {"b.B": 300, "a.A": 100}})
    assert s.item_pipelines == ("a.A", "b.B")
