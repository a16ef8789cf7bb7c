"""Random terminating programs, cross-engine fuzzing and reproducer minimisation.

``generate(rng)`` builds a random program that always terminates: a main body
plus up to three functions, made of operations (ALU in every form, byte swaps,
movsx, LD_IMM64, forward jumps only, loads/stores/atomics on the stack and on
an in-bounds data area of the buffer, calls to a deterministic helper directly
and through callx, and local calls to *later* functions only, so no
recursion). :meth:`Generated.program` wraps it in a harness that sets every
register first and stores R1-R9 into the buffer at the end, so comparing the
buffer compares the registers on every engine, traced or not.

``campaign`` runs many programs through :func:`jit.tools.crosscheck.crosscheck` and
minimises every divergence to a small reproducer (``bpfjit fuzz``). The test
suite draws the same programs from hypothesis (``tests/strategies.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from jit.core.bits import MASK64
from jit.core.bytecode import Dispatch
from jit.core.isa import ATOMIC_OPS, Op

TEST_HELPER_ID = 33
DATA_SIZE = 64  # bytes of the buffer the bodies may use; register dump follows
DUMP_SIZE = 80  # R0..R9 after the body

# The order of each tuple is part of what a seed generates: keep it.
ALU_OPS = (Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.SDIV, Op.OR, Op.AND, Op.LSH, Op.RSH, Op.MOD, Op.SMOD, Op.XOR)
ALU_OPS += (Op.MOV, Op.ARSH)
JUMPS = (Op.JEQ, Op.JNE, Op.JGT, Op.JGE, Op.JLT, Op.JLE, Op.JSGT, Op.JSGE, Op.JSLT, Op.JSLE, Op.JSET)
ATOMICS = (
    *(f"lock {f}{op}" for op in (Op.ADD, Op.OR, Op.AND, Op.XOR) for f in ("", "fetch ")),
    "lock xchg",
    "lock cmpxchg",
)
SUFFIX = {1: "b", 2: "h", 4: "w", 8: "dw"}
INTERESTING64 = (
    0,
    1,
    2,
    7,
    31,
    32,
    63,
    64,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    1 << 32,
    1 << 63,
    MASK64,
    (1 << 63) - 1,
)
INTERESTING32 = (0, 1, -1, 2, 31, 32, 63, 0x7FFFFFFF, -0x80000000, -123)


def mixing_helper(a: int, b: int, c: int, d: int, e: int) -> int:
    """The deterministic helper generated programs call: mixes all five arguments."""
    return (a * 3 + (b ^ (c << 1)) + d * 5 - e + 0x1234) & MASK64


FUZZ_HELPERS = {TEST_HELPER_ID: mixing_helper}


@dataclass(frozen=True)
class Operation:
    """One operation; ``text`` may hold several instructions. ``skip`` > 0 makes
    the last one a forward jump over that many following operations."""

    text: str
    skip: int = 0


class _Draw:
    """The random choices the generator makes, over a :class:`random.Random`."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, options: Sequence):
        return options[self.rng.randrange(len(options))]

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def flip(self) -> bool:
        return self.rng.random() < 0.5

    def reg(self) -> int:
        return self.rng.randint(0, 9)

    def imm32(self) -> int:
        return self.pick(INTERESTING32) if self.flip() else self.rng.randint(-(2**31), 2**31 - 1)

    def value64(self) -> int:
        return self.pick(INTERESTING64) if self.flip() else self.rng.getrandbits(64)


def _alu(d: _Draw) -> Operation:
    op, width, dst = d.pick(ALU_OPS), d.pick(("", "32")), d.reg()
    return (
        Operation(f"{op}{width} %r{dst}, %r{d.reg()}") if d.flip() else Operation(f"{op}{width} %r{dst}, {d.imm32()}")
    )


def _unary(d: _Draw) -> Operation:
    dst, kind = d.reg(), d.pick(("neg", "neg32", "le", "be", "bswap", "movsx", "lddw"))
    if kind.startswith("neg"):
        return Operation(f"{kind} %r{dst}")
    if kind == "lddw":
        return Operation(f"lddw %r{dst}, {d.value64():#x}")
    if kind == "movsx":
        return Operation(
            f"{d.pick(('movsx864', 'movsx1664', 'movsx3264', 'movsx832', 'movsx1632'))} %r{dst}, %r{d.reg()}"
        )
    return Operation(f"{kind}{d.pick((16, 32, 64))} %r{dst}")


def _jump(d: _Draw) -> Operation:
    cond, width, dst = d.pick(JUMPS), d.pick(("", "32")), d.reg()
    rhs = f"%r{d.reg()}" if d.flip() else str(d.imm32())
    skip = d.int(1, 6)
    if d.int(0, 7) == 0:
        return Operation("ja {target}", skip)
    return Operation(f"{cond}{width} %r{dst}, {rhs}, {{target}}", skip)


