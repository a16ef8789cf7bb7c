"""Executable memory: machine code copied into pages that are never writable
and executable at once.

:func:`map_code` takes read-write pages, copies the code in, flushes the
instruction cache where the host needs it, then makes the pages read-execute;
:func:`unmap` releases them; :class:`CodeMapping` does both for one program's
code. Released pages go to a :class:`CodePool` (at most ``POOL_PAGES`` of
them, kept read-execute) and the next program of the same page count reuses
them: switching a page read-write and back costs less here than mapping,
faulting in and unmapping a fresh one (7 us against 11 us on the CI machine).
On an ARM64 host the instruction cache is flushed
with libgcc's ``__clear_cache`` (glibc does not export it); without
libgcc_s.so.1 compiling fails with a CompileError saying so.
``.ci/arm64-native`` runs this path in an aarch64 Linux process
(tests/test_arm64_native.py).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import threading
import weakref
from typing import Any

from jit.core.errors import CompileError


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    return libc


def _os_error(what: str) -> OSError:
    errno = ctypes.get_errno()
    import os

    return OSError(errno, f"{what}: {os.strerror(errno)}")


_RW, _RX = mmap.PROT_READ | mmap.PROT_WRITE, mmap.PROT_READ | mmap.PROT_EXEC
POOL_PAGES = 256  # pages kept for reuse after their programs closed (1 MiB with 4 KiB pages)


class CodePool:
    """Read-execute pages whose programs closed, by size, for the next :func:`map_code`."""

    def __init__(self, limit: int = POOL_PAGES * mmap.PAGESIZE):
        self.limit = limit  # bytes held at most
        self.held = 0
        self.reused = 0
        self._free: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    def take(self, size: int) -> int | None:
        """Pages of ``size`` bytes held for reuse, or None."""
        with self._lock:
            free = self._free.get(size)
            if not free:
                return None
            self.held -= size
            self.reused += 1
            return free.pop()

    def give(self, addr: int, size: int) -> bool:
        """Keep the pages at ``addr``; False when the pool is full (the caller unmaps them)."""
        with self._lock:
            if self.held + size > self.limit:
                return False
            self._free.setdefault(size, []).append(addr)
            self.held += size
            return True

    def drain(self) -> list[tuple[int, int]]:
        """Every held (address, size), removed from the pool."""
        with self._lock:
            pages = [(addr, size) for size, free in self._free.items() for addr in free]
            self._free.clear()
            self.held = 0
            return pages


POOL = CodePool()


def map_code(code: bytes) -> tuple[int, int]:
    """Copy ``code`` into read-execute pages (reused from :data:`POOL` or fresh); returns (address, size)."""
    libc = _libc()
    size = max(mmap.PAGESIZE, -(-len(code) // mmap.PAGESIZE) * mmap.PAGESIZE)
    addr = POOL.take(size)
    if addr is None:
        addr = libc.mmap(None, size, _RW, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise _os_error("mmap of code pages failed")
    elif libc.mprotect(addr, size, _RW) != 0:
        error = _os_error("mprotect(read-write) of pooled code pages failed")
        libc.munmap(addr, size)
        raise error
    else:
        ctypes.memset(addr + len(code), 0, size - len(code))  # no earlier program's bytes after the code
    ctypes.memmove(addr, code, len(code))
    try:
        _flush_icache(addr, size)
    except CompileError:
        libc.munmap(addr, size)
        raise
    if libc.mprotect(addr, size, _RX) != 0:
        error = _os_error("mprotect(read-execute) of code pages failed")
        libc.munmap(addr, size)
        raise error
    return addr, size


def _flush_icache(addr: int, size: int) -> None:
    """Make the instruction cache see the code just written to ``addr``.

    Needed on ARM64 hosts, whose instruction and data caches are not coherent
    (x86-64 keeps them so: nothing to do there)."""
    from jit.core.host import host_arch

    if host_arch() == "arm64":
        _clear_cache()(addr, addr + size)


LIBGCC = "libgcc_s.so.1"


@functools.cache
def _clear_cache() -> Any:
    """libgcc's ``__clear_cache(begin, end)``: glibc has none, and on AArch64 it
    cleans the data cache and invalidates the instruction cache over the range."""
    try:
        clear = ctypes.CDLL(LIBGCC)["__clear_cache"]
    except (OSError, AttributeError) as exc:
        raise CompileError(
            f"cannot flush the instruction cache for native ARM64 code: {LIBGCC} with __clear_cache "
            f"is needed ({exc}); install the GCC runtime library (Debian: libgcc-s1)"
        ) from exc
    clear.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
    clear.restype = None
    return clear


def unmap(addr: int, size: int) -> None:
    """Release pages :func:`map_code` mapped: to :data:`POOL`, or to the system when it is full."""
    if not POOL.give(addr, size):
        _libc().munmap(addr, size)


class CodeMapping:
    """Machine code in read-execute pages, released (to :data:`POOL`) when the last reference goes.

    Programs compiled from one cached compile share one mapping: the code is
    immutable and every run gets its context through an argument."""

    def __init__(self, code: bytes):
        self.address, self.size = map_code(code)
        self._finalizer = weakref.finalize(self, unmap, self.address, self.size)


def release_pool() -> int:
    """Unmap every page the pool holds; returns how many bytes."""
    pages = POOL.drain()
    for addr, size in pages:
        _libc().munmap(addr, size)
    return sum(size for _, size in pages)
