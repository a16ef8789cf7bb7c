"""The ARM64 backend, run under unicorn (``arch="arm64"`` on this x86-64 host).

These are the cases where ARM64 code generation has its own ways to go wrong:
immediates that do or do not fit an add/sub or bitmask encoding, load/store
offsets outside the scaled and unscaled immediate ranges, branches beyond the
+-1 MiB of ``b.cond`` (keystone silently mis-assembles those), exclusive-monitor
atomics, helper calls through the emulator's trap, local-call frames.

Expected values are worked out by hand in the test, or come from the reference
interpreter (``jit.interpret``) for the tables too large to tabulate by hand.
"""

from __future__ import annotations

import struct

import pytest

import jit
from jit.backends.arm64 import Arm64Backend, is_addsub_imm, is_logical_imm
from jit.backends.base import CodegenOptions
from jit.core import isa
from jit.core.abi import Check
from jit.core.bytecode import Instruction
from jit.frontend.program import Program

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
LLONG_MIN = 1 << 63

# Register values for the differential tables: zero, +-1, 2^32, the minima of
# both widths, and patterns with bits in both halves.
VALUES = (
    LLONG_MIN,
    M64,
    0,
    1 << 32,
    0xFEDC_BA98_7654_3210,
    7,
    0xFFFF_FFFF_8000_0000,
    0x1234_5678_9ABC_DEF0,
    0xC5,
    0xFFFF_FFFF_FFFF_FFF3,
)
RECORD = 80  # R0..R9 dumped after each case

ALU_BINARY = ("add", "sub", "mul", "div", "sdiv", "or", "and", "lsh", "rsh", "mod", "smod", "xor", "mov", "arsh")
JUMPS = tuple(sorted(isa.JUMP_CONDITIONS))


def arm64(prog: str | Program, **options) -> jit.runtime.CompiledProgram:
    """The program as given: unverified and without bounds checks, unless asked
    (these tests exercise code generation; tests/test_safety.py the checks)."""
    options.setdefault("verify", False)
    options.setdefault("bounds_check", False)
    return jit.compile(prog, arch="arm64", **options)


def run_both(prog: str | Program, mem: bytes | None = None, helpers=None) -> tuple[tuple, tuple]:
    """(R0, buffer after the run) on arm64 and on the interpreter."""
    prog = jit.assemble(prog) if isinstance(prog, str) else prog
    results = []
    for engine in (lambda m: arm64(prog, helpers=helpers)(m), lambda m: jit.interpret(prog, m, helpers=helpers)):
        buf = bytearray(mem) if mem is not None else None
        results.append((engine(buf), bytes(buf) if buf is not None else None))
    return results[0], results[1]


def asm_imm(value: int) -> str:
    """An imm32 as the assembler reads it: decimal, or the hex bit pattern from 2^31."""
    return str(value) if value < 1 << 31 else f"{value:#x}"


def assert_records_equal(got: bytes, want: bytes, labels: list[str], data: int = 0) -> None:
    """Compare register dumps record by record, naming the first difference."""
    for index, label in enumerate(labels):
        a = struct.unpack_from("<10Q", got, data + index * RECORD)
        b = struct.unpack_from("<10Q", want, data + index * RECORD)
        for reg in range(10):
            assert a[reg] == b[reg], f"{label}: r{reg} = {a[reg]:#x} on arm64, {b[reg]:#x} in the interpreter"
    assert got == want


def segments(cases: list[tuple[str, list[str]]], values=VALUES, data: int = 0) -> tuple[str, bytes, list[str]]:
    """A program that runs each case body from registers set to ``values`` and
    dumps R0-R9 after it, from offset ``data`` of the buffer (the bytes before
    it are the bodies' data area). [r10-8] holds the buffer pointer, [r10-24]
    the dump cursor, [r10-16] is scratch."""
    lines = ["stxdw [%r10-8], %r1", f"add %r1, {data}", "stxdw [%r10-24], %r1"]
    for _, body in cases:
        lines += [f"lddw %r{reg}, {value:#x}" for reg, value in enumerate(values)]
        lines += body
        lines += ["stxdw [%r10-16], %r0", "ldxdw %r0, [%r10-24]"]
        lines += [f"stxdw [%r0+{8 * reg}], %r{reg}" for reg in range(1, 10)]
        lines += ["ldxdw %r1, [%r10-16]", "stxdw [%r0+0], %r1", f"add %r0, {RECORD}", "stxdw [%r10-24], %r0"]
    lines += ["mov %r0, 0", "exit"]
    return "\n".join(lines), bytes(data + RECORD * len(cases)), [label for label, _ in cases]


