"""The verifier's control-flow checks, made before any path is simulated.

:func:`check_structure` checks jump targets, that no path falls off the end of
a subprogram or into the next one, that every instruction is reachable, that
there are no loops unless allowed, that local calls do not recurse nor nest
more than ``MAX_CALL_DEPTH`` frames deep, that called helpers are registered
and that R10 is never written. Unreachable instructions are not an error here (every engine runs such
a program the same way) but are recorded for the strict mode. It returns
the :class:`Cfg`: the leaders (where
the fixpoint stores states), the loop heads (where it widens) and the
widening thresholds of each register.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from jit.analysis.scalar import LEN_MAX
from jit.core import isa
from jit.core.bits import MASK32, MASK64
from jit.core.bytecode import Instruction, check_control_flow
from jit.core.errors import VerifierError
from jit.core.helpers import Helper
from jit.core.isa import Access, Flow, Form, Op
from jit.frontend.program import Program

# The ALU operations (their rows write dst).
_ALU_OPS = isa.ALU_BINARY_OPS | {Op.MOVSX, Op.NEG, Op.LE, Op.BE, Op.BSWAP}


@dataclass(frozen=True)
class Cfg:
    """What the fixpoint needs to know of the control flow: where blocks start
    (``leaders``), where loops start (``loop_heads``) and which instructions
    each loop holds (``loop_bodies``, the head included), the deepest chain of
    frames, and where widening stops first (per register, then one for the rest)."""

    leaders: frozenset[int]
    loop_heads: frozenset[int]
    max_depth: int
    thresholds: tuple[tuple[int, ...], ...]
    loop_bodies: Mapping[int, frozenset[int]] = field(default_factory=dict)
    unreachable: int | None = None  # the first instruction no path reaches (Linux refuses those)
    endless: frozenset[int] = frozenset()  # heads of loops no instruction leaves (Linux refuses those)


def fail(prog: Program, pc: int, message: str) -> VerifierError:
    """A :class:`VerifierError` naming the instruction at ``pc``."""
    return VerifierError(f"{prog.describe(pc)}: {message}")


def check_structure(prog: Program, allow_loops: bool, helpers: Mapping[int, Helper]) -> Cfg:
    """Check the program's structure (see the module docstring); raise
    :class:`VerifierError` for the first violation."""
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
            for nxt in insn.successors(pc):
                if not start <= nxt < end:
                    raise _leaves_subprogram(prog, pc, insn, nxt, start, end)
        order, back = _dfs(start, lambda pc: insns[pc].successors(pc))
        reached.update(order)
        back_edges += back
        calls[start] = [(pc, insns[pc].target(pc)) for pc in order if insns[pc].spec.flow is Flow.CALL]
        for pc in order:
            insn = insns[pc]
            if insn.spec.is_jump:
                leaders.update(insn.successors(pc))
            elif insn.spec.flow is Flow.CALL:
                leaders.add(pc + 1)
    called = _check_calls(prog, calls)
    unreachable = next((pc for pc, _ in prog if pc not in reached or _function_of(starts, pc) not in called), None)
    if back_edges and not allow_loops:
        src, dst = min(back_edges)
        raise fail(prog, src, f"jumps back to instruction {dst}, a loop, and loops are not allowed (allow_loops=False)")
    loop_heads.update(dst for _, dst in back_edges)
    depth = _call_depth(prog, calls)
    bodies = _loop_bodies(insns, back_edges)
    endless = frozenset(head for head, body in bodies.items() if not _has_way_out(insns, body))
    return Cfg(frozenset(leaders), frozenset(loop_heads), depth, thresholds(prog), bodies, unreachable, endless)


def _has_way_out(insns: Mapping[int, Instruction], body: frozenset[int]) -> bool:
    """Whether some instruction of a loop body exits or goes somewhere outside it."""
    return any(
        insns[pc].spec.flow is Flow.EXIT or any(nxt not in body for nxt in insns[pc].successors(pc)) for pc in body
    )


def _loop_bodies(insns: Mapping[int, Instruction], back_edges: list[tuple[int, int]]) -> dict[int, frozenset[int]]:
    """Head -> the instructions of its natural loop: those from which a back
    edge to the head is reachable without passing the head."""
    if not back_edges:
        return {}
    preds: dict[int, list[int]] = {}
    for pc, insn in insns.items():
        for nxt in insn.successors(pc):
            preds.setdefault(nxt, []).append(pc)
    bodies: dict[int, set[int]] = {}
    for src, head in back_edges:
        body = bodies.setdefault(head, {head})
        todo = [src]
        while todo:
            pc = todo.pop()
            if pc not in body:
                body.add(pc)
                todo += preds.get(pc, ())
    return {head: frozenset(body) for head, body in bodies.items()}


def _leaves_subprogram(prog: Program, pc: int, insn: Instruction, nxt: int, start: int, end: int) -> VerifierError:
    if insn.target(pc) == nxt and insn.spec.flow is not Flow.CALL:
        return fail(prog, pc, f"jumps to instruction {nxt}, outside its subprogram (instructions {start}..{end - 1})")
    if nxt >= len(prog):
        return fail(prog, pc, "execution can fall off the end of the program (the last instruction must be exit or ja)")
    return fail(prog, pc, f"execution can fall through into the subprogram at instruction {nxt}")


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
                raise fail(
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
        raise fail(
            prog,
            culprit,
            f"local calls nest {depth} frames deep, more than the limit of {isa.MAX_CALL_DEPTH}"
            f" (call chain: {' -> '.join(map(str, (0, *chain)))})",
        )
    return depth


def _check_instructions(prog: Program, helpers: Mapping[int, Helper]) -> None:
    """Checks of single instructions that do not depend on the path."""
    for pc, insn in prog:
        spec = insn.spec
        if spec.op is Op.CALL_BTF:
            raise fail(prog, pc, "calls by BTF id (call runtime) are not supported")
        if spec.op is Op.CALL and insn.imm not in helpers:
            known = ", ".join(map(str, helpers)) or "none"
            raise fail(prog, pc, f"calls helper {insn.imm}, which is not registered (registered: {known})")
        if spec.op is Op.LDDW and insn.src in (3, 4):
            raise fail(prog, pc, f"LD_IMM64 with src={insn.src} ({spec.mnemonic}) is not supported")
        if isa.FRAME_POINTER in insn.regs_written:
            raise fail(prog, pc, "writes %r10, the read-only frame pointer")


def thresholds(prog: Program) -> tuple[tuple[int, ...], ...]:
    """Where widening a register's bounds stops first: the constants the
    program compares that register with (and their neighbours), and the
    bounds of what it writes there (masks, load widths, 32-bit results). So
    a loop counter compared with 16 stops at 15, and a loop converges in a
    few passes. The last entry, for stack slots and len, has all of them."""
    per_reg: list[set[int]] = [{0} for _ in range(isa.MAX_REG + 1)]
    for _, insn in prog:
        spec = insn.spec
        if spec.form is Form.JMP_K:  # a comparison with a constant
            for v in (insn.imm, insn.imm & MASK32, insn.imm & MASK64):
                per_reg[insn.dst].update((v - 1, v, v + 1))
        elif spec.form is Form.ALU_K and spec.op in (Op.AND, Op.MOD, Op.RSH):
            imm = insn.imm & (MASK64 if spec.bits == 64 else MASK32)
            per_reg[insn.dst].add({Op.AND: imm, Op.MOD: imm - 1, Op.RSH: MASK64 >> (imm & 63)}[spec.op])
        elif spec.access is Access.LOAD:
            per_reg[insn.dst].add((1 << (8 * spec.size)) - 1)
        if spec.bits == 32 and spec.op in _ALU_OPS:
            per_reg[insn.dst].add(MASK32)
    everything = set().union(*per_reg, {isa.STACK_SIZE, LEN_MAX})
    return tuple(tuple(sorted(values)) for values in (*per_reg, everything))
