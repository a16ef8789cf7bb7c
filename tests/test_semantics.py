"""DESIGN.md section 5 line by line, on the reference interpreter.

Every expected value is worked out by hand from RFC 9669 (the arithmetic is in
the comments where it is not obvious). Values are unsigned 64-bit; a comment
such as ``# -13`` gives the two's-complement reading.
"""

from __future__ import annotations

import struct

import pytest

import jit
from jit.runtime.interpreter import RunResult, run

M64 = 0xFFFF_FFFF_FFFF_FFFF  # -1
LLONG_MIN = 0x8000_0000_0000_0000
INT_MIN = 0x8000_0000  # INT32_MIN as a 32-bit pattern
NEG13 = 0xFFFF_FFFF_FFFF_FFF3  # -13
NEG4 = 0xFFFF_FFFF_FFFF_FFFC  # -4


def execute(text: str, mem: bytes | None = None) -> RunResult:
    return run(jit.assemble(text), mem)


def binop_x(mnemonic: str, a: int, b: int) -> RunResult:
    """``mnemonic %r0, %r1`` with r0 = a, r1 = b."""
    return execute(f"lddw %r0, {a:#x}\nlddw %r1, {b:#x}\n{mnemonic} %r0, %r1\nexit")


def binop_k(mnemonic: str, a: int, imm: int) -> int:
    """``mnemonic %r0, imm`` with r0 = a; returns r0."""
    return execute(f"lddw %r0, {a:#x}\n{mnemonic} %r0, {imm}\nexit").r0


def check_x(mnemonic: str, a: int, b: int, expected: int) -> None:
    result = binop_x(mnemonic, a, b)
    assert result.r0 == expected, f"{mnemonic} {a:#x}, {b:#x} = {result.r0:#x}, expected {expected:#x}"
    assert result.regs[1] == b, "the source register must not change"


# --- division and modulo ------------------------------------------------------------
# Rows: (dividend, divisor, quotient, remainder). Unsigned rows run div/mod,
# signed rows sdiv/smod (off = 1), truncating toward zero.

DIV64_X = [
    (100, 7, 14, 2),
    (100, 0, 0, 100),  # x / 0 = 0, x % 0 = x
    (100, 1, 100, 0),
    (100, M64, 0, 100),  # unsigned: 100 < 2^64 - 1
    (M64, M64, 1, 0),
    (0x3_0000_0005, 1 << 32, 3, 5),  # (3 * 2^32 + 5) / 2^32
    (LLONG_MIN, INT_MIN, 1 << 32, 0),  # 2^63 / 2^31 (the register holds +2^31)
    (LLONG_MIN, M64, 0, LLONG_MIN),
    (LLONG_MIN, LLONG_MIN, 1, 0),
]

SDIV64_X = [
    (NEG13, 3, NEG4, M64),  # -13 / 3 = -4 rem -1 (Python's // would give -5 rem 2)
    (13, 0xFFFF_FFFF_FFFF_FFFD, NEG4, 1),  # 13 / -3 = -4 rem 1
    (NEG13, 0xFFFF_FFFF_FFFF_FFFD, 4, M64),  # -13 / -3 = 4 rem -1
    (LLONG_MIN, M64, LLONG_MIN, 0),  # LLONG_MIN / -1 overflows to LLONG_MIN
    (LLONG_MIN, 1, LLONG_MIN, 0),
    (NEG13, 0, 0, NEG13),  # by zero: 0, dividend unchanged
    (LLONG_MIN, 1 << 32, 0xFFFF_FFFF_8000_0000, 0),  # -2^63 / 2^32 = -2^31
    (0xFFFF_FFFF_FFFF_FFF9, 0xFFFF_FFFF_8000_0000, 0, 0xFFFF_FFFF_FFFF_FFF9),  # -7 / -2^31 = 0 rem -7
    (100, 7, 14, 2),
    (7, LLONG_MIN, 0, 7),  # 7 / -2^63 = 0 rem 7
]

