"""Transfer functions of jumps: ja, and the conditional jumps, which follow
each outcome that is possible with the state narrowed by what the comparison
implies (on scalars, on input-buffer pointers, and on a possibly-null map
value pointer compared with 0)."""

from __future__ import annotations

from jit.analysis import domain
from jit.analysis.context import CallStack, Context, extend
from jit.analysis.scalar import ZERO, Scalar, const, d_bounds, with_ids
from jit.analysis.state import Pointer, Region, Value, Work, repoint
from jit.core.bits import MASK32
from jit.core.bytecode import Instruction
from jit.core.isa import Form


def jump(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """ja: the state goes to the target."""
    target = insn.target(pc)
    cx.push(calls, target, w.state(), extend(cx.path, pc, target))  # type: ignore[arg-type]


def branch(cx: Context, calls: CallStack, pc: int, insn: Instruction, w: Work) -> None:
    """A conditional jump: the outcome if it is known, else each possible one."""
    spec = insn.spec
    a = cx.read(w, insn.dst)
    b = cx.read(w, insn.src) if spec.form is Form.JMP_X else const(insn.imm if spec.bits == 64 else insn.imm & MASK32)
    target = insn.target(pc)
    assert target is not None
    if isinstance(a, Scalar) and isinstance(b, Scalar):
        outcome = domain.decide(spec.op, spec.bits, a, b)
        if outcome is not None:
            nxt = target if outcome else pc + 1
            cx.push(calls, nxt, w.state(), extend(cx.path, pc, nxt))
            return
    for taken, (relation, swapped) in zip((True, False), domain.BRANCH_RELATIONS[spec.op]):
        out = w.copy()
        if _assume(out, insn, relation, swapped, a, b):
            nxt = target if taken else pc + 1
            cx.push(calls, nxt, out.state(), extend(cx.path, pc, nxt))


def _assume(w: Work, insn: Instruction, relation: str, swapped: bool, a: Value, b: Value) -> bool:
    """Narrow ``w`` by the comparison's outcome; False if that outcome is impossible."""
    bits = insn.spec.bits
    if isinstance(a, Scalar) and isinstance(b, Scalar):
        x, y = (b, a) if swapped else (a, b)
        refined = domain.refine(relation, bits, x, y, w.len_lo, w.len_hi)
        if refined is None:
            return False
        nx, ny, w.len_lo, w.len_hi = refined
        na, nb = (ny, nx) if swapped else (nx, ny)
        return _update(w, a, na) and (b.const is not None or _update(w, b, nb))
    if isinstance(a, Pointer) and isinstance(b, Pointer):
        comparable = relation in ("eq", "ne", "lt", "le")  # jset and signed order see the base's bits
        if comparable and bits == 64 and a.region is b.region is Region.BUF and _small(a.off) and _small(b.off):
            x, y = (b, a) if swapped else (a, b)
            refined = domain.refine(relation, 64, x.off, y.off, w.len_lo, w.len_hi)
            if refined is None:
                return False
            nx, ny, w.len_lo, w.len_hi = refined
            na, nb = (ny, nx) if swapped else (nx, ny)
            return _update(w, a.off, na) and _update(w, b.off, nb)
        return True
    pointer = a if isinstance(a, Pointer) else b
    other = b if pointer is a else a
    if (
        bits == 64
        and isinstance(pointer, Pointer)
        and pointer.region is Region.MAP_VALUE_OR_NULL
        and isinstance(other, Scalar)
        and other.const == 0
        and relation in ("eq", "ne")
    ):
        if relation == "eq":
            _replace_pointer(w, pointer, ZERO)
        else:
            _replace_pointer(w, pointer, repoint(pointer, region=Region.MAP_VALUE, ident=None))
    return True


def _replace_pointer(w: Work, pointer: Pointer, new: Value) -> None:
    """Every copy of a possibly-null pointer is null, or not, together."""
    for container, index, value in list(w.values()):
        if value is pointer or (pointer.id is not None and isinstance(value, Pointer) and value.id == pointer.id):
            container[index] = new


def _update(w: Work, old: Scalar, new: Scalar) -> bool:
    """Replace ``old`` by its narrowed ``new`` everywhere, and carry the
    narrowing over to values known to differ from it by a constant."""
    if new is old:
        return True
    root, ident = old.root, old.id
    for container, index, value in list(w.values()):
        offset = value.off if isinstance(value, Pointer) else value
        if offset is old or (ident is not None and offset.id == ident):  # type: ignore[union-attr]
            narrowed: Scalar | None = _keep_identity(offset, new)  # type: ignore[arg-type]
        elif root is not None and offset.root == root:  # type: ignore[union-attr]
            narrowed = _carry(offset, old, new, w)
            if narrowed is None:
                return False
        else:
            continue
        if narrowed is not offset:
            container[index] = repoint(value, off=narrowed) if isinstance(value, Pointer) else narrowed
    return True


def _keep_identity(old: Scalar, new: Scalar) -> Scalar:
    if new.const is not None or (new.id, new.base, new.delta) == (old.id, old.base, old.delta):
        return new
    return with_ids(new, old.id, old.base, old.delta, old.lost)


def _carry(value: Scalar, old: Scalar, new: Scalar, w: Work) -> Scalar | None:
    """``value`` = ``old`` + k exactly; narrow it as ``old`` was narrowed to ``new``."""
    k = (value.delta if value.base is not None else 0) - (old.delta if old.base is not None else 0)
    moved = domain.shifted(new, k)
    if moved is None:
        return value
    lo, hi = moved
    vlo, vhi = d_bounds(value, w.len_lo, w.len_hi)
    nlo, nhi = d_bounds(new, w.len_lo, w.len_hi)
    return domain.meet(value, lo, hi, max(vlo, nlo - k), min(vhi, nhi - k), w.len_lo, w.len_hi)


def _small(off: Scalar) -> bool:
    """Offsets for which comparing addresses is comparing offsets: the buffer
    lies below 2**52 (user space on x86-64 and ARM64, and the emulators'
    mappings), so ``buffer + off`` cannot wrap around."""
    return off.umax < (1 << 64) - (1 << 52)
