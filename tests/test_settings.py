from __future__ import annotations

import dataclasses
import re

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
    ("concurrency", "many", "expects a number or 'auto'"),
    ("timeout", "many", "expects float"),
    ("concurrency", "0", "must be >= 1"),
    ("download_delay", "-1", "must be >= 0"),
    ("log_level", "LOUD", "log_level"),
])
def test_bad_command_line_values_name_the_key(key, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings().merge_strings({key: value})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"concurrency": True}, "expects a number or 'auto'"),
    ({"max_concurrency": True}, "expects int"),
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


# -- bounds (issue 7.2), zero limits (7.3), Scrapy's names and attributes (7.26) ------------


@pytest.mark.parametrize(("key", "value", "message"), [
    ("timeout", "inf", "'timeout' must be a finite number"),
    ("connect_timeout", "inf", "'connect_timeout' must be a finite number"),
    ("download_delay", "inf", "'download_delay' must be a finite number"),
    ("max_duration", "nan", "'max_duration' must be a finite number"),
    ("retry_backoff_max", "1e400", "finite"),
    ("concurrency", "1000000", "must be <= 10000: each unit is a worker task"),
    ("timeout", "1e9", "must be <= 86400"),
    ("max_response_size", str(1 << 40), "bodies are held in memory"),
    ("retry_http_codes", "200,9999", "HTTP status codes"),
    ("user_agent", "bot/1\r\nX-Evil: 1", "control characters"),
])
def test_values_must_be_finite_and_sane(key, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings().merge_strings({key: value})


@pytest.mark.parametrize("key", ["max_pages", "max_items", "max_duration"])
def test_zero_limits_are_errors_and_none_means_no_limit(key):
    with pytest.raises(SettingsError, match=rf"'{key}' must be"):
        Settings().merge_strings({key: "0"})
    assert getattr(Settings().merge_strings({key: "none"}), key) is None
    assert Settings().merge_strings({"max_depth": "0"}).max_depth == 0  # start pages only


@pytest.mark.parametrize(("key", "hint"), [
    ("DOWNLOAD_DELAY", "did you mean 'download_delay'?"),
    ("CONCURRENT_REQUESTS", "did you mean 'concurrency'?"),
    ("CONCURRENT_REQUESTS_PER_DOMAIN", "did you mean 'per_host_concurrency'?"),
    ("ROBOTSTXT_OBEY", "did you mean 'obey_robots'?"),
    ("DEPTH_LIMIT", "here it means the start pages only"),
    ("closespider_pagecount", "did you mean 'max_pages'?"),
])
def test_scrapy_setting_names_point_to_ours(key, hint):
    with pytest.raises(SettingsError, match=re.escape(hint)):
        Settings().merge({key: 1})
    with pytest.raises(SettingsError, match=re.escape(hint)):
        Settings().merge_strings({key: "1"})


def test_scrapy_spider_attributes_are_honoured_below_custom_settings():
    from crawler import Spider

    class Polite(Spider):
        name = "polite"
        download_delay = 2
        max_concurrent_requests = 3
        download_timeout = 7
        user_agent = "polite/1.0"
        custom_settings = {"download_delay": 0.5}

    s = Settings.for_spider(Polite())
    assert s.download_delay == 0.5  # custom_settings wins over the attribute
    assert (s.per_host_concurrency, s.timeout, s.user_agent) == (3, 7.0, "polite/1.0")
    with pytest.raises(SettingsError, match="'timeout' must be > 0"):
        Settings.for_spider(type("Bad", (Spider,), {"name": "bad", "download_timeout": -1})())


def test_every_unknown_key_in_one_error_with_scrapys_equivalents():
    with pytest.raises(SettingsError) as caught:
        Settings().merge({"LOG_FILE": "x", "HTTPERROR_ALLOWED_CODES": [404], "FEEDS": {},
                          "TELNETCONSOLE_ENABLED": False, "concurency": 2})
    message = str(caught.value)
    assert message.startswith("5 unknown settings: ")
    assert "'LOG_FILE': for Scrapy's LOG_FILE, use the --log-file option" in message
    assert "handle_httpstatus_list" in message
    assert "'FEEDS'; did you mean 'feeds'?" in message
    assert "TELNETCONSOLE_ENABLED, use nothing here: there is no telnet console" in message
    assert "'concurency'; did you mean 'concurrency'?" in message


def test_a_spiders_custom_settings_mistake_names_the_spider():
    class Typo:
        name = "typo"
        custom_settings = {"concurency": 3}

    with pytest.raises(SettingsError, match=r"spider 'typo' \(its custom_settings or "
                                            r"attributes\): unknown setting 'concurency'"):
        Settings.for_spider(Typo())


def test_feeds_selectors_and_crawl_order_are_checked():
    s = Settings().merge({"feeds": {"out.json": {"format": "json", "indent": 4},
                                    "out.csv": {"fields": ["a"], "overwrite": True}},
                          "selectors": "parsel", "crawl_order": "dfs", "feed_indent": 2})
    assert dict(s.feeds)["out.json"] == {"format": "json", "indent": 4}
    for bad, message in (({"feeds": {"x": {"format": "yaml"}}}, "format 'yaml'"),
                         ({"feeds": {"x": {"colour": 1}}}, "unknown option"),
                         ({"selectors": "lxml"}, "'selectolax' or 'parsel'"),
                         ({"crawl_order": "random"}, "'bfs'")):
        with pytest.raises(SettingsError, match=message):
            Settings().merge(bad)
    with pytest.raises(SettingsError, match="expects a JSON object"):
        Settings().merge_strings({"feeds": "out.json"})
    assert Settings().merge_strings({"feeds": '{"o.jsonl": {}}'}).feeds == (("o.jsonl", {}),)


# -- each setting declared once (issue 21) ---------------------------------------------------


def test_the_readme_settings_rows_are_the_ones_the_declarations_give():
    from pathlib import Path

    from crawler.settings import settings_table

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")
            and line.split("`")[1] in {f.name for f in dataclasses.fields(Settings)}]
    assert len(rows) >= 10
    generated = settings_table().splitlines()
    for row in rows:
        assert row in generated, \
            f"README's row is stale: take it from `python -m crawler settings --markdown`: {row}"