def check_segments(cases: list[tuple[str, list[str]]], values=VALUES, data: int = 0) -> None:
    text, mem, labels = segments(cases, values, data)
    (r0, got), (ref_r0, want) = run_both(text, mem)
    assert_records_equal(got, want, labels, data)
    assert r0 == ref_r0 == 0


# --- encodability of immediates (hand-worked) ------------------------------------------


@pytest.mark.parametrize(
    ("value", "bits", "logical"),
    [
        (0xFF, 64, True),  # eight ones
        (0x0F0F_0F0F, 32, True),  # 4-of-8 pattern repeated
        (0x0F0F_0F0F, 64, False),  # upper half zero: no repetition over 64 bits
        (0x0F0F_0F0F_0F0F_0F0F, 64, True),
        (0x12345, 64, False),
        (4095, 64, True),  # twelve ones
        (4096, 64, True),  # one bit
        (4097, 64, False),  # two runs
        (M64, 64, False),  # all ones is not encodable
        (0, 64, False),
        (M64 - 4095, 64, True),  # -4096: 52 ones
        (0x8000_0000, 32, True),
        (0xFFFF_FFFF_8000_0000, 64, True),  # 33 ones
        (0x5555_5555_5555_5555, 64, True),  # element 01, repeated
        (0x5555_5555_5555_5554, 64, False),
        (0x8000_0001, 32, True),  # a run rotated across the top bit
        (0xFFFF_FFFF, 64, True),
        (0xFFFF_FFFF, 32, False),
    ],
)
def test_logical_immediates(value: int, bits: int, logical: bool) -> None:
    assert is_logical_imm(value, bits) is logical


@pytest.mark.parametrize(
    ("value", "addsub"),
    [(0, True), (4095, True), (4096, True), (4097, False), (0xFFF000, True), (0x1000000, False), (0x12345, False)],
)
def test_add_immediates(value: int, addsub: bool) -> None:
    assert is_addsub_imm(value) is addsub


# --- immediates in every form --------------------------------------------------------------

AWKWARD = (0xFF, 0x0F0F0F0F, 0x12345, 4095, 4096, 4097, -1, -4096, -4095, 0x80000000, 0x7FFFFFFF, -123, 0, 1)
AWKWARD += (0xFFF000, 0x55555555, -0x1000000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lddw %r0, 0x100000000\nadd %r0, -4096", 0xFFFF_F000),
        ("mov %r0, 0xf\nor %r0, 0x0f0f0f0f", 0x0F0F_0F0F),
        ("mov32 %r0, -1\nand32 %r0, 0x0f0f0f0f", 0x0F0F_0F0F),
        ("mov %r0, 1\nsub %r0, 0x80000000", 0x8000_0001),  # 1 - (-2^31)
        ("mov %r0, 5\nxor %r0, -1", M64 - 5),
        ("mov32 %r0, 5\nxor32 %r0, -1", M32 - 5),
        ("mov %r0, 0x12345\nmul %r0, 0x12345", 0x12345 * 0x12345),
        ("mov %r0, 4096\nadd32 %r0, 4095", 8191),
        ("mov %r0, 0\nsub32 %r0, 1", M32),
        ("mov %r0, 0x7fffffff\nadd %r0, 0x7fffffff", 0xFFFF_FFFE),
        ("lddw %r0, 0x123456789\nand %r0, 0x12345", 0x12345 & 0x23456789),
        ("mov32 %r0, 0x80000000", 0x8000_0000),
        ("mov %r0, 0x80000000", 0xFFFF_FFFF_8000_0000),
        ("mov %r0, 1000\ndiv %r0, 0x12345", 0),
        ("mov %r0, -1\nmod32 %r0, 4097", M32 % 4097),
        ("mov %r0, 3\njgt %r0, -1, +1\nmov %r0, 9", 9),  # 3 > 2^64-1 is false
        ("mov %r0, -2\njgt %r0, -4096, +1\nmov %r0, 9", M64 - 1),  # 2^64-2 > 2^64-4096
        ("mov32 %r0, 4096\njeq32 %r0, 4096, +1\nmov %r0, 9", 4096),
        ("mov %r0, -4095\njsle %r0, -4096, +1\nmov %r0, 7", 7),
        ("mov %r0, 0xff0\njset %r0, 0x12345, +1\nmov %r0, 8", 0xFF0),  # 0xff0 & 0x12345 = 0x340
    ],
)
def test_immediates_by_hand(text: str, expected: int) -> None:
    assert arm64(text + "\nexit")() == expected


