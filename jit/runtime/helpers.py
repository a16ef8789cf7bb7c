"""Python implementations of the registry's helpers (:mod:`jit.core.helpers`),
with their Linux semantics (``man 7 bpf-helpers``).

    table = program_helpers(prog, helpers, chain)   # {id: Helper}, the user's helpers= on top

Map helpers find the map from the descriptor address the program passes
(what ``lddw.mapfd`` resolved to) and read keys and values through the
``memory`` accessor; ``map_lookup_elem`` returns the host address of the
value, which the program then loads and stores directly on every engine.
Failed updates and deletes return ``-errno`` (see :mod:`jit.frontend.maps`).
``tail_call`` follows the protocol of :mod:`jit.runtime.tailcalls`.
"""

from __future__ import annotations

import errno
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from jit.core.bits import MASK64
from jit.core.errors import BpfError, HelperError
from jit.core.helpers import REGISTRY, Helper, HelperId, MemoryAccessor, resolve_helpers
from jit.frontend.maps import Map, ProgArrayMap, maps_by_address
from jit.frontend.program import Program
from jit.runtime.tailcalls import MAX_TAIL_CALLS, TailCallChain, TailCallRequest

TASK_COMM_LEN = 16
MAX_STRING = 1024  # longest %s argument trace_printk reads


def _neg(code: int) -> int:
    return -code & MASK64


def ktime_get_ns(*_args: int) -> int:
    return time.monotonic_ns()


def get_prandom_u32(*_args: int) -> int:
    return random.getrandbits(32)


def get_smp_processor_id(*_args: int) -> int:
    return os.sched_getcpu() if hasattr(os, "sched_getcpu") else 0


# The helpers that need no program (public as jit.DEFAULT_HELPERS).
DEFAULT_HELPERS: Mapping[int, Callable[..., int]] = {
    HelperId.KTIME_GET_NS: ktime_get_ns,
    HelperId.GET_PRANDOM_U32: get_prandom_u32,
    HelperId.GET_SMP_PROCESSOR_ID: get_smp_processor_id,
}


# --- map helpers -------------------------------------------------------------------


def _map_at(maps: dict[int, Map], address: int, helper: str) -> Map:
    found = maps.get(address)
    if found is None:
        raise HelperError(f"{helper}: 0x{address:x} is not the address of a map of this program")
    return found


def _map_helpers(maps: dict[int, Map]) -> dict[int, Callable[..., int]]:
    def map_lookup_elem(map_addr: int, key_addr: int, *_: int, memory: MemoryAccessor) -> int:
        found = _map_at(maps, map_addr, "map_lookup_elem")
        if isinstance(found, ProgArrayMap):
            return 0
        return found.lookup_address(memory.read(key_addr, found.key_size))

    def map_update_elem(map_addr: int, key_addr: int, value_addr: int, flags: int, _: int, *, memory) -> int:
        found = _map_at(maps, map_addr, "map_update_elem")
        if found.readonly:
            return _neg(errno.EPERM)
        key = memory.read(key_addr, found.key_size)
        value = memory.read(value_addr, found.value_size)
        try:
            found.update_raw(key, value, flags)
        except BpfError as error:
            return _neg(getattr(error, "errno", errno.EINVAL))
        return 0

    def map_delete_elem(map_addr: int, key_addr: int, *_: int, memory: MemoryAccessor) -> int:
        found = _map_at(maps, map_addr, "map_delete_elem")
        try:
            found.delete(memory.read(key_addr, found.key_size))
        except BpfError as error:
            return _neg(getattr(error, "errno", errno.EINVAL))
        return 0

    return {
        HelperId.MAP_LOOKUP_ELEM: map_lookup_elem,
        HelperId.MAP_UPDATE_ELEM: map_update_elem,
        HelperId.MAP_DELETE_ELEM: map_delete_elem,
    }


def _tail_call_helper(maps: dict[int, Map], chain: TailCallChain) -> Callable[..., int]:
    def tail_call(_ctx: int, map_addr: int, index: int, *_: int) -> int:
        prog_array = _map_at(maps, map_addr, "tail_call")
        if not isinstance(prog_array, ProgArrayMap):
            raise HelperError(f"tail_call: map {prog_array.name!r} is not a program array")
        target = prog_array.target(index & 0xFFFFFFFF)
        if target is None:
            return _neg(errno.ENOENT)
        if chain.count >= MAX_TAIL_CALLS:
            return _neg(errno.E2BIG)
        chain.count += 1
        raise TailCallRequest(target, chain.count)

    return tail_call


# --- trace_printk -------------------------------------------------------------------

_SPEC = re.compile(rb"%([-+ 0]*)(\d*)(ll|l)?([diuxpsc%])?")


def _read_string(memory: MemoryAccessor, addr: int) -> bytes:
    """A NUL-terminated string, cut at MAX_STRING or where memory ends; b"" if unreadable."""
    out = bytearray()
    try:
        while len(out) < MAX_STRING:
            byte = memory.read(addr + len(out), 1)
            if byte == b"\0":
                break
            out += byte
    except BpfError:
        pass
    return bytes(out)


