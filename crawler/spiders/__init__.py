"""Spiders that come with the crawler, run by name from anywhere (`python -m crawler run
markdown -a start=URL`); a project's own spider of the same name comes first."""

from __future__ import annotations

__all__ = ["BUILTIN"]

BUILTIN = {"markdown": "crawler.spiders.markdown.MarkdownSpider"}
