"""Transfer functions of loads, stores and atomics, and the check of any
memory access (helpers' included): in which region, within its bounds,
aligned, reading only initialised stack bytes; stores to the stack spill."""

from __future__ import annotations

from collections.abc import Mapping

from jit.analysis import domain
from jit.analysis.context import CallStack, Context
from jit.analysis.scalar import ZERO, Scalar, const, d_bounds
from jit.analysis.state import Pointer, Region, Slot, Value, Work, describe
from jit.core.bits import sign_extend
from jit.core.bytecode import Instruction
from jit.core.isa import STACK_SIZE, Access, Op

_NOUNS = {Access.LOAD: "load", Access.STORE: "store", Access.ATOMIC: "atomic"}  # in messages


def load(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """ldx and ldxs (sign-extending)."""
    spec, reg = insn.spec, insn.src
    base = cx.read(w, reg)
    w.regs[insn.dst] = access(cx, w, reg, base, insn.off, spec.size, Access.LOAD, spec.op is Op.LDXS)


def store(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """st (of the immediate) and stx (of the src register)."""
    base = cx.read(w, insn.dst)
    value = const(insn.imm) if insn.spec.op is Op.ST else cx.read(w, insn.src)
    access(cx, w, insn.dst, base, insn.off, insn.spec.size, Access.STORE, value=value)


def atomic(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """The atomic read-modify-write operations; the fetching ones write the old value."""
    spec = insn.spec
    base = cx.read(w, insn.dst)
    value = cx.read(w, insn.src)
    if spec.op is Op.CMPXCHG:
        cx.read(w, 0)  # the expected value
    old = access(cx, w, insn.dst, base, insn.off, spec.size, Access.ATOMIC, value=value)
    if spec.fetch:  # the old value: a pointer spilled in a stack slot stays that pointer
        (reg,) = insn.regs_written  # src, or R0 for cmpxchg
        w.regs[reg] = old


def access(
    cx: Context,
    w: Work,
    reg: int,
    base: Scalar | Pointer,
    off: int,
    size: int,
    kind: Access,
    signed: bool = False,
    value: Value | None = None,
    what: str = "",
) -> Scalar | Pointer:
    """Check a load, store or atomic access of ``size`` bytes at ``base + off``
    (``base`` read from ``reg``); returns the loaded value."""
    pc = cx.pc
    what = what or f"{_NOUNS[kind]} of {size} byte{'s' if size > 1 else ''} through %r{reg}"
    if isinstance(base, Scalar):
        if base.const == 0:
            raise cx.error(pc, f"{what}: %r{reg} is a null pointer")
        if base.lost is not None:
            raise cx.error(
                pc,
                f"{what}: %r{reg} is a scalar, not a pointer (pointer provenance was lost at"
                f" {cx.prog.describe(base.lost)})",
            )
        raise cx.error(pc, f"{what}: %r{reg} is {describe(base)}, not a pointer")
    region = base.region
    if region is Region.MAP_VALUE_OR_NULL:
        raise cx.error(pc, f"{what}: %r{reg} may be null (a map lookup result): compare it with 0 first")
    if region is Region.MAP:
        raise cx.error(pc, f"{what}: %r{reg} is a map pointer, which cannot be dereferenced")
    if region is Region.STACK:
        return _stack_access(cx, w, reg, base, off, size, kind, signed, value, what)
    if region is Region.MAP_VALUE and kind is not Access.LOAD and base.readonly:
        raise cx.error(pc, f"{what}: the map value is read-only")
    if region is Region.BUF:
        bounds = (w.len_lo, w.len_hi)
        where = "the input buffer" + ("" if cx.mem_size is None else f" of {cx.mem_size} bytes")
    else:
        bounds = (base.size, base.size) if base.size is not None else None
        where = f"the map value{'' if base.size is None else f' of {base.size} bytes'}"
    verdict = "maybe" if bounds is None else _in_bounds(base.off, off, size, *bounds, region is Region.BUF)
    at = f"at offset {off:+d} from %r{reg} = {describe(base)}"
    if verdict == "out":
        raise cx.error(pc, f"{what} is out of bounds: {at} is outside {where}")
    if verdict == "maybe" and bounds is not None and region is not Region.BUF:
        # No run-time check can tell which value the pointer came from (one moved by
        # a whole value lands inside the next): unproven is refused, as by Linux.
        raise cx.error(
            pc, f"cannot prove the {what} {at} stays within {where}: bound the offset first (Linux refuses it too)"
        )
    if verdict == "maybe":
        hint = " (compare the offset with %r2 or an end pointer first)" if region is Region.BUF else ""
        cx.unproven(pc, f"cannot prove the {what} {at} stays within {where}{hint}", region)
    if kind is Access.ATOMIC:
        _check_alignment(cx, base, off, size, what)
    return domain.load(size, signed, w.fresh())


def _check_alignment(cx: Context, base: Pointer, off: int, size: int, what: str) -> None:
    low, offset = size - 1, base.off
    if offset.tmask & low:
        cx.unproven(cx.pc, f"cannot prove the {what} is {size}-byte aligned", base.region)
    elif (offset.tval + off) & low:
        raise cx.error(cx.pc, f"{what} is not {size}-byte aligned (atomic accesses must be)")


def _stack_access(
    cx: Context,
    w: Work,
    reg: int,
    base: Pointer,
    off: int,
    size: int,
    kind: Access,
    signed: bool,
    value: Value | None,
    what: str,
) -> Scalar | Pointer:
    pc, frame_size = cx.pc, STACK_SIZE
    lo, hi = base.off.smin + off, base.off.smax + off  # possible start offsets from the frame top
    frame = "the caller's frame" if base.frame < w.depth - 1 else "the stack frame"
    at = f"at offset {off:+d} from %r{reg} = {describe(base)}"
    if hi < -frame_size or lo > -size:
        raise cx.error(pc, f"{what} is out of bounds: {at} is outside {frame} [-{frame_size}, 0)")
    if lo < -frame_size or hi > -size:
        cx.unproven(pc, f"cannot prove the {what} {at} stays within {frame} [-{frame_size}, 0)", Region.STACK)
    if kind is Access.ATOMIC:
        _check_alignment(cx, base, off, size, what)
    stack = w.stacks[base.frame]
    first, end = max(lo, -frame_size) + frame_size, min(hi + size, 0) + frame_size  # byte window in the frame
    stores = kind is Access.STORE
    if not stores:
        missing = _first_unwritten(stack, first, end)
        if missing is not None:
            cx.not_linux(
                pc,
                f"{what} reads the stack byte at offset {missing - frame_size} of {frame}, which is not"
                " initialised on this path",
            )
    loaded = ZERO if stores else domain.load(size, signed, w.fresh())
    loads = kind is Access.LOAD
    if lo == hi:
        slot = stack.get(first // 8, 0)
        if not stores and not isinstance(slot, int) and first % 8 + size <= 8:  # a fetch reads a spill too
            loaded = _from_spill(slot, first % 8, size, signed, loaded)
        if not loads:  # an atomic leaves plain written bytes, a store may spill
            _write_stack(stack, first, size, value if stores else None)
    else:
        for index in range(first // 8, (end + 7) // 8):  # a write somewhere in the window
            if not isinstance(stack.get(index, 0), int) and not loads:
                stack[index] = 0xFF
    return loaded


def _in_bounds(offset: Scalar, off: int, size: int, len_lo: int, len_hi: int, relational: bool) -> str:
    """Whether every ``offset + off`` leaves ``size`` bytes within ``len`` ("ok"),
    none does ("out"), or it depends ("maybe")."""
    if offset.smax + off < 0 or offset.smin + off > len_hi - size:
        return "out"
    if offset.umin + off >= 0:
        if offset.umax + off + size <= len_lo:
            return "ok"
        if relational and d_bounds(offset, len_lo, len_hi)[0] >= off + size:
            return "ok"
    if offset.smin + off >= 0 and offset.smax + off + size <= len_lo:
        return "ok"
    return "maybe"


def forget_spills(cx: Context, stack: dict[int, Slot]) -> None:
    """Spilled values of a frame something unknown may have overwritten are
    plain written bytes now. Forgetting a spilled pointer loses precision, not
    safety: the path's state is no longer exact (a violation found later on it
    is a reason for run-time checks, not for a rejection)."""
    for index, slot in stack.items():
        if not isinstance(slot, int):
            cx.exact = cx.exact and not isinstance(slot, Pointer)
            stack[index] = 0xFF


def _first_unwritten(stack: Mapping[int, Slot], first: int, end: int) -> int | None:
    """The first byte of ``[first, end)`` that is not written, if any."""
    for byte in range(first, end):
        slot = stack.get(byte // 8, 0)
        if isinstance(slot, int) and not slot >> (byte % 8) & 1:
            return byte
    return None


def _write_stack(stack: dict[int, Slot], first: int, size: int, value: Value | None) -> None:
    """Record a write of ``size`` bytes at frame byte ``first``; an aligned
    8-byte store of a known value is a spill."""
    if size == 8 and first % 8 == 0 and isinstance(value, Scalar | Pointer):
        stack[first // 8] = value
        return
    for byte in range(first, first + size):
        index = byte // 8
        slot = stack.get(index, 0)
        stack[index] = (slot if isinstance(slot, int) else 0xFF) | 1 << (byte % 8)


def _from_spill(slot: Scalar | Pointer, start: int, size: int, signed: bool, fallback: Scalar) -> Scalar | Pointer:
    """What a load of ``size`` bytes at byte ``start`` of a spilled value reads."""
    if size == 8:
        return slot
    if isinstance(slot, Scalar) and slot.const is not None:
        raw = (slot.const >> (8 * start)) & ((1 << (8 * size)) - 1)
        return const(sign_extend(raw, 8 * size) if signed else raw)
    return fallback
