"""Hypothesis strategies for random *terminating* eBPF programs.

A program is a main body plus up to three functions. Bodies are lists of
operations: ALU (every operation, both widths, register and immediate), byte
swaps, movsx, LD_IMM64, forward jumps (so no loops), loads, stores and atomics
on the stack and on the in-bounds data area of the buffer, calls to a
deterministic helper (directly and through callx) and local calls to a *later*
function (so no recursion). Everything is a plain dataclass, so hypothesis
shrinks a failure to a short list of simple operations.

The main body must not touch the stack slots [r10-16, r10): the differential
harness keeps the buffer pointer at [r10-8] and uses [r10-16] as scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

MASK64 = (1 << 64) - 1
TEST_HELPER_ID = 33
DATA_SIZE = 64  # bytes of the buffer the bodies may use

ALU_OPS = ("add", "sub", "mul", "div", "sdiv", "or", "and", "lsh", "rsh", "mod", "smod", "xor", "mov", "arsh")
JUMPS = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset")
ATOMICS = (
    *(f"lock {f}{op}" for op in ("add", "or", "and", "xor") for f in ("", "fetch ")),
    "lock xchg",
    "lock cmpxchg",
)
SUFFIX = {1: "b", 2: "h", 4: "w", 8: "dw"}


def mixing_helper(a: int, b: int, c: int, d: int, e: int) -> int:
    """Deterministic helper: mixes all five arguments."""
    return (a * 3 + (b ^ (c << 1)) + d * 5 - e + 0x1234) & MASK64


INTERESTING = (0, 1, 2, 7, 31, 32, 63, 64, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 63, MASK64, (1 << 63) - 1)
values64 = st.one_of(st.sampled_from(INTERESTING), st.integers(0, MASK64))
imm32 = st.one_of(
    st.sampled_from((0, 1, -1, 2, 31, 32, 63, 0x7FFFFFFF, -0x80000000, -123)), st.integers(-(2**31), 2**31 - 1)
)
reg = st.integers(0, 9)


@dataclass(frozen=True)
class Op:
    """One operation; ``text`` may hold several instructions.

    ``skip`` > 0 makes the last instruction a forward jump over that many
    following operations (clamped to the end of the body).
    """

    text: str
    skip: int = 0


@st.composite
def alu(draw) -> Op:
    op, width = draw(st.sampled_from(ALU_OPS)), draw(st.sampled_from(("", "32")))
    dst = draw(reg)
    if draw(st.booleans()):
        return Op(f"{op}{width} %r{dst}, %r{draw(reg)}")
    return Op(f"{op}{width} %r{dst}, {draw(imm32)}")


@st.composite
def unary(draw) -> Op:
    dst = draw(reg)
    kind = draw(st.sampled_from(("neg", "neg32", "le", "be", "bswap", "movsx", "lddw")))
    if kind.startswith("neg"):
        return Op(f"{kind} %r{dst}")
    if kind == "lddw":
        return Op(f"lddw %r{dst}, {draw(values64):#x}")
    if kind == "movsx":
        mnemonic = draw(st.sampled_from(("movsx864", "movsx1664", "movsx3264", "movsx832", "movsx1632")))
        return Op(f"{mnemonic} %r{dst}, %r{draw(reg)}")
    return Op(f"{kind}{draw(st.sampled_from((16, 32, 64)))} %r{dst}")


@st.composite
def jump(draw) -> Op:
    cond, width, dst = draw(st.sampled_from(JUMPS)), draw(st.sampled_from(("", "32"))), draw(reg)
    rhs = f"%r{draw(reg)}" if draw(st.booleans()) else str(draw(imm32))
    skip = draw(st.integers(1, 6))
    if draw(st.integers(0, 7)) == 0:
        return Op("ja {target}", skip)
    return Op(f"{cond}{width} %r{dst}, {rhs}, {{target}}", skip)


@st.composite
def stack_access(draw, in_function: bool) -> Op:
    """Loads, stores and atomics on the frame (the main body keeps off [r10-16, r10))."""
    size = draw(st.sampled_from((1, 2, 4, 8)))
    top = 0 if in_function else 16
    kind = draw(st.sampled_from(("ldx", "ldxs", "st", "stx", "atomic")))
    if kind == "atomic":
        size = draw(st.sampled_from((4, 8)))
        off = -draw(st.integers(top // size + 1, 512 // size)) * size
        op = draw(st.sampled_from(ATOMICS))
        return Op(f"{op}{'' if size == 8 else '32'} [%r10{off}], %r{draw(reg)}")
    off = -draw(st.integers(top + size, 512))
    return Op(_access(kind, size, "%r10", off, draw(reg), draw(imm32)))


def _access(kind: str, size: int, base: str, off: int, register: int, imm: int) -> str:
    sfx, mem = SUFFIX[size], f"[{base}{off:+d}]"
    if kind == "ldxs" and size == 8:
        kind = "ldx"
    if kind in ("ldx", "ldxs"):
        return f"{kind}{sfx} %r{register}, {mem}"
    if kind == "st":
        return f"st{sfx} {mem}, {imm}"
    return f"stx{sfx} {mem}, %r{register}"


@st.composite
def buffer_access(draw) -> Op:
    """Load the buffer pointer into P, access [P+off], then overwrite P with a constant."""
    pointer, value = draw(reg), draw(reg)
    kind = draw(st.sampled_from(("ldx", "ldxs", "st", "stx", "atomic")))
    if kind == "atomic":
        size = draw(st.sampled_from((4, 8)))
        off = draw(st.integers(0, DATA_SIZE // size - 1)) * size
        op = draw(st.sampled_from(ATOMICS))
        if value == pointer or (op == "lock cmpxchg" and pointer == 0):
            value = (pointer + 1) % 10  # keep the pointer out of memory and R0
        access = f"{op}{'' if size == 8 else '32'} [%r{pointer}+{off}], %r{value}"
    else:
        size = draw(st.sampled_from((1, 2, 4, 8)))
        off = draw(st.integers(0, DATA_SIZE - size))
        if kind.startswith("st") and value == pointer:
            value = (pointer + 1) % 10
        access = _access(kind, size, f"%r{pointer}", off, value, draw(imm32))
    clear = "" if kind.startswith("ldx") and value == pointer else f"\nmov %r{pointer}, {draw(imm32)}"
    if kind == "atomic" and "cmpxchg" in access and pointer == 0:
        clear = ""  # cmpxchg overwrote R0 with the old memory value
    return Op(f"ldxdw %r{pointer}, [%r10-8]\n{access}{clear}", 0)


@st.composite
def helper_call(draw) -> Op:
    if draw(st.booleans()):
        return Op(f"call {TEST_HELPER_ID}")
    via = draw(st.integers(0, 9))
    return Op(f"mov %r{via}, {TEST_HELPER_ID}\ncall %r{via}")


def operations(function: int, functions: int, in_function: bool):
    """Operations of body ``function`` (-1 = main), which may call later functions."""
    choices = [alu(), alu(), unary(), jump(), stack_access(in_function), helper_call()]
    if not in_function:
        choices.append(buffer_access())
    if function + 1 < functions:
        choices.append(st.integers(function + 1, functions - 1).map(lambda f: Op(f"call local fn{f}")))
    return st.one_of(*choices)


@dataclass
class Generated:
    """A random program: main body, functions and initial register values."""

    main: list[Op]
    functions: list[list[Op]] = field(default_factory=list)
    regs: tuple[int, ...] = ()
    data_size: int = DATA_SIZE

    def render(self) -> tuple[str, str, tuple[int, ...]]:
        """(main body text, functions text, initial R0-R9)."""
        functions = [f"fn{i}:\n{_body(ops, f'f{i}_')}\nexit" for i, ops in enumerate(self.functions)]
        return _body(self.main, "m_"), "\n".join(functions), self.regs


def _body(ops: list[Op], prefix: str) -> str:
    lines = []
    for i, op in enumerate(ops):
        target = f"{prefix}{min(i + 1 + op.skip, len(ops))}"
        lines += [f"{prefix}{i}:", op.text.replace("{target}", target)]
    # the end label needs an instruction after it: a jump to the next slot
    lines += [f"{prefix}{len(ops)}:", "ja +0"] if any(op.skip for op in ops) else []
    return "\n".join(lines)


@st.composite
def programs(draw, max_ops: int = 24) -> Generated:
    """A terminating program for the differential harness."""
    count = draw(st.integers(0, 3))
    functions = [draw(st.lists(operations(i, count, True), max_size=max_ops // 2)) for i in range(count)]
    main = draw(st.lists(operations(-1, count, False), min_size=1, max_size=max_ops))
    regs = tuple(draw(st.lists(values64, min_size=10, max_size=10)))
    return Generated(main, functions, regs)
