"""The verifier's fixpoint: a worklist of (call context, instruction, loop
context) states, each block simulated instruction by instruction through
:data:`DISPATCH`.

A state reaching an instruction that already has one is joined with it (and
widened at a loop head); if the join adds nothing the state is pruned, else
the instruction is queued again. The queue is ordered by (call context,
slot), so that the states of the paths reaching a block are mostly joined
before it is simulated.

Loops can also be unrolled (``unroll`` > 0, the verifier's second pass): a
state reaching a loop head that differs from every state stored there gets
an entry of its own, up to ``unroll`` entries per head, and the instructions
of the loop body reached from that entry are kept apart from those of other
iterations (the loop context). A bounded loop is then simulated iteration by
iteration until it exits, as Linux does; other block starts keep up to
``SPLIT`` states apart (a state included in one of them is pruned), so that
a violation on one path is found on that path's exact state. Past those
limits states are joined and widened again; past ``SECOND_PASS_BUDGET``
processed instructions the second pass gives up (:class:`OverBudget`).

Every stored state knows whether it is *exact*: no join that changed it
contributed. A violation found on an exact state is a :class:`VerifierError`;
one found on an inexact state raises :class:`Imprecise` (the precision lost
by joining may be the cause).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jit.analysis import alu, branches, calls, memory
from jit.analysis.cfg import Cfg
from jit.analysis.context import CallStack, Context, Path
from jit.analysis.scalar import LEN_MAX, ZERO, make, with_d
from jit.analysis.state import NEVER, Frame, Joiner, Pointer, Region, State, Value, Work, canonical, unset_only_in
from jit.core import isa
from jit.core.bytecode import Dispatch, Instruction
from jit.core.errors import VerifierError
from jit.core.helpers import Helper
from jit.core.isa import FRAME_POINTER, MAX_REG, Flow, Op
from jit.frontend.program import Program

MAX_PROCESSED = 1_000_000
WIDEN_AFTER = 0  # joins at a loop head before widening
THRESHOLD_STEPS = 3  # widenings that stop at the program's jump constants, before going all the way
GIVE_UP_AFTER = 24  # joins at a loop head before changing bounds are dropped
UNROLL = 1024  # states kept apart per loop head by the second pass
SPLIT = 8  # states kept apart per other block start by the second pass
# Instructions the second pass may process (a fixed part plus a part per slot)
# before it is abandoned, the first pass's result standing.
SECOND_PASS_BUDGET = (10_000, 20)

# Where a state is stored: call context, slot, loop context (a stack of
# (call depth, loop head, entry index) of the unrolled iterations it is in).
LoopContext = tuple[tuple[int, int, int], ...]
Key = tuple[CallStack, int, LoopContext]


class OverBudget(Exception):
    """The second pass processed more instructions than its budget."""


class Imprecise(VerifierError):
    """A violation found on a state that joining or widening made imprecise:
    the program is not proven unsafe, only not proven safe."""


# A transfer function: simulate one instruction on ``w``; one that ends a block
# (a jump, a local call, exit) pushes the states of its successors itself.
Transfer = Callable[[Context, CallStack, int, Instruction, Work], None]

DISPATCH: Dispatch[Transfer] = Dispatch(
    "verifier",
    {
        **dict.fromkeys(isa.ALU_BINARY_OPS - {Op.MOV}, alu.binary),
        Op.MOV: alu.mov,
        Op.MOVSX: alu.movsx,
        **dict.fromkeys((Op.NEG, Op.LE, Op.BE, Op.BSWAP), alu.unary),
        Op.LDDW: alu.lddw,
        **dict.fromkeys(isa.JUMP_CONDITIONS, branches.branch),
        Op.JA: branches.jump,
        Op.CALL: calls.call_helper,
        Op.CALLX: calls.call_helper,
        Op.CALL_LOCAL: calls.call_local,
        Op.CALL_BTF: calls.reject_btf_call,
        Op.EXIT: calls.exit_frame,
        Op.LDABS: calls.packet_load,
        Op.LDIND: calls.packet_load,
        Op.LDX: memory.load,
        Op.LDXS: memory.load,
        Op.ST: memory.store,
        Op.STX: memory.store,
        **dict.fromkeys(isa.ATOMIC_OPS, memory.atomic),
    },
)


@dataclass(slots=True)
class _Entry:
    """The state stored at one (call context, instruction), the path that
    reached it, and how many times it has been joined."""

    state: State
    path: Path
    joins: int = 0
    exact: bool = True


class Analysis(Context):
    """Abstract interpretation of one program to a fixed point."""

    def __init__(self, prog: Program, cfg: Cfg, helpers: Mapping[int, Helper], mem_size: int | None, unroll: int = 0):
        super().__init__(prog, helpers, mem_size)
        self.cfg, self.unroll = cfg, unroll
        # per slot: the instruction, its transfer function, and whether the block goes on after it
        self.steps = {pc: (insn, DISPATCH(prog, pc, insn), insn.spec.flow is Flow.NEXT) for pc, insn in prog}
        self.entries: dict[Key, list[_Entry]] = {}
        self.queue: list[tuple[Key, int]] = []
        self.queued: set[tuple[Key, int]] = set()
        self.processed = self.pruned = self.stored = 0
        self.no_thresholds: tuple[tuple[int, ...], ...] = ((),) * len(cfg.thresholds)
        fixed, per_slot = SECOND_PASS_BUDGET
        self.budget = fixed + per_slot * len(prog) if unroll else MAX_PROCESSED
        self.loops: LoopContext = ()  # the loop context of the block being simulated
        self.exact = True  # whether the state being simulated is exact
        # A loop came back to its head, from inside, in a state within the exact one it
        # entered with: it may repeat a state (never end) on some path; the unrolling
        # pass, which keeps iterations apart, tells.
        self.may_repeat = False

    def run(self) -> None:
        """Simulate every path from the entry until no state changes."""
        self.push((), 0, self._entry_state(), None)
        while self.queue:
            item = heapq.heappop(self.queue)
            self.queued.discard(item)
            (calls, pc, loops), index = item
            entry = self.entries[item[0]][index]
            if pc in self.cfg.loop_heads and self.unroll:
                loops = (*loops, (len(calls), pc, index))
            self.loops, self.exact = loops, entry.exact
            self._block(calls, pc, Work(entry.state), entry.path)

    def error(self, pc: int, message: str) -> VerifierError:
        error = super().error(pc, message)
        return error if self.exact else Imprecise(str(error))

    def _loops_at(self, calls: CallStack, pc: int) -> LoopContext:
        """The loop context of ``pc`` reached from the current block: the
        iterations left (callee loops on return, loops ``pc`` is not in, the
        iteration of ``pc``'s own loop when ``pc`` is its head) are dropped."""
        loops, depth, bodies = self.loops, len(calls), self.cfg.loop_bodies
        while loops:
            at, head, _ = loops[-1]
            if at > depth or (at == depth and (pc == head or pc not in bodies[head])):
                loops = loops[:-1]
            else:
                break
        return loops

    def push(self, calls: CallStack, pc: int, state: State, path: Path) -> None:
        key = (calls, pc, self._loops_at(calls, pc) if self.unroll else ())
        stored = self.entries.get(key)
        if stored is None:
            self._store(key, [], state, path)
            return
        head = pc in self.cfg.loop_heads
        if self.unroll:
            state = canonical(state)
            if head:
                if any(entry.state == state for entry in stored):
                    self._repeats(pc)
                    self.pruned += 1
                    return
            elif any(self._join(entry, state, pc, -1) == entry.state for entry in stored):
                self.pruned += 1
                return
            if len(stored) < (self.unroll if head else SPLIT):
                self._store(key, stored, state, path)
                return
        index = len(stored) - 1
        entry = stored[index]
        old = entry.state
        if head and not self.unroll and entry.joins == 0 and entry.exact and self.exact:
            if canonical(state) == old:
                self._repeats(pc)
            elif self.pc in self.cfg.loop_bodies.get(pc, ()) and self._join(entry, state, pc, -1) == old:
                self.may_repeat = True
        joined = self._join(entry, state, pc, entry.joins if head else -1)
        if joined == old:
            self.pruned += 1
            return
        if unset_only_in(old, state) and not unset_only_in(state, old):
            path = entry.path  # errors about unset values come from the old paths
        entry.exact = self.exact and joined == canonical(state)
        entry.state, entry.path, entry.joins = joined, path, entry.joins + 1
        self._queue((key, index))

    def _repeats(self, head: int) -> None:
        """The loop at ``head`` came back, from inside, in a state it was in before:
        on this path it never ends. Linux refuses it; a run is stopped by its step
        budget or Ctrl-C, so jit.compile runs it."""
        if self.pc in self.cfg.loop_bodies.get(head, ()):
            self.not_linux(head, f"infinite loop detected: the loop comes back to instruction {head} in the same state")

    def _join(self, entry: _Entry, state: State, pc: int, joins: int) -> State:
        """``entry``'s state joined with ``state`` (widened after ``joins`` joins at a loop head; -1: never)."""
        thresholds = self.cfg.thresholds if joins < WIDEN_AFTER + THRESHOLD_STEPS else self.no_thresholds
        return Joiner(entry.state, state, joins >= WIDEN_AFTER, joins >= GIVE_UP_AFTER, thresholds, pc).state()

    def _store(self, key: Key, stored: list[_Entry], state: State, path: Path) -> None:
        stored.append(_Entry(canonical(state), path, exact=self.exact))
        self.entries[key] = stored
        self.stored += 1
        self._queue((key, len(stored) - 1))

    def _queue(self, item: tuple[Key, int]) -> None:
        if item not in self.queued:
            self.queued.add(item)
            heapq.heappush(self.queue, item)

    def _entry_state(self) -> State:
        size = self.mem_size
        len_lo, len_hi = (size, size) if size is not None else (0, LEN_MAX)
        regs: list[Value] = [NEVER] * (MAX_REG + 1)
        regs[1] = Pointer(Region.BUF, ZERO)
        r2 = make(len_lo, len_hi, dlo=0, dhi=0, ident=1)
        assert r2 is not None
        regs[2] = with_d(r2, 0, 0, len_lo, len_hi)
        regs[FRAME_POINTER] = Pointer(Region.STACK, ZERO, frame=0)
        return State((Frame(tuple(regs), {}),), len_lo, len_hi, 1)

    def _block(self, calls: CallStack, pc: int, w: Work, path: Path) -> None:
        """Simulate from ``pc`` to the end of its block."""
        leaders, steps = self.cfg.leaders, self.steps
        self.path = path
        while True:
            self.processed += 1
            if self.processed > self.budget:
                if self.unroll:
                    raise OverBudget
                message = f"the program is too complex: more than {MAX_PROCESSED} instructions processed"
                raise Imprecise(super().error(pc, message).args[0])
            self.pc = pc
            insn, transfer, goes_on = steps[pc]
            transfer(self, calls, pc, insn, w)
            if not goes_on:
                return
            pc += insn.slots
            if pc in leaders:
                self.push(calls, pc, w.state(), self.path)
                return