@pytest.mark.parametrize("imm", AWKWARD)
def test_awkward_immediates_every_alu_and_jump_form(imm: int) -> None:
    cases = []
    for suffix in ("", "32"):
        k = asm_imm(imm)
        cases += [(f"{op}{suffix} %r{d}, {k}", [f"{op}{suffix} %r{d}, {k}"]) for op in ALU_BINARY for d in (0, 4, 6)]
        cases += [
            (f"{op}{suffix} %r{d}, {k}", ["mov %r9, 1", f"{op}{suffix} %r{d}, {k}, +1", "mov %r9, 2"])
            for op in JUMPS
            for d in (1, 6)
        ]
        cases.append((f"stdw {k}", [f"stdw [%r10-32], {k}", "ldxdw %r3, [%r10-32]"]))
    check_segments(cases)


@pytest.mark.parametrize(
    "value",
    [
        0,
        M64,
        0xFFFF_0000_FFFF_0000,
        0x0000_FFFF_0000_FFFF,
        LLONG_MIN,
        0xFFFF_FFFF,
        0x1234_5678_9ABC_DEF0,
        0xFFFF_FFFF_0000_0000,
        0xFFFF_FFFF_FFFF_1234,
        0x8000_0000_0000_0001,
        0x0001_0000_0000_0000,
    ],
)
def test_lddw_constants(value: int) -> None:
    assert arm64(f"lddw %r0, {value:#x}\nexit")() == value


# --- ALU on every register pair --------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "32"])
def test_alu_every_register_pair(suffix: str) -> None:
    """Every binary ALU op on every (dst, src) pair of R0-R9, aliased pairs included
    (R10 is left out: its value is an address that differs between engines)."""
    cases = [
        (f"{op}{suffix} %r{d}, %r{s}", [f"{op}{suffix} %r{d}, %r{s}"])
        for op in ALU_BINARY
        for d in range(10)
        for s in range(10)
    ]
    check_segments(cases)


def test_unary_and_sign_extension_every_register() -> None:
    cases = [(f"{m} %r{d}", [f"{m} %r{d}"]) for m in ("neg", "neg32") for d in range(10)]
    cases += [(f"{k}{w} %r{d}", [f"{k}{w} %r{d}"]) for k in ("le", "be", "bswap") for w in (16, 32, 64) for d in (0, 4)]
    movsx = ("movsx864", "movsx1664", "movsx3264", "movsx832", "movsx1632")
    cases += [(f"{m} %r{d}, %r{s}", [f"{m} %r{d}, %r{s}"]) for m in movsx for d in range(10) for s in (0, 4, 6, d)]
    check_segments(cases)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lddw %r0, 0x1122334455667788\nbswap32 %r0", 0x8877_6655),  # rev w: upper half zeroed
        ("lddw %r0, 0x1122334455667788\nbswap16 %r0", 0x8877),
        ("lddw %r0, 0x1122334455667788\nbswap64 %r0", 0x8877_6655_4433_2211),
        ("lddw %r0, 0x1122334455667788\nbe32 %r0", 0x8877_6655),
        ("lddw %r0, 0x1122334455667788\nle32 %r0", 0x5566_7788),
        ("lddw %r0, 0x1122334455667788\nle16 %r0", 0x7788),
        ("lddw %r1, 0x00000000000000f0\nmovsx832 %r0, %r1", 0xFFFF_FFF0),
        ("lddw %r1, 0x00000000000080f0\nmovsx1664 %r0, %r1", 0xFFFF_FFFF_FFFF_80F0),
        ("lddw %r1, 0x1234567880000000\nmovsx3264 %r0, %r1", 0xFFFF_FFFF_8000_0000),
        ("lddw %r0, 0x8000000000000000\nsdiv %r0, -1", LLONG_MIN),
        ("lddw %r0, 0x8000000000000000\nsmod %r0, -1", 0),
        ("mov32 %r0, 0x80000000\nsdiv32 %r0, -1", 0x8000_0000),
        ("mov %r0, -13\nmov %r1, 0\nmod %r0, %r1", M64 - 12),  # x % 0 = x
        ("lddw %r0, 0xffffffff0000000d\nmov %r1, 0\nmod32 %r0, %r1", 13),  # low half, zero-extended
        ("mov %r0, -13\nmov %r1, 0\ndiv %r0, %r1", 0),
        ("mov %r0, -13\nsmod %r0, 3", M64),  # -1: truncation toward zero
        ("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1", 2),  # count masked to 63
        ("mov %r0, 1\nmov %r1, 33\nlsh32 %r0, %r1", 2),  # count masked to 31
        ("mov32 %r0, 0x80000000\nmov %r1, 4\narsh32 %r0, %r1", 0xF800_0000),
        ("lddw %r0, 0xffffffff00000001\nlsh32 %r0, 0", 1),  # a 32-bit op zero-extends
    ],
)
def test_alu_by_hand(text: str, expected: int) -> None:
    assert arm64(text + "\nexit")() == expected


