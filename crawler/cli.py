"""`python -m crawler`: the commands. The only module that reads argv or prints.

Every check that can fail (spider, arguments, settings, outputs, the stats path, plugins,
start URLs) runs before any output is opened for writing; a failure is one line on stderr
and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import datetime
import logging
import logging.handlers
import os
import queue
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from crawler import __version__
from crawler.contracts import contracts_of, judge
from crawler.engine import Crawler, CrawlResult
from crawler.exceptions import StartupError, UsageError
from crawler.exporters import file_identity, make_exporter
from crawler.feeds import output_sink
from crawler.fleet import run_workers, without_workers_flag
from crawler.frontier.redisstore import default_worker_id, read_status
from crawler.interrupts import EXIT_KILLED, Interrupts
from crawler.items import encode
from crawler.jobs import read_job
from crawler.loader import discover, load_spider
from crawler.middlewares.httpcache import clear_cache
from crawler.plugins import describe
from crawler.probe import ProbeRequest, callback_for, probe
from crawler.project import find_project
from crawler.redact import redact, redact_handlers
from crawler.settings import Settings
from crawler.sinks import Sink
from crawler.spider import Spider
from crawler.stats import nothing_done, summary
from crawler.templates import TEMPLATES, new_spider
from crawler.urls import parse_url

__all__ = ["main"]

logger = logging.getLogger("crawler")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_DESCRIPTION = """\
crawler: an asyncio web crawling and scraping framework.

commands:
  run      run a spider                       new      write a spider from a template
  list     list the project's spiders          fetch    fetch a URL as a spider would
  demo     crawl a bundled local bookshop      parse    run a callback on one URL
  bench    pages/s on this machine             shell    try selectors on a page
  jobs     the state of a --job-dir            check    run the spiders' contracts
  status   a shared crawl's progress (--frontier)
`python -m crawler COMMAND --help` for each.

