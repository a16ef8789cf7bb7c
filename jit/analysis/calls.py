"""Transfer functions of calls: helper calls (their prototypes' arguments and
results), local calls and exit (entering and leaving a frame), and LD_ABS and
LD_IND, which engines may implement as calls."""

from __future__ import annotations

from jit.analysis import domain
from jit.analysis.context import CallStack, Context, extend
from jit.analysis.memory import access, forget_spills
from jit.analysis.scalar import ZERO, Scalar, unknown, urange
from jit.analysis.state import NEVER, Pointer, Region, Unset, Value, Work, describe
from jit.core.bits import MASK32
from jit.core.bytecode import Instruction
from jit.core.errors import VerifierError
from jit.core.helpers import Arg, Prototype, Ret
from jit.core.isa import ARGUMENT_REGISTERS, FRAME_POINTER, MAX_REG, Access, Op


def call_helper(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """call (helper id in imm) and callx (helper id in dst)."""
    if insn.spec.op is Op.CALLX:
        target = cx.read(w, insn.dst)
        if isinstance(target, Pointer):
            raise cx.error(pc, f"calls through %r{insn.dst}, which is {describe(target)}, not a helper id")
        helper_id = target.const
        if helper_id is None:
            cx.unproven(pc, f"calls the helper whose id is in %r{insn.dst}, not known before run time", None)
        elif helper_id not in cx.helpers:
            known = ", ".join(map(str, cx.helpers)) or "none"
            raise cx.error(pc, f"calls helper {helper_id} (in %r{insn.dst}), which is not registered ({known})")
    else:
        helper_id = insn.imm
    proto = cx.helpers[helper_id].prototype if helper_id in cx.helpers else None
    result: Value = unknown(w.fresh())
    if proto is not None:
        result = _helper_arguments(cx, pc, proto, w)
    else:  # a helper of unknown prototype may write wherever its pointer arguments point
        for reg in ARGUMENT_REGISTERS:
            value = w.regs[reg]
            if isinstance(value, Pointer) and value.region is Region.STACK:
                forget_spills(cx, w.stacks[value.frame])
    w.regs[0] = result
    w.clobber(pc)


MAX_VAR_SIZE = 1 << 29  # a helper's variable size must be below it (Linux's BPF_MAX_VAR_SIZ)


def _helper_arguments(cx: Context, pc: int, proto: Prototype, w: Work) -> Value:
    """Check the arguments against the prototype; returns the result."""
    args = [cx.read(w, reg) for reg in range(1, len(proto.args) + 1)]
    the_map: Pointer | None = None
    for index, (kind, value) in enumerate(zip(proto.args, args)):
        reg = index + 1
        problem = f"argument %r{reg} of {proto.name} must be {kind.value}, not {describe(value)}"
        if kind is Arg.MAP:
            if not (isinstance(value, Pointer) and value.region is Region.MAP):
                raise cx.error(pc, problem)
            the_map = value
        elif kind in (Arg.SCALAR, Arg.SIZE, Arg.SIZE_OR_ZERO):
            if not isinstance(value, Scalar):
                raise cx.error(pc, problem)
            if kind is Arg.SIZE and value.umin == 0:  # safe (nothing is accessed), but Linux refuses it
                zero = "is zero" if value.umax == 0 else f"may be zero ({describe(value)})"
                cx.not_linux(pc, f"argument %r{reg} of {proto.name}: invalid zero-sized access, the size {zero}")
        elif kind in (Arg.KEY, Arg.VALUE, Arg.MEM_IN, Arg.MEM_OUT):
            if not isinstance(value, Pointer) or value.region in (Region.MAP, Region.MAP_VALUE_OR_NULL):
                raise cx.error(pc, problem)
            if kind in (Arg.KEY, Arg.VALUE):
                attr = "key_size" if kind is Arg.KEY else "value_size"
                nbytes = getattr(cx.map_of(the_map), attr, None) if the_map is not None else None
            else:
                length = args[index + 1]
                nbytes = length.const if isinstance(length, Scalar) else None
                if nbytes is None and isinstance(length, Scalar) and 0 < length.umax < MAX_VAR_SIZE:
                    _helper_memory_range(cx, w, reg, value, length, kind, proto.name)
                    continue
            _helper_memory(cx, w, reg, value, nbytes, kind, proto.name)
    if proto.ret is Ret.U32:
        return urange(0, MASK32, w.fresh())
    if proto.ret is Ret.MAP_VALUE_OR_NULL and the_map is not None:
        size = getattr(cx.map_of(the_map), "value_size", None)
        return Pointer(Region.MAP_VALUE_OR_NULL, ZERO, map=the_map.map, size=size, id=w.fresh())
    return unknown(w.fresh())


def _helper_memory(cx: Context, w: Work, reg: int, pointer: Pointer, nbytes: int | None, kind: Arg, name: str) -> None:
    """A helper reads (or writes) ``nbytes`` at ``pointer``: check it like an access."""
    out = kind is Arg.MEM_OUT
    if nbytes is None:
        cx.unproven(cx.pc, f"cannot prove the memory {name} accesses through %r{reg} is in bounds", pointer.region)
        if out and pointer.region is Region.STACK:
            forget_spills(cx, w.stacks[pointer.frame])
        return
    if nbytes == 0:
        return
    what = f"{name} {'writes' if out else 'reads'} {nbytes} bytes ({kind.value}) through %r{reg}"
    access(cx, w, reg, pointer, 0, nbytes, Access.STORE if out else Access.LOAD, value=None, what=what)


def _helper_memory_range(
    cx: Context, w: Work, reg: int, pointer: Pointer, length: Scalar, kind: Arg, name: str
) -> None:
    """A helper reads (or writes) between ``length.umin`` and ``length.umax`` bytes at
    ``pointer``. The minimum out of bounds is a violation; the maximum out of bounds
    is unproven (a smaller size at run time may fit); in bounds, a read must find every
    byte up to the maximum initialised, and a write surely writes only the minimum."""
    out = kind is Arg.MEM_OUT
    how = Access.STORE if out else Access.LOAD
    if length.umin:
        what = f"{name} {'writes' if out else 'reads'} at least {length.umin} bytes ({kind.value}) through %r{reg}"
        access(cx, w.copy(), reg, pointer, 0, length.umin, how, value=None, what=what)
    what = f"{name} {'writes' if out else 'reads'} up to {length.umax} bytes ({kind.value}) through %r{reg}"
    try:
        access(cx, w.copy(), reg, pointer, 0, length.umax, how, value=None, what=what)  # bounds (and reads)
    except VerifierError:
        _helper_memory(cx, w, reg, pointer, None, kind, name)  # unproven: checked when it runs
        return
    if out and length.umin:
        _helper_memory(cx, w, reg, pointer, length.umin, kind, name)
    if out and pointer.region is Region.STACK:
        forget_spills(cx, w.stacks[pointer.frame])  # the bytes past the minimum may hold new data


def call_local(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """A local call: the callee starts with the arguments and a new frame."""
    target = insn.target(pc)
    assert target is not None
    callee = w.copy()
    callee.callers.append(tuple(w.regs))
    callee.stacks.append({})
    regs: list[Value] = [NEVER] * (MAX_REG + 1)
    for reg in ARGUMENT_REGISTERS:
        regs[reg] = w.regs[reg]
    regs[FRAME_POINTER] = Pointer(Region.STACK, ZERO, frame=w.depth)
    callee.regs = regs
    cx.push((*calls, pc), target, callee.state(), extend(cx.path, pc, target))


def exit_frame(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """exit: the end of the run, or back to the caller with R0."""
    r0 = w.regs[0]
    if isinstance(r0, Unset):
        cx.not_linux(pc, "exits without setting %r0 on this path")
        r0 = w.regs[0] = unknown(w.fresh())
    if not calls:
        return
    depth = w.depth - 1
    if isinstance(r0, Pointer) and r0.region is Region.STACK and r0.frame == depth:
        raise cx.error(pc, "returns a pointer to its own stack frame, which ends here")
    regs = list(w.callers.pop())
    regs[0] = r0
    w.regs = regs
    w.stacks.pop()
    for stack in w.stacks:  # pointers into the ended frame are no longer pointers
        for index, slot in stack.items():
            if isinstance(slot, Pointer) and slot.region is Region.STACK and slot.frame >= depth:
                stack[index] = unknown(lost=pc)
    call = calls[-1]
    w.clobber(call)
    cx.push(calls[:-1], call + 1, w.state(), extend(cx.path, pc, call + 1))


def packet_load(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """LD_ABS and LD_IND: R0 gets the bytes, R1-R5 are clobbered (as by a call)."""
    for reg in insn.regs_read:  # R6 (the context), and src for LD_IND
        cx.read(w, reg)
    w.regs[0] = domain.load(insn.spec.size, False, w.fresh())
    w.clobber(pc)


def reject_btf_call(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """call by BTF id (the structure check rejects it before any path is simulated)."""
    raise cx.error(pc, "calls by BTF id (call runtime) are not supported")
