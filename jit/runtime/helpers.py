"""Helper functions: the default set (Linux ids) and how user helpers are resolved.

A helper is a Python callable ``f(r1, r2, r3, r4, r5) -> int`` taking the five
argument registers as unsigned 64-bit ints. A helper that must read or write
program memory declares a keyword-only parameter ``memory`` and is handed a
:class:`MemoryAccessor` for the running engine::

    def memfrob(addr, size, _c, _d, _e, *, memory):
        data = bytes(b ^ 42 for b in memory.read(addr, size))
        memory.write(addr, data)
        return 0

A helper may also be a native function (an ``int`` address or a ctypes
function pointer) following the C ABI ``uint64_t f(u64, u64, u64, u64, u64)``;
the native JIT calls it directly, other engines cannot call it.
"""

from __future__ import annotations

import inspect
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

MASK64 = (1 << 64) - 1

# Linux helper ids (include/uapi/linux/bpf.h, enum bpf_func_id).
KTIME_GET_NS = 5
GET_PRANDOM_U32 = 7
GET_SMP_PROCESSOR_ID = 8


class MemoryAccessor(Protocol):
    """Program memory as a helper sees it; the same on every engine.

    Addresses are those the program holds in its registers. An access outside
    every region of the program raises :class:`jit.MemoryAccessError`.
    """

    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


def read_cstring(memory: MemoryAccessor, addr: int, limit: int = 4096) -> bytes:
    """Read a NUL-terminated string (without the NUL), at most ``limit`` bytes."""
    out = bytearray()
    while len(out) < limit:
        byte = memory.read(addr + len(out), 1)
        if byte == b"\0":
            break
        out += byte
    return bytes(out)


@dataclass(frozen=True)
class Helper:
    """A resolved helper: a Python callable or a native function address."""

    id: int
    name: str
    func: Callable[..., int] | None = None
    address: int | None = None
    wants_memory: bool = False

    @property
    def is_native(self) -> bool:
        return self.address is not None

    def call(self, args: tuple[int, int, int, int, int], memory: MemoryAccessor) -> int:
        """Call a Python helper; the result is truncated to 64 bits."""
        if self.func is None:
            raise TypeError(f"helper {self.id} ({self.name}) is native and cannot be called from Python")
        result = self.func(*args, memory=memory) if self.wants_memory else self.func(*args)
        return int(result or 0) & MASK64


def ktime_get_ns(*_args: int) -> int:
    return time.monotonic_ns()


def get_prandom_u32(*_args: int) -> int:
    return random.getrandbits(32)


def get_smp_processor_id(*_args: int) -> int:
    return os.sched_getcpu() if hasattr(os, "sched_getcpu") else 0


DEFAULT_HELPERS: Mapping[int, Callable[..., int]] = {
    KTIME_GET_NS: ktime_get_ns,
    GET_PRANDOM_U32: get_prandom_u32,
    GET_SMP_PROCESSOR_ID: get_smp_processor_id,
}


def _make_helper(helper_id: int, value: object) -> Helper:
    if isinstance(value, Helper):
        return value
    if isinstance(value, int):
        return Helper(helper_id, f"native@0x{value:x}", address=value)
    address = _ctypes_address(value)
    if address is not None:
        return Helper(helper_id, getattr(value, "__name__", f"native@0x{address:x}"), address=address)
    if not callable(value):
        raise TypeError(f"helper {helper_id}: expected a callable or a native function address, got {value!r}")
    try:
        params = inspect.signature(value).parameters
        wants_memory = "memory" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        wants_memory = False
    return Helper(helper_id, getattr(value, "__name__", repr(value)), func=value, wants_memory=wants_memory)


def _ctypes_address(value: object) -> int | None:
    import ctypes

    if isinstance(value, ctypes._CFuncPtr):  # a ctypes function pointer (CFUNCTYPE or a library symbol)
        return ctypes.cast(value, ctypes.c_void_p).value
    return None


def resolve_helpers(helpers: Mapping[int, object] | None = None) -> dict[int, Helper]:
    """The default helpers updated with ``helpers`` (a value of None removes one)."""
    table: dict[int, object] = dict(DEFAULT_HELPERS)
    for helper_id, value in (helpers or {}).items():
        if not isinstance(helper_id, int) or not 0 <= helper_id < 2**31:
            raise TypeError(f"helper ids are ints in 0..2**31-1, got {helper_id!r}")
        if value is None:
            table.pop(helper_id, None)
        else:
            table[helper_id] = value
    return {helper_id: _make_helper(helper_id, value) for helper_id, value in sorted(table.items())}
