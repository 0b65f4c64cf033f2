"""`new NAME URL`: a spider from a template."""

from __future__ import annotations

import argparse
from typing import Any

from crawler.commands.common import (
    EXIT_OK,
)
from crawler.commands.templates import TEMPLATES, new_spider
from crawler.loader import discover
from crawler.project import find_project

_NEW_EPILOG = """\
examples:
  python -m crawler new books http://127.0.0.1:8000/
  python -m crawler new shop shop.example --template crawl
  python -m crawler new shop_map https://shop.example/sitemap.xml -t sitemap
The spider is polite to someone else's site (per_host_concurrency 1, download_delay 1,
robots.txt obeyed, autothrottle); an existing file or spider name is never overwritten.
"""

def add(commands: Any) -> None:
    """The `new` command's options."""
    parser = commands.add_parser(
        "new", help="write spiders/NAME.py from a template", epilog=_NEW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the spider's name (and module): lower case, digits, _")
    parser.add_argument("url", help="where it starts: a URL or a domain")
    parser.add_argument("-t", "--template", default="basic", choices=sorted(TEMPLATES),
                        help="basic: follow every link (default); crawl: a CrawlSpider with "
                        "rules; sitemap: a SitemapSpider")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    root = find_project().root
    spiders, _ = discover(root)
    path = new_spider(root, args.name, args.url, args.template, frozenset(spiders))
    print(f"wrote {path}\nrun it:   python -m crawler run {args.name}\n"
          f"check it: python -m crawler check {args.name}")
    return EXIT_OK

