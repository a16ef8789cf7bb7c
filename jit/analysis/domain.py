"""The scalar abstract domain's operations: ALU, join and widening, comparisons.

The values are :class:`jit.analysis.scalar.Scalar`. Every operation is sound:
the result contains every concrete result. When in doubt a bound is dropped,
never guessed. Operations return ``None`` for an empty set (an infeasible
branch). Ids are assigned by the caller.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from functools import partial

from jit.analysis.scalar import (
    LEN_MAX,
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    ZERO,
    Scalar,
    bounded,
    const,
    d_bounds,
    make,
    srange,
    tnum_add,
    tnum_and,
    tnum_or,
    tnum_sub,
    tnum_xor,
    unknown,
    urange,
    with_d,
    with_ids,
)
from jit.core.bits import MASK32, MASK64, byte_swap, s64, sign_extend
from jit.core.isa import Op
from jit.core.semantics import ALU_OPS, CONDITIONS

FULL = (0, MASK64, S64_MIN, S64_MAX)  # range bounds that say nothing


# --- ALU -------------------------------------------------------------------------------


def _shift_d(x: Scalar, lo_delta: int, hi_delta: int) -> tuple[int | None, int | None]:
    """``len - (x + c)`` for ``c`` in ``[lo_delta, hi_delta]`` (no wrap-around)."""
    return (
        None if x.dlo is None else x.dlo - hi_delta,
        None if x.dhi is None else x.dhi - lo_delta,
    )


def _no_wrap_addend(x: Scalar, c: Scalar) -> tuple[int, int] | None:
    """The range of ``c`` such that ``x + c`` never wraps around, if there is one
    (as signed numbers when that is tight enough, else unsigned)."""
    if x.umin + c.smin >= 0 and x.umax + c.smax <= MASK64:
        return c.smin, c.smax
    if x.umax + c.umax <= MASK64:
        return c.umin, c.umax
    return None


def alu(op: Op, bits: int, a: Scalar, b: Scalar, ident: int | None = None) -> Scalar:
    """The abstract result of ``a <op> b`` (an ALU binary operation; not mov)."""
    if a.umin == a.umax and b.umin == b.umax:
        mask = MASK64 if bits == 64 else MASK32
        return const(ALU_OPS[bits][op](a.umin & mask, b.umin & mask))
    if bits == 32:
        return _alu32(op, a, b, ident)
    return _alu64(op, a, b, ident)


# Operations whose result never exceeds the operand(s) listed: len - result >= len - operand.
_SHRINKING = {Op.RSH: (0,), Op.DIV: (0,), Op.MOD: (0,), Op.AND: (0, 1)}


def _alu64(op: Op, a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    result = _ALU64[op](a, b, ident)
    floors = [x.dlo for i, x in enumerate((a, b)) if i in _SHRINKING.get(op, ()) and x.dlo is not None]
    if floors and result.umin != result.umax and (result.dlo is None or result.dlo < max(floors)):
        r = result
        return Scalar(
            r.umin, r.umax, r.smin, r.smax, r.tval, r.tmask, max(floors), r.dhi, r.id, r.base, r.delta, None,
            r.u32min, r.u32max, r.s32min, r.s32max,
        )  # fmt: skip
    return result


def _mul(a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    if a.umax * b.umax <= MASK64:
        return bounded((a.umin * b.umin, a.umax * b.umax, S64_MIN, S64_MAX, 0, MASK64), ident=ident)
    return unknown(ident)


def _div(a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    lo = a.umin // b.umax if b.umin else 0
    return bounded((lo, a.umax // max(b.umin, 1), *FULL[2:], 0, MASK64), ident=ident)


def _mod(a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    if b.umin and a.umax < b.umin:
        return a  # the same value
    hi = a.umax if not b.umin else min(a.umax, b.umax - 1)
    return bounded((0, hi, *FULL[2:], 0, MASK64), ident=ident)


def _and(a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    return bounded((0, min(a.umax, b.umax), *FULL[2:], *tnum_and(a, b)), ident=ident)


def _or(a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    return bounded((max(a.umin, b.umin), MASK64, *FULL[2:], *tnum_or(a, b)), ident=ident)


def _xor(a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    return bounded((0, MASK64, *FULL[2:], *tnum_xor(a, b)), ident=ident)


def _any(a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    """No bounds (sdiv, smod)."""
    return unknown(ident)


def _add(a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    tval, tmask = tnum_add(a, b)
    lo, hi = a.umin + b.umin, a.umax + b.umax
    if hi <= MASK64:
        umin, umax = lo, hi
    elif lo > MASK64:
        umin, umax = lo - (1 << 64), hi - (1 << 64)
    else:
        umin, umax = 0, MASK64
    smin, smax = a.smin + b.smin, a.smax + b.smax
    if smin < S64_MIN or smax > S64_MAX:
        smin, smax = S64_MIN, S64_MAX
    dlo = dhi = base = None
    delta = 0
    for x, c in ((a, b), (b, a)):
        if x.umin == x.umax:
            continue
        addend = _no_wrap_addend(x, c)
        if addend is None:
            continue
        if (x.dlo is not None or x.dhi is not None) and c.dlo is None and c.dhi is None:
            dlo, dhi = _shift_d(x, *addend)
        if c.umin == c.umax and x.root is not None:
            base, delta = x.root, x.delta + addend[0]
        break
    return bounded((umin, umax, smin, smax, tval, tmask), dlo=dlo, dhi=dhi, ident=ident, base=base, delta=delta)


def _sub(a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    tval, tmask = tnum_sub(a, b)
    if a.umin >= b.umax:
        umin, umax = a.umin - b.umax, a.umax - b.umin
    elif a.umax < b.umin:
        umin, umax = a.umin - b.umax + (1 << 64), a.umax - b.umin + (1 << 64)
    else:
        umin, umax = 0, MASK64
    smin, smax = a.smin - b.smax, a.smax - b.smin
    if smin < S64_MIN or smax > S64_MAX:
        smin, smax = S64_MIN, S64_MAX
    dlo = dhi = base = None
    delta = 0
    if a.umin != a.umax:
        negated = None
        if a.umin - b.smax >= 0 and a.umax - b.smin <= MASK64:
            negated = (-b.smax, -b.smin)
        elif a.umin >= b.umax:
            negated = (-b.umax, -b.umin)
        if negated is not None:
            if b.dlo is None and b.dhi is None:
                dlo, dhi = _shift_d(a, *negated)
            if b.umin == b.umax and a.root is not None:
                base, delta = a.root, a.delta + negated[0]
    if None not in (a.dlo, a.dhi, b.dlo, b.dhi):
        # a - b = (len - b) - (len - a), exactly, when that cannot wrap
        lo, hi = b.dlo - a.dhi, b.dhi - a.dlo  # type: ignore[operator]
        if lo >= 0 and hi <= MASK64:
            umin, umax = max(umin, lo), min(umax, hi)
    return bounded((umin, umax, smin, smax, tval, tmask), dlo=dlo, dhi=dhi, ident=ident, base=base, delta=delta)


def _shift(op: Op, count_mask: int, a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    """Shifts of a 64-bit value (32-bit ones pass ``count_mask`` 31 and operands < 2**32)."""
    if b.umin == b.umax:
        k = b.umin & count_mask
        if op is Op.LSH:
            if a.umax << k <= MASK64:
                return bounded(
                    (a.umin << k, a.umax << k, *FULL[2:], (a.tval << k) & MASK64, (a.tmask << k) & MASK64), ident=ident
                )
            if k >= 32 and a.u32max << k <= MASK64:  # the upper half is shifted out: its low half's bounds hold
                return bounded(
                    (a.u32min << k, a.u32max << k, *FULL[2:], (a.tval << k) & MASK64, (a.tmask << k) & MASK64),
                    ident=ident,
                )
            return bounded((*FULL, (a.tval << k) & MASK64, (a.tmask << k) & MASK64), ident=ident)
        if op is Op.RSH:
            return bounded((a.umin >> k, a.umax >> k, *FULL[2:], a.tval >> k, a.tmask >> k), ident=ident)
        tval, tmask = (s64(a.tval) >> k) & MASK64, (s64(a.tmask) >> k) & MASK64
        return bounded((0, MASK64, a.smin >> k, a.smax >> k, tval, tmask), ident=ident)
    if op is Op.RSH or (op is Op.ARSH and a.smin >= 0):
        if b.umax <= count_mask:
            return urange(a.umin >> b.umax, a.umax >> b.umin, ident)
        return urange(0, a.umax, ident)
    return unknown(ident)


# The 64-bit operations on operands that are not both constant.
_ALU64: dict[Op, Callable[[Scalar, Scalar, int | None], Scalar]] = {
    Op.ADD: _add,
    Op.SUB: _sub,
    Op.MUL: _mul,
    Op.DIV: _div,
    Op.SDIV: _any,
    Op.MOD: _mod,
    Op.SMOD: _any,
    Op.AND: _and,
    Op.OR: _or,
    Op.XOR: _xor,
    Op.LSH: partial(_shift, Op.LSH, 63),
    Op.RSH: partial(_shift, Op.RSH, 63),
    Op.ARSH: partial(_shift, Op.ARSH, 63),
}


def lo32(a: Scalar) -> Scalar:
    """The low 32 bits of ``a`` (zero-extended)."""
    if a.umax <= MASK32:
        return a
    return bounded((a.u32min, a.u32max, *FULL[2:], a.tval & MASK32, a.tmask & MASK32), s32min=a.s32min, s32max=a.s32max)


def _alu32(op: Op, a: Scalar, b: Scalar, ident: int | None) -> Scalar:
    a, b = lo32(a), lo32(b)
    if op in (Op.ADD, Op.SUB) and b.umin == b.umax:
        # w += -1 and friends: exact when the signed constant keeps the value in 0..2**32-1
        c = sign_extend(b.umin, 32, 64)
        step = s64(c) if op is Op.ADD else -s64(c)
        if a.umin + step >= 0 and a.umax + step <= MASK32:
            return _alu64(Op.ADD, a, const(step), ident)
    if op in (Op.LSH, Op.RSH):
        result = _shift(op, 31, a, b, ident)
    elif op is Op.ARSH:
        result = _shift(Op.RSH, 31, a, b, ident) if a.umax < 1 << 31 else urange(0, MASK32, ident)
    elif op in (Op.SDIV, Op.SMOD):
        return urange(0, MASK32, ident)
    else:
        result = _alu64(op, a, b, ident)
    if result.umax <= MASK32:
        return result
    return with_ids(lo32(result), ident, None)


def unary(op: Op, bits: int, ext: int, a: Scalar, ident: int | None = None) -> Scalar:
    """neg, le, be, bswap and movsx (``ext`` is the width of swaps and of the sign extension)."""
    if op is Op.NEG:
        return alu(Op.SUB, bits, ZERO, a, ident)
    if op is Op.MOVSX:
        if a.umax < 1 << (ext - 1):
            return a  # the value is unchanged
        if a.umin == a.umax:
            return const(sign_extend(a.umin, ext, bits))
        return srange(-(1 << (ext - 1)), (1 << (ext - 1)) - 1, ident) if bits == 64 else urange(0, MASK32, ident)
    mask = (1 << ext) - 1
    if op is Op.LE and a.umax <= mask:
        return a
    if a.umin == a.umax:
        return const(a.umin & mask if op is Op.LE else byte_swap(a.umin, ext))
    if op is Op.LE:
        return bounded((0, mask, *FULL[2:], a.tval & mask, a.tmask & mask), ident=ident)
    return urange(0, mask, ident)


def load(size: int, signed: bool, ident: int | None = None) -> Scalar:
    """A value read from memory: ``size`` bytes, zero- or sign-extended."""
    bits = size * 8
    if size == 8:
        return unknown(ident)
    if signed:
        return srange(-(1 << (bits - 1)), (1 << (bits - 1)) - 1, ident)
    return urange(0, (1 << bits) - 1, ident)


# --- join and widening ----------------------------------------------------------------


def join(a: Scalar, b: Scalar, len_a: tuple[int, int], len_b: tuple[int, int], len_j: tuple[int, int]) -> Scalar:
    """The least scalar (in this domain) containing both; ids are left to the caller."""
    mu = a.tmask | b.tmask | (a.tval ^ b.tval)
    alo, ahi = d_bounds(a, *len_a)
    blo, bhi = d_bounds(b, *len_b)
    dlo, dhi = min(alo, blo), max(ahi, bhi)
    umin, umax = min(a.umin, b.umin), max(a.umax, b.umax)
    smin, smax = min(a.smin, b.smin), max(a.smax, b.smax)
    low = (min(a.u32min, b.u32min), max(a.u32max, b.u32max), min(a.s32min, b.s32min), max(a.s32max, b.s32max))
    # the hulls of consistent bounds are consistent (tightening them is optional)
    result = Scalar(umin, umax, smin, smax, a.tval & ~mu, mu, None, None, None, None, 0, None, *low)
    return with_d(result, dlo, dhi, *len_j)


def _below(value: int, floor: int, thresholds: Sequence[int]) -> int:
    index = bisect.bisect_right(thresholds, value) - 1
    return max(thresholds[index], floor) if index >= 0 else floor


def _above(value: int, ceiling: int, thresholds: Sequence[int]) -> int:
    index = bisect.bisect_left(thresholds, value)
    return min(thresholds[index], ceiling) if index < len(thresholds) else ceiling


def widen(old: Scalar, new: Scalar, thresholds: Sequence[int]) -> Scalar:
    """``new`` (a join containing ``old``) with every bound that grew pushed out
    to the next threshold (jump constants of the program), so loops converge."""
    umin = old.umin if new.umin >= old.umin else _below(new.umin, 0, thresholds)
    umax = old.umax if new.umax <= old.umax else _above(new.umax, MASK64, thresholds)
    smin = old.smin if new.smin >= old.smin else _below(new.smin, S64_MIN, thresholds)
    smax = old.smax if new.smax <= old.smax else _above(new.smax, S64_MAX, thresholds)
    # a bound on len - v that keeps loosening is dropped
    dlo = None if new.dlo is None or (old.dlo is not None and new.dlo < old.dlo) else new.dlo
    dhi = None if new.dhi is None or (old.dhi is not None and new.dhi > old.dhi) else new.dhi
    tval, tmask = new.tval, new.tmask
    if (umin, umax, smin, smax) != (new.umin, new.umax, new.smin, new.smax):
        # known high bits would undo the widening: keep only the low ones (alignment)
        low = (tmask & -tmask) - 1 if tmask else MASK64
        tval, tmask = tval & low, MASK64 & ~low
    # the low half's bounds, once they grow, are dropped (they only matter when a JMP32 compare set them)
    low32 = {
        "u32min": old.u32min if new.u32min >= old.u32min else 0,
        "u32max": old.u32max if new.u32max <= old.u32max else MASK32,
        "s32min": old.s32min if new.s32min >= old.s32min else S32_MIN,
        "s32max": old.s32max if new.s32max <= old.s32max else S32_MAX,
    }
    return bounded((umin, umax, smin, smax, tval, tmask), dlo=dlo, dhi=dhi, **low32)


def same_bounds(a: Scalar, b: Scalar) -> bool:
    """Whether ``a`` and ``b`` describe the same set (ignoring identities)."""
    return _bounds(a) == _bounds(b) and (a.dlo, a.dhi) == (b.dlo, b.dhi)


def _bounds(x: Scalar) -> tuple[int, ...]:
    """Every bound of ``x`` but those on ``len - x``."""
    return (x.umin, x.umax, x.smin, x.smax, x.tval, x.tmask, x.u32min, x.u32max, x.s32min, x.s32max)


def widen_len(old: tuple[int, int], new: tuple[int, int], thresholds: Sequence[int]) -> tuple[int, int]:
    lo = old[0] if new[0] >= old[0] else _below(new[0], 0, thresholds)
    hi = old[1] if new[1] <= old[1] else _above(new[1], LEN_MAX, thresholds)
    return lo, hi


# --- comparisons ------------------------------------------------------------------------

# A conditional jump's relation when taken and when not, as (relation, swapped):
# "gt" is "lt" with the operands swapped, and so on.
BRANCH_RELATIONS: dict[Op, tuple[tuple[str, bool], tuple[str, bool]]] = {
    Op.JEQ: (("eq", False), ("ne", False)),
    Op.JNE: (("ne", False), ("eq", False)),
    Op.JLT: (("lt", False), ("le", True)),
    Op.JLE: (("le", False), ("lt", True)),
    Op.JGT: (("lt", True), ("le", False)),
    Op.JGE: (("le", True), ("lt", False)),
    Op.JSLT: (("slt", False), ("sle", True)),
    Op.JSLE: (("sle", False), ("slt", True)),
    Op.JSGT: (("slt", True), ("sle", False)),
    Op.JSGE: (("sle", True), ("slt", False)),
    Op.JSET: (("set", False), ("nset", False)),
}

Refined = tuple[Scalar, Scalar, int, int]


def decide(op: Op, bits: int, a: Scalar, b: Scalar) -> bool | None:
    """The outcome of a comparison of two constants, else None."""
    if a.umin == a.umax and b.umin == b.umax:
        mask = MASK64 if bits == 64 else MASK32
        return CONDITIONS[bits][op](a.umin & mask, b.umin & mask)
    return None


def refine(relation: str, bits: int, a: Scalar, b: Scalar, len_lo: int, len_hi: int) -> Refined | None:
    """``a`` and ``b`` (and the bounds on len) narrowed by ``a <relation> b``
    holding; None if it cannot hold."""
    if bits == 32 and relation in ("set", "nset") and b.umax <= MASK32:
        # (a & b) & MASK32 == a & b when b has no upper bits: the 64-bit test, exactly
        return _refine_set(relation == "set", a, b, len_lo, len_hi)
    if bits == 32:
        signed = relation in ("slt", "sle")
        limit = (1 << 31) - 1 if signed else MASK32
        if a.umax > limit or b.umax > limit:
            # only the low halves are compared: refine them as 64-bit values (zero- or
            # sign-extended), then carry what was learnt back to each operand's low half
            pa, pb = _sext32(lo32(a)) if signed else lo32(a), _sext32(lo32(b)) if signed else lo32(b)
            refined = _refine64(relation, pa, pb, 0, LEN_MAX)
            if refined is None:
                return None
            na, nb = _narrow_low(a, refined[0], signed), _narrow_low(b, refined[1], signed)
            return None if na is None or nb is None else (na, nb, len_lo, len_hi)
    refined = _refine64(relation, a, b, len_lo, len_hi)
    if refined is None:
        return None
    a, b, len_lo, len_hi = refined
    for x in (a, b):  # len = x + (len - x)
        if x.dlo is not None:
            len_lo = max(len_lo, x.umin + x.dlo)
        if x.dhi is not None:
            len_hi = min(len_hi, x.umax + x.dhi)
    return None if len_lo > len_hi else (a, b, len_lo, len_hi)


def _sext32(a: Scalar) -> Scalar:
    """A value of 0..2**32-1 sign-extended from 32 bits."""
    if a.umax < 1 << 31:
        return a
    if a.umin == a.umax:
        return const(sign_extend(a.umin, 32))
    return srange(a.s32min, a.s32max)


def _low_half(x: Scalar) -> dict[str, int]:
    """``x``'s bounds on its low 32 bits, as :func:`make`'s keyword arguments."""
    return {"u32min": x.u32min, "u32max": x.u32max, "s32min": x.s32min, "s32max": x.s32max}


def _narrow_low(x: Scalar, view: Scalar, signed: bool) -> Scalar | None:
    """``x`` with its low 32 bits narrowed to ``view``, the refined value of
    those bits zero-extended (``signed``: sign-extended); None if empty."""
    low = _low_half(x)
    if signed:
        low["s32min"], low["s32max"] = max(x.s32min, view.smin), min(x.s32max, view.smax)
    else:
        low["u32min"], low["u32max"] = max(x.u32min, view.umin), min(x.u32max, view.umax)
    if (x.tval ^ view.tval) & ~(x.tmask | view.tmask) & MASK32:
        return None  # known low bits disagree
    # the known bits met with the view's, in the low half only
    tmask = x.tmask & (view.tmask | (MASK64 & ~MASK32))
    tval = (x.tval | (view.tval & MASK32)) & ~tmask
    narrowed = make(x.umin, x.umax, x.smin, x.smax, tval, tmask, **low)
    return None if narrowed is None else _keep(x, narrowed)


def _refine64(relation: str, a: Scalar, b: Scalar, len_lo: int, len_hi: int) -> Refined | None:
    if relation in ("slt", "sle"):
        if a.smin >= 0 and b.smin >= 0:
            relation = relation[1:]
        else:
            k = relation == "slt"
            na = make(a.umin, a.umax, a.smin, min(a.smax, b.smax - k), a.tval, a.tmask)
            nb = make(b.umin, b.umax, max(b.smin, a.smin + k), b.smax, b.tval, b.tmask)
            if na is None or nb is None:
                return None
            return _keep(a, na), _keep(b, nb), len_lo, len_hi
    if relation in ("lt", "le"):
        k = relation == "lt"
        alo, ahi = d_bounds(a, len_lo, len_hi)
        blo, bhi = d_bounds(b, len_lo, len_hi)
        return _meet_pair(a, b, (a.umin, min(a.umax, b.umax - k)), (max(b.umin, a.umin + k), b.umax),
                          (max(alo, blo + k), ahi), (blo, min(bhi, ahi - k)), (a.tval, a.tmask), (b.tval, b.tmask),
                          len_lo, len_hi)  # fmt: skip
    if relation == "eq":
        if (a.tval ^ b.tval) & ~(a.tmask | b.tmask):
            return None
        tnum = (a.tval | b.tval, a.tmask & b.tmask)
        umin, umax = max(a.umin, b.umin), min(a.umax, b.umax)
        smin, smax = max(a.smin, b.smin), min(a.smax, b.smax)
        alo, ahi = d_bounds(a, len_lo, len_hi)
        blo, bhi = d_bounds(b, len_lo, len_hi)
        d = (max(alo, blo), min(ahi, bhi))
        na = make(umin, umax, smin, smax, *tnum)
        if na is None:
            return None
        return _meet_pair(a, b, (na.umin, na.umax), (na.umin, na.umax), d, d, tnum, tnum, len_lo, len_hi)
    if relation == "ne":
        return _refine_ne(a, b, len_lo, len_hi)
    return _refine_set(relation == "set", a, b, len_lo, len_hi)


def _keep(old: Scalar, new: Scalar) -> Scalar:
    """``new`` (narrowed bounds) with ``old``'s identity and relations."""
    if new.umin == new.umax:
        return new
    if _bounds(new) == _bounds(old):
        return old
    n = new
    return Scalar(
        n.umin, n.umax, n.smin, n.smax, n.tval, n.tmask, old.dlo, old.dhi, old.id, old.base, old.delta, old.lost,
        n.u32min, n.u32max, n.s32min, n.s32max,
    )  # fmt: skip


