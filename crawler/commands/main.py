"""`python -m crawler`: the commands, one module each (as Scrapy's `commands/`).

Every check that can fail (spider, arguments, settings, outputs, the stats path,
plugins, start URLs) runs before any output is opened for writing; a failure is one
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from crawler._version import __version__
from crawler.commands import (
    bench,
    check,
    demo,
    fetch,
    jobs,
    listing,
    new,
    parse,
    run,
    serve,
    settings,
    shell,
    status,
    version,
)
from crawler.commands.common import (
    EXIT_CODES,
    EXIT_USAGE,
)
from crawler.exceptions import StartupError, UsageError
from crawler.redact import redact

_DESCRIPTION = """\
crawler: an asyncio web crawling and scraping framework.

commands:
  run      run a spider                       new      write a spider from a template
  list     list the project's spiders          fetch    fetch a URL as a spider would
  demo     crawl a bundled local bookshop      parse    run a callback on one URL
  bench    pages/s on this machine             shell    try selectors on a page
  jobs     the state of a --job-dir            check    run the spiders' contracts
  status   a shared crawl's progress (--frontier)
  settings every setting, or one's value      serve    the crawl service (HTTP, Scrapyd's API)
  version  the versions (-v: of the libraries too)
`python -m crawler COMMAND --help` for each.

The project is the nearest directory, from here upwards, with a crawler.toml or a
pyproject.toml with [tool.crawler] (its settings), else this one; spiders are found in
its spiders/ package.
"""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m crawler` and the `crawler` script."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = args.command(args)
    except (UsageError, StartupError) as exc:
        print(f"crawler: error: {redact(str(exc))}", file=sys.stderr)
        code = EXIT_USAGE
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error
        code = 0
    sys.exit(code)

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crawler", description=_DESCRIPTION, epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"crawler {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for command in (run, listing, demo, bench, jobs, status, settings, new, fetch, parse,
                    shell, check, serve, version):
        command.add(commands)
    return parser
