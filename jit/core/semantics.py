"""The value semantics of eBPF operations (RFC 9669), as small pure functions.

Each function works on unsigned operands of the instruction's width (32 or 64
bits) and returns an unsigned result of that width; callers pass masked
operands. The reference interpreter runs them, and the verifier's abstract
domain folds constants with them, so both agree by construction.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType

from jit.core.bits import byte_swap, to_signed
from jit.core.isa import Op


def _binary_ops(bits: int) -> Mapping[Op, Callable[[int, int], int]]:
    """ALU binary operations of one width: ``f(dst, src) -> result``."""
    mask = (1 << bits) - 1
    count = bits - 1  # shift counts are masked to 63 or 31

    def signed(x: int) -> int:
        return to_signed(x, bits)

    def sdiv(a: int, b: int) -> int:
        if b == 0:
            return 0
        q = abs(signed(a)) // abs(signed(b))  # truncate toward zero
        return (-q if (signed(a) < 0) != (signed(b) < 0) else q) & mask

    def smod(a: int, b: int) -> int:
        if b == 0:
            return a
        r = abs(signed(a)) % abs(signed(b))  # the remainder takes the dividend's sign
        return (-r if signed(a) < 0 else r) & mask

    return MappingProxyType(
        {
            Op.ADD: lambda a, b: (a + b) & mask,
            Op.SUB: lambda a, b: (a - b) & mask,
            Op.MUL: lambda a, b: (a * b) & mask,
            Op.DIV: lambda a, b: a // b if b else 0,
            Op.SDIV: sdiv,
            Op.OR: operator.or_,
            Op.AND: operator.and_,
            Op.LSH: lambda a, b: (a << (b & count)) & mask,
            Op.RSH: lambda a, b: a >> (b & count),
            Op.MOD: lambda a, b: a % b if b else a,
            Op.SMOD: smod,
            Op.XOR: operator.xor,
            Op.MOV: lambda a, b: b,
            Op.ARSH: lambda a, b: (signed(a) >> (b & count)) & mask,
        }
    )


def _conditions(bits: int) -> Mapping[Op, Callable[[int, int], bool]]:
    """Conditional-jump predicates of one width on unsigned operands."""

    def signed(x: int) -> int:
        return to_signed(x, bits)

    return MappingProxyType(
        {
            Op.JEQ: operator.eq,
            Op.JNE: operator.ne,
            Op.JSET: lambda a, b: a & b != 0,
            Op.JGT: operator.gt,
            Op.JGE: operator.ge,
            Op.JLT: operator.lt,
            Op.JLE: operator.le,
            Op.JSGT: lambda a, b: signed(a) > signed(b),
            Op.JSGE: lambda a, b: signed(a) >= signed(b),
            Op.JSLT: lambda a, b: signed(a) < signed(b),
            Op.JSLE: lambda a, b: signed(a) <= signed(b),
        }
    )


ALU_OPS = MappingProxyType({bits: _binary_ops(bits) for bits in (32, 64)})
CONDITIONS = MappingProxyType({bits: _conditions(bits) for bits in (32, 64)})

BYTE_ORDER: Mapping[Op, Callable[[int, int], int]] = MappingProxyType(
    {
        Op.LE: lambda value, bits: value & ((1 << bits) - 1),  # a little-endian machine: truncate only
        Op.BE: byte_swap,
        Op.BSWAP: byte_swap,
    }
)
