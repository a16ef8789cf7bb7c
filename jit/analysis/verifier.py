"""The static verifier: which programs are safe to run, and where run-time checks must go.

:func:`analyze` first checks the program's structure (jump targets, no path
falling off the end, no unreachable instruction, loops only if allowed, local
calls without recursion and at most ``MAX_CALL_DEPTH`` frames deep, registered
helpers, R10 never written), then simulates every path by abstract
interpretation: each register is uninitialised, a scalar
(:mod:`jit.analysis.scalar`) or a pointer into a region with an abstract
offset, and each stack byte is known to be written or not. States are joined
where paths meet and widened at loop heads, so verification always
terminates; a state included in one already verified at the same instruction
is pruned.

Three outcomes, kept apart:

* a violation found on an *exact* state (no join or widening contributed)
  raises :class:`jit.VerifierError` naming the instruction and the path;
* a memory access that is merely not provably safe is listed in
  ``VerifierResult.unproven`` (with a note saying why, and in ``regions`` the
  region it must stay in), for ``jit.compile(bounds_check="auto")`` to check
  at run time;
* a violation found only on a state that joining made imprecise sets
  ``VerifierResult.imprecise``: nothing is proven then, and ``jit.compile``
  checks every access at run time with a zeroed stack.

Before giving either of the last two answers the verifier runs a second,
path-sensitive pass (:mod:`jit.analysis.fixpoint`: paths kept apart, bounded
loops unrolled iteration by iteration, within a budget). Reads of
uninitialised registers or stack bytes and unreachable instructions, which
Linux refuses but every engine runs the same way (a zeroed stack reads 0),
are listed in ``VerifierResult.lenient``. :func:`verify`, the strict,
Linux-like mode, rejects all of these: lenient findings, imprecise and
unproven programs.

Loops: at a loop head the first join already widens, each register's bounds
stopping first at the constants the program compares that register with or
masks it to (:func:`jit.analysis.cfg.thresholds`), then at the extremes; so
a loop costs about two passes over its body. Widening loses precision (an
access becomes unproven), never soundness.

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
  implement as calls) R1-R5 are unreadable until written again (a lenient
  finding; the value is an unknown scalar).
* Reading a stack byte that is not written on every path reaching the read is
  a lenient finding, also through a variable offset.
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

The modules, each with one job:

* :mod:`jit.analysis.cfg`: the structure checks above, leaders, loop heads
  and widening thresholds;
* :mod:`jit.analysis.scalar` and :mod:`jit.analysis.domain`: the scalar
  abstract domain (values, then operations, join, widening, refinement);
* :mod:`jit.analysis.state`: pointers, frames, states, their join;
* :mod:`jit.analysis.fixpoint`: the worklist, and ``DISPATCH``, which maps
  each :class:`~jit.core.isa.Op` to its transfer function in
  :mod:`jit.analysis.alu`, :mod:`jit.analysis.memory`,
  :mod:`jit.analysis.calls` or :mod:`jit.analysis.branches` (all working
  through a :class:`jit.analysis.context.Context`);
* :mod:`jit.analysis.result`: :class:`VerifierResult`; this module: the
  entry points.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from types import MappingProxyType

from jit.analysis.cfg import Cfg, check_structure
from jit.analysis.fixpoint import UNROLL, Analysis, Imprecise, OverBudget
from jit.analysis.result import VerifierResult
from jit.analysis.scalar import LEN_MAX
from jit.analysis.state import Region
from jit.core.errors import VerifierError
from jit.core.helpers import Helper, declared_helpers
from jit.core.usage import check_bool, check_optional_int
from jit.frontend.loader import ProgramLike, load_program
from jit.frontend.program import Program

__all__ = ["Region", "VerifierResult", "analyze", "verify"]


def analyze(
    prog: ProgramLike,
    *,
    mem_size: int | None = None,
    allow_loops: bool = True,
    helpers: Mapping[int, object] | None = None,
) -> VerifierResult:
    """Verify ``prog`` (anything ``jit.compile`` accepts): raise :class:`VerifierError` for any definite violation,
    and list the accesses that are not provably safe in ``result.unproven``."""
    start = time.perf_counter()
    prog = load_program(prog)
    check_optional_int("mem_size", mem_size, 0, LEN_MAX)
    allow_loops = check_bool("allow_loops", allow_loops)
    table = declared_helpers(helpers)  # the registry's helpers, then the user's
    cfg = check_structure(prog, allow_loops, table)
    analysis, imprecise = _fixpoint(prog, cfg, table, mem_size, 0)
    if imprecise or analysis.lenient or analysis.may_repeat:  # precision on demand: paths kept apart, loops unrolled
        with contextlib.suppress(OverBudget):  # else the first pass's result stands
            analysis, imprecise = _fixpoint(prog, cfg, table, mem_size, UNROLL)
    return VerifierResult(
        insns_processed=analysis.processed,
        states_pruned=analysis.pruned,
        unproven=frozenset(analysis.notes),
        max_call_depth=cfg.max_depth,
        elapsed=time.perf_counter() - start,
        notes=MappingProxyType(dict(sorted(analysis.notes.items()))),
        regions=MappingProxyType({pc: frozenset(r) for pc, r in sorted(analysis.regions.items())}),
        states_stored=analysis.stored,
        loops=bool(cfg.loop_heads),
        imprecise=imprecise,
        lenient=MappingProxyType(_lenient(prog, cfg, analysis)),
    )


def _lenient(prog: Program, cfg: Cfg, analysis: Analysis) -> dict[int, str]:
    found = dict(analysis.lenient)
    for head in sorted(cfg.endless):  # found from the structure alone: no second pass could clear them
        found.setdefault(head, f"{prog.describe(head)}: infinite loop: no instruction leaves the loop that starts here")
    if cfg.unreachable is not None:
        pc = cfg.unreachable
        found[pc] = f"{prog.describe(pc)}: is unreachable: no path from the program's entry leads to it"
    return dict(sorted(found.items()))


def _fixpoint(
    prog: Program, cfg: Cfg, table: Mapping[int, Helper], mem_size: int | None, unroll: int
) -> tuple[Analysis, str | None]:
    """One run of the fixpoint, and the message of a violation found on an imprecise state."""
    analysis = Analysis(prog, cfg, table, mem_size, unroll)
    try:
        analysis.run()
    except Imprecise as exc:
        return analysis, str(exc)
    return analysis, None


def verify(
    prog: ProgramLike,
    *,
    mem_size: int | None = None,
    allow_loops: bool = True,
    helpers: Mapping[int, object] | None = None,
) -> VerifierResult:
    """:func:`analyze`, rejecting also every access it cannot prove safe."""
    prog = load_program(prog)
    result = analyze(prog, mem_size=mem_size, allow_loops=allow_loops, helpers=helpers)
    if result.lenient:
        raise VerifierError(next(iter(result.lenient.values())))
    if result.imprecise is not None:
        raise VerifierError(
            f"{result.imprecise}\n  (found after joining paths: the program may be safe, but this is not proven)"
        )
    if result.unproven:
        pc = min(result.unproven)
        raise VerifierError(f"{prog.describe(pc)}: {result.notes[pc]}")
    return result
