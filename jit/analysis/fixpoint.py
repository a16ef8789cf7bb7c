"""The verifier's fixpoint: a worklist of (call context, instruction) states,
each block simulated instruction by instruction through :data:`DISPATCH`.

A state reaching an instruction that already has one is joined with it (and
widened at a loop head); if the join adds nothing the state is pruned, else
the instruction is queued again. The queue is ordered by (call context,
slot), so that the states of the paths reaching a block are mostly joined
before it is simulated.
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
from jit.core.helpers import Helper
from jit.core.isa import FRAME_POINTER, MAX_REG, Flow, Op
from jit.frontend.program import Program

MAX_PROCESSED = 1_000_000
WIDEN_AFTER = 0  # joins at a loop head before widening
THRESHOLD_STEPS = 3  # widenings that stop at the program's jump constants, before going all the way
GIVE_UP_AFTER = 24  # joins at a loop head before changing bounds are dropped

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


class Analysis(Context):
    """Abstract interpretation of one program to a fixed point."""

    def __init__(self, prog: Program, cfg: Cfg, helpers: Mapping[int, Helper], mem_size: int | None):
        super().__init__(prog, helpers, mem_size)
        self.cfg = cfg
        # per slot: the instruction, its transfer function, and whether the block goes on after it
        self.steps = {pc: (insn, DISPATCH(prog, pc, insn), insn.spec.flow is Flow.NEXT) for pc, insn in prog}
        self.entries: dict[tuple[CallStack, int], _Entry] = {}
        self.queue: list[tuple[CallStack, int]] = []
        self.queued: set[tuple[CallStack, int]] = set()
        self.processed = self.pruned = 0
        self.no_thresholds: tuple[tuple[int, ...], ...] = ((),) * len(cfg.thresholds)

    def run(self) -> None:
        """Simulate every path from the entry until no state changes."""
        self.push((), 0, self._entry_state(), None)
        while self.queue:
            key = heapq.heappop(self.queue)
            self.queued.discard(key)
            entry = self.entries[key]
            self._block(key[0], key[1], Work(entry.state), entry.path)

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

    def push(self, calls: CallStack, pc: int, state: State, path: Path) -> None:
        key = (calls, pc)
        entry = self.entries.get(key)
        if entry is not None:
            old = entry.state
            joins = entry.joins if pc in self.cfg.loop_heads else -1
            thresholds = self.cfg.thresholds if joins < WIDEN_AFTER + THRESHOLD_STEPS else self.no_thresholds
            joined = Joiner(old, state, joins >= WIDEN_AFTER, joins >= GIVE_UP_AFTER, thresholds, pc).state()
            if joined == old:
                self.pruned += 1
                return
            if unset_only_in(old, state) and not unset_only_in(state, old):
                path = entry.path  # errors about unset values come from the old paths
            entry.state, entry.path, entry.joins = joined, path, entry.joins + 1
        else:
            self.entries[key] = _Entry(canonical(state), path)
        if key not in self.queued:
            self.queued.add(key)
            heapq.heappush(self.queue, key)

    def _block(self, calls: CallStack, pc: int, w: Work, path: Path) -> None:
        """Simulate from ``pc`` to the end of its block."""
        leaders, steps = self.cfg.leaders, self.steps
        self.path = path
        while True:
            self.processed += 1
            if self.processed > MAX_PROCESSED:
                raise self.error(pc, f"the program is too complex: more than {MAX_PROCESSED} instructions processed")
            self.pc = pc
            insn, transfer, goes_on = steps[pc]
            transfer(self, calls, pc, insn, w)
            if not goes_on:
                return
            pc += insn.slots
            if pc in leaders:
                self.push(calls, pc, w.state(), self.path)
                return
