"""Stopping a running program when a signal arrives (Ctrl-C).

While generated code runs, the main thread is inside a ctypes or unicorn
call and CPython cannot run its signal handlers: the C-level handler only
notes the signal and writes its number to the wakeup file descriptor
(:func:`signal.set_wakeup_fd`). :func:`begin_watch` points that descriptor at
a pipe for the length of one run; a daemon thread reading the pipe calls the
run's ``stop``: native code is sent to its interrupt stub by a signal
handler of ours (:mod:`jit.runtime.redirect`, nothing is polled in the
code), the emulator is told to stop. Only code with a back-edge is watched
(the rest cannot run away). When the run has returned, the
Python handler runs as usual: the default one raises KeyboardInterrupt,
which the run turns into :class:`jit.Interrupted` (itself a
KeyboardInterrupt).

Signals that only inform (SIGCHLD, SIGWINCH, SIGURG) do not stop a run. The
wakeup descriptor the process had before (asyncio's, say) gets every byte
forwarded and is restored afterwards. Only the main thread receives Python
signals, so only runs in the main thread are stopped this way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Callable

_MAIN_THREAD = threading.main_thread().ident
_INFORMATIONAL = frozenset(
    int(getattr(signal, name)) for name in ("SIGCHLD", "SIGWINCH", "SIGURG") if hasattr(signal, name)
)


class _Watcher:
    """The pipe the signal handler writes to and the thread that reads it
    (one per process: signal dispositions are process-wide)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)  # set_wakeup_fd requires it
        self.stop: Callable[[], bool] | None = None  # the running program's
        self.forward = -1  # the wakeup fd this run displaced
        threading.Thread(target=self._read, name="jit-signal-watch", daemon=True).start()

    def _read(self) -> None:
        while True:
            data = os.read(self.read_fd, 64)
            for signum in data:
                if self.forward >= 0:
                    with contextlib.suppress(OSError):  # a full or closed pipe: its owner's business
                        os.write(self.forward, bytes([signum]))
                stop = self.stop
                if stop is not None and signum not in _INFORMATIONAL:
                    while self.stop is stop and not stop():  # until it stopped or the run ended
                        time.sleep(0.002)


@functools.cache
def _watcher() -> _Watcher:
    return _Watcher()


Watch = tuple  # what begin_watch returns and end_watch takes back


def begin_watch(stop: Callable[[], bool]) -> Watch | None:
    """From now on, call ``stop`` (from another thread) if a signal arrives,
    again every 2 ms while it returns False, until :func:`end_watch`. A
    try/finally pair rather than a context manager: it is on the call path."""
    if threading.get_ident() != _MAIN_THREAD:
        return None
    watcher = _watcher()
    outer = watcher.stop, watcher.forward  # a run inside a helper of another run nests
    previous = signal.set_wakeup_fd(watcher.write_fd, warn_on_full_buffer=False)
    if previous != watcher.write_fd:
        watcher.forward = previous
    watcher.stop = stop
    return watcher, outer, previous


def end_watch(watch: Watch | None) -> None:
    """Undo :func:`begin_watch`."""
    if watch is None:
        return
    watcher, outer, previous = watch
    watcher.stop, watcher.forward = outer
    signal.set_wakeup_fd(previous)