def test_division_and_shift_tables() -> None:
    edges = (0, 1, M64, 1 << 32, 0xFFFF_FFFF_8000_0000, LLONG_MIN, 7, M64 - 12)
    cases = []
    for suffix in ("", "32"):
        for op in ("div", "sdiv", "mod", "smod"):
            cases += [
                (f"{op}{suffix} {a:#x}, {b:#x}", [f"lddw %r3, {a:#x}", f"lddw %r4, {b:#x}", f"{op}{suffix} %r3, %r4"])
                for a in edges
                for b in edges
            ]
            cases += [
                (f"{op}{suffix} {a:#x}, {k}", [f"lddw %r5, {a:#x}", f"{op}{suffix} %r5, {k}"])
                for a in edges
                for k in (0, 1, -1, -0x80000000, 3)
            ]
        for op in ("lsh", "rsh", "arsh"):
            cases += [
                (f"{op}{suffix} by {n}", [f"mov %r2, {n}", f"{op}{suffix} %r7, %r2", f"{op}{suffix} %r4, {n}"])
                for n in range(64)
            ]
    check_segments(cases)


def test_jmp32_ignores_garbage_in_upper_halves() -> None:
    values = tuple((0xDEAD_BEEF_0000_0000 * (reg + 1) & M64) | (reg * 0x3000_0001 & M32) for reg in range(10))
    cases = [
        (f"{op}32 %r{d}, %r{s}", ["mov %r9, 1", f"{op}32 %r{d}, %r{s}, +1", "mov %r9, 2"])
        for op in JUMPS
        for d, s in ((1, 2), (3, 0), (4, 4), (6, 8))
    ]
    check_segments(cases, values)


# --- memory offsets ---------------------------------------------------------------------------

# Edges of the unscaled (-256..255) and scaled (size * 0..4095) ranges of every size.
OFFSETS = (0, 1, 7, 8, -1, -8, 255, 256, -256, -257, 4095, 4096, 8190, 8192, 16380, 16384, 32760, 32761, 32767)
OFFSETS += (-32768, -4097)


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_load_store_offsets(size: int) -> None:
    """Offsets inside and beyond the scaled (unsigned, size-aligned) and unscaled
    (-256..255) immediate ranges: R3 points into the middle of a 64 KiB buffer."""
    sfx = isa.SIZE_SUFFIX[size]
    lines = ["mov %r3, %r1", "add %r3, 32768", "lddw %r2, 0x8192a3b4c5d6e7f8", "mov %r0, 0"]
    for index, off in enumerate(OFFSETS):
        lines += [f"stx{sfx} [%r3{off:+d}], %r2", f"ldx{sfx} %r4, [%r3{off:+d}]", "add %r0, %r4"]
        if size < 8:
            lines += [f"ldxs{sfx} %r5, [%r3{off:+d}]", "xor %r0, %r5"]
        lines += [f"st{sfx} [%r3{off:+d}], {-index - 2}", f"ldx{sfx} %r4, [%r3{off:+d}]", "add %r2, %r4"]
        lines += [f"st{sfx} [%r3{off - size:+d}], {index + 1}" if off - size >= -32768 else "add %r2, 1"]
    (r0, got), (ref_r0, want) = run_both("\n".join([*lines, "exit"]), bytes(65536 + 16))
    assert r0 == ref_r0
    assert got == want


