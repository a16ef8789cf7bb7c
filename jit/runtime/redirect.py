"""Stopping native code from outside without costing it anything while it runs.

Generated code has no stop flag to poll (a check at every back-edge cost up
to 1.2x in byte loops). Instead a signal handler of our own, written by the
backend (:meth:`jit.backends.base.Backend.interrupt_handler`) and installed for
:data:`STOP_SIGNAL`, looks at where the signal found the main thread: inside
a program's generated code, it moves the program counter to that program's
``interrupt`` stub, which reports ErrorCode.INTERRUPTED and unwinds like any
run-time error; anywhere else (a helper, Python, libc) it changes nothing and
the sender tries again a moment later.

The handler is installed once per process, only if nothing else handles
:data:`STOP_SIGNAL`; if the signal is taken (or later replaced), native runs
cannot be stopped this way (:func:`install` returns None).
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Callable

from jit.backends import get_backend
from jit.core.host import host_arch

STOP_SIGNAL = signal.SIGRTMIN + 6 if hasattr(signal, "SIGRTMIN") else None
_SA_SIGINFO, _SA_RESTART = 0x4, 0x10000000
_START, _SIZE, _STUB, _STOPPED_AT = range(4)


class _Sigaction(ctypes.Structure):
    """glibc's struct sigaction on x86-64 and aarch64."""

    _fields_ = (
        ("handler", ctypes.c_void_p),
        ("mask", ctypes.c_uint64 * 16),
        ("flags", ctypes.c_int),
        ("restorer", ctypes.c_void_p),
    )


class Redirector:
    """The installed handler and the four words it reads (see the module docstring)."""

    def __init__(self, handler: int, data: ctypes.Array, sigaction: ctypes._CFuncPtr, keepalive: object):
        self.handler = handler
        self.data = data
        self._sigaction = sigaction
        self._keepalive = keepalive  # the handler's code pages

    def still_installed(self) -> bool:
        current = _Sigaction()
        self._sigaction(STOP_SIGNAL, None, ctypes.byref(current))
        return current.handler == self.handler

    def arm(self, start: int, size: int, stub: int) -> None:
        """Aim the handler at one program's code; clears ``stopped_at``."""
        data = self.data
        data[_STOPPED_AT] = 0
        data[_START], data[_SIZE], data[_STUB] = start, size, stub

    @property
    def stopped_at(self) -> int:
        """Where the handler found the code it redirected (0: not yet)."""
        return self.data[_STOPPED_AT]

    def send(self) -> bool:
        """Signal the main thread once; False if the handler is no longer ours."""
        if not self.still_installed():
            return False
        signal.pthread_kill(threading.main_thread().ident, STOP_SIGNAL)
        return True


def install(map_code: Callable[[bytes], tuple[int, int]]) -> Redirector | None:
    """Install the handler (its code mapped by ``map_code``); None where it cannot be.
    Once per process: :func:`jit.runtime.native.redirector` caches the result."""
    arch = host_arch()
    if STOP_SIGNAL is None or arch is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    sigaction = libc.sigaction
    sigaction.argtypes = (ctypes.c_int, ctypes.POINTER(_Sigaction), ctypes.POINTER(_Sigaction))
    current = _Sigaction()
    if sigaction(STOP_SIGNAL, None, ctypes.byref(current)) != 0 or current.handler:
        return None  # someone else's signal
    data = (ctypes.c_uint64 * 4)()
    address, size = map_code(get_backend(arch).interrupt_handler(ctypes.addressof(data)))
    action = _Sigaction(handler=address, flags=_SA_SIGINFO | _SA_RESTART)
    if sigaction(STOP_SIGNAL, ctypes.byref(action), None) != 0:
        return None
    return Redirector(address, data, sigaction, (address, size))
