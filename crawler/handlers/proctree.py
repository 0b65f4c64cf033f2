"""This machine's process tree as /proc shows it (Linux): a process's descendants and the
memory they hold. The browser handler reads its Chromium's memory with it; the tests and
the benchmark find and measure the processes a crawl started; the crawl service and
`run --workers` tie their children's lives to theirs (`die_with_parent`). Blocking: call
it from a thread in a coroutine."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

__all__ = ["alive", "descendants", "die_with_parent", "pss", "roots", "tree_memory"]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as file:
                    parent = int(file.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _read(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as file:
            return file.read()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, waiting to be reaped, does not)."""
    stat = _read(pid, "stat")
    return bool(stat) and stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")


def descendants(root: int | None = None, name: str | None = None) -> list[int]:
    """The live processes below `root` (this process), those whose command name contains
    `name` if given."""
    tree, found, todo = _children(), [], [root or os.getpid()]
    wanted = name.encode() if name is not None else None
    while todo:
        for child in tree.get(todo.pop(), []):
            todo.append(child)
            if (wanted is None or wanted in _read(child, "comm")) and alive(child):
                found.append(child)
    return found


def pss(pid: int) -> int:
    """Bytes a process holds: its proportional share of what it maps (shared pages divided
    among the processes sharing them: summing RSS would count Chromium's shared memory once
    per process), its RSS where the kernel does not say, 0 once it is gone."""
    for line in _read(pid, "smaps_rollup").splitlines():
        if line.startswith(b"Pss:"):
            return int(line.split()[1]) * 1024
    for line in _read(pid, "status").splitlines():
        if line.startswith(b"VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def roots(name: str, root: int | None = None) -> set[int]:
    """The topmost processes below `root` (this process) whose command name contains
    `name`: those whose parent is not one of them (a browser, not its renderers)."""
    found = descendants(root, name)
    below = {pid for top in found for pid in descendants(top)}
    return set(found) - below


def tree_memory(root: int) -> int:
    """Bytes `root` and every process below it hold (their PSS)."""
    return pss(root) + sum(pss(pid) for pid in descendants(root))


def die_with_parent() -> None:
    """In a child between fork and exec (a `preexec_fn`; Linux): SIGKILL when its parent
    dies, even by SIGKILL, so that nothing it started goes on unwatched."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
