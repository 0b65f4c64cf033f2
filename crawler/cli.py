"""`python -m crawler`: run, list, demo. The only module that reads argv or prints."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from crawler import __version__
from crawler.engine import Crawler, CrawlResult
from crawler.exceptions import UsageError
from crawler.exporters import Exporter, make_exporter
from crawler.loader import discover, load_spider
from crawler.settings import Settings
from crawler.spider import Spider

logger = logging.getLogger("crawler")

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_KILLED = 130


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m crawler` and the `crawler` script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code = args.command(args)
    except UsageError as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    sys.exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crawler", description=__doc__)
    parser.add_argument("--version", action="version", version=f"crawler {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a spider")
    run.add_argument("spider", help="a spider name from ./spiders/, or a path to a .py file")
    _crawl_options(run)
    run.set_defaults(command=_cmd_run)

    listing = commands.add_parser("list", help="list the spiders in ./spiders/")
    listing.set_defaults(command=_cmd_list)

    demo = commands.add_parser(
        "demo", help="serve the bundled bookshop on 127.0.0.1 and crawl it with spiders/books.py")
    demo.add_argument("--port", type=int, default=0, help="port for the demo site (default: any)")
    demo.add_argument("--serve", action="store_true",
                      help="only serve the site until interrupted; do not crawl")
    _crawl_options(demo)
    demo.set_defaults(command=_cmd_demo)

    bench = commands.add_parser("bench", help="measure pages/s against a generated local site")
    bench.add_argument("--pages", type=int, default=5000, help="site size (default 5000)")
    bench.add_argument("--concurrency", type=int, default=64, help="default 64")
    bench.set_defaults(command=_cmd_bench)
    return parser


def _crawl_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", action="append", default=[], metavar="PATH",
                        help="append items to PATH (.jsonl, .json, .csv); repeatable")
    parser.add_argument("-O", "--overwrite-output", action="append", default=[], metavar="PATH",
                        help="like -o but replace the file")
    parser.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting; repeatable")
    parser.add_argument("-a", "--arg", action="append", default=[], metavar="NAME=VALUE",
                        help="spider argument, passed to the spider's __init__; repeatable")
    parser.add_argument("--stats", metavar="PATH", help="write the final stats as JSON to PATH")


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects NAME=VALUE, got {value!r}")
        pairs[key.strip()] = text
    return pairs


def _cmd_list(args: argparse.Namespace) -> int:
    spiders, errors = discover(Path.cwd())
    for error in errors:
        print(f"warning: {error}", file=sys.stderr)
    for name in sorted(spiders):
        print(name)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    spider_cls = load_spider(args.spider)
    return _crawl(spider_cls, args, {})


def _cmd_demo(args: argparse.Namespace) -> int:
    from crawler.demo import serve_forever, serving

    if args.serve:
        asyncio.run(serve_forever(args.port))
        return EXIT_OK
    spider_cls = load_spider("books")

    async def crawl_demo() -> tuple[CrawlResult, bool]:
        async with serving(args.port) as base_url:
            print(f"demo bookshop at {base_url}", file=sys.stderr)
            spider_args = {"base_url": base_url}
            crawler = _build(spider_cls, args, spider_args, default_overwrite=True)
            return await _run_with_signals(crawler)

    _configure_logging(_settings(spider_cls, args))
    return _finish(asyncio.run(crawl_demo()), args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from crawler.bench import main as bench

    if args.pages < 1 or args.concurrency < 1:
        raise UsageError("--pages and --concurrency must be >= 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stats = bench(args.pages, args.concurrency)
    return EXIT_OK if stats.items == args.pages else 1


def _settings(spider_cls: type[Spider], args: argparse.Namespace) -> Settings:
    return Settings().merge(spider_cls.custom_settings).merge_strings(_pairs(args.set, "-s"))


def _build(spider_cls: type[Spider], args: argparse.Namespace, extra_args: dict[str, str],
           *, default_overwrite: bool) -> Crawler:
    settings = _settings(spider_cls, args)
    spider_args = {**extra_args, **_pairs(args.arg, "-a")}
    try:
        spider = spider_cls(**spider_args)
    except TypeError as exc:
        raise UsageError(f"bad spider arguments for {spider_cls.name!r}: {exc}") from None
    outputs: list[Exporter] = [
        make_exporter(p, overwrite=False, fields=settings.feed_fields) for p in args.output
    ] + [make_exporter(p, overwrite=True, fields=settings.feed_fields)
         for p in args.overwrite_output]
    if not outputs:
        outputs.append(make_exporter(Path("output") / f"{spider_cls.name}.jsonl",
                                     overwrite=default_overwrite, fields=settings.feed_fields))
    return Crawler(spider, settings=settings, outputs=outputs)


def _crawl(spider_cls: type[Spider], args: argparse.Namespace, extra: dict[str, str]) -> int:
    crawler = _build(spider_cls, args, extra, default_overwrite=True)
    _configure_logging(crawler.settings)
    return _finish(asyncio.run(_run_with_signals(crawler)), args)


async def _run_with_signals(crawler: Crawler) -> tuple[CrawlResult, bool]:
    """First SIGINT/SIGTERM stops gracefully; a second one stops at once."""
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            logger.warning("%s received: stopping (send it again to stop now)",
                           signal.Signals(signum).name)
            crawler.stop("shutdown")
        else:
            crawler.kill()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        result = await crawler.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return result, signals_seen > 1


def _finish(outcome: tuple[CrawlResult, bool], args: argparse.Namespace) -> int:
    result, killed = outcome
    stats = result.stats.as_dict()
    print(_summary(stats), file=sys.stderr)
    if args.stats:
        path = Path(args.stats)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2) + b"\n")
    return EXIT_KILLED if killed else EXIT_OK


def _summary(stats: dict[str, Any]) -> str:
    errors = ", ".join(f"{k}={v}" for k, v in stats["errors"].items()) or "none"
    return (f"crawl {stats['finish_reason']}: {stats['pages']} pages, {stats['items']} items, "
            f"{stats['requests_failed']} failed in {stats['elapsed_seconds']:.1f}s "
            f"({stats['pages_per_second']} pages/s); errors: {errors}")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level_number,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
