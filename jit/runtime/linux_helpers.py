"""Linux helpers that need a program's maps, its trace log or the calling
process, with their Linux ids and semantics (``man 7 bpf-helpers``).

    table = helpers_for(prog, chain)        # {id: callable}, merged under the user's helpers=

Map helpers find the map from the descriptor address the program passes
(what ``lddw.mapfd`` resolved to) and read keys and values through the
``memory`` accessor; ``map_lookup_elem`` returns the host address of the
value, which the program then loads and stores directly on every engine.
Failed updates and deletes return ``-errno`` (see :mod:`jit.maps`).

Tail calls, engine-neutral protocol:

1. ``tail_call(ctx, prog_array, index)`` looks the target up. An index out
   of range or an empty slot returns ``-ENOENT``, and a chain that already
   made :data:`MAX_TAIL_CALLS` (33) tail calls returns ``-E2BIG``; execution
   then continues after the call, as in Linux.
2. Otherwise it counts the call in the :class:`TailCallChain` and raises
   :class:`TailCallRequest` carrying the target :class:`jit.Program`. The
   engine ends the current run however it reports a helper exception, as
   long as the request stays reachable through ``__cause__`` (wrapping it in
   a :class:`jit.HelperError` ``from`` it is fine).
3. :func:`run_with_tail_calls` wraps one engine's "run this program once"
   function: it catches the request, and runs the target on the same input
   buffer with a fresh stack, until a program returns.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jit.core.errors import BpfError, HelperError
from jit.core.program import Program
from jit.frontend.maps import Map, ProgArrayMap, maps_by_address
from jit.runtime.compiled import Mem, writable_buffer
from jit.runtime.helpers import (
    DEFAULT_HELPERS,
    GET_PRANDOM_U32,
    GET_SMP_PROCESSOR_ID,
    KTIME_GET_NS,
    Helper,
    MemoryAccessor,
    resolve_helpers,
)

MASK64 = (1 << 64) - 1

MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
PROBE_READ = 4
TRACE_PRINTK = 6
TAIL_CALL = 12
GET_CURRENT_PID_TGID = 14
GET_CURRENT_COMM = 16
PROBE_READ_USER = 112
PROBE_READ_KERNEL = 113

MAX_TAIL_CALLS = 33  # MAX_TAIL_CALL_CNT: a chain may make 33 tail calls
TASK_COMM_LEN = 16
MAX_STRING = 1024  # longest %s argument trace_printk reads


def _neg(code: int) -> int:
    return -code & MASK64


# --- tail calls ------------------------------------------------------------------


class TailCallRequest(Exception):
    """Raised by the tail_call helper: end this run and start ``target``."""

    def __init__(self, target: Program, count: int):
        self.target = target
        self.count = count
        super().__init__(f"tail call #{count} to {target.name!r}")


@dataclass
class TailCallChain:
    """How many tail calls the current top-level run has made."""

    count: int = 0


def find_tail_call(exc: BaseException | None) -> TailCallRequest | None:
    """The tail-call request ``exc`` is or was caused by, if any."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, TailCallRequest):
            return exc
        exc, seen = exc.__cause__, seen + 1
    return None


def run_with_tail_calls(
    run_one: Callable[[Program, bytearray | memoryview, TailCallChain], int],
    prog: Program,
    mem: Mem = None,
    chain: TailCallChain | None = None,
) -> int:
    """Run ``prog`` with ``run_one(prog, buffer, chain) -> R0``, following tail calls.

    ``run_one`` runs one program once on the (writable) buffer, with helpers
    built by ``helpers_for(prog, chain)``. The buffer is made writable once,
    so writes made before a tail call are seen by its target (and land in the
    caller's bytearray). ``chain`` is reset to 0 first.
    """
    buffer, _ = writable_buffer(mem)
    chain = chain if chain is not None else TailCallChain()
    chain.count = 0
    current = prog
    while True:
        try:
            return run_one(current, buffer, chain)
        except Exception as exc:
            request = find_tail_call(exc)
            if request is None:
                raise
            current = request.target


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

    return {MAP_LOOKUP_ELEM: map_lookup_elem, MAP_UPDATE_ELEM: map_update_elem, MAP_DELETE_ELEM: map_delete_elem}


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
    PROBE_READ: _probe_read,
    KTIME_GET_NS: DEFAULT_HELPERS[KTIME_GET_NS],
    GET_PRANDOM_U32: DEFAULT_HELPERS[GET_PRANDOM_U32],
    GET_SMP_PROCESSOR_ID: DEFAULT_HELPERS[GET_SMP_PROCESSOR_ID],
    GET_CURRENT_PID_TGID: get_current_pid_tgid,
    GET_CURRENT_COMM: _get_current_comm,
    PROBE_READ_USER: _probe_read,
    PROBE_READ_KERNEL: _probe_read,
}


def helpers_for(prog: Program, chain: TailCallChain | None = None) -> dict[int, Callable[..., int]]:
    """Every Linux helper for ``prog``: the map helpers over ``prog.maps``,
    trace_printk into ``prog.trace_log``, tail_call counting in ``chain``,
    and the process and memory helpers."""
    maps = maps_by_address(prog.maps)
    table = dict(PROCESS_HELPERS)
    table.update(_map_helpers(maps))
    table[TRACE_PRINTK] = _trace_printk_helper(prog.trace_log)
    table[TAIL_CALL] = _tail_call_helper(maps, chain if chain is not None else TailCallChain())
    return table


def program_helpers(
    prog: Program, user: Mapping[int, object] | None = None, chain: TailCallChain | None = None
) -> dict[int, Helper]:
    """The resolved helper table of one program on any engine: the Linux helpers
    for ``prog`` (:func:`helpers_for`) with the user's ``helpers=`` on top."""
    return resolve_helpers({**helpers_for(prog, chain), **(user or {})})
