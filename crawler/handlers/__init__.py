"""Download handlers: what turns a request into a response behind the middleware chain.
aiohttp (crawler/handlers/http.py) is the default; the SSRF guard lives beside it."""

from __future__ import annotations

from crawler.handlers.http import Downloader, HttpDownloader

__all__ = ["Downloader", "HttpDownloader"]
