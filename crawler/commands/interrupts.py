"""SIGINT, SIGTERM and SIGHUP during a crawl: the first stops gracefully, the second stops
at once, and the process exits even if something holds the event loop.

Signals are read by a thread from the interpreter's wakeup fd, which the C-level handler
writes at delivery: unlike `loop.add_signal_handler`, this works while a callback or a user
hook blocks the loop. The first signal asks the loop to `stop()`; the second asks it to
`kill()` and arms a timer that exits the process (code 130) if it is still alive after
`KILL_GRACE` seconds; a third exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["Interrupts"]

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
KILL_GRACE = 5.0  # seconds between the second signal and a forced exit
EXIT_KILLED = 130


class Interrupts:
    """Usage:
        with Interrupts(loop, on_stop=crawler.stop, on_kill=crawler.kill) as interrupts:
            result = await crawler.run()
        killed = interrupts.count > 1
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, on_stop: Callable[[], None],
                 on_kill: Callable[[], None], grace: float = KILL_GRACE) -> None:
        self.count = 0
        self._loop = loop
        self._on_stop = on_stop
        self._on_kill = on_kill
        self._grace = grace
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous: dict[int, object] = {}
        self._old_wakeup = -1
        self._thread = threading.Thread(target=self._watch, name="signals", daemon=True)

    def __enter__(self) -> Interrupts:
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, _no_op)
        self._old_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        signal.set_wakeup_fd(self._old_wakeup)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        os.write(self._write, b"\0")  # ends the thread
        self._thread.join()
        os.close(self._read)
        os.close(self._write)

    def _watch(self) -> None:
        while True:
            for signum in os.read(self._read, 64):
                if signum == 0:
                    return
                if signum in SIGNALS:
                    self._received(signal.Signals(signum))

    def _received(self, signum: signal.Signals) -> None:
        self.count += 1
        if self.count == 1:
            logger.warning("%s received: stopping (send it again to stop now)", signum.name)
            self._call(self._on_stop)
        elif self.count == 2:
            logger.warning("%s received again: stopping now", signum.name)
            self._call(self._on_kill)
            timer = threading.Timer(self._grace, _exit,
                                    (f"still running {self._grace:g}s after the second "
                                     "signal: exiting now",))
            timer.daemon = True
            timer.start()
        else:
            _exit("third signal: exiting now")

    def _call(self, fn: Callable[[], None]) -> None:
        try:
            self._loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop is closed: the crawl is over
            pass


def _no_op(signum: int, frame: object) -> None:
    """A Python-level handler, so that the C handler writes the wakeup fd."""


def _exit(message: str) -> None:
    os.write(2, f"crawler: {message}\n".encode())
    os._exit(EXIT_KILLED)
