"""The static verifier: which programs are safe to run, and where run-time checks must go.

:func:`analyze` first checks the program's structure (jump targets, no path
falling off the end, no unreachable instruction, loops only if allowed, local
calls without recursion and at most ``MAX_CALL_DEPTH`` frames deep, registered
helpers, R10 never written), then simulates every path by abstract
interpretation: each register is uninitialised, a scalar (:mod:`jit.absint`)
or a pointer into a region with an abstract offset, and each stack byte is
known to be written or not. States are joined where paths meet and widened at
loop heads, so verification always terminates; a state included in one
already verified at the same instruction is pruned.

A definite violation raises :class:`jit.VerifierError` naming the instruction
and, for path-dependent errors, the path reaching it. A memory access that is
merely not provably safe is listed in ``VerifierResult.unproven`` (with a note
saying why, and in ``regions`` the region it must stay in), for
``jit.compile(bounds_check="auto")`` to check at run time; :func:`verify`
(the strict, Linux-like mode) rejects those too.

Loops: at a loop head the first join already widens, each register's bounds
stopping first at the constants the program compares that register with or
masks it to (:func:`_thresholds`), then at the extremes; so a loop costs
about two passes over its body. Widening loses precision (an access becomes
unproven), never soundness.

Choices (the RFC leaves them to the verifier):

* R1 points at the input buffer of ``mem_size`` bytes and R2 holds its length.
  With ``mem_size=None`` the length is unknown (at most 2**47) and an access
  is proven only by comparisons against R2 or against ``R1 + R2`` (a packet
  end pointer) on that path.
* Pointer arithmetic: a scalar may be added to or subtracted from a pointer,
  and two pointers into the same region subtracted (giving a scalar). Any
  other operation on a pointer (and any 32-bit one) gives a scalar that
  remembers where the pointer's provenance was lost; dereferencing it is an
  error naming that instruction. Arithmetic on a map pointer or on a map value
  pointer not yet compared with 0 is an error.
* Pointers may be stored anywhere; an 8-byte store at an 8-aligned stack slot
  is a spill that a later 8-byte load of that slot gets back as the same
  pointer. Any other way of reading a stored pointer gives a scalar.
* Comparisons may involve pointers; they refine only a possibly-null map value
  pointer against 0 and two input-buffer pointers against each other (the
  buffer is assumed to lie below address 2**52, so that comparing addresses is
  comparing offsets).
* After a helper call, a local call and LD_ABS/LD_IND (which engines may
  implement as calls) R1-R5 are unreadable until written again.
* Reading a stack byte that is not written on every path reaching the read is
  an error, also through a variable offset.
* Atomic accesses must be naturally aligned (the stack frame and the input
  buffer start 8-byte aligned).
* Linux helper prototypes (the registry, :mod:`jit.core.helpers`) apply to the helpers
  this library provides under those ids and to any helper whose name is the
  prototype's name (``bpf_`` prefix optional); other registered helpers may
  take anything and return a scalar, and may write anywhere in a stack frame
  they get a pointer into (its spilled values are forgotten).
* Each subprogram's jumps stay inside it, and its last instruction is exit or
  ja (as in Linux).
* Maps: LD_IMM64 with src 1/5 is a map pointer and src 2/6 a pointer into a
  map value. A program loaded from ELF has them resolved to plain constants;
  ``prog.relocations`` then names the map, and ``prog.maps`` gives the value
  size (accesses to a value of unknown size are unproven).
"""

from __future__ import annotations

import enum
import heapq
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from jit.analysis import domain as absint
from jit.analysis.domain import LEN_MAX, M32, M64, Scalar
from jit.core import isa
from jit.core.bytecode import Instruction, check_control_flow
from jit.core.errors import VerifierError
from jit.core.helpers import Arg, Helper, Prototype, Ret, declared_helpers
from jit.core.isa import Form
from jit.frontend.program import Program

FRAME = isa.STACK_SIZE
MAX_PROCESSED = 1_000_000
WIDEN_AFTER = 0  # joins at a loop head before widening
THRESHOLD_STEPS = 3  # widenings that stop at the program's jump constants, before going all the way
GIVE_UP_AFTER = 24  # joins at a loop head before changing bounds are dropped
PATH_SHOWN = 40  # path entries shown in a message


# --- abstract values -----------------------------------------------------------------


class Region(enum.Enum):
    BUF = "the input buffer"
    STACK = "the stack"
    MAP = "a map"
    MAP_VALUE = "a map value"
    MAP_VALUE_OR_NULL = "a map value or null"


@dataclass(frozen=True, slots=True)
class Pointer:
    """A pointer: ``region`` plus an abstract byte offset. ``frame`` is the call
    depth of a stack frame (0 = main); ``map`` names a map (LD_IMM64 key);
    ``size`` is a map value's size when known; ``id`` ties copies of a
    possibly-null pointer together; ``readonly`` marks read-only map values."""

    region: Region
    off: Scalar
    frame: int = 0
    map: object = None
    size: int | None = None
    id: int | None = None
    readonly: bool = False


@dataclass(frozen=True, slots=True)
class Unset:
    """An unreadable register: never written, or clobbered by the call at ``by``."""

    by: int | None = None


NEVER = Unset()
Value = Scalar | Pointer | Unset
Slot = int | Scalar | Pointer  # a byte mask of written bytes, or a spilled 8-byte value


@dataclass(frozen=True, slots=True)
class Frame:
    """One call's registers and stack: 8-byte slot index -> contents, for the
    slots with any byte written (the dict is never changed once in a Frame)."""

    regs: tuple[Value, ...]
    stack: Mapping[int, Slot]


@dataclass(frozen=True, slots=True)
class State:
    """The abstract machine at one instruction: the active frames (callers
    first) and bounds on the input length. Ids are numbered canonically."""

    frames: tuple[Frame, ...]
    len_lo: int
    len_hi: int
    ids: int = field(default=0, compare=False)


# --- the result ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierResult:
    """What :func:`analyze` found. ``unproven`` holds the slots of the accesses
    (and indirect calls) it could not prove safe, ``notes`` says why for each.

    ``regions`` gives, for each unproven slot, the region(s) the access is
    meant for: a run-time check must confine the access to those regions
    (not merely to some valid memory), or a stray store could forge a pointer
    spilled on the stack that the verifier trusts when it is reloaded.
    """

    insns_processed: int
    states_pruned: int
    unproven: frozenset[int]
    max_call_depth: int
    elapsed: float
    notes: Mapping[int, str] = field(default_factory=dict)
    regions: Mapping[int, frozenset[Region]] = field(default_factory=dict)
    states_stored: int = 0
    loops: bool = False