def _meet_pair(
    a: Scalar,
    b: Scalar,
    arange: tuple[int, int],
    brange: tuple[int, int],
    ad: tuple[int, int],
    bd: tuple[int, int],
    atnum: tuple[int, int],
    btnum: tuple[int, int],
    len_lo: int,
    len_hi: int,
) -> Refined | None:
    """Apply narrowed ranges and bounds on ``len - x`` to both operands, and
    the bounds they imply on len itself."""
    for (lo, hi), (dlo, dhi) in ((arange, ad), (brange, bd)):
        if lo > hi or dlo > dhi:
            return None
        len_lo, len_hi = max(len_lo, lo + dlo), min(len_hi, hi + dhi)
    if len_lo > len_hi:
        return None
    na = meet(a, arange[0], arange[1], ad[0], ad[1], len_lo, len_hi, atnum)
    nb = meet(b, brange[0], brange[1], bd[0], bd[1], len_lo, len_hi, btnum)
    if na is None or nb is None:
        return None
    return na, nb, len_lo, len_hi


def meet(
    x: Scalar,
    lo: int,
    hi: int,
    dlo: int,
    dhi: int,
    len_lo: int,
    len_hi: int,
    tnum: tuple[int, int] | None = None,
) -> Scalar | None:
    """``x`` narrowed to ``lo..hi`` (unsigned) and ``dlo <= len - x <= dhi``."""
    lo, hi = max(lo, x.umin, len_lo - dhi), min(hi, x.umax, len_hi - dlo)
    tval, tmask = tnum if tnum is not None else (x.tval, x.tmask)
    narrowed = make(lo, hi, x.smin, x.smax, tval, tmask, **_low_half(x))
    if narrowed is None:
        return None
    if narrowed.umin == narrowed.umax:
        return narrowed
    result = with_ids(narrowed, x.id, x.base, x.delta, x.lost)
    xlo, xhi = d_bounds(x, len_lo, len_hi)
    return with_d(result, max(dlo, xlo), min(dhi, xhi), len_lo, len_hi)