# Immediates are sign-extended to 64 bits, for div/mod too, then used unsigned.
DIV64_K = [
    (100, 0, 0, 100),
    (100, 1, 100, 0),
    (100, -1, 0, 100),  # divisor 2^64 - 1
    (M64, -1, 1, 0),
    (M64, -10, 1, 9),  # (2^64 - 1) - (2^64 - 10) = 9
    (LLONG_MIN, -(2**31), 0, LLONG_MIN),  # divisor 0xffffffff80000000 > 2^63
]

SDIV64_K = [
    (LLONG_MIN, -1, LLONG_MIN, 0),
    (NEG13, 3, NEG4, M64),
    (13, -3, NEG4, 1),
    (LLONG_MIN, -(2**31), 1 << 32, 0),  # -2^63 / -2^31 = 2^32
    (NEG13, 0, 0, NEG13),
    (100, 1, 100, 0),
]

# 32-bit: only the low halves count, the zero check included; results zero-extend.
DIV32_X = [
    (0xDEAD_BEEF_0000_0064, 0xCAFE_0000_0000_0007, 14, 2),  # 100 / 7, upper halves ignored
    (0xDEAD_BEEF_0000_0064, 0, 0, 0x64),  # mod32 by zero: low half, zero-extended
    (0xFFFF_FFFF_FFFF_FFF3, 1 << 32, 0, 0xFFFF_FFF3),  # divisor's low half is 0: division by zero
    (0x64, 1, 0x64, 0),
    (0xFFFF_FFFE, 0xFFFF_FFFF, 0, 0xFFFF_FFFE),
    (0xFFFF_FFFF, 0xFFFF_FFFF, 1, 0),
    (0xFFFF_FFFF, INT_MIN, 1, 0x7FFF_FFFF),  # unsigned: 0xffffffff = 0x80000000 + 0x7fffffff
    (LLONG_MIN, 7, 0, 0),  # the dividend's low half is 0
    (0xABCD_0000_0000_000E, 0x1234_0000_0000_0004, 3, 2),  # 14 / 4
]

SDIV32_X = [
    (0xFFFF_FFF3, 3, 0xFFFF_FFFC, 0xFFFF_FFFF),  # -13 / 3 = -4 rem -1, zero-extended
    (13, 0xFFFF_FFFD, 0xFFFF_FFFC, 1),  # 13 / -3 = -4 rem 1
    (0xFFFF_FFF3, 0xFFFF_FFFD, 4, 0xFFFF_FFFF),  # -13 / -3 = 4 rem -1
    (INT_MIN, 0xFFFF_FFFF, INT_MIN, 0),  # INT_MIN / -1 = INT_MIN, rem 0
    (0x1234_5678_8000_0000, M64, INT_MIN, 0),  # the same with garbage in the upper halves
    (0xFFFF_FFFF_FFFF_FFF3, 0, 0, 0xFFFF_FFF3),  # by zero: low half of the dividend, zero-extended
    (0xFFFF_FFF3, 1 << 32, 0, 0xFFFF_FFF3),  # divisor's low half is 0
    (0xFFFF_FFF3, 0x1_0000_0003, 0xFFFF_FFFC, 0xFFFF_FFFF),  # divisor's upper half ignored: -13 / 3
    (INT_MIN, INT_MIN, 1, 0),
    (7, INT_MIN, 0, 7),
    (LLONG_MIN, 0xFFFF_FFFF, 0, 0),  # 0 / -1
]

DIV32_K = [
    (0xDEAD_BEEF_0000_0064, 7, 14, 2),
    (0xDEAD_BEEF_0000_0064, 0, 0, 0x64),
    (0xFFFF_FFFE, -1, 0, 0xFFFF_FFFE),  # the imm is the u32 0xffffffff
    (0xFFFF_FFFF, -(2**31), 1, 0x7FFF_FFFF),  # the imm is the u32 0x80000000
    (0x64, 1, 0x64, 0),
]