def analyze(
    prog: Program,
    *,
    mem_size: int | None = None,
    allow_loops: bool = True,
    helpers: Mapping[int, object] | None = None,
) -> VerifierResult:
    """Verify ``prog``: raise :class:`VerifierError` for any definite violation,
    and list the accesses that are not provably safe in ``result.unproven``."""
    start = time.perf_counter()
    table = declared_helpers(helpers)  # the registry's helpers, then the user's
    cfg = _check_structure(prog, allow_loops, table)
    analysis = _Analysis(prog, cfg, table, mem_size)
    analysis.run()
    return VerifierResult(
        insns_processed=analysis.processed,
        states_pruned=analysis.pruned,
        unproven=frozenset(analysis.notes),
        max_call_depth=cfg.max_depth,
        elapsed=time.perf_counter() - start,
        notes=MappingProxyType(dict(sorted(analysis.notes.items()))),
        regions=MappingProxyType({pc: frozenset(r) for pc, r in sorted(analysis.regions.items())}),
        states_stored=len(analysis.entries),
        loops=bool(cfg.loop_heads),
    )


def verify(
    prog: Program,
    *,
    mem_size: int | None = None,
    allow_loops: bool = True,
    helpers: Mapping[int, object] | None = None,
) -> VerifierResult:
    """:func:`analyze`, rejecting also every access it cannot prove safe."""
    result = analyze(prog, mem_size=mem_size, allow_loops=allow_loops, helpers=helpers)
    if result.unproven:
        pc = min(result.unproven)
        raise VerifierError(f"{prog.describe(pc)}: {result.notes[pc]}")
    return result


# --- structure: control flow and calls --------------------------------------------------------


@dataclass(frozen=True)
class _Cfg:
    leaders: frozenset[int]
    loop_heads: frozenset[int]
    max_depth: int
    thresholds: tuple[tuple[int, ...], ...]  # per register, then one for the rest


def _fail(prog: Program, pc: int, message: str) -> VerifierError:
    return VerifierError(f"{prog.describe(pc)}: {message}")


def _successors(pc: int, insn: Instruction) -> tuple[int, ...]:
    """Where control goes next inside the same subprogram (a local call returns)."""
    form = insn.spec.form
    if form is Form.EXIT:
        return ()
    if form in (Form.JA, Form.JA32):
        return (insn.target(pc),)  # type: ignore[return-value]
    if form in (Form.JMP_X, Form.JMP_K):
        return (pc + 1, insn.target(pc))  # type: ignore[return-value]
    return (pc + insn.slots,)


def _check_structure(prog: Program, allow_loops: bool, helpers: Mapping[int, Helper]) -> _Cfg:
    check_control_flow(prog)
    _check_instructions(prog, helpers)
    starts = prog.subprograms
    ends = (*starts[1:], len(prog))
    insns = dict(iter(prog))
    calls: dict[int, list[tuple[int, int]]] = {}
    leaders, loop_heads = set(starts), set()
    reached: set[int] = set()
    back_edges: list[tuple[int, int]] = []
    for start, end in zip(starts, ends):
        for pc in range(start, end):
            insn = insns.get(pc)
            if insn is None:
                continue
            for nxt in _successors(pc, insn):
                if not start <= nxt < end:
                    raise _leaves_subprogram(prog, pc, insn, nxt, start, end)
        order, back = _dfs(start, lambda pc: _successors(pc, insns[pc]))
        reached.update(order)
        back_edges += back
        calls[start] = [(pc, insns[pc].target(pc)) for pc in order if insns[pc].spec.form is Form.CALL_LOCAL]
        for pc in order:
            insn = insns[pc]
            if insn.spec.form in (Form.JMP_X, Form.JMP_K, Form.JA, Form.JA32):
                leaders.update(_successors(pc, insn))
            elif insn.spec.form is Form.CALL_LOCAL:
                leaders.add(pc + 1)
    called = _check_calls(prog, calls)
    for pc, _ in prog:
        if pc not in reached or _function_of(starts, pc) not in called:
            raise _fail(prog, pc, "is unreachable: no path from the program's entry leads to it")
    if back_edges and not allow_loops:
        src, dst = min(back_edges)
        raise _fail(
            prog, src, f"jumps back to instruction {dst}, a loop, and loops are not allowed (allow_loops=False)"
        )
    loop_heads.update(dst for _, dst in back_edges)
    depth = _call_depth(prog, calls)
    return _Cfg(frozenset(leaders), frozenset(loop_heads), depth, _thresholds(prog))


def _leaves_subprogram(prog: Program, pc: int, insn: Instruction, nxt: int, start: int, end: int) -> VerifierError:
    if insn.target(pc) == nxt and insn.spec.form is not Form.CALL_LOCAL:
        return _fail(prog, pc, f"jumps to instruction {nxt}, outside its subprogram (instructions {start}..{end - 1})")
    if nxt >= len(prog):
        return _fail(
            prog, pc, "execution can fall off the end of the program (the last instruction must be exit or ja)"
        )
    return _fail(prog, pc, f"execution can fall through into the subprogram at instruction {nxt}")


def _function_of(starts: tuple[int, ...], pc: int) -> int:
    return max(s for s in starts if s <= pc)


def _dfs(start: int, successors: Callable[[int], tuple[int, ...]]) -> tuple[list[int], list[tuple[int, int]]]:
    """Depth-first search: the instructions reached, and the back edges (loops)."""
    color = {start: 1}
    order = [start]
    back: list[tuple[int, int]] = []
    stack = [(start, iter(successors(start)))]
    while stack:
        pc, pending = stack[-1]
        for nxt in pending:
            seen = color.get(nxt)
            if seen is None:
                color[nxt] = 1
                order.append(nxt)
                stack.append((nxt, iter(successors(nxt))))
                break
            if seen == 1:
                back.append((pc, nxt))
        else:
            color[pc] = 2
            stack.pop()
    return order, back


def _check_calls(prog: Program, calls: Mapping[int, list[tuple[int, int]]]) -> set[int]:
    """Reject recursion; returns the subprograms reachable from the entry."""
    active: list[int] = []
    done: set[int] = set()

    def visit(function: int, via: tuple[int, ...]) -> None:
        active.append(function)
        for pc, target in calls[function]:
            if target in active:
                chain = " -> ".join(map(str, (*via, pc, target)))
                raise _fail(
                    prog,
                    pc,
                    f"recursion: calls the subprogram at instruction {target}, which is already active"
                    f" (call chain: {chain})",
                )
            if target not in done:
                visit(target, (*via, pc, target))
        active.pop()
        done.add(function)

    visit(0, (0,))
    return done


def _call_depth(prog: Program, calls: Mapping[int, list[tuple[int, int]]]) -> int:
    """The deepest chain of frames (main = 1); rejects more than MAX_CALL_DEPTH."""
    height: dict[int, tuple[int, tuple[int, ...]]] = {}

    def measure(function: int) -> tuple[int, tuple[int, ...]]:
        if function not in height:
            best: tuple[int, tuple[int, ...]] = (1, ())
            for pc, target in calls[function]:
                depth, chain = measure(target)
                if depth + 1 > best[0]:
                    best = (depth + 1, (pc, target, *chain))
            height[function] = best
        return height[function]

    depth, chain = measure(0)
    if depth > isa.MAX_CALL_DEPTH:
        culprit = chain[2 * (isa.MAX_CALL_DEPTH - 1)]
        raise _fail(
            prog,
            culprit,
            f"local calls nest {depth} frames deep, more than the limit of {isa.MAX_CALL_DEPTH}"
            f" (call chain: {' -> '.join(map(str, (0, *chain)))})",
        )
    return depth


