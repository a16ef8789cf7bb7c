"""Run one program on every engine and report any difference.

    report = jit.crosscheck(prog, mem=b"...")
    assert report.ok, str(report)

The reference is the interpreter. A program the verifier rejects is still
compared (the report says so): the JITs then run it with ``verify=False``,
which checks every memory access at run time. Each other engine's R0, input buffer and
error (if any) are compared with it. Engines that can be traced (the
interpreter and both emulated engines) also record the registers at every
instruction, which gives the final registers and the *first diverging
instruction*: the instruction after which some register (or the path taken)
first differs from the interpreter's. Pointers into the input buffer or the
stack are compared as region offsets, since each engine places them elsewhere.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from jit.core.abi import check_max_steps
from jit.core.bits import MASK64
from jit.core.errors import BpfError, UsageError, VerifierError
from jit.core.helpers import HelperId
from jit.core.isa import Op
from jit.core.usage import check_bool
from jit.frontend.loader import ProgramLike, load_program
from jit.frontend.maps import ProgArrayMap
from jit.frontend.program import Program
from jit.runtime.buffers import Mem, alignment_offset, check_mem
from jit.tools.engines import Engine, engines

Trace = list[tuple[int, tuple[int, ...]]]
Regions = dict[str, tuple[int, int]]


def deterministic_helpers() -> dict[int, Callable[..., int]]:
    """Stand-ins for the helpers whose results differ from run to run
    (ktime_get_ns counts up from 1000 by 1000, get_prandom_u32 is a fixed LCG),
    fresh for each engine so every engine sees the same sequence."""
    clock = itertools.count(1000, 1000)
    state = [12345]

    def ktime_get_ns(*_: int) -> int:
        return next(clock)

    def get_prandom_u32(*_: int) -> int:
        state[0] = (state[0] * 1103515245 + 12345) & 0xFFFFFFFF
        return state[0]

    return {5: ktime_get_ns, 7: get_prandom_u32}


@dataclass
class Outcome:
    """What one engine did: R0 or an error, the buffer afterwards, and its
    trace (with the engine's regions) when the engine can be traced."""

    engine: str
    r0: int | None
    memory: bytes
    error: BpfError | None = None
    trace: Trace | None = None
    regions: Regions = field(default_factory=dict)
    maps: tuple[tuple[str, tuple[tuple[bytes, bytes], ...]], ...] = ()  # (name, items) after the run

    @property
    def result(self) -> str:
        if self.error is not None:
            return f"{type(self.error).__name__}: {self.error}"
        return f"R0 = 0x{self.r0:x}"

    def registers(self) -> tuple[str, ...] | None:
        """R0-R10 when the program reached its last instruction, normalised."""
        return normalise(self.trace[-1][1], self.regions) if self.trace else None


@dataclass
class Divergence:
    """One difference between an engine and the interpreter."""

    engine: str
    what: str  # "result", "memory", "registers" or "path"
    detail: str
    first_pc: int | None = None  # the first diverging instruction, when found

    def describe(self, prog: Program) -> str:
        where = (
            f"\n    first diverging instruction: {prog.describe(self.first_pc)}" if self.first_pc is not None else ""
        )
        return f"{self.engine}: {self.what} differs: {self.detail}{where}"


@dataclass
class CrossCheck:
    """The outcome of :func:`crosscheck`; ``ok`` when every engine agreed."""

    prog: Program
    outcomes: list[Outcome]
    divergences: list[Divergence]
    verifier_error: BpfError | None = None  # when set, the JITs ran with verify=False

    @property
    def ok(self) -> bool:
        return not self.divergences

    def __str__(self) -> str:
        lines = []
        if self.verifier_error is not None:
            lines.append(f"the verifier rejects the program ({self.verifier_error});")
            lines.append("compared with verify=False (every memory access checked at run time):")
        lines += [f"{o.engine:>16}: {o.result}" for o in self.outcomes]
        lines += [d.describe(self.prog) for d in self.divergences]
        lines.append("all engines agree" if self.ok else f"{len(self.divergences)} divergence(s)")
        return "\n".join(lines)


def normalise(values: Sequence[int], regions: Regions) -> tuple[str, ...]:
    """Register values as text, pointers into a region as ``name+offset``."""
    out = []
    for value in values:
        for name, (start, end) in regions.items():
            if start and start <= value <= end:
                out.append(f"{name}+{value - start}")
                break
        else:
            out.append(f"0x{value & MASK64:x}")
    return tuple(out)


def _engines(engine_list: object) -> list[Engine]:
    """The engines to compare: all of this host's, or the given non-empty list of them."""
    if engine_list is None:
        return engines()
    if isinstance(engine_list, str | bytes) or not isinstance(engine_list, Sequence | set | frozenset):
        raise UsageError(f"engine_list must be a list of jit.engines() entries, not {type(engine_list).__name__}")
    selected = list(engine_list)
    if not selected or not all(isinstance(engine, Engine) for engine in selected):
        raise UsageError(f"engine_list must be a non-empty list of jit.engines() entries, not {engine_list!r}")
    return selected


def crosscheck(
    prog: ProgramLike,
    mem: Mem = None,
    helpers: Mapping[int, object] | Callable[[], Mapping[int, object]] | None = None,
    engine_list: Sequence[Engine] | None = None,
    *,
    max_steps: int = 1_000_000,
    trace: bool = True,
) -> CrossCheck:
    """Run ``prog`` on every engine (default: all on this host) and compare.

    ``helpers`` is a mapping, or a factory returning a fresh mapping per engine
    (so stateful helpers start over for each); by default the
    :func:`deterministic_helpers`. ``max_steps`` bounds every run. Each engine
    starts from the program's maps as they were, their contents afterwards are
    compared too, and the maps are left as they were.
    """
    from jit.analysis.verifier import analyze

    program = load_program(prog)
    check_mem(mem)
    check_max_steps(max_steps)
    trace = check_bool("trace", trace)
    factory = helpers if callable(helpers) else (lambda: helpers) if helpers is not None else deterministic_helpers
    selected = _engines(engine_list)
    rejected: BpfError | None = None
    try:
        analyze(program, mem_size=len(mem or b""), helpers=factory())
    except VerifierError as exc:
        rejected = exc  # still compare what the engines do with the program
    options = {"verify": False} if rejected is not None else {}
    maps = [m for m in program.maps.values() if not isinstance(m, ProgArrayMap)]
    before = [m.snapshot() for m in maps]
    outcomes = []
    try:
        for engine in selected:  # each engine starts from the maps as they were
            for m, state in zip(maps, before):
                m.restore(state)
            outcome = _run(engine, program, mem, factory(), max_steps, trace, options)
            outcome.maps = tuple((m.name, tuple(m.items())) for m in maps)
            outcomes.append(outcome)
    finally:  # and are left that way
        for m, state in zip(maps, before):
            m.restore(state)
    reference = outcomes[0]
    divergences: list[Divergence] = []
    for outcome in outcomes[1:]:
        divergences += _compare(reference, outcome, program)
    return CrossCheck(program, outcomes, divergences, rejected)


def _run(
    engine: Engine,
    prog: Program,
    mem: Mem,
    helpers: Mapping[int, object],
    max_steps: int,
    trace: bool,
    options: Mapping[str, object],
) -> Outcome:
    buffer = bytearray(mem or b"")
    steps: Trace | None = [] if trace and (engine.arch is None or engine.emulated) else None
    r0: int | None = None
    error: BpfError | None = None
    regions: Regions = {}
    offset = alignment_offset(buffer)
    try:
        if engine.arch is None:
            from jit.runtime import memory
            from jit.runtime.interpreter import run

            regions = {
                "mem": (memory.MEM_BASE + offset, memory.MEM_BASE + offset + len(buffer)),
                "stack": (memory.STACK_BASE, memory.STACK_TOP),
            }
            r0 = run(prog, buffer, helpers=helpers, max_steps=max_steps, trace=steps).r0
        else:
            fn = engine.prepare(prog, helpers=helpers, max_steps=max_steps, **options)
            if steps is not None:
                regions = fn.regions(len(buffer), offset)
                r0, recorded = fn.trace(buffer)
                steps.extend(recorded)
            else:
                r0 = fn(buffer)
    except BpfError as exc:
        error = exc
    return Outcome(engine.name, r0, bytes(buffer), error, steps, regions)


def _compare(ref: Outcome, got: Outcome, prog: Program) -> list[Divergence]:
    found: list[Divergence] = []
    first, registers = _first_divergence(ref, got, prog)
    if (ref.error is None) != (got.error is None) or (ref.error is not None and type(ref.error) is not type(got.error)):
        found.append(Divergence(got.engine, "result", f"{got.result} (interpreter: {ref.result})", first))
    elif ref.error is None and ref.r0 != got.r0:
        found.append(Divergence(got.engine, "result", f"0x{got.r0:x} (interpreter: 0x{ref.r0:x})", first))
    if ref.memory != got.memory:
        offsets = [i for i, (a, b) in enumerate(zip(ref.memory, got.memory)) if a != b]
        shown = ", ".join(f"[{i}] 0x{got.memory[i]:02x} (interpreter 0x{ref.memory[i]:02x})" for i in offsets[:4])
        found.append(Divergence(got.engine, "memory", f"{len(offsets)} byte(s) of the buffer: {shown}", first))
    for (name, ref_items), (_, got_items) in zip(ref.maps, got.maps):
        if ref_items != got_items:
            found.append(Divergence(got.engine, "maps", f"map {name!r}: {got_items} (interpreter: {ref_items})", first))
    if first is not None and not found:
        found.append(Divergence(got.engine, "registers", registers, first))
    return found


def _first_divergence(ref: Outcome, got: Outcome, prog: Program) -> tuple[int | None, str]:
    """The slot after which ``got``'s trace first leaves the interpreter's, and how
    (up to the first tail call: what follows runs another program's slots)."""
    if ref.trace is None or got.trace is None:
        return None, ""
    recorded = {slot for slot, _ in got.trace}
    expected = _until_tail_call([step for step in ref.trace if step[0] in recorded], prog)
    got = dataclasses.replace(got, trace=_until_tail_call(got.trace, prog))
    previous: int | None = None
    for (slot_a, regs_a), (slot_b, regs_b) in zip(expected, got.trace):
        if slot_a != slot_b:
            return (previous if previous is not None else slot_a), f"next instruction {slot_b} (interpreter {slot_a})"
        norm_a, norm_b = normalise(regs_a, ref.regions), normalise(regs_b, got.regions)
        if norm_a != norm_b:
            differ = [f"R{i} = {b} (interpreter {a})" for i, (a, b) in enumerate(zip(norm_a, norm_b)) if a != b]
            return (previous if previous is not None else slot_a), ", ".join(differ)
        previous = slot_a
    if len(expected) != len(got.trace):
        return previous, "one run stopped earlier"
    return None, ""


def _until_tail_call(trace: Trace, prog: Program) -> Trace:
    for index, (slot, _) in enumerate(trace):
        insn = prog.at(slot) if slot in prog.index_of else None
        if insn is not None and insn.spec.op is Op.CALL and insn.imm == HelperId.TAIL_CALL:
            return trace[: index + 1]
    return trace
