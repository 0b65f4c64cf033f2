"""A job's outputs on resume: each file checked against what the job committed (its
length and the digest of the bytes before it), then cut back to it, so that a resumed
job appends exactly after the last committed record; a file changed since is refused
before any is touched."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crawler.exceptions import StartupError
from crawler.outputs.sinks import Sink

__all__ = ["cut_back", "tail_digest"]

logger = logging.getLogger(__name__)


def tail_digest(tail: bytes) -> str:
    """What a commit stores of the bytes before an output's length: "SIZE:DIGEST"."""
    return f"{len(tail)}:{_digest(tail)}"


def cut_back(sinks: Sequence[Sink], lengths: dict[str, tuple[int, str | None]]) -> None:
    """Check every file against `lengths` (name -> committed length, tail digest), then cut
    each back (blocking: run it in a thread)."""
    from crawler.outputs.files import Exporter

    cuts = []
    for sink in sinks:
        if not isinstance(sink, Exporter):
            sink.overwrite = False  # idempotent: kept, and what the job redoes rewritten
            continue
        stored = lengths.get(sink.name)
        if stored is not None:  # else an output this job did not have: as the command says
            _check(sink, *stored)
            cuts.append((sink, stored[0]))
    for sink, length in cuts:
        longer = Path(sink.path).stat().st_size > length
        sink.cut_back(length)  # (a .json gets its closing bracket again in any case)
        if longer:
            logger.info("%s cut back to its last committed item", sink.name)
        sink.overwrite = False  # appended from its last committed item


def _check(sink: Any, length: int, tail: str | None) -> None:
    path = Path(sink.path)
    changed = (f"output {sink.name} was changed since the job wrote it", "use --restart "
               "to start the job over (or put the file back)")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise StartupError(f"output {sink.name} was removed since the job wrote it "
                           f"({length} bytes committed): {changed[1]}") from None
    if size < length:
        raise StartupError(f"{changed[0]}: it is shorter ({size} bytes) than the job "
                           f"committed ({length}): {changed[1]}")
    if tail is None:
        return  # a job from before digests were kept
    size_text, _, digest = tail.partition(":")
    want = int(size_text)
    with path.open("rb") as file:
        file.seek(length - want)
        if _digest(file.read(want)) != digest:
            raise StartupError(f"{changed[0]}: the bytes before its last committed "
                               f"record differ: {changed[1]}")


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()