SDIV32_K = [
    (INT_MIN, -1, INT_MIN, 0),
    (0xFFFF_FFF3, 3, 0xFFFF_FFFC, 0xFFFF_FFFF),
    (13, -3, 0xFFFF_FFFC, 1),
    (0xFFFF_FFFF_FFFF_FFF3, 0, 0, 0xFFFF_FFF3),
    (INT_MIN, -(2**31), 1, 0),
]


def _division_cases(rows, div: str, mod: str):
    for a, b, quotient, remainder in rows:
        yield pytest.param(div, a, b, quotient, id=f"{div}-{a:#x}-{b:#x}")
        yield pytest.param(mod, a, b, remainder, id=f"{mod}-{a:#x}-{b:#x}")


@pytest.mark.parametrize(
    ("mnemonic", "a", "b", "expected"),
    [
        *_division_cases(DIV64_X, "div", "mod"),
        *_division_cases(SDIV64_X, "sdiv", "smod"),
        *_division_cases(DIV32_X, "div32", "mod32"),
        *_division_cases(SDIV32_X, "sdiv32", "smod32"),
    ],
)
def test_division_register(mnemonic: str, a: int, b: int, expected: int) -> None:
    check_x(mnemonic, a, b, expected)


@pytest.mark.parametrize(
    ("mnemonic", "a", "b", "expected"),
    [
        *_division_cases(DIV64_K, "div", "mod"),
        *_division_cases(SDIV64_K, "sdiv", "smod"),
        *_division_cases(DIV32_K, "div32", "mod32"),
        *_division_cases(SDIV32_K, "sdiv32", "smod32"),
    ],
)
def test_division_immediate(mnemonic: str, a: int, b: int, expected: int) -> None:
    assert binop_k(mnemonic, a, b) == expected


def test_signed_modulo_truncates_toward_zero() -> None:
    assert binop_k("smod", NEG13, 3) == M64  # -13 smod 3 = -1
    assert binop_k("smod32", 0xFFFF_FFF3, 3) == 0xFFFF_FFFF  # -1 in 32 bits, zero-extended


# --- shifts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mnemonic", "a", "count", "expected"),
    [
        ("lsh", 1, 65, 2),  # 65 & 63 = 1
        ("lsh", 1, 63, LLONG_MIN),
        ("lsh", 1, -1, LLONG_MIN),  # -1 & 63 = 63
        ("rsh", LLONG_MIN, 64, LLONG_MIN),  # 64 & 63 = 0
        ("rsh", LLONG_MIN, 0x41, 0x4000_0000_0000_0000),  # 65 & 63 = 1
        ("arsh", LLONG_MIN, -1, M64),  # shift by 63, sign-filling
        ("arsh", LLONG_MIN, 68, 0xF800_0000_0000_0000),  # 68 & 63 = 4
        ("lsh32", 1, 60, 0x1000_0000),  # 60 & 31 = 28
        ("lsh32", 1, 32, 1),  # 32 & 31 = 0
        ("rsh32", 0xFFFF_FFFF_8000_0000, 33, 0x4000_0000),  # low half only, 33 & 31 = 1
        ("arsh32", INT_MIN, -16, 0xFFFF_8000),  # -16 & 31 = 16; sign of bit 31; zero-extended
        ("arsh32", INT_MIN, 0xE4, 0xF800_0000),  # 0xe4 & 31 = 4
    ],
)
def test_shift_counts_are_masked(mnemonic: str, a: int, count: int, expected: int) -> None:
    assert binop_k(mnemonic, a, count) == expected
    # The same count from a register (with garbage above the masked bits).
    check_x(mnemonic, a, count & M64, expected)


