"""The input buffer a program runs on, as every engine receives it."""

from __future__ import annotations

import ctypes

from jit.core.errors import UsageError

Mem = bytes | bytearray | memoryview | None


def writable_buffer(mem: Mem) -> tuple[bytearray | memoryview, bool]:
    """A writable buffer holding ``mem`` and whether it is the caller's own.

    A bytearray or a writable memoryview is used in place, so the program's
    writes land in the caller's object; bytes and read-only views are copied.
    """
    if mem is None:
        return bytearray(), False
    if isinstance(mem, bytearray):
        return mem, True
    if isinstance(mem, memoryview):
        if not mem.readonly and mem.contiguous:
            return mem.cast("B"), True
        return bytearray(mem.tobytes()), False
    if isinstance(mem, bytes):
        return bytearray(mem), False
    raise check_mem(mem)


def check_mem(mem: object) -> Mem:
    """``mem`` itself if it is an input buffer every engine takes, else UsageError."""
    if mem is None or isinstance(mem, bytes | bytearray | memoryview):
        return mem
    raise UsageError(f"mem must be None, bytes, bytearray or memoryview, not {type(mem).__name__}")


def alignment_offset(buf: bytearray | memoryview) -> int:
    """The buffer's host address modulo 8. Engines that run on a copy (the
    interpreter, unicorn) place it at the same offset from an 8-byte boundary,
    so an atomic access is misaligned on every engine or on none."""
    if not len(buf):
        return 0
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)) % 8
