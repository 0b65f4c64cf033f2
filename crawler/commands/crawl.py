"""A crawl from the command line: every check before anything is opened for writing
(spider, settings, outputs, the stats and log paths, plugins), the logging, the
signals, and the end (the summary, the stats file, the exit code)."""

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
from pathlib import Path
from typing import Any

import orjson

from crawler.commands.common import (
    EXIT_FAILED,
    EXIT_MONITOR,
    EXIT_OK,
    flagged_settings,
    load,
    make_spider,
    pairs,
    settings_for,
)
from crawler.commands.interrupts import EXIT_KILLED, Interrupts
from crawler.core.crawler import Crawler, CrawlResult
from crawler.core.plugins import describe
from crawler.exceptions import UsageError
from crawler.frontier.redisstore import default_worker_id
from crawler.middlewares.httpcache import clear_cache
from crawler.outputs.feeds import output_sink
from crawler.outputs.files import file_identity
from crawler.outputs.formats import make_exporter
from crawler.outputs.sinks import Sink
from crawler.redact import redact, redact_handlers
from crawler.settings import Settings
from crawler.spider import Spider
from crawler.stats import failed_monitors, nothing_done, summary

logger = logging.getLogger(__name__)

def build_crawler(spider_cls: type[Spider], args: argparse.Namespace, extra_args: dict[str, str],
           *, default_overwrite: bool) -> Crawler:
    """Everything that can be checked before the loop runs: spider, settings, outputs, the
    stats path, plugins. Nothing is opened for writing here. A spider class with its own
    `from_crawler` is built by the crawler, with it (Scrapy's order): its settings are the
    class's."""
    spider_args = {**extra_args, **pairs(args.arg, "-a")}
    from_crawler = getattr(spider_cls.from_crawler, "__func__", None)
    by_crawler = from_crawler is not getattr(Spider.from_crawler, "__func__", None)
    spider: Spider | type[Spider] = spider_cls if by_crawler else \
        make_spider(spider_cls, args, extra_args)[0]
    settings = settings_for(spider, args)
    given = flagged_settings(args)  # --job-dir DIR, --frontier URL, --cache, ...
    given.pop("log_level", None)  # (configure_logging takes -L)
    if args.cache_clear:
        given["http_cache"] = "true"
    settings = settings.merge_strings(given)
    if settings.frontier is None and (args.frontier_job or args.worker_id):
        raise UsageError("--job and --worker-id name a shared crawl: give --frontier URL")
    if args.restart and settings.job_dir is None:
        raise UsageError("--restart needs a job: give --job-dir DIR")
    if not args.no_progress and not args.nolog and "progress" not in pairs(args.set, "-s") \
            and sys.stderr.isatty() and getattr(args, "workers", 1) == 1:
        settings = settings.merge({"progress": True})
    args.live = settings.progress  # the end: a stats table rather than the summary line
    outputs = outputs_of(spider, args, settings, default_overwrite=default_overwrite)
    if args.stats:
        check_stats_path(Path(args.stats), outputs)
    check_log_file(args, outputs)  # before the logging opens it
    configure_logging(settings, args, spider.name)
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

def outputs_of(spider: Spider | type[Spider], args: argparse.Namespace, settings: Settings, *,
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

def check_log_file(args: argparse.Namespace, outputs: list[Sink]) -> None:
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

def check_stats_path(path: Path, outputs: list[Sink]) -> None:
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

async def run_with_signals(crawler: Crawler) -> tuple[CrawlResult, bool]:
    """First SIGINT/SIGTERM/SIGHUP stops gracefully; a second one stops at once."""
    loop = asyncio.get_running_loop()
    with Interrupts(loop, on_stop=crawler.stop, on_kill=crawler.kill) as interrupts:
        result = await crawler.run()
    return result, interrupts.count > 1

def finish(outcome: tuple[CrawlResult, bool], args: argparse.Namespace) -> int:
    result, killed = outcome
    if result.finish_reason == "job_finished":
        print("crawler: this job has finished: nothing to do (--restart runs it again)",
              file=sys.stderr)
        return EXIT_OK
    stats = result.stats.as_dict()
    if getattr(args, "live", False):
        from crawler.extensions.progress import progress_console, stats_table

        progress_console().print(stats_table(stats))
    else:
        print(summary(stats), file=sys.stderr)
    code = EXIT_KILLED if killed else EXIT_OK
    if args.stats and not write_stats(Path(args.stats), stats):
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
    for monitor in failed_monitors(stats):
        print(f"crawler: error: monitor {monitor['name']} failed: {monitor['message']}",
              file=sys.stderr)
        code = code or EXIT_MONITOR
    return code

def write_stats(path: Path, stats: dict[str, Any]) -> bool:
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

def configure_logging(settings: Settings, args: argparse.Namespace, spider: str) -> None:
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

        from crawler.extensions.progress import progress_console

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

def tool_setup(args: argparse.Namespace, spider_name: str | None
                ) -> tuple[Spider, Settings, dict[str, str]]:
    """fetch/parse/shell/check: the spider (or a bare one) with its arguments, settings and
    logging. These commands log warnings only unless the spider, -s or -L say otherwise."""
    spider_cls = load(spider_name) if spider_name else BareSpider
    spider, spider_args = make_spider(spider_cls, args)
    settings = settings_for(spider, args, log_level="WARNING")
    configure_logging(settings, args, spider.name)
    return spider, settings, spider_args

class BareSpider(Spider):
    """What fetch and shell use without --spider: the defaults and the project's settings."""

    name = "fetch"