def format_trace(fmt: bytes, args: tuple[int, ...], memory: MemoryAccessor) -> str | None:
    """``fmt`` formatted the way bpf_trace_printk does, or None if it is invalid.

    Conversions: %d %i %u %x %c (32-bit unless ``l``/``ll``), %ld %lld %lu
    %llu %lx %llx, %s (a string in program memory), %p, %%; flags ``-+ 0``
    and a width are honoured. At most three arguments.
    """
    out, used, at = [], 0, 0
    for match in _SPEC.finditer(fmt):
        out.append(fmt[at : match.start()].decode("latin-1"))
        at = match.end()
        flags, width, size, conv = (g.decode() if g else "" for g in match.groups())
        if conv == "%" and not (flags or width or size):
            out.append("%")
            continue
        if not conv or conv == "%" or used == len(args) or (size and conv in "scp"):
            return None
        value, used = args[used], used + 1
        bits = 64 if size or conv in "ps" else 32  # pointers are 64-bit
        value &= (1 << bits) - 1
        spec = f"%{flags}{width}"
        if conv in "di":
            value = value - (1 << bits) if value >> (bits - 1) else value
            out.append((spec + "d") % value)
        elif conv in "ux":
            out.append((spec + ("d" if conv == "u" else "x")) % value)
        elif conv == "p":
            out.append((spec + "s") % f"0x{value:x}")
        elif conv == "c":
            out.append((spec + "c") % chr(value & 0xFF))
        else:
            out.append((spec + "s") % _read_string(memory, value).decode("latin-1"))
    out.append(fmt[at:].decode("latin-1"))
    return "".join(out)


def _trace_printk_helper(log: list[str]) -> Callable[..., int]:
    def trace_printk(fmt_addr: int, fmt_size: int, a1: int, a2: int, a3: int, *, memory: MemoryAccessor) -> int:
        if not fmt_size:
            return _neg(errno.EINVAL)
        raw = memory.read(fmt_addr, fmt_size)
        if raw[-1:] != b"\0":
            return _neg(errno.EINVAL)
        text = format_trace(raw[: raw.index(b"\0")], (a1, a2, a3), memory)
        if text is None:
            return _neg(errno.EINVAL)
        log.append(text)
        return len(text.encode("latin-1"))

    return trace_printk


# --- process and memory helpers ---------------------------------------------------------


def _probe_read(dst: int, size: int, src: int, *_: int, memory: MemoryAccessor) -> int:
    """Copy ``size`` bytes from ``src`` to ``dst``; -EFAULT and a zeroed dst if src is unreadable."""
    size &= 0xFFFFFFFF
    try:
        data = memory.read(src, size)
    except BpfError:
        memory.write(dst, bytes(size))
        return _neg(errno.EFAULT)
    memory.write(dst, data)
    return 0


def get_current_pid_tgid(*_: int) -> int:
    """tgid (the process id) in the high half, the thread id in the low half."""
    return (os.getpid() << 32) | threading.get_native_id()


def current_comm() -> bytes:
    """The calling process's command name, as the kernel stores it (at most 15 bytes)."""
    try:
        name = Path("/proc/self/comm").read_bytes().rstrip(b"\n")
    except OSError:
        name = Path(sys.argv[0] if sys.argv else "python").name.encode()
    return name[: TASK_COMM_LEN - 1]


def _get_current_comm(buf: int, size: int, *_: int, memory: MemoryAccessor) -> int:
    size &= 0xFFFFFFFF
    if size:
        memory.write(buf, current_comm()[: size - 1].ljust(size, b"\0"))
    return 0


PROCESS_HELPERS: dict[int, Callable[..., int]] = {
    **DEFAULT_HELPERS,
    HelperId.PROBE_READ: _probe_read,
    HelperId.GET_CURRENT_PID_TGID: get_current_pid_tgid,
    HelperId.GET_CURRENT_COMM: _get_current_comm,
    HelperId.PROBE_READ_USER: _probe_read,
    HelperId.PROBE_READ_KERNEL: _probe_read,
}


def helpers_for(prog: Program, chain: TailCallChain | None = None) -> dict[int, Callable[..., int]]:
    """An implementation of every registry row for ``prog``: the map helpers
    over ``prog.maps``, trace_printk into ``prog.trace_log``, tail_call
    counting in ``chain``, and the process and memory helpers."""
    maps = maps_by_address(prog.maps)
    table = dict(PROCESS_HELPERS)
    table.update(_map_helpers(maps))
    table[HelperId.TRACE_PRINTK] = _trace_printk_helper(prog.trace_log)
    table[HelperId.TAIL_CALL] = _tail_call_helper(maps, chain if chain is not None else TailCallChain())
    assert table.keys() == REGISTRY.keys(), "every registry row needs an implementation"
    return table


def program_helpers(
    prog: Program, user: Mapping[int, object] | None = None, chain: TailCallChain | None = None
) -> dict[int, Helper]:
    """The resolved helper table of one program on any engine: the library's
    helpers for ``prog`` (:func:`helpers_for`) with the user's ``helpers=`` on top."""
    return resolve_helpers(helpers_for(prog, chain), user)