def _check_instructions(prog: Program, helpers: Mapping[int, Helper]) -> None:
    """Checks of single instructions that do not depend on the path."""
    for pc, insn in prog:
        form, spec = insn.spec.form, insn.spec
        if form is Form.CALL_BTF:
            raise _fail(prog, pc, "calls by BTF id (call runtime) are not supported")
        if form is Form.CALL_HELPER and insn.imm not in helpers:
            known = ", ".join(map(str, helpers)) or "none"
            raise _fail(prog, pc, f"calls helper {insn.imm}, which is not registered (registered: {known})")
        if form is Form.LDDW and insn.src in (3, 4):
            raise _fail(prog, pc, f"LD_IMM64 with src={insn.src} ({spec.mnemonic}) is not supported")
        written = _written_register(insn)
        if written == isa.MAX_REG:
            raise _fail(prog, pc, "writes %r10, the read-only frame pointer")


def _written_register(insn: Instruction) -> int | None:
    form = insn.spec.form
    if form in (Form.ALU_X, Form.ALU_K, Form.UNARY, Form.LDDW, Form.LOAD):
        return insn.dst
    if form is Form.ATOMIC and insn.spec.fetch:
        return 0 if insn.spec.op == "cmpxchg" else insn.src
    return None


def _thresholds(prog: Program) -> tuple[tuple[int, ...], ...]:
    """Where widening a register's bounds stops first: the constants the
    program compares that register with (and their neighbours), and the
    bounds of what it writes there (masks, load widths, 32-bit results). So
    a loop counter compared with 16 stops at 15, and a loop converges in a
    few passes. The last entry, for stack slots and len, has all of them."""
    per_reg: list[set[int]] = [{0} for _ in range(isa.MAX_REG + 1)]
    for _, insn in prog:
        spec = insn.spec
        if spec.form is Form.JMP_K:
            for v in (insn.imm, insn.imm & M32, insn.imm & M64):
                per_reg[insn.dst].update((v - 1, v, v + 1))
        elif spec.form is Form.ALU_K and spec.op in ("and", "mod", "rsh"):
            imm = insn.imm & (M64 if spec.bits == 64 else M32)
            per_reg[insn.dst].add({"and": imm, "mod": imm - 1, "rsh": M64 >> (imm & 63)}[spec.op])
        elif spec.form is Form.LOAD:
            per_reg[insn.dst].add((1 << (8 * spec.size)) - 1)
        if spec.form in (Form.ALU_X, Form.ALU_K, Form.UNARY) and spec.bits == 32:
            per_reg[insn.dst].add(M32)
    everything = set().union(*per_reg, {FRAME, LEN_MAX})
    return tuple(tuple(sorted(values)) for values in (*per_reg, everything))


# --- paths -----------------------------------------------------------------------------------

Path = tuple[int, "Path"] | None


def _extend(path: Path, *pcs: int) -> Path:
    for pc in pcs:
        if path is None or path[0] != pc:
            path = (pc, path)
    return path


def _show_path(path: Path, pc: int) -> str:
    pcs: list[int] = []
    node = _extend(path, pc)
    while node is not None:
        pcs.append(node[0])
        node = node[1]
    pcs.reverse()
    if pcs[0] != 0:
        pcs.insert(0, 0)
    shown = " -> ".join(map(str, pcs[-PATH_SHOWN:]))
    return f"path: {'... -> ' if len(pcs) > PATH_SHOWN else ''}{shown}"


# --- the abstract machine during a block ------------------------------------------------------