def _refine_ne(a: Scalar, b: Scalar, len_lo: int, len_hi: int) -> Refined | None:
    def exclude(x: Scalar, c: int) -> Scalar | None:
        if x.umin == x.umax:
            return None if x.umin == c else x
        lo, hi = x.umin + (x.umin == c), x.umax - (x.umax == c)
        if (lo, hi) == (x.umin, x.umax):
            return x
        return meet(x, lo, hi, *d_bounds(x, len_lo, len_hi), len_lo, len_hi)

    if b.umin == b.umax:
        na = exclude(a, b.umin)
        return None if na is None else (na, b, len_lo, len_hi)
    if a.umin == a.umax:
        nb = exclude(b, a.umin)
        return None if nb is None else (a, nb, len_lo, len_hi)
    return a, b, len_lo, len_hi


def _refine_set(taken: bool, a: Scalar, b: Scalar, len_lo: int, len_hi: int) -> Refined | None:
    could_be_set = (a.tval | a.tmask) & (b.tval | b.tmask)
    must_be_set = a.tval & b.tval
    if taken:
        return None if not could_be_set else (a, b, len_lo, len_hi)
    if must_be_set:
        return None
    if b.umin == b.umax and a.tmask & b.umin:
        na = make(a.umin, a.umax, a.smin, a.smax, a.tval, a.tmask & ~b.umin, **_low_half(a))
        return None if na is None else (_keep(a, na), b, len_lo, len_hi)
    return a, b, len_lo, len_hi


def shifted(x: Scalar, delta: int) -> tuple[int, int] | None:
    """The unsigned range of ``x + delta`` if it cannot wrap around, to carry a
    narrowing of ``x`` over to a value known to equal ``x + delta``."""
    lo, hi = x.umin + delta, x.umax + delta
    return None if lo < 0 or hi > MASK64 else (lo, hi)
