"""Bit-level helpers on unsigned machine words, shared by every layer."""

from __future__ import annotations

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1


def mask(bits: int) -> int:
    """All ones in the low ``bits`` bits."""
    return (1 << bits) - 1


def to_signed(value: int, bits: int) -> int:
    """The two's-complement reading of the low ``bits`` bits of ``value``."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def s32(value: int) -> int:
    """The low 32 bits of ``value`` as a signed int."""
    return to_signed(value, 32)


def s64(value: int) -> int:
    """The low 64 bits of ``value`` as a signed int."""
    return to_signed(value, 64)


def sign_extend(value: int, from_bits: int, to_bits: int = 64) -> int:
    """The low ``from_bits`` of ``value`` sign-extended, as an unsigned ``to_bits`` value."""
    return to_signed(value, from_bits) & ((1 << to_bits) - 1)


def byte_swap(value: int, bits: int) -> int:
    """The low ``bits`` of ``value`` with their bytes reversed (zero-extended)."""
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return -(-value // multiple) * multiple
