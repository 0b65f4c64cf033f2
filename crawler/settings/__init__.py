"""One frozen, typed Settings object; merged defaults -> the project file -> a spider's
attributes and custom_settings -> the command line. Each setting is declared once
(crawler/settings/_model.py): its type, default, bounds, Scrapy names, command-line flag
and help; the checks, the answers to Scrapy's names, the CLI flags and the documentation's tables
come from that declaration.

Usage:
    settings = Settings().merge({"concurrency": 32}).merge_strings({"max_pages": "100"})
"""

from __future__ import annotations

from crawler.settings._docs import Flag, flags, settings_table
from crawler.settings._model import DEFAULT_USER_AGENT, REFERRER_POLICIES, Settings
from crawler.settings._values import known_setting, spider_settings

__all__ = ["DEFAULT_USER_AGENT", "REFERRER_POLICIES", "Flag", "Settings", "flags",
           "known_setting", "settings_table", "spider_settings"]