The project is the nearest directory, from here upwards, with a crawler.toml or a
pyproject.toml with [tool.crawler] (its settings), else this one; spiders are found in
its spiders/ package.
"""
_EPILOG = """\
exit codes: 0 the crawl fetched something and every output was closed; 1 the crawl ran but
no page could be fetched, or an output could not be written; 2 a usage or startup error
(nothing was crawled or overwritten); 130 stopped at once by a second signal.
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
    sys.exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crawler", description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"crawler {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a spider", epilog=_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("spider", help="a spider name from ./spiders/, or a path to a .py file")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="with --frontier: run N worker processes on this machine (one per "
                          "core), each writing its own outputs ({worker} in -o)")
    _crawl_options(run)
    run.set_defaults(command=_cmd_run)

    listing = commands.add_parser("list", help="list the spiders in ./spiders/")
    listing.set_defaults(command=_cmd_list)

    demo = commands.add_parser(
        "demo", help="serve the bundled bookshop on 127.0.0.1 and crawl it")
    demo.add_argument("--port", type=int, default=0, help="port for the demo site (default: any)")
    demo.add_argument("--serve", action="store_true",
                      help="only serve the site until interrupted; do not crawl")
    _crawl_options(demo)
    demo.set_defaults(command=_cmd_demo)

    bench = commands.add_parser("bench", help="measure pages/s against a generated local site")
    bench.add_argument("--pages", type=int, default=5000, help="site size (default 5000)")
    bench.add_argument("--concurrency", type=int, default=64, help="default 64")
    bench.set_defaults(command=_cmd_bench)

    jobs = commands.add_parser("jobs", help="show the state of a job directory")
    jobs.add_argument("dir", help="a --job-dir directory")
    jobs.set_defaults(command=_cmd_jobs)

    status = commands.add_parser("status", help="show a shared crawl's progress (--frontier)")
    status.add_argument("spider", help="the spider's name")
    status.add_argument("--frontier", required=True, metavar="URL",
                        help="the shared frontier (redis://HOST:PORT/DB)")
    status.add_argument("--job", metavar="NAME", help="the crawl's name (default: the spider's)")
    status.set_defaults(command=_cmd_status)

    new = commands.add_parser(
        "new", help="write spiders/NAME.py from a template", epilog=_NEW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    new.add_argument("name", help="the spider's name (and module): lower case, digits, _")
    new.add_argument("url", help="where it starts: a URL or a domain")
    new.add_argument("-t", "--template", default="basic", choices=sorted(TEMPLATES),
                     help="basic: follow every link (default); crawl: a CrawlSpider with "
                          "rules; sitemap: a SitemapSpider")
    new.set_defaults(command=_cmd_new)

    fetch = commands.add_parser(
        "fetch", help="fetch a URL with a spider's settings and print it",
        epilog=_FETCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    fetch.add_argument("url")
    fetch.add_argument("--spider", metavar="NAME",
                       help="use this spider's settings (user agent, robots.txt, cache, "
                            "middlewares)")
    fetch.add_argument("--headers", action="store_true",
                       help="print the status line and response headers, not the body")
    fetch.add_argument("--no-redirect", action="store_true", help="do not follow redirects")
    _spider_options(fetch)
    fetch.set_defaults(command=_cmd_fetch)

    parse = commands.add_parser(
        "parse", help="run a spider's callback on one URL and print what it yields",
        epilog=_PARSE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parse.add_argument("url")
    parse.add_argument("--spider", required=True, metavar="NAME")
    parse.add_argument("-c", "--callback", metavar="CB",
                       help="the method to run (default: a CrawlSpider rule's, else parse)")
    parse.add_argument("-d", "--depth", type=int, default=1, metavar="N",
                       help="follow the requests it yields N-1 levels further (default 1)")
    parse.add_argument("-m", "--meta", metavar="JSON", help="the request's meta, a JSON object")
    parse.add_argument("--cb-kwargs", metavar="JSON",
                       help="keyword arguments for the callback, a JSON object")
    parse.add_argument("--noitems", action="store_true", help="do not print items")
    parse.add_argument("--nolinks", action="store_true", help="do not print requests")
    _spider_options(parse)
    parse.set_defaults(command=_cmd_parse)

    shell = commands.add_parser(
        "shell", help="an asyncio console with a fetched page, to try selectors",
        epilog=_SHELL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    shell.add_argument("url", nargs="?", help="a page to fetch first")
    shell.add_argument("--spider", metavar="NAME", help="fetch with this spider's settings")
    _spider_options(shell)
    shell.set_defaults(command=_cmd_shell)

    check = commands.add_parser(
        "check", help="run the contracts in the spiders' callback docstrings",
        epilog=_CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("spider", nargs="?", help="one spider (default: every spider)")
    check.add_argument("-l", "--list", action="store_true",
                       help="list the contracts, do not run them")
    _spider_options(check)
    check.set_defaults(command=_cmd_check)
    return parser


_NEW_EPILOG = """\
examples:
  python -m crawler new books http://127.0.0.1:8000/
  python -m crawler new shop shop.example --template crawl
  python -m crawler new shop_map https://shop.example/sitemap.xml -t sitemap
The spider is polite to someone else's site (per_host_concurrency 1, download_delay 1,
robots.txt obeyed, autothrottle); an existing file or spider name is never overwritten.
"""
_FETCH_EPILOG = """\
examples:
  python -m crawler fetch https://example.com/ > page.html
  python -m crawler fetch --headers --no-redirect http://example.com/old
  python -m crawler fetch --spider books http://127.0.0.1:8000/
exit codes: 0 a response came back (any status); 1 it could not be fetched; 2 usage.
"""
_PARSE_EPILOG = """\
examples:
  python -m crawler parse --spider books -c parse_book URL
  python -m crawler parse --spider books --depth 2 http://127.0.0.1:8000/
  python -m crawler parse --spider books -c parse_page --meta '{"page": 2}' URL
Items and requests are printed, never written to outputs. Exit code 1 when the page could
not be fetched or the callback raised.
"""
_SHELL_EPILOG = """\
examples:
  python -m crawler shell http://127.0.0.1:8000/
  >>> response.css_text("h1")
  >>> response.sel.css("li.book a::attr(href)").getall()
  >>> fetch(response.urljoin("catalogue/category/travel/page-1.html"))
  >>> view(response)
"""
_CHECK_EPILOG = """\
contracts are lines in a callback's docstring:
  @url http://127.0.0.1:8000/catalogue/some-book-1/index.html
  @returns items 1 1
  @returns requests 0 2
  @scrapes title price
  (@meta and @cb_kwargs take JSON objects)
exit codes: 0 every contract held; 1 one failed; 2 usage (a malformed contract).
"""


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-L", "--loglevel", metavar="LEVEL", type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (the log_level setting)")
    parser.add_argument("--log-file", metavar="PATH",
                        help="write log lines to PATH (appended) instead of stderr")
    parser.add_argument("--nolog", action="store_true", help="no log lines at all")


def _spider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting; repeatable")
    parser.add_argument("-a", "--arg", action="append", default=[], metavar="NAME=VALUE",
                        help="spider argument, passed to the spider's __init__; repeatable")
    _log_options(parser)


def _crawl_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="periodic log lines instead of the live display on a terminal")
    _log_options(parser)
    parser.add_argument(
        "-o", "--output", action="append", default=[], metavar="PATH",
        help="append items to PATH: .jsonl, .json or .csv (or PATH:FORMAT), a file:// URI, "
             "or - for standard output; %%(name)s and %%(time)s are replaced; repeatable")
    parser.add_argument("-O", "--overwrite-output", action="append", default=[], metavar="PATH",
                        help="like -o but replace the file")
    parser.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting; repeatable")
    parser.add_argument("-a", "--arg", action="append", default=[], metavar="NAME=VALUE",
                        help="spider argument, passed to the spider's __init__; repeatable")
    parser.add_argument("--stats", metavar="PATH", help="write the final stats as JSON to PATH")
    parser.add_argument("--cache", action="store_true",
                        help="replay responses stored by earlier runs, and store new ones "
                             "(the http_cache setting; in .crawler-cache/)")
    parser.add_argument("--cache-clear", action="store_true",
                        help="empty this spider's HTTP cache first (implies --cache)")
    parser.add_argument("--job-dir", metavar="DIR",
                        help="keep the crawl's state in DIR: the same command resumes it after "
                             "any stop, kill -9 included (the job_dir setting)")
    parser.add_argument("--restart", action="store_true",
                        help="with --job-dir: forget the job in DIR and start it over")
    parser.add_argument("--frontier", metavar="URL",
                        help="share the crawl with every process given the same URL "
                             "(redis://HOST:PORT/DB; the frontier setting)")
    parser.add_argument("--job", metavar="NAME",
                        help="with --frontier: the crawl's name in it (default: the spider's)")
    parser.add_argument("--status-port", type=int, metavar="PORT",
                        help="serve a live status page of the crawl on PORT (0: any free "
                             "one), with pause/resume/stop; on 127.0.0.1 unless --status-host")
    parser.add_argument("--status-host", metavar="ADDR",
                        help="the status page's address (default 127.0.0.1; any other needs "
                             "the token for every request)")
    parser.add_argument("--status-token", metavar="TOKEN",
                        help="the status page's token (default: a random one, logged with "
                             "the page's URL)")
    parser.add_argument("--worker-id", metavar="ID",
                        help="with --frontier: this process's name in the fleet and in "
                             "{worker} (default: host name and pid)")


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects NAME=VALUE, got {value!r}")
        pairs[key.strip()] = text
    return pairs


def _cmd_list(args: argparse.Namespace) -> int:
    spiders, errors = discover(find_project().root)
    for error in errors:
        print(f"warning: {error}", file=sys.stderr)
    for name in sorted(spiders):
        print(name)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    spider_cls = _load(args.spider)
    crawler = _build(spider_cls, args, {}, default_overwrite=True)
    if args.workers != 1:  # checked, now run as N processes
        if args.workers < 1:
            raise UsageError("--workers must be >= 1")
        if crawler.settings.frontier is None:
            raise UsageError("--workers needs a shared frontier: give --frontier "
                             "redis://HOST:PORT/DB (or the frontier setting)")
        if any("{worker}" not in spec for spec in (*args.output, *args.overwrite_output)):
            raise UsageError("with --workers, each output needs {worker} in its name (one "
                             "file per worker), e.g. -o 'output/items.{worker}.jsonl'")
        return run_workers(without_workers_flag(args.argv), args.workers,
                           crawler.settings.worker_id or default_worker_id())
    return _finish(asyncio.run(_run_with_signals(crawler)), args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from crawler.demo import BooksSpider, serve_forever, serving

    if args.serve:
        try:
            asyncio.run(serve_forever(args.port))
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
        return EXIT_OK

    async def crawl_demo() -> tuple[CrawlResult, bool]:
        async with serving(args.port) as base_url:
            print(f"demo bookshop at {base_url}", file=sys.stderr)
            crawler = _build(BooksSpider, args, {"base_url": base_url}, default_overwrite=True)
            return await _run_with_signals(crawler)

    return _finish(asyncio.run(crawl_demo()), args)


def _cmd_jobs(args: argparse.Namespace) -> int:
    state = read_job(args.dir)
    done = "finished" if state["finished"] else "not finished"
    print(f"job:      {args.dir}\n"
          f"spider:   {state['spider']}\n"
          f"started:  {state['started']}\n"
          f"updated:  {state['updated']}\n"
          f"pages:    {state['pages']}\n"
          f"items:    {state['items']}\n"
          f"queued:   {state['queued']} (in progress at the last stop included; "
          f"{state['waiting_to_retry']} waiting to retry)\n"
          f"failed:   {state['failed']}\n"
          f"state:    {done}{_reason(state['finish_reason'])}"
          + (f"\nnote:     {state['note']}" if state["note"] else ""))
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    Settings(frontier=args.frontier, frontier_job=args.job)  # the same checks as run's
    state = asyncio.run(read_status(args.frontier, args.spider, args.job))
    counts = state["counts"]
    print(f"crawl:       {state['prefix'].rstrip(':')}\n"
          f"queued:      {counts.get('queued', 0)}\n"
          f"leased:      {state['leased']}\n"
          f"done:        {counts.get('acked', 0)}\n"
          f"pages:       {counts.get('pages', 0)}\n"
          f"items:       {counts.get('items', 0)}\n"
          f"redelivered: {counts.get('redelivered', 0)}\n"
          f"seen:        {state['seen']}\n"
          f"state:       {state['state']}")
    workers = state["workers"]
    print(f"workers:     {len(workers)}")
    for name, w in sorted(workers.items()):
        print(f"  {name}: last heartbeat {w['age']:.1f} s ago, {w['pages']} pages "
              f"({w['pages_per_second']}/s), {w['items']} items, {w['in_flight']} in flight")
    return EXIT_OK


def _reason(reason: str) -> str:
    return f" ({reason})" if reason and reason != "finished" else ""


def _cmd_bench(args: argparse.Namespace) -> int:
    from crawler.bench import main as bench

    if args.pages < 1 or args.concurrency < 1:
        raise UsageError("--pages and --concurrency must be >= 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        stats = bench(args.pages, args.concurrency)
    except KeyboardInterrupt:
        print("crawler: bench interrupted", file=sys.stderr)
        return EXIT_KILLED
    return EXIT_OK if stats.items == args.pages else EXIT_FAILED


def _build(spider_cls: type[Spider], args: argparse.Namespace, extra_args: dict[str, str],
           *, default_overwrite: bool) -> Crawler:
    """Everything that can be checked before the loop runs: spider, settings, outputs, the
    stats path, plugins. Nothing is opened for writing here. A spider class with its own
    `from_crawler` is built by the crawler, with it (Scrapy's order): its settings are the
    class's."""
    spider_args = {**extra_args, **_pairs(args.arg, "-a")}
    from_crawler = getattr(spider_cls.from_crawler, "__func__", None)
    by_crawler = from_crawler is not getattr(Spider.from_crawler, "__func__", None)
    spider: Spider | type[Spider] = spider_cls if by_crawler else \
        _spider(spider_cls, args, extra_args)[0]
    settings = _settings(spider, args)
    if args.cache or args.cache_clear:
        settings = settings.merge({"http_cache": True})
    if args.job_dir is not None:
        settings = settings.merge({"job_dir": args.job_dir})
    shared = {"frontier": args.frontier, "frontier_job": args.job,
              "worker_id": args.worker_id, "status_port": args.status_port,
              "status_host": args.status_host, "status_token": args.status_token}
    settings = settings.merge({k: v for k, v in shared.items() if v is not None})
    if settings.frontier is None and (args.job or args.worker_id):
        raise UsageError("--job and --worker-id name a shared crawl: give --frontier URL")
    if args.restart and settings.job_dir is None:
        raise UsageError("--restart needs a job: give --job-dir DIR")
    if not args.no_progress and not args.nolog and "progress" not in _pairs(args.set, "-s") \
            and sys.stderr.isatty() and getattr(args, "workers", 1) == 1:
        settings = settings.merge({"progress": True})
    args.live = settings.progress  # the end: a stats table rather than the summary line
    outputs = _outputs(spider, args, settings, default_overwrite=default_overwrite)
    if args.stats:
        _check_stats_path(Path(args.stats), outputs)
    _check_log_file(args, outputs)  # before the logging opens it
    _configure_logging(settings, args, spider.name)
    try:
        crawler = Crawler(spider, spider_args=spider_args, settings=settings, outputs=outputs,
                          restart=args.restart)
    except (TypeError, ValueError) as exc:  # the spider's own from_crawler() or __init__
        if not by_crawler:
            raise
        raise UsageError(f"spider {spider_cls.name!r} failed to start: {describe(exc)}") \
            from None
    if args.cache_clear:  # last: only a crawl that can start loses its cache
        try:
            if clear_cache(settings.http_cache_dir, spider.name):
                logger.info("HTTP cache of %s cleared", spider.name)
        except OSError as exc:
            raise UsageError(f"--cache-clear: cannot remove the cache: {exc}") from None
    return crawler


def _outputs(spider: Spider | type[Spider], args: argparse.Namespace, settings: Settings, *,
             default_overwrite: bool) -> list[Sink]:
    """-o and -O; without them, the `feeds` setting's (Scrapy's FEEDS); else the default
    output/SPIDER.jsonl."""
    started = datetime.datetime.now(datetime.UTC)
    fields, sinks = settings.feed_fields, settings.sinks
    worker = settings.worker_id or default_worker_id()

    def sink(spec: str, overwrite: bool, **options: Any) -> Sink:
        return output_sink(spec, overwrite=overwrite, spider=spider, started=started,
                           sinks=sinks, worker=worker, **options)

    outputs = [sink(spec, False, fields=fields, indent=settings.feed_indent)
               for spec in args.output]
    outputs += [sink(spec, True, fields=fields, indent=settings.feed_indent)
                for spec in args.overwrite_output]
    if not outputs:
        for uri, options in settings.feeds:
            declared = options.get("fields")
            outputs.append(sink(uri, bool(options.get("overwrite", False)),
                                fields=tuple(declared) if declared else fields,
                                format=options.get("format"),
                                indent=options.get("indent", settings.feed_indent)))
    if not outputs:  # with a shared frontier, each worker writes its own file
        name = f"{spider.name}.{worker}" if settings.frontier else spider.name
        outputs.append(make_exporter(Path("output") / f"{name}.jsonl",
                                     overwrite=default_overwrite, fields=fields))
    return outputs


def _check_log_file(args: argparse.Namespace, outputs: list[Sink]) -> None:
    """--log-file may not be an output or the stats file: one would overwrite the other."""
    if not getattr(args, "log_file", None):
        return
    log = file_identity(args.log_file)
    for output in outputs:
        if output.identity() == log:
            raise UsageError(f"--log-file {args.log_file} is also an output ({output.name}): "
                             "each needs its own file")
    if args.stats and file_identity(args.stats) == log:
        raise UsageError(f"--log-file {args.log_file} is also the --stats file")


def _check_stats_path(path: Path, outputs: list[Sink]) -> None:
    if path.is_dir():
        raise UsageError(f"--stats {path}: it is a directory")
    if path.is_fifo():
        raise UsageError(f"--stats {path}: it is a named pipe (give a file)")
    if any(file_identity(path) == o.identity() for o in outputs):
        raise UsageError(f"--stats {path} is also an output")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--stats {path}: cannot create it in {parent}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"--stats {path}: not writable")


async def _run_with_signals(crawler: Crawler) -> tuple[CrawlResult, bool]:
    """First SIGINT/SIGTERM/SIGHUP stops gracefully; a second one stops at once."""
    loop = asyncio.get_running_loop()
    with Interrupts(loop, on_stop=crawler.stop, on_kill=crawler.kill) as interrupts:
        result = await crawler.run()
    return result, interrupts.count > 1


def _finish(outcome: tuple[CrawlResult, bool], args: argparse.Namespace) -> int:
    result, killed = outcome
    if result.finish_reason == "job_finished":
        print("crawler: this job has finished: nothing to do (--restart runs it again)",
              file=sys.stderr)
        return EXIT_OK
    stats = result.stats.as_dict()
    if getattr(args, "live", False):
        from crawler.progress import progress_console, stats_table

        progress_console().print(stats_table(stats))
    else:
        print(summary(stats), file=sys.stderr)
    code = EXIT_KILLED if killed else EXIT_OK
    if args.stats and not _write_stats(Path(args.stats), stats):
        code = code or EXIT_FAILED
    for output in result.failed_outputs:
        print(f"crawler: error: cannot write {output.name}: {output.error}; it ends at its "
              "last complete record", file=sys.stderr)
        code = code or EXIT_FAILED
    if result.problem is not None:
        print(f"crawler: error: {redact(result.problem)}", file=sys.stderr)
        code = code or EXIT_FAILED
    elif stats["errors"].get("internal"):
        print(f"crawler: error: {stats['errors']['internal']} internal error(s) (a bug in the "
              "crawler or a plugin; logged above): requests failed", file=sys.stderr)
        code = code or EXIT_FAILED
    why = nothing_done(stats)
    if why is not None and stats["counters"].get("frontier/joined"):
        why = None  # another worker ran start(): this one found the work done or taken
    if why is not None and not killed:
        print(f"crawler: error: {why}", file=sys.stderr)
        code = code or EXIT_FAILED
    return code


def _write_stats(path: Path, stats: dict[str, Any]) -> bool:
    """Write the stats whole or not at all (a temporary file renamed over the path). A
    symlink is followed, not replaced; a device (/dev/stdout) is written through."""
    data = orjson.dumps(stats, option=orjson.OPT_INDENT_2) + b"\n"
    path = Path(os.path.realpath(path))
    try:
        if path.exists() and not path.is_file():
            with path.open("wb") as device:
                device.write(data)
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        print(f"crawler: error: cannot write the stats to {path}: {exc.strerror}",
              file=sys.stderr)
        return False
    return True


def _configure_logging(settings: Settings, args: argparse.Namespace, spider: str) -> None:
    """Log lines carry the spider's name; --log-file writes them from a thread (the event
    loop never waits on the disk); with the live display, rich prints them above it."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if args.nolog:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL + 1)
        return
    name = spider.replace("%", "%%")
    handler: logging.Handler
    if args.log_file:
        try:
            file_handler: logging.Handler = logging.FileHandler(args.log_file, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log-file {args.log_file}: {exc.strerror}") from None
        file_handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s"))
        log_queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        listener = logging.handlers.QueueListener(log_queue, file_handler)
        listener.start()
        atexit.register(listener.stop)  # flushes what is queued when the process ends
        handler = logging.handlers.QueueHandler(log_queue)
    elif settings.progress:
        from rich.logging import RichHandler

        from crawler.progress import progress_console

        rich_handler = RichHandler(console=progress_console(), show_path=False, markup=False)
        rich_handler.setFormatter(logging.Formatter(f"[{name}] %(name)s: %(message)s"))
        handler = rich_handler
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s"))
    root.addHandler(handler)
    redact_handlers(root)  # no credential in any log line
    root.setLevel(settings.log_level_number)


def _load(target: str) -> type[Spider]:
    """A spider class by name (in the project's spiders/) or .py path; warnings printed."""
    spider_cls, warnings = load_spider(target, find_project().root)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return spider_cls


def _settings(spider: Spider | type[Spider], args: argparse.Namespace,
              **defaults: Any) -> Settings:
    """defaults < the project file < `defaults` (a command's) < the spider's own < -s < -L."""
    base = find_project().base()
    if defaults:
        base = base.merge(defaults)
    settings = Settings.for_spider(spider, base).merge_strings(_pairs(args.set, "-s"))
    if args.loglevel:
        settings = settings.merge({"log_level": args.loglevel})
    return settings


def _spider(spider_cls: type[Spider], args: argparse.Namespace,
            extra_args: dict[str, str] | None = None) -> tuple[Spider, dict[str, str]]:
    """The spider built with `extra_args` (the demo's) and -a's; UsageError if it fails."""
    spider_args = {**(extra_args or {}), **_pairs(args.arg, "-a")}
    try:
        return spider_cls(**spider_args), spider_args
    except TypeError as exc:
        raise UsageError(f"bad spider arguments for {spider_cls.name!r}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"spider {spider_cls.name!r} failed to start: {describe(exc)}") \
            from None


def _tool_setup(args: argparse.Namespace, spider_name: str | None
                ) -> tuple[Spider, Settings, dict[str, str]]:
    """fetch/parse/shell/check: the spider (or a bare one) with its arguments, settings and
    logging. These commands log warnings only unless the spider, -s or -L say otherwise."""
    spider_cls = _load(spider_name) if spider_name else _BareSpider
    spider, spider_args = _spider(spider_cls, args)
    settings = _settings(spider, args, log_level="WARNING")
    _configure_logging(settings, args, spider.name)
    return spider, settings, spider_args


class _BareSpider(Spider):
    """What fetch and shell use without --spider: the defaults and the project's settings."""

    name = "fetch"


def _json_object(text: str | None, flag: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{flag}: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} expects a JSON object, got {text!r}")
    return value


def _check_url(url: str) -> str:
    parsed = parse_url(url)
    if isinstance(parsed, str):
        raise UsageError(f"bad URL {url!r}: not an absolute http(s) URL "
                         f"({parsed.replace('_', ' ')})")
    return url


def _cmd_new(args: argparse.Namespace) -> int:
    root = find_project().root
    spiders, _ = discover(root)
    path = new_spider(root, args.name, args.url, args.template, frozenset(spiders))
    print(f"wrote {path}\nrun it:   python -m crawler run {args.name}\n"
          f"check it: python -m crawler check {args.name}")
    return EXIT_OK


def _cmd_fetch(args: argparse.Namespace) -> int:
    url = _check_url(args.url)
    spider, settings, spider_args = _tool_setup(args, args.spider)
    result = asyncio.run(probe(type(spider), [ProbeRequest(url, redirect=not args.no_redirect)],
                               settings, spider_args=spider_args))
    if not result.responses:
        why = f"{result.failures[0].kind}: {result.failures[0].exception}" \
            if result.failures else "nothing came back (see the log)"
        print(f"crawler: error: cannot fetch {url}: {why}", file=sys.stderr)
        return EXIT_FAILED
    response = result.responses[-1]
    if args.headers:
        print(f"{response.status} {response.url}")
        for name, value in response.headers.items():
            print(f"{name}: {value}")
    else:
        sys.stdout.buffer.write(response.body)
        sys.stdout.buffer.flush()
    return EXIT_OK


def _cmd_parse(args: argparse.Namespace) -> int:
    url = _check_url(args.url)
    if args.depth < 1:
        raise UsageError("--depth must be >= 1")
    meta = _json_object(args.meta, "--meta")
    cb_kwargs = _json_object(args.cb_kwargs, "--cb-kwargs")
    spider, settings, spider_args = _tool_setup(args, args.spider)
    callback = callback_for(spider, url, args.callback)
    wanted = ProbeRequest(url, callback, meta=meta, cb_kwargs=cb_kwargs)
    result = asyncio.run(probe(type(spider), [wanted], settings, depth=args.depth,
                               spider_args=spider_args))
    for depth, level in enumerate(result.levels, 1):
        print(f">>> depth {depth}: {len(level.items)} items, {len(level.requests)} "
              "requests <<<")
        if not args.noitems:
            for item in level.items:
                print(encode(item).decode())
        if not args.nolinks:
            for request in level.requests:
                name = getattr(request.callback, "__name__", "parse")
                print(f"{request.method} {request.url}  -> {name}")
    for failure in result.failures:
        print(f"crawler: error: {failure.request.url}: {failure.kind}: {failure.exception}",
              file=sys.stderr)
    if not result.responses:
        return EXIT_FAILED
    if result.errors:
        print(f"crawler: error: the callback raised {result.errors} time(s) (logged above)",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _cmd_shell(args: argparse.Namespace) -> int:
    from crawler.shell import Shell

    if args.url:
        _check_url(args.url)
    spider, settings, spider_args = _tool_setup(args, args.spider)
    Shell(spider, settings, spider_args).interact(args.url)
    return EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    if args.spider:
        targets = {args.spider: _load(args.spider)}
    else:
        targets, errors = discover(find_project().root)
        for error in errors:
            print(f"warning: {error}", file=sys.stderr)
    plans = {name: contracts_of(cls) for name, cls in sorted(targets.items())}
    total = sum(len(contracts) for contracts in plans.values())
    if args.list:
        for name, contracts in plans.items():
            for contract in contracts:
                print(f"{name}.{contract.method}  {contract.url}")
        return EXIT_OK
    failed = 0
    for name, contracts in plans.items():
        if not contracts:
            continue
        spider, settings, spider_args = _tool_setup(args, name)
        result = asyncio.run(probe(type(spider), [c.request() for c in contracts], settings,
                                   spider_args=spider_args))
        for contract in contracts:
            problems = list(judge(contract, result))
            failed += bool(problems)
            print(f"{'FAIL' if problems else 'ok  '}  {name}.{contract.method}")
            for problem in problems:
                print(f"        {problem}")
    print(f"{total} contract(s) run, {failed} failed", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
