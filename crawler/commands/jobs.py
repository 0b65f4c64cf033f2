"""`jobs DIR`: the state of a job directory."""

from __future__ import annotations

import argparse
from typing import Any

from crawler.commands.common import (
    EXIT_OK,
)
from crawler.frontier.jobstatus import read_job
from crawler.recrawl.feed import utc_text


def add(commands: Any) -> None:
    """The `jobs` command's options."""
    parser = commands.add_parser("jobs", help="show the state of a job directory")
    parser.add_argument("dir", help="a --job-dir directory")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
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
          f"state:    {done}{reason_text(state['finish_reason'])}\n"
          f"round:    {state['round']} ({state['known']} pages known"
          + (f"; the first due again at {utc_text(state['next_due'])}"
             if state["next_due"] is not None else "") + ")"
          + (f"\nnote:     {state['note']}" if state["note"] else ""))
    return EXIT_OK

def reason_text(reason: str) -> str:
    return f" ({reason})" if reason and reason != "finished" else ""

