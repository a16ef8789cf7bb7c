"""Executable memory: machine code copied into pages that are never writable
and executable at once.

:func:`map_code` maps fresh pages read-write, copies the code in, flushes the
instruction cache where the host needs it, then makes the pages read-execute;
:func:`unmap` releases them. On an ARM64 host the instruction cache is flushed
with libgcc's ``__clear_cache`` (glibc does not export it); without
libgcc_s.so.1 compiling fails with a CompileError saying so.
``.ci/arm64-native`` runs this path in an aarch64 Linux process
(tests/test_arm64_native.py).
"""

from __future__ import annotations

import ctypes
import functools
import mmap
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


def map_code(code: bytes) -> tuple[int, int]:
    """Copy ``code`` into fresh read-execute pages; returns (address, size)."""
    libc = _libc()
    size = max(mmap.PAGESIZE, -(-len(code) // mmap.PAGESIZE) * mmap.PAGESIZE)
    addr = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise _os_error("mmap of code pages failed")
    ctypes.memmove(addr, code, len(code))
    try:
        _flush_icache(addr, size)
    except CompileError:
        libc.munmap(addr, size)
        raise
    if libc.mprotect(addr, size, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
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
    """Release pages :func:`map_code` mapped."""
    _libc().munmap(addr, size)