# --- sign extension of immediates -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mov %r0, -1", M64),
        ("mov %r0, 0x80000000", 0xFFFF_FFFF_8000_0000),
        ("mov %r0, 0x7fffffff", 0x7FFF_FFFF),
        ("mov %r0, -123", 0xFFFF_FFFF_FFFF_FF85),  # 2^64 - 123
        ("mov32 %r0, -1", 0xFFFF_FFFF),
        ("mov32 %r0, 0x80000000", 0x8000_0000),
        ("mov %r0, 0\nadd %r0, 0x80000000", 0xFFFF_FFFF_8000_0000),
        ("mov %r0, 0\nor %r0, 0xffffffff", M64),
        ("mov %r0, -1\nand %r0, 0xffffffff", M64),  # the mask is all ones after extension
        ("mov %r0, 5\nsub %r0, -1", 6),
        ("mov %r0, 0\nxor %r0, -2", 0xFFFF_FFFF_FFFF_FFFE),
        ("mov %r0, 3\nmul %r0, -1", 0xFFFF_FFFF_FFFF_FFFD),
    ],
)
def test_alu64_immediates_are_sign_extended(text: str, expected: int) -> None:
    assert execute(text + "\nexit").r0 == expected


@pytest.mark.parametrize(
    ("size", "imm", "expected"),
    [
        ("dw", -2, 0xFFFF_FFFF_FFFF_FFFE),  # stdw stores the sign-extended imm
        ("dw", 0x7FFFFFFF, 0x7FFF_FFFF),
        ("w", -2, 0xAAAA_AAAA_FFFF_FFFE),  # the other bytes keep 0xaa
        ("h", -2, 0xAAAA_AAAA_AAAA_FFFE),
        ("b", -2, 0xAAAA_AAAA_AAAA_AAFE),
    ],
)
def test_store_immediate_is_sign_extended(size: str, imm: int, expected: int) -> None:
    text = f"lddw %r1, 0xaaaaaaaaaaaaaaaa\nstxdw [%r10-8], %r1\nst{size} [%r10-8], {imm}\nldxdw %r0, [%r10-8]\nexit"
    assert execute(text).r0 == expected


# --- conditional jumps ----------------------------------------------------------------
# Truth tables by hand. Pair A: a = 1, b = -1 (2^64 - 1). Pair B: a = b = 5.
TRUTH = {
    #        A      B
    "jeq": (False, True),
    "jne": (True, False),
    "jset": (True, True),  # 1 & ~0 = 1; 5 & 5 = 5
    "jgt": (False, False),  # unsigned: 1 < 2^64 - 1
    "jge": (False, True),
    "jlt": (True, False),
    "jle": (True, True),
    "jsgt": (True, False),  # signed: 1 > -1
    "jsge": (True, True),
    "jslt": (False, False),
    "jsle": (False, True),
}


def jumps(op: str, a: int, b: int | str) -> bool:
    """Whether ``op %r1, b`` (b an imm string or a register value) jumps with r1 = a."""
    operand = b if isinstance(b, str) else "%r2"
    load_b = "" if isinstance(b, str) else f"lddw %r2, {b:#x}\n"
    text = f"lddw %r1, {a:#x}\n{load_b}mov %r0, 0\n{op} %r1, {operand}, +1\nexit\nmov %r0, 1\nexit"
    result = execute(text)
    if not isinstance(b, str):
        assert result.regs[2] == b
    assert result.regs[1] == a
    return bool(result.r0)


def _jump_cases():
    for op, (on_a, on_b) in TRUTH.items():
        yield pytest.param(op, 1, M64, on_a, id=f"{op}-1-vs-minus1")
        yield pytest.param(op, 5, 5, on_b, id=f"{op}-5-vs-5")
        # JMP32: the upper halves are garbage and must be ignored (low halves 1 and -1, 5 and 5).
        yield pytest.param(op + "32", 0xFFFF_FFFF_0000_0001, 0x0000_0000_FFFF_FFFF, on_a, id=f"{op}32-upper-ignored")
        yield pytest.param(op + "32", 0x1234_0000_0000_0005, 0xABCD_0000_0000_0005, on_b, id=f"{op}32-5-vs-5")


@pytest.mark.parametrize(("op", "a", "b", "taken"), list(_jump_cases()))
def test_conditional_jumps_register(op: str, a: int, b: int, taken: bool) -> None:
    assert jumps(op, a, b) is taken


