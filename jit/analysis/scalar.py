"""The scalar abstract domain's values: :class:`Scalar`, how to build one, its known bits.

A :class:`Scalar` over-approximates the set of values a register may hold by
the intersection of

* an unsigned range ``[umin, umax]`` and a signed range ``[smin, smax]``;
* the same two ranges for the low 32 bits alone (``u32min``.., ``s32min``..),
  which is what a JMP32 compare learns about a register whose upper half is
  unknown (a later ``mov32`` or 32-bit ALU operation then keeps it);
* known bits (a "tnum"): bits set in ``tmask`` are unknown, the others equal
  the bits of ``tval``;
* a relation with the input buffer's length ``len`` (R2 at entry):
  ``dlo <= len - value <= dhi`` (None: no bound beyond what the ranges and the
  state's bounds on ``len`` imply). This is what proves ``mem[i]`` safe after
  ``if i < len``, when ``len`` is only known at run time;
* an identity: values with the same ``id`` are equal, and a value with
  ``base = b`` equals the value whose ``id`` is ``b`` plus ``delta`` (exactly,
  without wrap-around), so a comparison on one register refines its copies.

:func:`make` tightens every bound by the others and returns ``None`` for an
empty set. The operations on scalars are in :mod:`jit.analysis.domain`.
"""

from __future__ import annotations

from typing import NamedTuple

from jit.core.bits import MASK32, MASK64, s32, s64

S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
LEN_MAX = 1 << 47  # an input buffer never exceeds the user address space


class Scalar(NamedTuple):
    """An abstract 64-bit value; see the module docstring. ``lost`` is the slot
    where a pointer became this scalar (for error messages).

    A named tuple rather than a frozen dataclass: the verifier makes thousands
    per program, and a tuple is built about 4x faster (a frozen dataclass sets
    each of the 16 fields through ``object.__setattr__``)."""

    umin: int = 0
    umax: int = MASK64
    smin: int = S64_MIN
    smax: int = S64_MAX
    tval: int = 0
    tmask: int = MASK64
    dlo: int | None = None
    dhi: int | None = None
    id: int | None = None
    base: int | None = None
    delta: int = 0
    lost: int | None = None
    u32min: int = 0
    u32max: int = MASK32
    s32min: int = S32_MIN
    s32max: int = S32_MAX

    @property
    def const(self) -> int | None:
        """The value, if it is known exactly."""
        return self.umin if self.umin == self.umax else None

    @property
    def root(self) -> int | None:
        """The id this value is expressed relative to (its base, or itself)."""
        return self.base if self.base is not None else self.id

    def __str__(self) -> str:
        if self.umin == self.umax:
            return f"{self.umin:#x}"
        parts = [f"[{self.umin:#x}, {self.umax:#x}]"]
        if self.dlo is not None or self.dhi is not None:
            parts.append(f"len-v in [{self.dlo}, {self.dhi}]")
        return " ".join(parts)


def with_ids(s: Scalar, ident: int | None, base: int | None, delta: int = 0, lost: int | None = None) -> Scalar:
    """``s`` with another identity (faster than dataclasses.replace)."""
    return Scalar(
        s.umin, s.umax, s.smin, s.smax, s.tval, s.tmask, s.dlo, s.dhi, ident, base, delta, lost,
        s.u32min, s.u32max, s.s32min, s.s32max,
    )  # fmt: skip


def const(value: int) -> Scalar:
    """The scalar that is exactly ``value`` (taken modulo 2**64)."""
    value &= MASK64
    signed, low = s64(value), value & MASK32
    return Scalar(value, value, signed, signed, value, 0, u32min=low, u32max=low, s32min=s32(low), s32max=s32(low))


def unknown(ident: int | None = None, lost: int | None = None) -> Scalar:
    """Any 64-bit value."""
    return Scalar(id=ident, lost=lost)


def urange(lo: int, hi: int, ident: int | None = None) -> Scalar:
    """The values ``lo..hi`` (unsigned)."""
    result = make(lo, hi, ident=ident)
    assert result is not None
    return result


def srange(lo: int, hi: int, ident: int | None = None) -> Scalar:
    """The values ``lo..hi`` (signed)."""
    result = make(smin=lo, smax=hi, ident=ident)
    assert result is not None
    return result


ZERO = const(0)


# --- known bits ------------------------------------------------------------------


def tnum_range(lo: int, hi: int) -> tuple[int, int]:
    """Known bits shared by every value of ``lo..hi``: their common high prefix."""
    mask = (1 << (lo ^ hi).bit_length()) - 1
    return lo & ~mask, mask


def tnum_add(a: Scalar, b: Scalar) -> tuple[int, int]:
    """Known bits ``(tval, tmask)`` of ``a + b``; likewise for the other ``tnum_`` functions."""
    sv = a.tval + b.tval
    sigma = a.tmask + b.tmask + sv
    mu = (sigma ^ sv) | a.tmask | b.tmask
    return sv & ~mu & MASK64, mu & MASK64


def tnum_sub(a: Scalar, b: Scalar) -> tuple[int, int]:
    dv = a.tval - b.tval
    mu = ((dv + a.tmask) ^ (dv - b.tmask)) | a.tmask | b.tmask
    return dv & ~mu & MASK64, mu & MASK64


