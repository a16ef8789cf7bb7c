"""Every compiled engine against the reference interpreter: R0-R9, the stack and
the memory buffer, on the generated cases of DESIGN.md section 7 and on random
terminating programs (hypothesis).

A test program is a list of *segments*. Each segment starts from registers
initialised to distinct constants (or values of its own), runs its body and
dumps R0-R9 into the buffer; at the end the main stack frame is copied into the
buffer too, so comparing buffers compares every register after every segment,
the stack and the data the program wrote. The buffer pointer (R1 at entry) is
kept in the stack slot [r10-8], which is the only byte range not compared;
[r10-16] is the dump's scratch slot. Buffer layout::

    [0, data)                    data area for the bodies (pointer: ldxdw rX, [r10-8])
    [data, data + 80 * n)        R0..R9 after each segment
    [.., .. + 496)               main stack frame [r10-512, r10-16)
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import TEST_HELPER_ID, mixing_helper, programs

import jit
from jit.backends.base import NativeCode
from jit.backends.x86_64 import X86_64Backend
from jit.tools.engines import Engine, engines

MASK64 = (1 << 64) - 1
INT_MIN32 = 0xFFFF_FFFF_8000_0000  # (s64)INT32_MIN
LLONG_MIN = 1 << 63
# Distinct register values with bits set in both halves.
INIT = tuple(((0x9E37_79B9_7F4A_7C15 * (r + 3)) ^ (r << 56)) & MASK64 for r in range(10))
STACK_COPIED = 496  # bytes [r10-512, r10-16) of the main frame
HELPERS = {TEST_HELPER_ID: mixing_helper}

COMPILED = [engine for engine in engines() if engine.arch is not None]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", COMPILED, ids=[engine.name for engine in COMPILED])


# --- harness -------------------------------------------------------------------


def imm32(value: int) -> str:
    """An imm32 operand: the 32-bit pattern in hex (0xffffffff is -1)."""
    return f"{value & 0xFFFFFFFF:#x}"


def init(values: Sequence[int] = INIT) -> str:
    return "\n".join(f"lddw %r{r}, {value & MASK64:#x}" for r, value in enumerate(values))


def segment(body: str, regs: Sequence[int] | dict[int, int] = INIT) -> str:
    """``body`` after R0-R9 are set (``regs`` as a dict overrides some of INIT)."""
    values = list(INIT)
    if isinstance(regs, dict):
        for r, value in regs.items():
            values[r] = value
    else:
        values = list(regs)
    return f"{init(values)}\n{body}"


def _dump(offset: int) -> str:
    lines = ["stxdw [%r10-16], %r0", "ldxdw %r0, [%r10-8]", f"add %r0, {offset}"]
    lines += [f"stxdw [%r0+{8 * r}], %r{r}" for r in range(1, 10)]
    lines += ["ldxdw %r1, [%r10-16]", "stxdw [%r0], %r1"]
    return "\n".join(lines)


@dataclass
class Built:
    text: str
    mem_size: int
    data: int
    segments: int

    def decode(self, mem: bytes) -> dict[str, object]:
        """The compared state, named, for readable assertion diffs."""
        state: dict[str, object] = {"data": bytes(mem[: self.data])}
        for i in range(self.segments):
            base = self.data + 80 * i
            regs = [int.from_bytes(mem[base + 8 * r : base + 8 * r + 8], "little") for r in range(10)]
            state[f"segment {i}"] = " ".join(f"r{r}={v:#x}" for r, v in enumerate(regs))
        stack = self.data + 80 * self.segments
        state["stack"] = bytes(mem[stack : stack + STACK_COPIED]).hex()
        return state


def build(segments: Sequence[str], functions: str = "", data: int = 64) -> Built:
    """The whole program: pointer stash, segments with dumps, stack copy, exit, functions."""
    data = -(-data // 8) * 8
    lines = ["stxdw [%r10-8], %r1"]
    for i, body in enumerate(segments):
        lines += [body, _dump(data + 80 * i)]
    lines += ["ldxdw %r0, [%r10-8]", f"add %r0, {data + 80 * len(segments)}"]
    for k in range(STACK_COPIED // 8):
        lines += [f"ldxdw %r1, [%r10-{512 - 8 * k}]", f"stxdw [%r0+{8 * k}], %r1"]
    lines += ["mov %r0, 0", "exit", functions]
    size = data + 80 * len(segments) + STACK_COPIED
    return Built("\n".join(lines), size, data, len(segments))


def run_both(engine: Engine, prog: Built, **options) -> None:
    """Run on the interpreter and on ``engine``; R0 and the buffer must agree."""
    program = jit.assemble(prog.text)
    want_mem = bytearray(prog.mem_size)
    want = jit.interpret(program, want_mem, helpers=HELPERS)
    got_mem = bytearray(prog.mem_size)
    # Generated programs keep pointers where the verifier loses track of them:
    # unverified, so every access is bounds-checked (which these tests also exercise).
    options.setdefault("verify", False)
    got = engine.prepare(program, helpers=HELPERS, **options)(got_mem)
    assert prog.decode(got_mem) == prog.decode(want_mem)
    assert got == want


def check(engine: Engine, segments: Sequence[str], functions: str = "", data: int = 64) -> None:
    run_both(engine, build(segments, functions, data))


# --- ALU: every operation x every register pair ---------------------------------

ALU_BINARY = ("add", "sub", "mul", "div", "sdiv", "or", "and", "lsh", "rsh", "mod", "smod", "xor", "mov", "arsh")
PAIRS = [(d, s) for d in range(10) for s in range(10)]


@pytest.mark.parametrize("width", ["", "32"])
@pytest.mark.parametrize("op", ALU_BINARY)
def test_alu_every_register_pair(engine: Engine, op: str, width: str) -> None:
    check(engine, [segment(f"{op}{width} %r{d}, %r{s}") for d, s in PAIRS])


@pytest.mark.parametrize("width", ["", "32"])
@pytest.mark.parametrize("op", (*ALU_BINARY, "neg"))
def test_alu_immediates_every_register(engine: Engine, op: str, width: str) -> None:
    imms = (0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, -123, 0, 1, 5, 63)
    if op == "neg":
        check(engine, [segment(f"neg{width} %r{d}") for d in range(10)])
    else:
        check(engine, [segment(f"{op}{width} %r{d}, {imm32(imm)}") for d in range(10) for imm in imms])


@pytest.mark.parametrize("mnemonic", ["movsx864", "movsx1664", "movsx3264", "movsx832", "movsx1632"])
def test_movsx_every_register_pair(engine: Engine, mnemonic: str) -> None:
    values = [0x80, 0x7F, 0xFF80, 0x8000_0000, 0x1234_5678_9ABC_DEF0]
    segments = [segment(f"{mnemonic} %r{d}, %r{s}", {s: v}) for d, s in PAIRS for v in values[:2]]
    segments += [segment(f"{mnemonic} %r1, %r2", {2: v}) for v in values]
    check(engine, segments)


def test_byte_swaps_every_register(engine: Engine) -> None:
    ops = [f"{kind}{bits}" for kind in ("le", "be", "bswap") for bits in (16, 32, 64)]
    check(engine, [segment(f"{op} %r{d}") for op in ops for d in range(10)])


# --- division ------------------------------------------------------------------

DIV_VALUES = (0, 1, MASK64, 1 << 32, INT_MIN32, 1 << 31, LLONG_MIN, (1 << 63) - 1, 13, -13 & MASK64, 0xFFFFFFFF)
DIV_IMMS = (0, 1, -1, -0x80000000, 0x7FFFFFFF, 3, -3)
DIVISION = ("div", "sdiv", "mod", "smod")
# Pairs involving rax (R0) and rdx (R3), which x86 div/idiv use implicitly.
DIV_PAIRS = [(0, 3), (3, 0), (0, 0), (3, 3), (0, 1), (1, 0), (3, 1), (1, 3), (1, 2), (4, 4), (0, 4), (3, 9)]


@pytest.mark.parametrize("width", ["", "32"])
@pytest.mark.parametrize("op", DIVISION)
def test_division_table_registers(engine: Engine, op: str, width: str) -> None:
    segments = [
        segment(f"{op}{width} %r{d}, %r{s}", {d: a, s: b})
        for d, s in DIV_PAIRS
        for a in DIV_VALUES
        for b in DIV_VALUES
        if d != s or a == b
    ]
    check(engine, segments)


@pytest.mark.parametrize("width", ["", "32"])
@pytest.mark.parametrize("op", DIVISION)
def test_division_every_pair_edge_divisors(engine: Engine, op: str, width: str) -> None:
    """Zero, -1 with INT_MIN/LLONG_MIN, and an ordinary case, for all 100 pairs."""
    cases = ((13, 0), (LLONG_MIN, MASK64), (INT_MIN32, MASK64), (1 << 31, 0xFFFFFFFF), (-100 & MASK64, 7))
    segments = [segment(f"{op}{width} %r{d}, %r{s}", {d: a, s: b}) for d, s in PAIRS for a, b in cases]
    check(engine, segments)


@pytest.mark.parametrize("width", ["", "32"])
@pytest.mark.parametrize("op", DIVISION)
def test_division_table_immediates(engine: Engine, op: str, width: str) -> None:
    segments = [segment(f"{op}{width} %r{d}, {imm}", {d: a}) for d in (0, 3, 5) for a in DIV_VALUES for imm in DIV_IMMS]
    check(engine, segments)


# --- shifts --------------------------------------------------------------------

SHIFT_PATTERNS = (0x8000_0000_0000_0001, 0xFEDC_BA98_7654_3210, 0xFFFF_FFFF, MASK64, 1)
SHIFTS = ("lsh", "rsh", "arsh")


@pytest.mark.parametrize("width", ["", "32"])
@pytest.mark.parametrize("op", SHIFTS)
def test_every_shift_count(engine: Engine, op: str, width: str) -> None:
    counts = range(64)
    segments = [segment(f"{op}{width} %r6, {n}", {6: p}) for p in SHIFT_PATTERNS for n in counts]
    # register counts, with garbage above the masked bits
    segments += [segment(f"{op}{width} %r6, %r2", {6: p, 2: n | (0xABC << 8)}) for p in SHIFT_PATTERNS for n in counts]
    check(engine, segments)


@pytest.mark.parametrize("width", ["", "32"])
@pytest.mark.parametrize("op", SHIFTS)
def test_shift_by_register_with_r4(engine: Engine, op: str, width: str) -> None:
    """R4 lives in rcx, the x86 shift-count register: as count, as dst, as both."""
    pairs = [(4, s) for s in range(10)] + [(d, 4) for d in range(10)] + [(0, 3), (3, 0), (9, 1)]
    segments = [
        segment(f"{op}{width} %r{d}, %r{s}", {d: p, s: n} if d != s else {d: p})
        for d, s in pairs
        for p in SHIFT_PATTERNS[:3]
        for n in (0, 1, 31, 32, 63, 0x1_0000_0021)
    ]
    check(engine, segments)


# --- jumps ---------------------------------------------------------------------

JUMPS = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset")
AWKWARD_IMMS = (0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, -123)
AWKWARD_VALUES = (0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, INT_MIN32, MASK64, -123 & MASK64, 0, 0xFFFF_FFFF_0000_0000)


def _branch(condition: str) -> str:
    """r5 = 1 if ``condition`` jumps, else 2."""
    return f"mov %r5, 1\n{condition}, +1\nmov %r5, 2"


@pytest.mark.parametrize("width", ["", "32"])
def test_jump_awkward_immediates(engine: Engine, width: str) -> None:
    segments = [
        segment(_branch(f"{j}{width} %r{d}, {imm32(imm)}"), {d: v})
        for j in JUMPS
        for imm in AWKWARD_IMMS
        for v in AWKWARD_VALUES
        for d in (0, 4)
    ]
    check(engine, segments)


@pytest.mark.parametrize("width", ["", "32"])
def test_jump_register_pairs(engine: Engine, width: str) -> None:
    segments = [
        segment(_branch(f"{j}{width} %r{d}, %r{s}"), {d: a, s: b})
        for j in JUMPS
        for d, s in ((0, 3), (3, 3), (4, 9), (9, 4))
        for a, b in ((1, 2), (2, 1), (MASK64, 1), (INT_MIN32, 0x80000000), (7, 7))
    ]
    check(engine, segments)


def test_jmp32_ignores_upper_halves(engine: Engine) -> None:
    lows = ((5, 5), (5, 6), (6, 5), (0x80000000, 1), (1, 0x80000000), (0xFFFFFFFF, 0))
    uppers = ((0, 0xFFFFFFFF), (0xDEADBEEF, 0x1), (0x80000000, 0x7FFFFFFF))
    segments = []
    for j in JUMPS:
        for (a, b), (ha, hb) in ((lw, up) for lw in lows for up in uppers):
            regs = {2: (ha << 32) | a, 7: (hb << 32) | b}
            segments.append(segment(_branch(f"{j}32 %r2, %r7"), regs))
            segments.append(segment(_branch(f"{j}32 %r2, {imm32(b)}"), regs))
    check(engine, segments)


# --- constants, memory ---------------------------------------------------------


def test_lddw_negative_low_half(engine: Engine) -> None:
    values = (0x1234_5678_8000_0000, 0xFFFF_FFFF_8000_0001, 0x0000_0000_FFFF_FFFF, LLONG_MIN, 0x8000_0001, MASK64, 0)
    check(engine, [segment(f"lddw %r{d}, {v:#x}") for d in range(10) for v in values])


MEM_OFFSETS = (0, -1, -256, -257, 255, 32767, -32768)
SUFFIX = {1: "b", 2: "h", 4: "w", 8: "dw"}
MEM_BASE = 32768  # data offset the base register points at: every offset stays inside


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_memory_offsets_at_the_edges(engine: Engine, size: int) -> None:
    sfx = SUFFIX[size]
    segments = []
    for off in MEM_OFFSETS:
        loads = f"ldx{sfx} %r3, [%r6{off:+d}]" + (f"\nldxs{sfx} %r4, [%r6{off:+d}]" if size < 8 else "")
        body = (
            f"ldxdw %r6, [%r10-8]\nadd %r6, {MEM_BASE}\nmov %r7, %r6\nadd %r7, 16\n"
            f"stx{sfx} [%r6{off:+d}], %r2\n{loads}\nst{sfx} [%r7{off:+d}], -7\n"
            f"ldx{sfx} %r5, [%r7{off:+d}]\nmov %r6, 0\nmov %r7, 0"
        )
        segments.append(segment(body, {2: 0x8182_8384_8586_8788}))
    check(engine, segments, data=2 * MEM_BASE + 32)


def test_byte_stores_from_r1_r2_r10(engine: Engine) -> None:
    """x86 needs REX prefixes for sil/dil/bpl; without them the store takes dh/bh/ch."""
    body = (
        "ldxdw %r6, [%r10-8]\n"
        "stxb [%r6+1], %r1\nstxb [%r6+2], %r2\nstxh [%r6+4], %r1\nstxh [%r6+6], %r2\n"
        "stxb [%r6+8], %r10\nldxb %r7, [%r6+8]\nmov %r8, %r10\nand %r8, 0xff\nsub %r7, %r8\nstb [%r6+8], 0\n"  # r7 = 0
        "stxb [%r10-24], %r1\nstxb [%r10-23], %r2\nstxh [%r10-22], %r10\nldxh %r8, [%r10-22]\n"
        "mov %r9, %r10\nand %r9, 0xffff\nsub %r8, %r9\nsth [%r10-22], 0\n"  # r8 = 0
        "ldxb %r1, [%r6+2]\nldxb %r2, [%r6+1]\nldxh %r9, [%r10-24]\nmov %r6, 0"
    )
    check(engine, [segment(body, {1: 0x1112_1314_1516_17A1, 2: 0x2122_2324_2526_27B2, 4: 0xC4C3, 3: 0xD3D2})])


ATOMIC_OPS = [f"lock {fetch}{op}" for op in ("add", "or", "and", "xor") for fetch in ("", "fetch ")]
ATOMIC_OPS += ["lock xchg", "lock cmpxchg"]


@pytest.mark.parametrize("width", ["", "32"])
@pytest.mark.parametrize("op", ATOMIC_OPS)
def test_atomics_src_r0_and_other_pairs(engine: Engine, op: str, width: str) -> None:
    memory_value, r0_values = 0xF0F0_F0F0_0F0F_0F0F, (0xF0F0_F0F0_0F0F_0F0F, 0x1234_5678_9ABC_DEF0)
    segments = []
    for src in (0, 1, 3, 4, 9):
        for r0 in r0_values:  # cmpxchg: R0 equal to memory and not
            regs = {0: r0, src: r0} if src == 0 else {0: r0, src: 0x0FF0_00FF_1234_8765}
            stack = (
                f"lddw %r6, {memory_value:#x}\nstxdw [%r10-32], %r6\n"
                f"{op}{width} [%r10-32], %r{src}\nldxdw %r6, [%r10-32]"
            )
            buffer = (
                f"ldxdw %r7, [%r10-8]\nlddw %r8, {memory_value:#x}\nstxdw [%r7+8], %r8\n"
                f"{op}{width} [%r7+8], %r{src}\nmov %r7, 0"
            )
            segments += [segment(stack, regs), segment(buffer, regs)]
    # the memory base in R0, the comparand register (its pointer value must not leak)
    if "cmpxchg" not in op:
        segments.append(segment(f"mov %r0, %r10\n{op}{width} [%r0-40], %r5\nmov %r0, 1\nldxdw %r7, [%r10-40]"))
    check(engine, segments)


def test_full_512_byte_stack(engine: Engine) -> None:
    """Every byte of the frame written with each store size, read back and copied out."""
    lines = ["mov %r9, %r1"]  # the buffer pointer
    for k in range(512 // 8):
        off = -512 + 8 * k
        kind = k % 4
        if kind == 0:
            lines.append(f"lddw %r1, {(0x0102_0304_0506_0708 * (k + 1)) & MASK64:#x}\nstxdw [%r10{off}], %r1")
        elif kind == 1:
            lines.append(f"stw [%r10{off}], {k * 3}\nstw [%r10{off + 4}], -{k}")
        elif kind == 2:
            lines += [f"sth [%r10{off + 2 * i}], {k * 7 + i}" for i in range(4)]
        else:
            lines += [f"stb [%r10{off + i}], {(k + i) & 0x7F}" for i in range(8)]
    for k in range(512 // 8):
        lines.append(f"ldxdw %r1, [%r10-{512 - 8 * k}]\nstxdw [%r9+{8 * k}], %r1")
    lines.append("mov %r0, 0\nexit")
    program = jit.assemble("\n".join(lines))
    want, got = bytearray(512), bytearray(512)
    jit.interpret(program, want)
    engine.prepare(program)(got)
    assert got == want
    assert want[-8:] != bytes(8)  # the top slot [r10-8] was really written


# --- control flow ----------------------------------------------------------------


def _x86_offsets(text: str) -> NativeCode:
    from jit.backends.base import CodegenOptions

    return X86_64Backend().compile(jit.assemble(text), CodegenOptions())


@dataclass
class Filler:
    """Instructions of known x86-64 size, to pad a jump to an exact distance."""

    text: str
    size: int


def _filler_sizes() -> tuple[Filler, Filler]:
    big, small = "mov %r3, 0x12345", "add %r3, 1"
    native = _x86_offsets(f"{big}\n{small}\nexit")
    return Filler(big, native.offsets[1] - native.offsets[0]), Filler(small, native.offsets[2] - native.offsets[1])


def _pad(distance: int) -> list[str]:
    big, small = _filler_sizes()
    for n_small in range(big.size):
        rest = distance - n_small * small.size
        if rest >= 0 and rest % big.size == 0:
            return [big.text] * (rest // big.size) + [small.text] * n_small
    raise AssertionError(f"no filler of {distance} bytes")


@pytest.mark.parametrize("distance", [126, 127, 128, 129])
@pytest.mark.parametrize("jump", ["ja +{n}", "jne %r1, %r2, +{n}", "jeq32 %r1, 7, +{n}"])
def test_forward_jump_of_exact_native_distance(engine: Engine, jump: str, distance: int) -> None:
    pad = _pad(distance)
    body = [jump.format(n=len(pad)), *pad, "add %r3, 100"]
    native = _x86_offsets("\n".join([*body, "exit"]))
    assert native.offsets[len(pad) + 1] - native.offsets[1] == distance  # x86 rel8 reaches 127
    check(engine, [segment("\n".join(body), {1: 7, 2: 8}), segment("\n".join(body), {1: 7, 2: 7})])


@pytest.mark.parametrize(("padding", "distance"), [(117, 127), (118, 128), (119, 133)])
def test_backward_jump_of_exact_native_distance(engine: Engine, padding: int, distance: int) -> None:
    """A two-iteration loop whose back-edge spans ``distance`` bytes from the loop
    head to the end of the jump. x86 rel8 reaches back 128 bytes; one more byte
    of padding makes the jump 4 bytes longer, so 129..132 cannot occur."""
    pad = _pad(padding)
    body = ["mov %r4, 2", "loop:", *pad, "sub %r4, 1", "jne %r4, 0, loop"]
    native = _x86_offsets("\n".join([*body, "exit"]))
    assert native.offsets[len(pad) + 3] - native.offsets[1] == distance
    check(engine, [segment("\n".join(body))])


def test_conditional_jump_over_32767_slots(engine: Engine) -> None:
    filler = "\n".join(["add %r3, 1"] * 32767)
    check(
        engine,
        [segment(f"jne %r1, %r2, +32767\n{filler}\nmov %r4, 9", {1: 1, 2: 2 + k, 3: 0}) for k in (0, -1)],
        data=8,
    )


def test_4096_instruction_jump_chain(engine: Engine) -> None:
    """1366 blocks of (mul, add, ja) = 4098 instructions, visited in a shuffled
    order through forward and backward jumps; the result depends on the order."""
    blocks = 1366
    order = list(range(1, blocks))
    random.Random(3).shuffle(order)
    successor = dict(zip([0, *order], [*order, blocks]))
    lines = []
    for block in range(blocks):
        lines += [f"b{block}:", "mul %r3, 3", f"add %r3, {block * 7 + 1}", f"ja b{successor[block]}"]
    lines += [f"b{blocks}:", "ja +0"]
    check(engine, [segment("\n".join(lines), {3: 1})], data=8)


def _nested_calls(depth: int) -> tuple[str, str]:
    """A main body calling f1 -> f2 -> ... -> f{depth}; each level clobbers R6-R9
    and its stack frame, and checks its frame survived the deeper calls."""
    functions = []
    for level in range(1, depth + 1):
        call = f"call local f{level + 1}\n" if level < depth else ""
        functions.append(
            f"f{level}:\nstdw [%r10-8], {level * 11}\nmov %r6, {level}\nmov %r7, {level * 2}\n"
            f"mov %r8, {level * 3}\nmov %r9, {level * 4}\n{call}ldxdw %r1, [%r10-8]\n"
            f"add %r0, %r1\nmul %r0, 3\nexit"
        )
    return "mov %r0, 1\ncall local f1", "\n".join(functions)


def test_nested_local_calls_up_to_the_depth_limit(engine: Engine) -> None:
    body, functions = _nested_calls(7)  # main + 7 calls = 8 frames, the limit
    check(engine, [segment(body)], functions)


def test_local_call_beyond_the_depth_limit(engine: Engine) -> None:
    body, functions = _nested_calls(8)  # a 9th frame: f7's call to f8 fails
    program = jit.assemble(build([segment(body)], functions).text)
    call_pc = max(pc for pc, insn in program if insn.op == "call_local")
    with pytest.raises(jit.CallDepthError) as want:
        jit.interpret(program, bytearray(2048))
    with pytest.raises(jit.CallDepthError) as got:
        engine.prepare(program, verify=False)(bytearray(2048))  # the verifier rejects the depth
    assert got.value.pc == want.value.pc == call_pc
    assert f"instruction {call_pc} (call local" in str(got.value)


def test_helper_calls_keep_r1_to_r5(engine: Engine) -> None:
    """R0 = helper(R1..R5); R1-R5 keep their values (the interpreter's choice), also through callx."""
    body = f"call {TEST_HELPER_ID}\nmov %r6, %r0\nmov %r7, {TEST_HELPER_ID}\ncall %r7"
    check(engine, [segment(body)])


# --- random programs -----------------------------------------------------------

EXAMPLES = int(os.environ.get("BPFJIT_HYPOTHESIS_EXAMPLES", "50"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated=programs())
def test_random_programs_agree(engine: Engine, generated) -> None:
    main, functions, regs = generated.render()
    check(engine, [segment(main, regs)], functions, data=generated.data_size)