def test_load_store_offsets_by_hand() -> None:
    mem = bytearray(65536)
    text = """
        mov %r3, %r1
        add %r3, 32768
        lddw %r2, 0x8192a3b4c5d6e7f8
        stxdw [%r3-32768], %r2
        stxw [%r3+32764], %r2
        sth [%r3-257], -2
        stb [%r3+4097], 0x80
        ldxsw %r0, [%r3+32764]
        exit
    """
    assert arm64(text)(mem) == 0xFFFF_FFFF_C5D6_E7F8
    assert mem[0:8] == bytes.fromhex("f8e7d6c5b4a39281")
    assert mem[65532:65536] == bytes.fromhex("f8e7d6c5")
    assert mem[32768 - 257 : 32768 - 255] == b"\xfe\xff"
    assert mem[32768 + 4097] == 0x80


def test_whole_stack_frame_and_byte_stores_from_r1_r2_r10() -> None:
    lines = [f"stb [%r10{-off:+d}], {off & 0xFF}" for off in range(1, 513)]
    lines += ["mov %r0, 0"] + [f"ldxb %r3, [%r10{-off:+d}]\nadd %r0, %r3" for off in range(1, 513)]
    lines += ["mov %r1, 0x1ab", "stxb [%r10-1], %r1", "stxb [%r10-2], %r2", "stxb [%r10-3], %r10"]
    lines += ["ldxh %r5, [%r10-2]", "lsh %r5, 16", "add %r0, %r5", "ldxb %r5, [%r10-3]", "and %r5, 7", "add %r0, %r5"]
    (r0, _), (ref_r0, _) = run_both("\n".join([*lines, "exit"]), bytes(range(40)))
    # sum of (off & 0xff) for off in 1..512, then bytes 0xab (R1) and 40 (R2, the length)
    # as a halfword shifted up; R10 is 8-byte aligned so its low three bits are zero
    assert r0 == ref_r0 == sum(off & 0xFF for off in range(1, 513)) + ((0xAB << 8 | 40) << 16)


# --- branches beyond the b.cond range ---------------------------------------------------------

FILLER = 300_000  # `add %r0, 1` is one ARM64 instruction: 1.2 MB of code


def far_program(jump: str) -> Program:
    """jump over FILLER increments; R0 = 0 if taken, FILLER if not."""
    insns = [Instruction(_spec("mov", isa.Form.ALU_K), dst=0, imm=0)]
    insns.append(Instruction(_spec(jump, isa.Form.JMP_K), dst=2, imm=0, off=FILLER))
    insns += [Instruction(_spec("add", isa.Form.ALU_K), dst=0, imm=1)] * FILLER
    insns.append(Instruction(_spec("exit", isa.Form.EXIT)))
    return Program(tuple(insns), name=f"far-{jump}")


def _spec(mnemonic: str, form: isa.Form) -> isa.OpSpec:
    return next(spec for spec in isa.ISA if spec.mnemonic == mnemonic and spec.form is form)


@pytest.fixture(scope="module")
def far_jeq() -> jit.runtime.CompiledProgram:
    return arm64(far_program("jeq"))


def test_far_conditional_branch_taken(far_jeq) -> None:
    assert far_jeq(None) == 0  # R2 = 0: jeq taken, 1.2 MB forward


def test_far_conditional_branch_not_taken(far_jeq) -> None:
    assert far_jeq(b"x") == FILLER  # R2 = 1


def test_far_branch_uses_the_long_form(far_jeq) -> None:
    distance = far_jeq.native.offsets[-1] - far_jeq.native.offsets[1]
    assert distance > 1 << 20
    assert "b.ne F1\nb L300002\nF1:" in far_jeq.native.assembly


def test_far_jmp32_branch() -> None:
    fn = arm64(far_program("jeq32"))
    assert fn(None) == 0
    assert fn(bytes(3)) == FILLER


def test_far_backward_branch() -> None:
    """ja forward to a jeq that jumps 1.2 MB back to the first increment."""
    add, n = Instruction(_spec("add", isa.Form.ALU_K), dst=0, imm=1), FILLER
    insns = [
        Instruction(_spec("mov", isa.Form.ALU_K), dst=0, imm=0),
        Instruction(_spec("ja", isa.Form.JA), off=n + 1),
        *([add] * n),
        Instruction(_spec("exit", isa.Form.EXIT)),
        Instruction(_spec("jeq", isa.Form.JMP_K), dst=0, imm=0, off=-(n + 2)),
        Instruction(_spec("mov", isa.Form.ALU_K), dst=0, imm=99),
        Instruction(_spec("exit", isa.Form.EXIT)),
    ]
    assert arm64(Program(tuple(insns)))() == n