class _Work:
    """A mutable copy of a :class:`State` for simulating straight-line code."""

    __slots__ = ("callers", "len_hi", "len_lo", "next_id", "regs", "stacks")

    def __init__(self, state: State):
        self.callers = [frame.regs for frame in state.frames[:-1]]
        self.regs: list[Value] = list(state.frames[-1].regs)
        self.stacks = [dict(frame.stack) for frame in state.frames]
        self.len_lo, self.len_hi = state.len_lo, state.len_hi
        self.next_id = state.ids + 1

    def fresh(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def copy(self) -> _Work:
        other = object.__new__(_Work)
        other.callers = list(self.callers)
        other.regs = list(self.regs)
        other.stacks = [dict(stack) for stack in self.stacks]
        other.len_lo, other.len_hi, other.next_id = self.len_lo, self.len_hi, self.next_id
        return other

    def state(self) -> State:
        frames = [Frame(regs, dict(stack)) for regs, stack in zip(self.callers, self.stacks)]
        frames.append(Frame(tuple(self.regs), dict(self.stacks[-1])))
        return State(tuple(frames), self.len_lo, self.len_hi, self.next_id)

    @property
    def depth(self) -> int:
        return len(self.stacks)

    def values(self) -> Iterator[tuple[list | dict, int, Value]]:
        """(container, index, value) of every value a refinement may apply to:
        the current registers and every spilled stack slot."""
        regs = self.regs
        for index, value in enumerate(regs):
            if not isinstance(value, Unset):
                yield regs, index, value
        for stack in self.stacks:
            for index, slot in stack.items():
                if not isinstance(slot, int):
                    yield stack, index, slot


# --- states: canonical ids, join, widening ------------------------------------------------------


def _canonical(state: State) -> State:
    """Renumber ids 1, 2, ... in order of first appearance (ids are only names)."""
    mapping: dict[int, int] = {}

    def rename(ident: int | None) -> int | None:
        if ident is None:
            return None
        new = mapping.get(ident)
        if new is None:
            new = mapping[ident] = len(mapping) + 1
        return new

    def scalar(s: Scalar) -> Scalar:
        if s.id is None and s.base is None:
            return s
        ident, base = rename(s.id), rename(s.base)
        return s if (ident, base) == (s.id, s.base) else absint.with_ids(s, ident, base, s.delta)

    def value(v: Value | int) -> Value | int:
        if isinstance(v, Scalar):
            return scalar(v)
        if isinstance(v, Pointer):
            off, ident = scalar(v.off), rename(v.id)
            return v if off is v.off and ident == v.id else _repoint(v, off=off, ident=ident)
        return v

    frames = tuple(
        Frame(
            tuple(map(value, f.regs)),  # type: ignore[arg-type]
            {index: value(f.stack[index]) for index in sorted(f.stack)},  # type: ignore[misc]
        )
        for f in state.frames
    )
    return State(frames, state.len_lo, state.len_hi, len(mapping))


def _unset_only_in(a: State, b: State) -> bool:
    """Whether ``a`` has an unreadable register or an unwritten stack byte that ``b`` has not."""
    for fa, fb in zip(a.frames, b.frames):
        for x, y in zip(fa.regs, fb.regs):
            if isinstance(x, Unset) and not isinstance(y, Unset):
                return True
        for index, slot in fb.stack.items():
            written = fa.stack.get(index, 0)
            if (slot if isinstance(slot, int) else 0xFF) & ~(written if isinstance(written, int) else 0xFF):
                return True
    return False


class _Joiner:
    """Joins (and widens) two states at one instruction. Ids pair up: values
    that are equal in both states (same id in each) stay equal in the join."""

    def __init__(
        self,
        old: State,
        new: State,
        widen: bool,
        give_up: bool,
        thresholds: tuple[tuple[int, ...], ...],
        pc: int,
    ):
        self.old, self.new = old, new
        self.len_old, self.len_new = (old.len_lo, old.len_hi), (new.len_lo, new.len_hi)
        self.len = (min(old.len_lo, new.len_lo), max(old.len_hi, new.len_hi))
        if widen:
            self.len = absint.widen_len(self.len_old, self.len, thresholds[-1])
        self.widen, self.give_up, self.all_thresholds, self.pc = widen, give_up, thresholds, pc
        self.thresholds = thresholds[-1]  # those of what is being joined
        self.pairs: dict[tuple[object, object], int] = {}

    def state(self) -> State:
        frames = tuple(
            Frame(tuple(self._regs(fa.regs, fb.regs)), self.stack(fa.stack, fb.stack))
            for fa, fb in zip(self.old.frames, self.new.frames)
        )
        # pairs are numbered in the order _canonical would number them: the join is canonical
        return State(frames, *self.len, len(self.pairs))

    def _regs(self, a: tuple[Value, ...], b: tuple[Value, ...]) -> Iterator[Value]:
        for reg, (x, y) in enumerate(zip(a, b)):
            self.thresholds = self.all_thresholds[reg]
            yield self.value(x, y)
        self.thresholds = self.all_thresholds[-1]

    def _pair(self, a: object, b: object) -> int | None:
        if a is None or b is None:
            return None
        return self.pairs.setdefault((a, b), len(self.pairs) + 1)

    @staticmethod
    def _key(s: Scalar) -> object:
        return s.id if s.id is not None else (("c", s.umin) if s.umin == s.umax else None)

    def scalar(self, a: Scalar, b: Scalar) -> Scalar:
        if a == b and a.id is None and a.base is None:
            return a
        if absint.same_bounds(a, b) and (self.len_old == self.len_new or a.dlo is a.dhi is None):
            joined = a
        else:
            joined = absint.join(a, b, self.len_old, self.len_new, self.len)
        if self.widen and joined is not a:
            joined = absint.widen(a, joined, self.thresholds)
            if self.give_up and not absint.same_bounds(a, joined):
                joined = absint.unknown()
        if joined.umin == joined.umax:
            return joined
        lost = a.lost if a.lost is not None else b.lost
        ident = self._pair(self._key(a), self._key(b))  # numbered as _canonical numbers them
        base = self._pair(a.base, b.base) if a.delta == b.delta else None
        return absint.with_ids(joined, ident, base, a.delta if base is not None else 0, lost)

    def value(self, a: Value, b: Value) -> Value:
        if isinstance(a, Unset):
            return a
        if isinstance(b, Unset):
            return b
        if isinstance(a, Scalar) and isinstance(b, Scalar):
            return self.scalar(a, b)
        if isinstance(a, Pointer) and isinstance(b, Pointer):
            joined = self.pointer(a, b)
            if joined is not None:
                return joined
        pointer = a if isinstance(a, Pointer) else b
        other = b if pointer is a else a
        maybe_null = (Region.MAP_VALUE, Region.MAP_VALUE_OR_NULL)
        if pointer.region in maybe_null and isinstance(other, Scalar) and other.const == 0:
            off = self.scalar(pointer.off, pointer.off) if pointer.off.const is None else pointer.off
            return _repoint(pointer, region=Region.MAP_VALUE_OR_NULL, off=off, ident=None)
        if (
            isinstance(other, Pointer)
            and pointer.map == other.map
            and {pointer.region, other.region} == {Region.MAP_VALUE, Region.MAP_VALUE_OR_NULL}
        ):
            off = self.scalar(a.off, b.off)  # type: ignore[union-attr]
            return _repoint(pointer, region=Region.MAP_VALUE_OR_NULL, off=off, ident=None)
        return absint.unknown(lost=self.pc)

    def pointer(self, a: Pointer, b: Pointer) -> Pointer | None:
        if (a.region, a.frame, a.map, a.size, a.readonly) != (b.region, b.frame, b.map, b.size, b.readonly):
            return None
        off = self.scalar(a.off, b.off)
        return _repoint(a, off=off, ident=self._pair(a.id, b.id))

    def stack(self, a: Mapping[int, Slot], b: Mapping[int, Slot]) -> dict[int, Slot]:
        """Slots written on both sides stay written; spills are joined."""
        out: dict[int, Slot] = {}
        for index in sorted(a.keys() & b.keys()):
            x, y = a[index], b[index]
            if isinstance(x, int) or isinstance(y, int):
                mask = (x if isinstance(x, int) else 0xFF) & (y if isinstance(y, int) else 0xFF)
                if mask:
                    out[index] = mask
            else:
                out[index] = self.value(x, y)  # type: ignore[assignment]
        return out


# --- the analysis -----------------------------------------------------------------------------


def _describe(value: Value) -> str:
    if isinstance(value, Unset):
        return "uninitialised"
    if isinstance(value, Scalar):
        return f"the scalar {value.umin:#x}" if value.const is not None else f"a scalar in {value}"
    if value.region is Region.MAP:
        return "a map pointer"
    off = value.off
    where = absint.s64(off.umin) if off.const is not None else off
    return f"a pointer to {value.region.value} (offset {where})"


_BRANCH_FORMS = (Form.JMP_X, Form.JMP_K)


class _Analysis:
    """Abstract interpretation of one program to a fixed point."""

    def __init__(self, prog: Program, cfg: _Cfg, helpers: Mapping[int, Helper], mem_size: int | None):
        self.prog, self.cfg, self.helpers = prog, cfg, helpers
        self.insns = dict(iter(prog))
        self.mem_size = mem_size
        self.relocations = {r.pc: r for r in getattr(prog, "relocations", ())}
        self.maps = getattr(prog, "maps", None) or {}
        self.notes: dict[int, str] = {}
        self.regions: dict[int, set[Region]] = {}
        self.entries: dict[tuple[tuple[int, ...], int], list] = {}
        self.queue: list[tuple[tuple[int, ...], int]] = []
        self.queued: set[tuple[tuple[int, ...], int]] = set()
        self.processed = self.pruned = 0
        self.no_thresholds: tuple[tuple[int, ...], ...] = ((),) * len(cfg.thresholds)
        self.path: Path = None
        self.pc = 0

    # --- driver -------------------------------------------------------------------

    def run(self) -> None:
        self._push((), 0, self._entry_state(), None)
        while self.queue:
            key = heapq.heappop(self.queue)
            self.queued.discard(key)
            state, path, _ = self.entries[key]
            self._block(key[0], key[1], _Work(state), path)

    def _entry_state(self) -> State:
        size = self.mem_size
        len_lo, len_hi = (size, size) if size is not None else (0, LEN_MAX)
        regs: list[Value] = [NEVER] * (isa.MAX_REG + 1)
        regs[1] = Pointer(Region.BUF, absint.ZERO)
        r2 = absint.make(len_lo, len_hi, dlo=0, dhi=0, ident=1)
        assert r2 is not None
        regs[2] = absint.with_d(r2, 0, 0, len_lo, len_hi)
        regs[10] = Pointer(Region.STACK, absint.ZERO, frame=0)
        return State((Frame(tuple(regs), {}),), len_lo, len_hi, 1)

    def _push(self, ctx: tuple[int, ...], pc: int, state: State, path: Path) -> None:
        key = (ctx, pc)
        entry = self.entries.get(key)
        if entry is not None:
            old = entry[0]
            joins = entry[2] if pc in self.cfg.loop_heads else -1
            thresholds = self.cfg.thresholds if joins < WIDEN_AFTER + THRESHOLD_STEPS else self.no_thresholds
            joiner = _Joiner(old, state, joins >= WIDEN_AFTER, joins >= GIVE_UP_AFTER, thresholds, pc)
            joined = joiner.state()
            if joined == old:
                self.pruned += 1
                return
            if _unset_only_in(old, state) and not _unset_only_in(state, old):
                path = entry[1]  # errors about unset values come from the old paths
            entry[:] = [joined, path, entry[2] + 1]
        else:
            self.entries[key] = [_canonical(state), path, 0]
        if key not in self.queued:
            self.queued.add(key)
            heapq.heappush(self.queue, key)

    def _block(self, ctx: tuple[int, ...], pc: int, w: _Work, path: Path) -> None:
        leaders, insns = self.cfg.leaders, self.insns
        self.path = path
        while True:
            self.processed += 1
            if self.processed > MAX_PROCESSED:
                raise self._error(pc, f"the program is too complex: more than {MAX_PROCESSED} instructions processed")
            self.pc = pc
            insn = insns[pc]
            form = insn.spec.form
            if form in _BRANCH_FORMS:
                self._branch(ctx, pc, insn, w)
                return
            if form in (Form.JA, Form.JA32):
                target = insn.target(pc)
                self._push(ctx, target, w.state(), _extend(self.path, pc, target))  # type: ignore[arg-type]
                return
            if form is Form.EXIT:
                self._exit(ctx, pc, w)
                return
            if form is Form.CALL_LOCAL:
                self._call_local(ctx, pc, insn, w)
                return
            self._step(pc, insn, w)
            pc += insn.slots
            if pc in leaders:
                self._push(ctx, pc, w.state(), self.path)
                return

    # --- errors and notes ----------------------------------------------------------

    def _error(self, pc: int, message: str) -> VerifierError:
        return VerifierError(f"{self.prog.describe(pc)}: {message}\n  {_show_path(self.path, pc)}")

    def _unproven(self, pc: int, message: str, region: Region | None) -> None:
        if pc not in self.notes:
            self.notes[pc] = f"{message}\n  {_show_path(self.path, pc)}"
        regions = self.regions.setdefault(pc, set())
        if region is not None:
            regions.add(region)

    def _read(self, w: _Work, reg: int) -> Scalar | Pointer:
        value = w.regs[reg]
        if isinstance(value, Unset):
            if value.by is not None:
                raise self._error(
                    self.pc,
                    f"reads %r{reg}, which the call at {self.prog.describe(value.by)} clobbered"
                    " (R1-R5 are unreadable after a call until written again)",
                )
            raise self._error(self.pc, f"reads %r{reg}, which is not initialised on this path")
        return value

    # --- straight-line instructions -------------------------------------------------

    def _step(self, pc: int, insn: Instruction, w: _Work) -> None:
        form = insn.spec.form
        if form in (Form.ALU_X, Form.ALU_K):
            w.regs[insn.dst] = self._alu(insn, w)
        elif form is Form.UNARY:
            value = self._read(w, insn.dst)
            spec = insn.spec
            if isinstance(value, Pointer):
                w.regs[insn.dst] = absint.unknown(lost=pc)
            else:
                w.regs[insn.dst] = absint.unary(spec.op, spec.bits, spec.ext, value, w.fresh())
        elif form is Form.LDDW:
            w.regs[insn.dst] = self._lddw(pc, insn)
        elif form is Form.LOAD:
            base = self._read(w, insn.src)
            w.regs[insn.dst] = self._access(w, insn.src, base, insn.off, insn.spec.size, "load", insn.spec.op == "ldxs")
        elif form in (Form.STORE_K, Form.STORE_X):
            base = self._read(w, insn.dst)
            value = absint.const(insn.imm) if form is Form.STORE_K else self._read(w, insn.src)
            self._access(w, insn.dst, base, insn.off, insn.spec.size, "store", value=value)
        elif form is Form.ATOMIC:
            self._atomic(insn, w)
        elif form in (Form.CALL_HELPER, Form.CALLX):
            self._call_helper(pc, insn, w)
        elif form in (Form.LDABS, Form.LDIND):
            self._read(w, 6)
            if form is Form.LDIND:
                self._read(w, insn.src)
            w.regs[0] = absint.load(insn.spec.size, False, w.fresh())
            self._clobber(w, pc)
        else:  # pragma: no cover - every form is handled above or in _block
            raise self._error(pc, f"unexpected instruction form {form}")

    def _alu(self, insn: Instruction, w: _Work) -> Value:
        spec, pc = insn.spec, self.pc
        src: Scalar | Pointer = self._read(w, insn.src) if spec.form is Form.ALU_X else absint.const(insn.imm)
        if spec.op == "mov":
            if spec.bits == 64:
                return src
            return absint.unknown(lost=pc) if isinstance(src, Pointer) else absint.lo32(src)
        if spec.op == "movsx":
            if isinstance(src, Pointer):
                return absint.unknown(lost=pc)
            return absint.unary("movsx", spec.bits, spec.ext, src, w.fresh())
        dst = self._read(w, insn.dst)
        if isinstance(dst, Scalar) and isinstance(src, Scalar):
            result = absint.alu(spec.op, spec.bits, dst, src, w.fresh())
            lost = dst.lost if dst.lost is not None else src.lost
            if lost is not None and result.const is None and result.lost is None:
                result = absint.with_ids(result, result.id, result.base, result.delta, lost)
            return result
        if spec.bits == 64 and spec.op in ("add", "sub"):
            return self._pointer_arithmetic(spec.op, dst, src, w)
        return absint.unknown(lost=pc)

    def _pointer_arithmetic(self, op: str, dst: Scalar | Pointer, src: Scalar | Pointer, w: _Work) -> Value:
        pc = self.pc
        if isinstance(dst, Pointer) and isinstance(src, Pointer):
            if op == "sub" and (dst.region, dst.frame, dst.map) == (src.region, src.frame, src.map):
                return absint.alu("sub", 64, dst.off, src.off, w.fresh())
            return absint.unknown(lost=pc)
        pointer, scalar = (dst, src) if isinstance(dst, Pointer) else (src, dst)
        assert isinstance(pointer, Pointer) and isinstance(scalar, Scalar)
        if op == "sub" and pointer is src:
            return absint.unknown(lost=pc)
        if pointer.region is Region.MAP_VALUE_OR_NULL:
            raise self._error(pc, "arithmetic on a map value pointer that may be null: compare it with 0 first")
        if pointer.region is Region.MAP:
            raise self._error(pc, "arithmetic on a map pointer (it may only be passed to helpers)")
        if scalar.const == 0:
            return pointer
        if pointer.off.const == 0 and op == "add":
            return _repoint(pointer, off=scalar)  # the offset is the scalar itself (same identity)
        return _repoint(pointer, off=absint.alu(op, 64, pointer.off, scalar, w.fresh()))

    def _lddw(self, pc: int, insn: Instruction) -> Value:
        reloc = self.relocations.get(pc)
        if reloc is not None:
            kind, map_ = reloc.kind, self.maps.get(reloc.map)
            src, key, offset = (1 if kind == "map" else 2), reloc.map, reloc.offset
        elif insn.src in (1, 2, 5, 6):
            src, key, offset = insn.src, (insn.src in (5, 6), insn.imm & M32), insn.imm >> 32
            map_ = self._map_by_reference(*key)
        else:
            return absint.const(insn.imm)
        if src in (1, 5):
            return Pointer(Region.MAP, absint.ZERO, map=key)
        size = getattr(map_, "value_size", None)
        readonly = bool(getattr(map_, "flags", 0) & 0x80)  # BPF_F_RDONLY_PROG
        return Pointer(Region.MAP_VALUE, absint.const(offset), map=key, size=size, readonly=readonly)

    def _map_by_reference(self, by_index: bool, ref: int) -> object:
        """The map an unresolved LD_IMM64 names (by index, or by fd = index here)."""
        maps = list(self.maps.values())
        return maps[ref] if ref < len(maps) else None

    def _map_of(self, pointer: Pointer) -> object:
        key = pointer.map
        if isinstance(key, str):
            return self.maps.get(key)
        if isinstance(key, tuple):
            return self._map_by_reference(*key)
        return None

    # --- memory -------------------------------------------------------------------------

    def _access(
        self,
        w: _Work,
        reg: int,
        base: Scalar | Pointer,
        off: int,
        size: int,
        kind: str,
        signed: bool = False,
        value: Value | None = None,
        what: str = "",
    ) -> Scalar | Pointer:
        """Check a load, store or atomic access of ``size`` bytes at ``base + off``;
        returns the loaded value."""
        pc = self.pc
        what = what or f"{kind} of {size} byte{'s' if size > 1 else ''} through %r{reg}"
        if isinstance(base, Scalar):
            if base.const == 0:
                raise self._error(pc, f"{what}: %r{reg} is a null pointer")
            if base.lost is not None:
                raise self._error(
                    pc,
                    f"{what}: %r{reg} is a scalar, not a pointer (pointer provenance was lost at"
                    f" {self.prog.describe(base.lost)})",
                )
            raise self._error(pc, f"{what}: %r{reg} is {_describe(base)}, not a pointer")
        region = base.region
        if region is Region.MAP_VALUE_OR_NULL:
            raise self._error(pc, f"{what}: %r{reg} may be null (a map lookup result): compare it with 0 first")
        if region is Region.MAP:
            raise self._error(pc, f"{what}: %r{reg} is a map pointer, which cannot be dereferenced")
        if region is Region.STACK:
            return self._stack_access(w, reg, base, off, size, kind, signed, value, what)
        if region is Region.MAP_VALUE and kind != "load" and base.readonly:
            raise self._error(pc, f"{what}: the map value is read-only")
        if region is Region.BUF:
            bounds = (w.len_lo, w.len_hi)
            where = "the input buffer" + ("" if self.mem_size is None else f" of {self.mem_size} bytes")
        else:
            bounds = (base.size, base.size) if base.size is not None else None
            where = f"the map value{'' if base.size is None else f' of {base.size} bytes'}"
        verdict = "maybe" if bounds is None else _in_bounds(base.off, off, size, *bounds, region is Region.BUF)
        at = f"at offset {off:+d} from %r{reg} = {_describe(base)}"
        if verdict == "out":
            raise self._error(pc, f"{what} is out of bounds: {at} is outside {where}")
        if verdict == "maybe":
            hint = " (compare the offset with %r2 or an end pointer first)" if region is Region.BUF else ""
            self._unproven(pc, f"cannot prove the {what} {at} stays within {where}{hint}", region)
        if kind == "atomic":
            self._check_alignment(base, off, size, what)
        return absint.load(size, signed, w.fresh())

    def _check_alignment(self, base: Pointer, off: int, size: int, what: str) -> None:
        low, offset = size - 1, base.off
        if offset.tmask & low:
            self._unproven(self.pc, f"cannot prove the {what} is {size}-byte aligned", base.region)
        elif (offset.tval + off) & low:
            raise self._error(self.pc, f"{what} is not {size}-byte aligned (atomic accesses must be)")

    def _stack_access(
        self,
        w: _Work,
        reg: int,
        base: Pointer,
        off: int,
        size: int,
        kind: str,
        signed: bool,
        value: Value | None,
        what: str,
    ) -> Scalar | Pointer:
        pc = self.pc
        lo, hi = base.off.smin + off, base.off.smax + off  # possible start offsets from the frame top
        frame = "the caller's frame" if base.frame < w.depth - 1 else "the stack frame"
        at = f"at offset {off:+d} from %r{reg} = {_describe(base)}"
        if hi < -FRAME or lo > -size:
            raise self._error(pc, f"{what} is out of bounds: {at} is outside {frame} [-{FRAME}, 0)")
        if lo < -FRAME or hi > -size:
            self._unproven(pc, f"cannot prove the {what} {at} stays within {frame} [-{FRAME}, 0)", Region.STACK)
        if kind == "atomic":
            self._check_alignment(base, off, size, what)
        stack = w.stacks[base.frame]
        first, end = max(lo, -FRAME) + FRAME, min(hi + size, 0) + FRAME  # byte window in the frame
        if kind != "store":
            missing = _first_unwritten(stack, first, end)
            if missing is not None:
                raise self._error(
                    pc,
                    f"{what} reads the stack byte at offset {missing - FRAME} of {frame}, which is not"
                    " initialised on this path",
                )
        loaded = absint.load(size, signed, w.fresh()) if kind != "store" else absint.ZERO
        if lo == hi:
            slot = stack.get(first // 8, 0)
            if kind == "load" and not isinstance(slot, int) and first % 8 + size <= 8:
                loaded = _from_spill(slot, first % 8, size, signed, loaded)
            _write_stack(stack, first, size, value if kind == "store" else None)
        else:
            for index in range(first // 8, (end + 7) // 8):  # a write somewhere in the window
                if not isinstance(stack.get(index, 0), int) and kind != "load":
                    stack[index] = 0xFF
        return loaded

    def _atomic(self, insn: Instruction, w: _Work) -> None:
        spec = insn.spec
        base = self._read(w, insn.dst)
        value = self._read(w, insn.src)
        if spec.op == "cmpxchg":
            self._read(w, 0)
        self._access(w, insn.dst, base, insn.off, spec.size, "atomic", value=value)
        if spec.fetch:
            old = absint.load(spec.size, False, w.fresh())
            w.regs[0 if spec.op == "cmpxchg" else insn.src] = old

    # --- calls ---------------------------------------------------------------------------

    def _clobber(self, w: _Work, pc: int) -> None:
        clobbered = Unset(pc)
        for reg in range(1, 6):
            w.regs[reg] = clobbered

    def _call_helper(self, pc: int, insn: Instruction, w: _Work) -> None:
        if insn.spec.form is Form.CALLX:
            target = self._read(w, insn.dst)
            if isinstance(target, Pointer):
                raise self._error(pc, f"calls through %r{insn.dst}, which is {_describe(target)}, not a helper id")
            helper_id = target.const
            if helper_id is None:
                self._unproven(pc, f"calls the helper whose id is in %r{insn.dst}, not known before run time", None)
            elif helper_id not in self.helpers:
                known = ", ".join(map(str, self.helpers)) or "none"
                raise self._error(pc, f"calls helper {helper_id} (in %r{insn.dst}), which is not registered ({known})")
        else:
            helper_id = insn.imm
        proto = self.helpers[helper_id].prototype if helper_id in self.helpers else None
        result: Value = absint.unknown(w.fresh())
        if proto is not None:
            result = self._helper_arguments(pc, proto, w)
        else:  # a helper of unknown prototype may write wherever its pointer arguments point
            for value in w.regs[1:6]:
                if isinstance(value, Pointer) and value.region is Region.STACK:
                    _forget_spills(w.stacks[value.frame])
        w.regs[0] = result
        self._clobber(w, pc)

    def _helper_arguments(self, pc: int, proto: Prototype, w: _Work) -> Value:
        args = [self._read(w, reg) for reg in range(1, len(proto.args) + 1)]
        the_map: Pointer | None = None
        for index, (kind, value) in enumerate(zip(proto.args, args)):
            reg = index + 1
            problem = f"argument %r{reg} of {proto.name} must be {kind.value}, not {_describe(value)}"
            if kind is Arg.MAP:
                if not (isinstance(value, Pointer) and value.region is Region.MAP):
                    raise self._error(pc, problem)
                the_map = value
            elif kind is Arg.SCALAR or kind is Arg.SIZE:
                if not isinstance(value, Scalar):
                    raise self._error(pc, problem)
            elif kind in (Arg.KEY, Arg.VALUE, Arg.MEM_IN, Arg.MEM_OUT):
                if not isinstance(value, Pointer) or value.region in (Region.MAP, Region.MAP_VALUE_OR_NULL):
                    raise self._error(pc, problem)
                if kind in (Arg.KEY, Arg.VALUE):
                    attr = "key_size" if kind is Arg.KEY else "value_size"
                    nbytes = getattr(self._map_of(the_map), attr, None) if the_map is not None else None
                else:
                    length = args[index + 1]
                    nbytes = length.const if isinstance(length, Scalar) else None
                self._helper_memory(w, reg, value, nbytes, kind, proto.name)
        if proto.ret is Ret.U32:
            return absint.urange(0, M32, w.fresh())
        if proto.ret is Ret.MAP_VALUE_OR_NULL and the_map is not None:
            size = getattr(self._map_of(the_map), "value_size", None)
            return Pointer(Region.MAP_VALUE_OR_NULL, absint.ZERO, map=the_map.map, size=size, id=w.fresh())
        return absint.unknown(w.fresh())

    def _helper_memory(self, w: _Work, reg: int, pointer: Pointer, nbytes: int | None, kind: Arg, name: str) -> None:
        """A helper reads (or writes) ``nbytes`` at ``pointer``: check it like an access."""
        out = kind is Arg.MEM_OUT
        if nbytes is None:
            self._unproven(
                self.pc, f"cannot prove the memory {name} accesses through %r{reg} is in bounds", pointer.region
            )
            if out and pointer.region is Region.STACK:
                _forget_spills(w.stacks[pointer.frame])
            return
        if nbytes == 0:
            return
        what = f"{name} {'writes' if out else 'reads'} {nbytes} bytes ({kind.value}) through %r{reg}"
        self._access(w, reg, pointer, 0, nbytes, "store" if out else "load", value=None, what=what)

    def _call_local(self, ctx: tuple[int, ...], pc: int, insn: Instruction, w: _Work) -> None:
        target = insn.target(pc)
        assert target is not None
        callee = w.copy()
        callee.callers.append(tuple(w.regs))
        callee.stacks.append({})
        regs: list[Value] = [NEVER] * (isa.MAX_REG + 1)
        regs[1:6] = w.regs[1:6]
        regs[10] = Pointer(Region.STACK, absint.ZERO, frame=w.depth)
        callee.regs = regs
        self._push((*ctx, pc), target, callee.state(), _extend(self.path, pc, target))

    def _exit(self, ctx: tuple[int, ...], pc: int, w: _Work) -> None:
        r0 = w.regs[0]
        if isinstance(r0, Unset):
            raise self._error(pc, "exits without setting %r0 on this path")
        if not ctx:
            return
        depth = w.depth - 1
        if isinstance(r0, Pointer) and r0.region is Region.STACK and r0.frame == depth:
            raise self._error(pc, "returns a pointer to its own stack frame, which ends here")
        regs = list(w.callers.pop())
        regs[0] = r0
        w.regs = regs
        w.stacks.pop()
        for stack in w.stacks:  # pointers into the ended frame are no longer pointers
            for index, slot in stack.items():
                if isinstance(slot, Pointer) and slot.region is Region.STACK and slot.frame >= depth:
                    stack[index] = absint.unknown(lost=pc)
        call = ctx[-1]
        self._clobber(w, call)
        self._push(ctx[:-1], call + 1, w.state(), _extend(self.path, pc, call + 1))

    # --- branches ----------------------------------------------------------------------------

    def _branch(self, ctx: tuple[int, ...], pc: int, insn: Instruction, w: _Work) -> None:
        spec = insn.spec
        a = self._read(w, insn.dst)
        if spec.form is Form.JMP_X:
            b = self._read(w, insn.src)
        else:
            b = absint.const(insn.imm if spec.bits == 64 else insn.imm & M32)
        target = insn.target(pc)
        assert target is not None
        if isinstance(a, Scalar) and isinstance(b, Scalar):
            outcome = absint.decide(spec.op, spec.bits, a, b)
            if outcome is not None:
                nxt = target if outcome else pc + 1
                self._push(ctx, nxt, w.state(), _extend(self.path, pc, nxt))
                return
        for taken, (relation, swapped) in zip((True, False), absint.BRANCH_RELATIONS[spec.op]):
            out = w.copy()
            if self._assume(out, insn, relation, swapped, a, b):
                nxt = target if taken else pc + 1
                self._push(ctx, nxt, out.state(), _extend(self.path, pc, nxt))

    def _assume(self, w: _Work, insn: Instruction, relation: str, swapped: bool, a: Value, b: Value) -> bool:
        """Narrow ``w`` by the comparison's outcome; False if that outcome is impossible."""
        bits = insn.spec.bits
        if isinstance(a, Scalar) and isinstance(b, Scalar):
            x, y = (b, a) if swapped else (a, b)
            refined = absint.refine(relation, bits, x, y, w.len_lo, w.len_hi)
            if refined is None:
                return False
            nx, ny, w.len_lo, w.len_hi = refined
            na, nb = (ny, nx) if swapped else (nx, ny)
            return self._update(w, a, na) and (b.const is not None or self._update(w, b, nb))
        if isinstance(a, Pointer) and isinstance(b, Pointer):
            comparable = relation in ("eq", "ne", "lt", "le")  # jset and signed order see the base's bits
            if comparable and bits == 64 and a.region is b.region is Region.BUF and _small(a.off) and _small(b.off):
                x, y = (b, a) if swapped else (a, b)
                refined = absint.refine(relation, 64, x.off, y.off, w.len_lo, w.len_hi)
                if refined is None:
                    return False
                nx, ny, w.len_lo, w.len_hi = refined
                na, nb = (ny, nx) if swapped else (nx, ny)
                return self._update(w, a.off, na) and self._update(w, b.off, nb)
            return True
        pointer = a if isinstance(a, Pointer) else b
        other = b if pointer is a else a
        if (
            bits == 64
            and isinstance(pointer, Pointer)
            and pointer.region is Region.MAP_VALUE_OR_NULL
            and isinstance(other, Scalar)
            and other.const == 0
            and relation in ("eq", "ne")
        ):
            if relation == "eq":
                self._replace_pointer(w, pointer, absint.ZERO)
            else:
                self._replace_pointer(w, pointer, _repoint(pointer, region=Region.MAP_VALUE, ident=None))
        return True

    def _replace_pointer(self, w: _Work, pointer: Pointer, new: Value) -> None:
        """Every copy of a possibly-null pointer is null, or not, together."""
        for container, index, value in list(w.values()):
            if value is pointer or (pointer.id is not None and isinstance(value, Pointer) and value.id == pointer.id):
                container[index] = new

    def _update(self, w: _Work, old: Scalar, new: Scalar) -> bool:
        """Replace ``old`` by its narrowed ``new`` everywhere, and carry the
        narrowing over to values known to differ from it by a constant."""
        if new is old:
            return True
        root, ident = old.root, old.id
        for container, index, value in list(w.values()):
            offset = value.off if isinstance(value, Pointer) else value
            if offset is old or (ident is not None and offset.id == ident):  # type: ignore[union-attr]
                narrowed: Scalar | None = _keep_identity(offset, new)  # type: ignore[arg-type]
            elif root is not None and offset.root == root:  # type: ignore[union-attr]
                narrowed = _carry(offset, old, new, w)
                if narrowed is None:
                    return False
            else:
                continue
            if narrowed is not offset:
                container[index] = _repoint(value, off=narrowed) if isinstance(value, Pointer) else narrowed
        return True


def _repoint(
    p: Pointer,
    *,
    region: Region | None = None,
    off: Scalar | None = None,
    ident: int | bool | None = False,
) -> Pointer:
    """``p`` with some fields changed (faster than dataclasses.replace)."""
    return Pointer(
        p.region if region is None else region,
        p.off if off is None else off,
        p.frame,
        p.map,
        p.size,
        p.id if ident is False else ident,  # type: ignore[arg-type]
        p.readonly,
    )


def _keep_identity(old: Scalar, new: Scalar) -> Scalar:
    if new.const is not None or (new.id, new.base, new.delta) == (old.id, old.base, old.delta):
        return new
    return absint.with_ids(new, old.id, old.base, old.delta, old.lost)


def _carry(value: Scalar, old: Scalar, new: Scalar, w: _Work) -> Scalar | None:
    """``value`` = ``old`` + k exactly; narrow it as ``old`` was narrowed to ``new``."""
    k = (value.delta if value.base is not None else 0) - (old.delta if old.base is not None else 0)
    moved = absint.shifted(new, k)
    if moved is None:
        return value
    lo, hi = moved
    vlo, vhi = absint.d_bounds(value, w.len_lo, w.len_hi)
    nlo, nhi = absint.d_bounds(new, w.len_lo, w.len_hi)
    return absint.meet(value, lo, hi, max(vlo, nlo - k), min(vhi, nhi - k), w.len_lo, w.len_hi)


def _small(off: Scalar) -> bool:
    """Offsets for which comparing addresses is comparing offsets: the buffer
    lies below 2**52 (user space on x86-64 and ARM64, and the emulators'
    mappings), so ``buffer + off`` cannot wrap around."""
    return off.umax < (1 << 64) - (1 << 52)


def _in_bounds(offset: Scalar, off: int, size: int, len_lo: int, len_hi: int, relational: bool) -> str:
    """Whether every ``offset + off`` leaves ``size`` bytes within ``len`` ("ok"),
    none does ("out"), or it depends ("maybe")."""
    if offset.smax + off < 0 or offset.smin + off > len_hi - size:
        return "out"
    if offset.umin + off >= 0:
        if offset.umax + off + size <= len_lo:
            return "ok"
        if relational and absint.d_bounds(offset, len_lo, len_hi)[0] >= off + size:
            return "ok"
    if offset.smin + off >= 0 and offset.smax + off + size <= len_lo:
        return "ok"
    return "maybe"


def _forget_spills(stack: dict[int, Slot]) -> None:
    """Spilled values of a frame something unknown may have overwritten are
    plain written bytes now."""
    for index, slot in stack.items():
        if not isinstance(slot, int):
            stack[index] = 0xFF


def _first_unwritten(stack: Mapping[int, Slot], first: int, end: int) -> int | None:
    """The first byte of ``[first, end)`` that is not written, if any."""
    for byte in range(first, end):
        slot = stack.get(byte // 8, 0)
        if isinstance(slot, int) and not slot >> (byte % 8) & 1:
            return byte
    return None


def _write_stack(stack: dict[int, Slot], first: int, size: int, value: Value | None) -> None:
    """Record a write of ``size`` bytes at frame byte ``first``; an aligned
    8-byte store of a known value is a spill."""
    if size == 8 and first % 8 == 0 and isinstance(value, Scalar | Pointer):
        stack[first // 8] = value
        return
    for byte in range(first, first + size):
        index = byte // 8
        slot = stack.get(index, 0)
        stack[index] = (slot if isinstance(slot, int) else 0xFF) | 1 << (byte % 8)


def _from_spill(slot: Scalar | Pointer, start: int, size: int, signed: bool, fallback: Scalar) -> Scalar | Pointer:
    """What a load of ``size`` bytes at byte ``start`` of a spilled value reads."""
    if size == 8:
        return slot
    if isinstance(slot, Scalar) and slot.const is not None:
        raw = (slot.const >> (8 * start)) & ((1 << (8 * size)) - 1)
        return absint.const(absint.sign_extend(raw, 8 * size) if signed else raw)
    return fallback
