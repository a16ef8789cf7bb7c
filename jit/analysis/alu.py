"""Transfer functions of the instructions that compute a register: ALU
operations (with pointer arithmetic), neg and byte swaps, and LD_IMM64
(a constant, or a pointer to a map or into a map value)."""

from __future__ import annotations

from jit.analysis import domain
from jit.analysis.context import CallStack, Context
from jit.analysis.scalar import ZERO, Scalar, const, unknown, with_ids
from jit.analysis.state import Pointer, Region, Value, Work, repoint
from jit.core.bits import MASK32
from jit.core.bytecode import Instruction
from jit.core.isa import Form, Op


def _source(cx: Context, insn: Instruction, w: Work) -> Scalar | Pointer:
    """The source operand: the src register, or the immediate."""
    return cx.read(w, insn.src) if insn.spec.form is Form.ALU_X else const(insn.imm)


def mov(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """mov: a 32-bit move of a pointer gives a scalar."""
    src = _source(cx, insn, w)
    if insn.spec.bits == 64:
        w.regs[insn.dst] = src
    else:
        w.regs[insn.dst] = unknown(lost=pc) if isinstance(src, Pointer) else domain.lo32(src)


def movsx(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """movsx: sign extension of a scalar; of a pointer, a scalar."""
    spec = insn.spec
    src = _source(cx, insn, w)
    if isinstance(src, Pointer):
        w.regs[insn.dst] = unknown(lost=pc)
    else:
        w.regs[insn.dst] = domain.unary(spec.op, spec.bits, spec.ext, src, w.fresh())


def binary(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """The binary ALU operations but mov; add and sub may do pointer arithmetic."""
    spec = insn.spec
    src = _source(cx, insn, w)
    dst = cx.read(w, insn.dst)
    result: Value
    if isinstance(dst, Scalar) and isinstance(src, Scalar):
        result = domain.alu(spec.op, spec.bits, dst, src, w.fresh())
        lost = dst.lost if dst.lost is not None else src.lost
        if lost is not None and result.const is None and result.lost is None:
            result = with_ids(result, result.id, result.base, result.delta, lost)
    elif spec.bits == 64 and spec.op in (Op.ADD, Op.SUB):
        result = _pointer_arithmetic(cx, pc, spec.op, dst, src, w)
    else:
        result = unknown(lost=pc)
    w.regs[insn.dst] = result


def _pointer_arithmetic(cx: Context, pc: int, op: Op, dst: Scalar | Pointer, src: Scalar | Pointer, w: Work) -> Value:
    if isinstance(dst, Pointer) and isinstance(src, Pointer):
        if op is Op.SUB and (dst.region, dst.frame, dst.map) == (src.region, src.frame, src.map):
            return domain.alu(Op.SUB, 64, dst.off, src.off, w.fresh())
        return unknown(lost=pc)
    pointer, scalar = (dst, src) if isinstance(dst, Pointer) else (src, dst)
    assert isinstance(pointer, Pointer) and isinstance(scalar, Scalar)
    if op is Op.SUB and pointer is src:
        return unknown(lost=pc)
    if pointer.region is Region.MAP_VALUE_OR_NULL:
        raise cx.error(pc, "arithmetic on a map value pointer that may be null: compare it with 0 first")
    if pointer.region is Region.MAP:
        raise cx.error(pc, "arithmetic on a map pointer (it may only be passed to helpers)")
    if scalar.const == 0:
        return pointer
    if pointer.off.const == 0 and op is Op.ADD:
        return repoint(pointer, off=scalar)  # the offset is the scalar itself (same identity)
    return repoint(pointer, off=domain.alu(op, 64, pointer.off, scalar, w.fresh()))


def unary(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """neg, le, be, bswap: of a pointer, a scalar."""
    spec = insn.spec
    value = cx.read(w, insn.dst)
    if isinstance(value, Pointer):
        w.regs[insn.dst] = unknown(lost=pc)
    else:
        w.regs[insn.dst] = domain.unary(spec.op, spec.bits, spec.ext, value, w.fresh())


def lddw(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """LD_IMM64: a constant, or (src 1/5, or a "map" relocation) a map pointer,
    or (src 2/6, or a "map_value" relocation) a pointer into a map value."""
    w.regs[insn.dst] = _lddw_value(cx, pc, insn)


def _lddw_value(cx: Context, pc: int, insn: Instruction) -> Value:
    reloc = cx.relocations.get(pc)
    if reloc is not None:
        kind, map_ = reloc.kind, cx.maps.get(reloc.map)
        src, key, offset = (1 if kind == "map" else 2), reloc.map, reloc.offset
    elif insn.src in (1, 2, 5, 6):
        src, key, offset = insn.src, (insn.src in (5, 6), insn.imm & MASK32), insn.imm >> 32
        map_ = cx.map_by_reference(*key)
    else:
        return const(insn.imm)
    if src in (1, 5):
        return Pointer(Region.MAP, ZERO, map=key)
    size = getattr(map_, "value_size", None)
    readonly = bool(getattr(map_, "flags", 0) & 0x80)  # BPF_F_RDONLY_PROG
    return Pointer(Region.MAP_VALUE, const(offset), map=key, size=size, readonly=readonly)