@pytest.mark.parametrize(("op", "a", "b", "taken"), list(_jump_cases()))
def test_conditional_jumps_immediate(op: str, a: int, b: int, taken: bool) -> None:
    # The imm -1 is sign-extended to 2^64 - 1 for JMP; JMP32 uses its 32 bits 0xffffffff.
    imm = "-1" if b & 0xFFFF_FFFF == 0xFFFF_FFFF else "5"
    assert jumps(op, a, imm) is taken


@pytest.mark.parametrize(
    ("op", "a", "imm", "taken"),
    [
        ("jgt", 0xFFFF_FFFF_FFFF_FFFE, "-1", False),  # compared against 0xffffffffffffffff
        ("jge", M64, "-1", True),
        ("jlt", 0xFFFF_FFFF, "-1", True),  # 0xffffffff < 0xffffffffffffffff
        ("jeq", 0xFFFF_FFFF_8000_0000, "0x80000000", True),
        ("jeq", 0x8000_0000, "0x80000000", False),
        ("jset", 0x1_0000_0000, "0x80000000", True),  # the mask covers the whole upper half
        ("jeq32", 0xABCD_EF00_8000_0000, "0x80000000", True),
        ("jgt32", 0x1_0000_0000, "0", False),  # low half is 0
        ("jsgt32", 0x8000_0000, "0", False),  # INT32_MIN < 0
        ("jsgt", 0x8000_0000, "0", True),  # but 2^31 > 0 in 64 bits
    ],
)
def test_jump_immediates(op: str, a: int, imm: str, taken: bool) -> None:
    assert jumps(op, a, imm) is taken


def test_ja32_takes_its_offset_from_imm() -> None:
    forward = "mov %r0, 1\nja32 +1\nexit\nmov %r0, 2\nexit"
    assert execute(forward).r0 == 2
    backward = "mov %r0, 0\nja32 fwd\nback:\nmov %r0, 7\nexit\nfwd:\nja32 back"
    assert execute(backward).r0 == 7
    assert jit.assemble("ja32 +1\nexit\nexit").instructions[0].imm == 1


# --- sign-extending moves and loads ---------------------------------------------------


@pytest.mark.parametrize(
    ("mnemonic", "src", "expected"),
    [
        ("movsx864", 0x1234_5680, 0xFFFF_FFFF_FFFF_FF80),  # low byte 0x80 = -128
        ("movsx864", 0xFFFF_FF7F, 0x7F),
        ("movsx1664", 0xFFFF_0000_8001, 0xFFFF_FFFF_FFFF_8001),
        ("movsx1664", 0x7FFF, 0x7FFF),
        ("movsx3264", 0x1_8000_0000, 0xFFFF_FFFF_8000_0000),
        ("movsx3264", 0xFFFF_FFFF_7FFF_FFFF, 0x7FFF_FFFF),
        ("movsx832", 0x80, 0xFFFF_FF80),  # sign-extended to 32 bits, then zero-extended
        ("movsx1632", 0xABCD_8000, 0xFFFF_8000),
        ("movsx1632", 0xFFFF_FFFF_0000_1234, 0x1234),
    ],
)
def test_movsx(mnemonic: str, src: int, expected: int) -> None:
    check_x(mnemonic, 0xDEAD_BEEF_DEAD_BEEF, src, expected)


MEMORY = bytes([0x80, 0x01, 0x80, 0x00, 0x00, 0x00, 0x80, 0x7F, 0x7F, 0x7F])