@pytest.mark.parametrize(("filler", "far"), [(262_142, False), (262_143, True)])
def test_branch_range_boundary(filler: int, far: bool) -> None:
    """b.cond reaches 2^20 - 4 bytes forward. The branch is the second ARM64
    instruction of the jump (after cmp) and each filler is one instruction, so
    the distance to the target is 4 * (filler + 1) bytes."""
    insns = [Instruction(_spec("jeq", isa.Form.JMP_K), dst=2, imm=0, off=filler)]
    insns += [Instruction(_spec("add", isa.Form.ALU_K), dst=0, imm=1)] * filler
    insns += [Instruction(_spec("exit", isa.Form.EXIT))]
    text = Arm64Backend().generate(Program(tuple(insns)), CodegenOptions())
    assert ("F1:" in text) is far


# --- large programs -----------------------------------------------------------------------------


def test_large_straight_line_program() -> None:
    """40,000 ALU instructions over R0-R9 with varied immediates, all registers dumped."""
    ops = ("add", "sub", "xor", "or", "and", "mul", "lsh", "rsh", "arsh", "mov", "mod", "div")
    body = []
    for i in range(40_000):
        op = ops[i % len(ops)] + ("32" if i % 7 == 0 else "")
        imm = ((i * 0x9E3779B1) >> (i % 29)) & 0xFFFFFFFF
        imm = imm - (1 << 32) if imm & 0x80000000 else imm
        body.append(f"{op} %r{(i * 3) % 10}, {imm}" if i % 3 else f"{op} %r{(i * 3) % 10}, %r{(i * 7 + 1) % 10}")
    check_segments([("large", body)])


# --- atomics ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "32"])
def test_atomics_every_op(suffix: str) -> None:
    """Every atomic op, src == R0 and others, offsets that need the scratch address."""
    ops = ("add", "or", "and", "xor", "fetch add", "fetch or", "fetch and", "fetch xor", "xchg", "cmpxchg")
    cases = []
    for op in ops:
        for src, off in ((0, 8), (2, 16), (5, 4096), (6, 32760), (0, 0)):
            body = ["ldxdw %r3, [%r10-8]", f"stxdw [%r3+{off}], %r4", f"lock {op}{suffix} [%r3+{off}], %r{src}"]
            body += [f"ldxdw %r8, [%r3+{off}]", "mov %r3, 0"]
            cases.append((f"lock {op}{suffix} off {off} src r{src}", body))
        # R0 equal to the memory word: cmpxchg stores
        body = ["ldxdw %r3, [%r10-8]", "stxdw [%r3+8], %r0", f"lock {op}{suffix} [%r3+8], %r7", "ldxdw %r8, [%r3+8]"]
        cases.append((f"lock {op}{suffix} equal", [*body, "mov %r3, 0"]))
    check_segments(cases, data=32768)


@pytest.mark.parametrize(
    ("text", "expected", "memory"),
    [
        # cmpxchg32: equal low halves store, R0 gets the old value zero-extended
        ("lddw %r0, 0xffffffff00000005\nmov %r2, 9\nlock cmpxchg32 [%r1], %r2", 5, 9),
        # cmpxchg32 failing: no store, R0 = old value zero-extended
        ("lddw %r0, 0xffffffff00000006\nmov %r2, 9\nlock cmpxchg32 [%r1], %r2", 5, 5),
        ("mov %r0, 5\nmov %r2, 9\nlock cmpxchg [%r1], %r2", 5, 9),
        ("mov %r0, 5\nlock fetch add [%r1], %r0", 5, 10),  # src == R0 gets the old value
        ("mov %r0, -1\nlock fetch add32 [%r1], %r0", 5, 4),  # fetched 32-bit value zero-extended
        ("mov %r0, 3\nlock xchg [%r1], %r0", 5, 3),
        ("mov %r0, 2\nlock fetch and [%r1], %r0\nadd %r0, 100", 105, 0),
    ],
)
def test_atomics_by_hand(text: str, expected: int, memory: int) -> None:
    mem = bytearray(struct.pack("<Q", 5))
    assert arm64(text + "\nexit")(mem) == expected
    assert struct.unpack("<Q", mem)[0] == memory


def test_misaligned_atomic_is_a_memory_error() -> None:
    prog = jit.assemble("mov %r2, 1\nlock add [%r1+1], %r2\nexit")
    with pytest.raises(jit.MemoryAccessError, match=r"instruction 1 \(lock add \[%r1\+1\], %r2\)"):
        arm64(prog, emulate=True)(bytearray(16))  # unchecked: unicorn's fault (native code gets SIGBUS)