def _access(kind: str, size: int, base: str, off: int, register: int, imm: int) -> str:
    sfx, mem = SUFFIX[size], f"[{base}{off:+d}]"
    if kind == "ldxs" and size == 8:
        kind = "ldx"
    if kind in ("ldx", "ldxs"):
        return f"{kind}{sfx} %r{register}, {mem}"
    if kind == "st":
        return f"st{sfx} {mem}, {imm}"
    return f"stx{sfx} {mem}, %r{register}"


def _stack_access(d: _Draw, in_function: bool) -> Operation:
    """Loads, stores and atomics on the frame; the main body keeps off [r10-16, r10)
    (the harness keeps the buffer pointer at [r10-8] and uses [r10-16])."""
    top = 0 if in_function else 16
    kind = d.pick(("ldx", "ldxs", "st", "stx", "atomic"))
    if kind == "atomic":
        size = d.pick((4, 8))
        off = -d.int(top // size + 1, 512 // size) * size
        return Operation(f"{d.pick(ATOMICS)}{'' if size == 8 else '32'} [%r10{off}], %r{d.reg()}")
    size = d.pick((1, 2, 4, 8))
    return Operation(_access(kind, size, "%r10", -d.int(top + size, 512), d.reg(), d.imm32()))


def _buffer_access(d: _Draw) -> Operation:
    """Load the buffer pointer into P, access [P+off], then overwrite P with a
    constant (so no pointer is left in a register the harness compares)."""
    pointer, value = d.reg(), d.reg()
    kind = d.pick(("ldx", "ldxs", "st", "stx", "atomic"))
    if kind == "atomic":
        size = d.pick((4, 8))
        off = d.int(0, DATA_SIZE // size - 1) * size
        op = d.pick(ATOMICS)
        if op == "lock cmpxchg" and pointer == 0:
            # cmpxchg compares R0 with memory: R0 must not be the pointer, whose
            # value (unlike its target) differs from engine to engine
            pointer = d.int(1, 9)
        if value == pointer:
            value = (pointer + 1) % 10  # keep the pointer out of memory
        access = f"{op}{'' if size == 8 else '32'} [%r{pointer}+{off}], %r{value}"
    else:
        size = d.pick((1, 2, 4, 8))
        off = d.int(0, DATA_SIZE - size)
        if kind.startswith("st") and value == pointer:
            value = (pointer + 1) % 10
        access = _access(kind, size, f"%r{pointer}", off, value, d.imm32())
    clear = "" if kind.startswith("ldx") and value == pointer else f"\nmov %r{pointer}, {d.imm32()}"
    return Operation(f"ldxdw %r{pointer}, [%r10-8]\n{access}{clear}")


def _helper_call(d: _Draw) -> Operation:
    if d.flip():
        return Operation(f"call {TEST_HELPER_ID}")
    via = d.reg()
    return Operation(f"mov %r{via}, {TEST_HELPER_ID}\ncall %r{via}")


def _operation(d: _Draw, function: int, functions: int) -> Operation:
    """One operation of body ``function`` (-1 = main), which may call later functions."""
    in_function = function >= 0
    makers: list[Callable[[], Operation]] = [
        lambda: _alu(d),
        lambda: _alu(d),
        lambda: _unary(d),
        lambda: _jump(d),
        lambda: _stack_access(d, in_function),
        lambda: _helper_call(d),
    ]
    if not in_function:
        makers.append(lambda: _buffer_access(d))
    if function + 1 < functions:
        makers.append(lambda: Operation(f"call local fn{d.int(function + 1, functions - 1)}"))
    return d.pick(makers)()


# Which maker generates each operation of the ISA table (for the check that
# the fuzzer covers the table; tests/test_dispatch.py also runs the generator
# and checks that every one of these operations really appears).
GENERATORS: Dispatch[Callable[..., Operation]] = Dispatch(
    "fuzzer",
    {
        **dict.fromkeys(ALU_OPS, _alu),
        **dict.fromkeys((Op.NEG, Op.LE, Op.BE, Op.BSWAP, Op.MOVSX, Op.LDDW), _unary),
        **dict.fromkeys((*JUMPS, Op.JA), _jump),
        **dict.fromkeys((Op.LDX, Op.LDXS, Op.ST, Op.STX, *ATOMIC_OPS), _stack_access),
        **dict.fromkeys((Op.CALL, Op.CALLX), _helper_call),
        Op.CALL_LOCAL: _operation,
    },
)
# The rest, and why the generator leaves them out.
NOT_GENERATED = {
    Op.EXIT: "every body ends in the harness's exit; an early exit would skip the register dump",
    Op.CALL_BTF: "calls by BTF id are refused by every engine",
    Op.LDABS: "a legacy packet load out of bounds ends the program before the register dump",
    Op.LDIND: "a legacy packet load out of bounds ends the program before the register dump",
}


@dataclass
class Generated:
    """A random program: main body, functions and initial R0-R9."""

    main: list[Operation]
    functions: list[list[Operation]] = field(default_factory=list)
    regs: tuple[int, ...] = (0,) * 10
    data_size: int = DATA_SIZE

    def render(self) -> tuple[str, str, tuple[int, ...]]:
        """(main body text, functions text, initial R0-R9)."""
        functions = [f"fn{i}:\n{_body(ops, f'f{i}_')}\nexit" for i, ops in enumerate(self.functions)]
        return _body(self.main, "m_"), "\n".join(functions), self.regs

    @property
    def mem_size(self) -> int:
        return self.data_size + DUMP_SIZE

    def program(self) -> str:
        """The whole self-checking program: stash the buffer pointer, set
        R0-R9, run the body, store R0-R9 after the data area, exit with R0."""
        main, functions, regs = self.render()
        lines = ["stxdw [%r10-8], %r1"]
        lines += [f"lddw %r{r}, {value & MASK64:#x}" for r, value in enumerate(regs)]
        lines += [main, "stxdw [%r10-16], %r0", "ldxdw %r0, [%r10-8]"]
        lines += [f"stxdw [%r0+{self.data_size + 8 * r}], %r{r}" for r in range(1, 10)]
        lines += ["ldxdw %r1, [%r10-16]", f"stxdw [%r0+{self.data_size}], %r1", "mov %r0, %r1", "exit", functions]
        return "\n".join(lines)


def _body(ops: list[Operation], prefix: str) -> str:
    lines = []
    for i, op in enumerate(ops):
        target = f"{prefix}{min(i + 1 + op.skip, len(ops))}"
        lines += [f"{prefix}{i}:", op.text.replace("{target}", target)]
    # the end label needs an instruction after it: a jump to the next slot
    lines += [f"{prefix}{len(ops)}:", "ja +0"] if any(op.skip for op in ops) else []
    return "\n".join(lines)


def generate(rng: random.Random, max_ops: int = 24) -> Generated:
    """A random terminating program (see the module docstring)."""
    d = _Draw(rng)
    count = d.int(0, 3)
    functions = [[_operation(d, i, count) for _ in range(d.int(0, max_ops // 2))] for i in range(count)]
    main = [_operation(d, -1, count) for _ in range(d.int(1, max_ops))]
    return Generated(main, functions, tuple(d.value64() for _ in range(10)))


def minimise(case: Generated, fails: Callable[[Generated], bool]) -> Generated:
    """A smaller program that still ``fails``: drop functions' and the main
    body's operations one at a time, then zero initial registers, while the
    failure persists (calls to a dropped function stay valid: functions only
    lose operations, never disappear)."""
    changed = True
    while changed:
        changed = False
        for index in range(len(case.functions) - 1, -1, -1):
            for i in range(len(case.functions[index]) - 1, -1, -1):
                ops = case.functions[index]
                smaller = replace(
                    case, functions=[*case.functions[:index], ops[:i] + ops[i + 1 :], *case.functions[index + 1 :]]
                )
                if fails(smaller):
                    case, changed = smaller, True
        for i in range(len(case.main) - 1, -1, -1):
            if len(case.main) > 1:
                smaller = replace(case, main=case.main[:i] + case.main[i + 1 :])
                if fails(smaller):
                    case, changed = smaller, True
    for r in range(10):
        if case.regs[r]:
            smaller = replace(case, regs=(*case.regs[:r], 0, *case.regs[r + 1 :]))
            if fails(smaller):
                case = smaller
    return case


@dataclass
class CampaignResult:
    """What :func:`campaign` did: programs run, divergences and their reproducers."""

    runs: int = 0
    divergences: list[Path] = field(default_factory=list)


def diverges(case: Generated, engine_list: Sequence | None = None) -> bool:
    """True when some engine disagrees with the interpreter on ``case``."""
    from jit.frontend.asm import assemble
    from jit.tools.crosscheck import crosscheck

    report = crosscheck(
        assemble(case.program()), bytes(case.mem_size), helpers=FUZZ_HELPERS, engine_list=engine_list, trace=False
    )
    return not report.ok


def campaign(
    count: int,
    seed: int,
    out_dir: Path,
    engine_list: Sequence | None = None,
    progress: Callable[[int], None] | None = None,
) -> CampaignResult:
    """Run ``count`` random programs (seeded) on every engine; every divergence
    is minimised and written to ``out_dir`` as a reproducer ``.s`` file whose
    comments hold the crosscheck report."""
    from jit.frontend.asm import assemble
    from jit.tools.crosscheck import crosscheck

    result = CampaignResult()
    rng = random.Random(seed)
    for index in range(count):
        case = generate(rng)
        result.runs += 1
        if diverges(case, engine_list):
            small = minimise(case, lambda c: diverges(c, engine_list))
            report = crosscheck(
                assemble(small.program()), bytes(small.mem_size), helpers=FUZZ_HELPERS, engine_list=engine_list
            )
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"divergence-seed{seed}-{index}.s"
            header = "".join(f"# {line}\n" for line in str(report).splitlines())
            header += f"# mem: {small.mem_size} zero bytes; helper {TEST_HELPER_ID} = jit.tools.fuzz.mixing_helper\n"
            path.write_text(header + small.program() + "\n")
            result.divergences.append(path)
        if progress is not None:
            progress(index + 1)
    return result