@pytest.mark.parametrize(
    ("insn", "expected"),
    [
        ("ldxsb %r0, [%r1]", 0xFFFF_FFFF_FFFF_FF80),  # byte 0x80
        ("ldxsb %r0, [%r1+8]", 0x7F),
        ("ldxsh %r0, [%r1+1]", 0xFFFF_FFFF_FFFF_8001),  # bytes 01 80 = 0x8001 little-endian
        ("ldxsh %r0, [%r1+7]", 0x7F7F),
        ("ldxsw %r0, [%r1+3]", 0xFFFF_FFFF_8000_0000),  # bytes 00 00 00 80
        ("ldxsw %r0, [%r1+6]", 0x7F7F_7F80),
        ("ldxb %r0, [%r1]", 0x80),  # plain loads zero-extend
        ("ldxh %r0, [%r1+1]", 0x8001),
        ("ldxw %r0, [%r1+3]", 0x8000_0000),
        ("ldxdw %r0, [%r1]", 0x7F80_0000_0080_0180),
    ],
)
def test_loads_extend(insn: str, expected: int) -> None:
    assert execute(f"mov %r0, -1\n{insn}\nexit", MEMORY).r0 == expected


# --- byte order -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mnemonic", "expected"),
    [
        ("le16", 0xCDEF),  # little-endian host: truncate and zero-extend
        ("le32", 0x89AB_CDEF),
        ("le64", 0x0123_4567_89AB_CDEF),
        ("be16", 0xEFCD),
        ("be32", 0xEFCD_AB89),
        ("be64", 0xEFCD_AB89_6745_2301),
        ("bswap16", 0xEFCD),
        ("bswap32", 0xEFCD_AB89),
        ("bswap64", 0xEFCD_AB89_6745_2301),
    ],
)
def test_byte_order(mnemonic: str, expected: int) -> None:
    assert execute(f"lddw %r0, 0x0123456789abcdef\n{mnemonic} %r0\nexit").r0 == expected


# --- 32-bit zero extension of every ALU32 operation --------------------------------------

A32 = 0xDEAD_BEEF_0000_0010  # low half 16
B32 = 0xCAFE_BABE_0000_0003  # low half 3


@pytest.mark.parametrize(
    ("mnemonic", "a", "b", "expected"),
    [
        ("add32", A32, B32, 19),
        ("sub32", A32, B32, 13),
        ("mul32", A32, B32, 48),
        ("div32", A32, B32, 5),
        ("sdiv32", A32, B32, 5),
        ("or32", A32, B32, 0x13),
        ("and32", A32, B32, 0),
        ("lsh32", A32, B32, 0x80),  # 16 << 3
        ("rsh32", A32, B32, 2),
        ("mod32", A32, B32, 1),
        ("smod32", A32, B32, 1),
        ("xor32", A32, B32, 0x13),
        ("mov32", A32, B32, 3),
        ("arsh32", A32, B32, 2),
        ("movsx832", A32, B32, 3),
        ("movsx1632", A32, B32, 3),
        # Results that overflow 32 bits are truncated, then zero-extended.
        ("add32", 0xFFFF_FFFF_FFFF_FFF0, 0x20, 0x10),
        ("sub32", 0xFFFF_FFFF_0000_0000, 1, 0xFFFF_FFFF),
        ("mul32", 0x1_0000, 0x1_0000, 0),
        ("mul32", INT_MIN, M64, INT_MIN),  # INT_MIN * -1 = INT_MIN
        ("lsh32", INT_MIN, 1, 0),
        ("arsh32", INT_MIN, 4, 0xF800_0000),
        ("mov32", 0, 0xCAFE_BABE_DEAD_BEEF, 0xDEAD_BEEF),
        ("movsx832", 0, 0x80, 0xFFFF_FF80),
    ],
)
def test_alu32_zero_extends(mnemonic: str, a: int, b: int, expected: int) -> None:
    check_x(mnemonic, a, b, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("add32 %r0, -1", 0xF),  # 0x10 + 0xffffffff = 0x1_0000_000f, truncated
        ("sub32 %r0, 0x11", 0xFFFF_FFFF),
        ("mul32 %r0, 2", 0x20),
        ("or32 %r0, 0", 0x10),
        ("and32 %r0, -1", 0x10),
        ("xor32 %r0, 0", 0x10),
        ("lsh32 %r0, 1", 0x20),
        ("rsh32 %r0, 0", 0x10),
        ("arsh32 %r0, 0", 0x10),
        ("mov32 %r0, 0x10", 0x10),
        ("neg32 %r0", 0xFFFF_FFF0),  # -16 in 32 bits
        ("le16 %r0", 0x10),
        ("be32 %r0", 0x1000_0000),
    ],
)
def test_alu32_immediate_and_unary_zero_extend(text: str, expected: int) -> None:
    assert execute(f"lddw %r0, {A32:#x}\n{text}\nexit").r0 == expected