# --- calls ----------------------------------------------------------------------------------------------


def test_helper_through_the_trap_reads_and_writes_memory() -> None:
    seen = []

    def frob(addr, size, c, d, e, *, memory):
        seen.append((size, c, d, e))
        memory.write(addr, bytes(b ^ 42 for b in memory.read(addr, size)))
        return 0x1_0000_0007

    text = """
        mov %r6, %r1
        add %r1, 2
        mov %r2, 3
        mov %r3, 33
        mov %r4, 44
        mov %r5, 55
        call 1
        add %r0, %r2
        add %r0, %r5
        sub %r1, %r6
        add %r0, %r1
        exit
    """
    mem = bytearray(b"\x00\x01\x02\x03\x04\x05")
    fn = arm64(text, helpers={1: frob})
    r0 = fn(mem)
    assert seen == [(3, 33, 44, 55)]
    assert mem == bytearray(b"\x00\x01" + bytes([2 ^ 42, 3 ^ 42, 4 ^ 42]) + b"\x05")
    assert r0 == 0x1_0000_0007 + 3 + 55 + 2  # R1-R5 keep their values (the interpreter's choice)


def test_helper_reads_the_stack() -> None:
    def total(addr, size, *_rest, memory):
        return sum(memory.read(addr, size))

    text = "stdw [%r10-8], 0x01020304\nmov %r1, %r10\nadd %r1, -8\nmov %r2, 8\ncall 2\nexit"
    assert arm64(text, helpers={2: total})() == 1 + 2 + 3 + 4


def test_helper_exception_becomes_helper_error() -> None:
    calls = []

    def boom_once(*_args):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("no")
        return 0

    fn = arm64("mov %r0, 1\ncall 3\nmov %r0, 2\nexit", helpers={3: boom_once})
    with pytest.raises(jit.HelperError, match=r"instruction 1 \(call 3\).*ValueError: no") as info:
        fn()
    assert isinstance(info.value.__cause__, ValueError)
    assert fn() == 2  # the next call starts clean


def test_callx() -> None:
    helpers = {7: lambda a, *_: a + 1}
    assert arm64("mov %r1, 41\nmov %r3, 7\ncall %r3\nexit", helpers=helpers)() == 42
    with pytest.raises(jit.HelperError, match=r"instruction 1 \(call %r3\)"):
        arm64("mov %r3, 600\ncall %r3\nexit", helpers=helpers)()
    with pytest.raises(jit.HelperError, match=r"instruction 1 \(call %r3\)"):
        arm64("mov %r3, 300\ncall %r3\nexit", helpers=helpers)()  # no helper 300


def test_local_calls_fresh_frames_and_callee_saved_registers() -> None:
    text = """
        mov %r6, 6
        mov %r9, 9
        stdw [%r10-8], 100
        mov %r1, 5
        call local fact
        add %r0, %r6
        add %r0, %r9
        ldxdw %r1, [%r10-8]
        add %r0, %r1
        exit
    fact:
        stxdw [%r10-8], %r1
        mov %r6, %r1
        mov %r9, 0
        jgt %r1, 1, +2
        mov %r0, 1
        exit
        sub %r1, 1
        call local fact
        mul %r0, %r6
        ldxdw %r1, [%r10-8]
        add %r0, 0
        exit
    """
    assert arm64(text)() == 120 + 6 + 9 + 100


def test_call_depth_limit() -> None:
    # main + 7 nested calls = 8 frames is the limit; one more fails
    def nested(depth: int) -> str:
        lines = ["mov %r0, 0"]
        for level in range(depth):
            lines += [f"call local l{level}", "exit", f"l{level}:", "add %r0, 1"]
        return "\n".join([*lines, "exit"])

    assert arm64(nested(7))() == 7
    with pytest.raises(jit.CallDepthError, match="instruction"):
        arm64(nested(8))()


def test_ld_abs_and_ld_ind() -> None:
    mem = bytes([0x11, 0x22, 0x33, 0x44, 0x55, 0x66])
    assert arm64("mov %r6, %r1\nldabsw 1\nexit")(mem) == 0x2233_4455
    assert arm64("mov %r6, %r1\nmov %r2, 3\nldindh %r2, 1\nexit")(mem) == 0x5566
    assert arm64("mov %r6, %r1\nldabsb 5\nexit")(mem) == 0x66
    assert arm64("mov %r6, %r1\nmov %r0, 7\nldabsh 5\nmov %r0, 9\nexit")(mem) == 0  # one byte past the end
    assert arm64("mov %r6, %r1\nmov %r2, -1\nldindb %r2, 0\nmov %r0, 9\nexit")(mem) == 0  # below the start
    assert arm64("ldabsb 0\nmov %r0, 9\nexit")(None) == 0  # no buffer at all