def test_every_setting_is_declared_with_help_and_its_flag_is_an_option_of_run():
    import dataclasses

    from crawler.commands.main import _parser
    from crawler.settings import flags

    for field in dataclasses.fields(Settings):
        assert field.metadata["help"], field.name
    run_help = _parser()._subparsers._group_actions[0].choices["run"].format_help()
    for flag in flags():
        assert all(option in run_help for option in flag.options), flag.options
    assert {f.name for f in flags()} >= {"job_dir", "frontier", "frontier_job", "worker_id",
                                         "status_port", "http_cache", "log_level"}


def test_a_scrapy_name_and_a_spider_attribute_come_from_the_declaration():
    from crawler.settings._values import SCRAPY_NAMES, SPIDER_ATTRIBUTES

    assert SCRAPY_NAMES["concurrent_requests"] == ("concurrency", "")
    assert SCRAPY_NAMES["referrer_policy"] == ("referer_policy", "")
    assert SPIDER_ATTRIBUTES["download_timeout"] == "timeout"
    with pytest.raises(SettingsError, match="did you mean 'spider_middlewares'"):
        Settings().merge({"SPIDER_MIDDLEWARES": {}})


def test_the_settings_command_lists_and_gets(tmp_path):
    import subprocess
    import sys

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "crawler", "settings", *argv],
                              cwd=tmp_path, capture_output=True, text=True, check=False)

    (tmp_path / "crawler.toml").write_text("concurrency = 7\n")
    assert cli("--get", "concurrency").stdout == "7\n"
    assert cli("--get", "retry_http_codes", "-s", "retry_http_codes=500").stdout == "500\n"
    bad = cli("--get", "concurency")
    assert bad.returncode == 2 and "did you mean 'concurrency'" in bad.stderr
    listing = cli().stdout
    assert "concurrency = 7\n" in listing and "referer_policy = no-referrer-when-downgrade" \
        in listing