def test_neg() -> None:
    assert execute("mov %r0, 1\nneg %r0\nexit").r0 == M64
    assert execute(f"lddw %r0, {LLONG_MIN:#x}\nneg %r0\nexit").r0 == LLONG_MIN  # overflow wraps
    assert execute("lddw %r0, 0x7fffffff80000000\nneg32 %r0\nexit").r0 == INT_MIN


# --- LD_IMM64 -------------------------------------------------------------------------------

_SLOT = struct.Struct("<BBhi")
_EXIT = _SLOT.pack(0x95, 0, 0, 0)


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (-(2**31), 1, 0x1_8000_0000),  # the negative low half is not sign-extended into hi
        (-1, 0, 0xFFFF_FFFF),
        (-(2**31), -1, 0xFFFF_FFFF_8000_0000),
        (0x1234_5678, 0x7FFF_FFFF, 0x7FFF_FFFF_1234_5678),
    ],
)
def test_lddw_combines_halves(lo: int, hi: int, expected: int) -> None:
    raw = _SLOT.pack(0x18, 0, 0, lo) + _SLOT.pack(0, 0, 0, hi) + _EXIT
    assert jit.interpret(jit.Program.from_bytes(raw)) == expected


@pytest.mark.parametrize("src", range(1, 7))
def test_lddw_relocations_are_rejected(src: int) -> None:
    raw = _SLOT.pack(0x95, 0, 0, 0) + _SLOT.pack(0x18, src << 4 | 1, 0, 3) + _SLOT.pack(0, 0, 0, 0)
    with pytest.raises(jit.BpfError, match=r"instruction 1 \(lddw.* unresolved relocation"):
        jit.interpret(jit.Program.from_bytes(raw))


# --- calls ------------------------------------------------------------------------------------


def test_call_helper_by_id() -> None:
    prog = jit.assemble("mov %r1, 20\nmov %r2, 22\ncall 100\nexit")
    assert jit.interpret(prog, helpers={100: lambda a, b, c, d, e: a + b}) == 42


def test_call_local_is_pc_relative() -> None:
    assert execute("call local +2\nadd %r0, 1\nexit\nmov %r0, 41\nexit").r0 == 42


def test_callx_calls_the_helper_whose_id_is_in_the_register() -> None:
    prog = jit.assemble("mov %r1, 7\nmov %r3, 101\ncall %r3\nexit")
    helpers = {100: lambda *args: 1, 101: lambda a, *_: a * 6}
    assert jit.interpret(prog, helpers=helpers) == 42


def test_call_by_btf_id_is_rejected() -> None:
    with pytest.raises(jit.BpfError, match=r"instruction 1 \(call runtime 9\).*BTF"):
        jit.interpret("mov %r0, 0\ncall runtime 9\nexit")


# --- atomics ------------------------------------------------------------------------------------

INIT = 0x1111_1111_0000_0005  # the 8-byte word at [r10-8]; its low 4 bytes hold 5
OLD = INIT
SRC64 = 3
SRC32 = 0xFFFF_FFFF_0000_0003  # the 32-bit forms use only the low half (3)
R0_IN = 0x99