# --- errors, budgets, batches, listing --------------------------------------------------------------


def test_fault_names_the_instruction_and_address() -> None:
    prog = jit.assemble("mov %r2, 1\nlddw %r3, 0x1234\nstxdw [%r3+8], %r2\nexit")
    with pytest.raises(jit.MemoryAccessError) as info:
        arm64(prog, emulate=True)()  # unchecked: unicorn's fault (native code gets SIGSEGV)
    assert str(info.value).startswith(prog.describe(3))
    assert "0x123c" in str(info.value)
    assert info.value.pc == 3


def test_max_steps_stops_an_infinite_loop() -> None:
    fn = arm64("mov %r0, 0\nadd %r0, 1\nja -2\nexit", max_steps=1000)
    with pytest.raises(jit.StepLimitError, match=r"instruction 2 \(ja -2\)"):
        fn()
    # the budget is re-armed for every run
    with pytest.raises(jit.StepLimitError):
        fn()


def test_max_steps_counts_conditional_back_edges_and_calls() -> None:
    loop = "mov %r0, 0\nadd %r0, 1\njlt %r0, 10, -2\nexit"
    assert arm64(loop, max_steps=10)() == 10  # 10 executions of the back-edge (9 taken), as on x86-64
    with pytest.raises(jit.StepLimitError):
        arm64(loop, max_steps=9)()
    calls = "call local f\ncall local f\nexit\nf:\nmov %r0, 3\nexit"
    assert arm64(calls, max_steps=2)() == 3
    with pytest.raises(jit.StepLimitError):
        arm64(calls, max_steps=1)()


def test_run_many_repeats_in_one_native_loop() -> None:
    fn = arm64("ldxdw %r0, [%r1]\nadd %r0, 1\nstxdw [%r1], %r0\nexit")
    mem = bytearray(8)
    assert fn.run_many(mem, 5) == 5
    assert fn.run_many(mem, 1) == 6
    assert struct.unpack("<Q", mem)[0] == 6


def test_disasm_shows_bpf_above_arm64() -> None:
    fn = arm64("lddw %r0, 0x1122334455667788\nbswap32 %r0\nexit")
    listing = fn.disasm()
    assert "bswap32 %r0" in listing
    assert "rev w7, w7" in listing
    assert "movk x7" in listing
    assert listing.index("<prologue>") < listing.index("bswap32")


@pytest.mark.parametrize(
    ("insns", "match"),
    [
        (
            [Instruction(_spec("call", isa.Form.CALL_HELPER), imm=77)],
            r"instruction 0 \(call 77\): unknown helper id 77",
        ),
        ([Instruction(_spec("lddw.mapfd", isa.Form.LDDW), dst=1, src=1, imm=3)], "unresolved relocation"),
        ([Instruction(_spec("call", isa.Form.CALL_BTF), src=2, imm=5)], r"instruction 0 .*BTF"),
    ],
)
def test_compile_errors_name_the_instruction(insns, match) -> None:
    prog = Program((*insns, Instruction(_spec("exit", isa.Form.EXIT))))
    with pytest.raises(jit.CompileError, match=match):
        arm64(prog)


def test_bounds_checks_are_emitted_where_planned() -> None:
    prog = jit.assemble("ldxb %r0, [%r1]\nldxb %r0, [%r1+1]\nexit")
    native = Arm64Backend().compile(prog, CodegenOptions(checks={1: Check.MEM}))
    assert native.checked == {1}
    assert "bounds_checks" in native.labels


def test_layout_matches_keystone() -> None:
    """The emitter's own offsets (used for branch ranges) equal keystone's."""
    native = Arm64Backend().compile(jit.assemble("mov %r0, 1\njeq %r0, 1, +2\nlddw %r0, 5\nexit"), CodegenOptions())
    assert native.offsets[0] > 0  # the prologue and stubs come first
    assert len(native.code) % 4 == 0
    assert native.pc_at(native.offsets[2]) == 2
    assert native.pc_at(native.offsets[3]) == 4  # after the two-slot lddw
    assert native.pc_at(0) is None