def tnum_and(a: Scalar, b: Scalar) -> tuple[int, int]:
    value = a.tval & b.tval
    return value, (a.tval | a.tmask) & (b.tval | b.tmask) & ~value


def tnum_or(a: Scalar, b: Scalar) -> tuple[int, int]:
    value = a.tval | b.tval
    return value, (a.tmask | b.tmask) & ~value


def tnum_xor(a: Scalar, b: Scalar) -> tuple[int, int]:
    mu = a.tmask | b.tmask
    return (a.tval ^ b.tval) & ~mu, mu


# --- construction ------------------------------------------------------------------


def make(
    umin: int = 0,
    umax: int = MASK64,
    smin: int = S64_MIN,
    smax: int = S64_MAX,
    tval: int = 0,
    tmask: int = MASK64,
    dlo: int | None = None,
    dhi: int | None = None,
    ident: int | None = None,
    base: int | None = None,
    delta: int = 0,
    u32min: int = 0,
    u32max: int = MASK32,
    s32min: int = S32_MIN,
    s32max: int = S32_MAX,
) -> Scalar | None:
    """A scalar with every bound tightened by the others; None if empty."""
    umin, umax = max(umin, tval), min(umax, tval | tmask)
    if smin >= 0:
        umin, umax = max(umin, smin), min(umax, smax)
    elif smax < 0:
        umin, umax = max(umin, smin + (1 << 64)), min(umax, smax + (1 << 64))
    if umin > umax:
        return None
    if umax <= S64_MAX or umin > S64_MAX:  # the range does not cross the sign boundary
        smin, smax = max(smin, s64(umin)), min(smax, s64(umax))
        if smin > smax:
            return None
    rval, rmask = tnum_range(umin, umax)
    if (rval ^ tval) & ~(rmask | tmask):
        return None
    tval, tmask = tval | rval, tmask & rmask
    umin, umax = max(umin, tval), min(umax, tval | tmask)
    if umin > umax:
        return None
    if umin == umax:
        return const(umin)
    # the low 32 bits: met with what the 64-bit bounds and known bits say of them
    u32min, u32max = max(u32min, tval & MASK32), min(u32max, (tval | tmask) & MASK32)
    high = umin & ~MASK32
    if umax & ~MASK32 == high:  # one upper half: the low halves span umin..umax
        u32min, u32max = max(u32min, umin & MASK32), min(u32max, umax & MASK32)
    if smin >= S32_MIN and smax <= S32_MAX:  # the value is its sign-extended low half
        s32min, s32max = max(s32min, smin), min(s32max, smax)
    if s32min >= 0:
        u32min, u32max = max(u32min, s32min), min(u32max, s32max)
    elif s32max < 0:
        u32min, u32max = max(u32min, s32min + (1 << 32)), min(u32max, s32max + (1 << 32))
    if u32min > u32max:
        return None
    if u32max <= S32_MAX or u32min > S32_MAX:
        s32min, s32max = max(s32min, s32(u32min)), min(s32max, s32(u32max))
        if s32min > s32max:
            return None
    if umax & ~MASK32 == high and (high | u32min > umin or high | u32max < umax):
        # the low half's bounds narrow the value itself: tighten everything again
        return make(max(umin, high | u32min), min(umax, high | u32max), smin, smax, tval, tmask, dlo, dhi, ident,
                    base, delta, u32min, u32max, s32min, s32max)  # fmt: skip
    return Scalar(
        umin, umax, smin, smax, tval, tmask, dlo, dhi, ident, base, delta, None, u32min, u32max, s32min, s32max
    )


def bounded(t: tuple[int, int, int, int, int, int], **extra: object) -> Scalar:
    """An ALU result from its bounds ``(umin, umax, smin, smax, tval, tmask)``
    and :func:`make`'s keyword arguments; only an infeasible input state can
    make it empty (it is then any value)."""
    result = make(*t, **extra)  # type: ignore[arg-type]
    return unknown(extra.get("ident")) if result is None else result  # type: ignore[arg-type]


# --- the relation with len ------------------------------------------------------------


def d_bounds(x: Scalar, len_lo: int, len_hi: int) -> tuple[int, int]:
    """Bounds on ``len - x``: the explicit ones met with those the ranges imply."""
    lo, hi = len_lo - x.umax, len_hi - x.umin
    if x.dlo is not None and x.dlo > lo:
        lo = x.dlo
    if x.dhi is not None and x.dhi < hi:
        hi = x.dhi
    return lo, hi


def with_d(x: Scalar, dlo: int | None, dhi: int | None, len_lo: int, len_hi: int) -> Scalar:
    """``x`` with the explicit bounds on ``len - x`` that are tighter than implied."""
    if x.umin == x.umax and len_lo == len_hi:
        dlo = dhi = None
    if dlo is not None and dlo <= len_lo - x.umax:
        dlo = None
    if dhi is not None and dhi >= len_hi - x.umin:
        dhi = None
    if dlo == x.dlo and dhi == x.dhi:
        return x
    return Scalar(
        x.umin, x.umax, x.smin, x.smax, x.tval, x.tmask, dlo, dhi, x.id, x.base, x.delta, x.lost,
        x.u32min, x.u32max, x.s32min, x.s32max,
    )  # fmt: skip