@pytest.mark.parametrize(
    ("insn", "init", "src", "r0", "memory", "src_after", "r0_after"),
    [
        ("lock add", INIT, SRC64, R0_IN, 0x1111_1111_0000_0008, SRC64, R0_IN),
        ("lock fetch add", INIT, SRC64, R0_IN, 0x1111_1111_0000_0008, OLD, R0_IN),
        ("lock or", INIT, SRC64, R0_IN, 0x1111_1111_0000_0007, SRC64, R0_IN),  # 5 | 3
        ("lock fetch or", INIT, SRC64, R0_IN, 0x1111_1111_0000_0007, OLD, R0_IN),
        ("lock and", INIT, SRC64, R0_IN, 1, SRC64, R0_IN),  # 0x1111111100000005 & 3: the upper half is cleared
        ("lock fetch and", INIT, SRC64, R0_IN, 1, OLD, R0_IN),
        ("lock xor", INIT, SRC64, R0_IN, 0x1111_1111_0000_0006, SRC64, R0_IN),  # 5 ^ 3
        ("lock fetch xor", INIT, SRC64, R0_IN, 0x1111_1111_0000_0006, OLD, R0_IN),
        ("lock xchg", INIT, SRC64, R0_IN, SRC64, OLD, R0_IN),
        ("lock cmpxchg", INIT, SRC64, INIT, SRC64, SRC64, OLD),  # equal: store, R0 = old
        ("lock cmpxchg", INIT, SRC64, 5, INIT, SRC64, OLD),  # low halves equal is not enough
        ("lock add", M64, 1, R0_IN, 0, 1, R0_IN),  # wraps
        # 32-bit: only [r10-8, r10-4) changes; fetched values are zero-extended.
        ("lock add32", INIT, SRC32, R0_IN, 0x1111_1111_0000_0008, SRC32, R0_IN),
        ("lock fetch add32", INIT, SRC32, R0_IN, 0x1111_1111_0000_0008, 5, R0_IN),
        ("lock or32", INIT, SRC32, R0_IN, 0x1111_1111_0000_0007, SRC32, R0_IN),
        ("lock fetch or32", INIT, SRC32, R0_IN, 0x1111_1111_0000_0007, 5, R0_IN),
        ("lock and32", INIT, SRC32, R0_IN, 0x1111_1111_0000_0001, SRC32, R0_IN),
        ("lock fetch and32", INIT, SRC32, R0_IN, 0x1111_1111_0000_0001, 5, R0_IN),
        ("lock xor32", INIT, SRC32, R0_IN, 0x1111_1111_0000_0006, SRC32, R0_IN),
        ("lock fetch xor32", INIT, SRC32, R0_IN, 0x1111_1111_0000_0006, 5, R0_IN),
        ("lock xchg32", INIT, SRC32, R0_IN, 0x1111_1111_0000_0003, 5, R0_IN),
        ("lock cmpxchg32", INIT, SRC32, 0xABCD_EF01_0000_0005, 0x1111_1111_0000_0003, SRC32, 5),
        ("lock cmpxchg32", INIT, SRC32, 4, INIT, SRC32, 5),  # not equal: no store, R0 = old
        ("lock add32", 0x1111_1111_FFFF_FFFF, 1, R0_IN, 0x1111_1111_0000_0000, 1, R0_IN),  # no carry out
        ("lock fetch add32", 0x1111_1111_FFFF_FFFF, 1, R0_IN, 0x1111_1111_0000_0000, 0xFFFF_FFFF, R0_IN),
    ],
)
def test_atomics(insn: str, init: int, src: int, r0: int, memory: int, src_after: int, r0_after: int) -> None:
    text = (
        f"lddw %r2, {init:#x}\nstxdw [%r10-8], %r2\nlddw %r1, {src:#x}\nlddw %r0, {r0:#x}\n"
        f"{insn} [%r10-8], %r1\nmov %r3, %r0\nldxdw %r4, [%r10-8]\nexit"
    )
    regs = execute(text).regs
    assert (regs[4], regs[1], regs[3]) == (memory, src_after, r0_after)


def test_atomic_with_src_r0() -> None:
    # lock fetch add [r10-8], r0: r0 is both the addend and the fetched old value.
    text = "stdw [%r10-8], 40\nmov %r0, 2\nlock fetch add [%r10-8], %r0\nldxdw %r1, [%r10-8]\nexit"
    regs = execute(text).regs
    assert (regs[0], regs[1]) == (40, 42)
