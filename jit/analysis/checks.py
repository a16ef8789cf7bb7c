"""Safe execution of compiled code (issue 7): where run-time bounds checks go,
and what a failed one reports.

``jit.compile(bounds_check=...)`` asks :func:`plan_checks` which memory
accesses (loads, stores, atomics) get a check, and where each may land
(:class:`backends.base.Check`):

* ``"auto"``: exactly the accesses the verifier could not prove safe
  (``VerifierResult.unproven``), each confined to the region(s) the verifier
  says it is meant for (``VerifierResult.regions``): the input buffer, the
  *current* stack frame, or the program's host memory blocks. Confining
  matters: a stray store allowed anywhere could overwrite a pointer spilled
  on the stack that the verifier trusts when it is reloaded. An access the
  verifier could not prove through a pointer into a *caller's* frame is thus
  refused at run time (``bounds_check=True`` allows every active frame).
* ``True``: every access, anywhere the program may touch: the input buffer,
  every active stack frame (as the interpreter allows), the host memory
  blocks (writable ones for stores). The exception is an access at a
  constant offset from R10 that lies inside the current frame (and is
  aligned, for an atomic): R10 is read-only, so it is safe by construction.
* ``False``: none (the peer JITs' behaviour, for benchmarking).

Without a verifier result (``jit.compile(verify=False)``), ``"auto"`` has
nothing proven and checks like ``True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from backends.base import Check, NativeCode
from jit.core.errors import CompileError
from jit.core.isa import STACK_SIZE, Form
from jit.core.program import Instruction, Program

if TYPE_CHECKING:
    from jit.analysis.verifier import VerifierResult
    from jit.frontend.hostmem import HostMemory

MEMORY_FORMS = frozenset({Form.LOAD, Form.STORE_K, Form.STORE_X, Form.ATOMIC})
FRAME_POINTER = 10

# Verifier region name -> where a check lets the access land.
_REGION_CHECKS = {
    "BUF": Check.MEM,
    "STACK": Check.FRAME,
    "MAP": Check.BLOCKS,
    "MAP_VALUE": Check.BLOCKS,
    "MAP_VALUE_OR_NULL": Check.BLOCKS,
}
_REGION_NAMES = (
    (Check.MEM, "the input buffer"),
    (Check.FRAME, "the current stack frame"),
    (Check.STACK, "the active stack frames"),
    (Check.BLOCKS, "the program's memory blocks"),
)


def validate_mode(bounds_check: object) -> bool | str:
    """``bounds_check`` if it is one of the modes, else a CompileError."""
    if not (bounds_check is True or bounds_check is False or bounds_check == "auto"):
        raise CompileError(f"bounds_check must be 'auto', True or False, not {bounds_check!r}")
    return bounds_check  # type: ignore[return-value]


def base_register(insn: Instruction) -> int:
    """The register holding the address of a memory access."""
    return insn.src if insn.spec.form is Form.LOAD else insn.dst


def safe_by_construction(insn: Instruction) -> bool:
    """An access at a constant offset from R10 inside the current frame (aligned, for an atomic)."""
    if base_register(insn) != FRAME_POINTER:
        return False
    size = insn.spec.size
    aligned = insn.spec.form is not Form.ATOMIC or insn.off % size == 0
    return -STACK_SIZE <= insn.off <= -size and aligned


_WRITES_DST = frozenset({Form.ALU_X, Form.ALU_K, Form.UNARY, Form.LDDW, Form.LOAD})


def writes_frame_pointer(prog: Program) -> bool:
    """Whether any instruction of ``prog`` writes R10 (its dst, or the src of a
    fetching atomic, which receives the old value)."""
    return any(
        (insn.spec.form in _WRITES_DST and insn.dst == FRAME_POINTER)
        or (insn.spec.form is Form.ATOMIC and insn.spec.fetch and insn.src == FRAME_POINTER)
        for insn in prog.instructions
    )


def writes(insn: Instruction) -> bool:
    """Whether a memory access writes (stores and atomics)."""
    return insn.spec.form is not Form.LOAD


def program_blocks(prog: Program, write: bool) -> tuple[HostMemory, ...]:
    """The host memory blocks an access may land in: the writable ones for a write."""
    return tuple(block for block in prog.memory if block.writable or not write)


def check_order(allowed: Check, base: int) -> list[Check]:
    """The regions to test, one flag each, likeliest first: the buffer, the stack,
    the blocks, but the stack first for an access through R10."""
    order = [Check.MEM, Check.FRAME, Check.STACK, Check.BLOCKS]
    if base == FRAME_POINTER:
        order = [Check.FRAME, Check.STACK, Check.MEM, Check.BLOCKS]
    return [region for region in order if region in allowed]


def check_regions(prog: Program, insn: Instruction, allowed: Check) -> list[Check]:
    """The regions a backend tests for one access, in order (see :func:`check_order`),
    without the block table when the access could land in no block."""
    blocks = program_blocks(prog, writes(insn))
    return [region for region in check_order(allowed, base_register(insn)) if region is not Check.BLOCKS or blocks]


def emitted_checks(prog: Program, checks: Mapping[int, Check]) -> dict[int, Check]:
    """The planned checks that belong to a memory access of ``prog`` (what a backend emits)."""
    return {pc: allowed for pc, allowed in checks.items() if allowed and _is_access(prog, pc)}


def _is_access(prog: Program, pc: int) -> bool:
    return pc in prog.index_of and prog.at(pc).spec.form in MEMORY_FORMS


def plan_checks(prog: Program, bounds_check: bool | str, result: VerifierResult | None) -> dict[int, Check]:
    """Slot -> allowed regions of every access that gets a run-time check."""
    mode = validate_mode(bounds_check)
    if mode is False:
        return {}
    accesses = [(pc, insn) for pc, insn in prog if insn.spec.form in MEMORY_FORMS]
    if mode is True or result is None:
        # R10-relative accesses are safe by construction only while R10 is read-only:
        # the verifier guarantees it; without it, the program must not write R10 anywhere.
        trusted_r10 = result is not None or not writes_frame_pointer(prog)
        return {pc: Check.ANY for pc, insn in accesses if not (trusted_r10 and safe_by_construction(insn))}
    plan = {}
    for pc in (pc for pc, _ in accesses if pc in result.unproven):
        allowed = Check(0)
        for region in result.regions.get(pc, ()):
            allowed |= _REGION_CHECKS.get(region.name, Check.ANY)
        plan[pc] = allowed or Check.ANY
    return plan


def _kind(insn: Instruction) -> str:
    form = insn.spec.form
    return "atomic access" if form is Form.ATOMIC else "load" if form is Form.LOAD else "store"


def _names(allowed: Check) -> str:
    names = [name for flag, name in _REGION_NAMES if flag in allowed]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def fault_detail(native: NativeCode, pc: int | None, addr: int) -> str:
    """Why the bounds check of the access at ``pc`` failed for address ``addr``."""
    prog = native.prog
    if pc is None or pc not in prog.index_of:
        return f"address 0x{addr:x}"
    insn = prog.at(pc)
    if insn.spec.form not in MEMORY_FORMS:
        return f"address 0x{addr:x}"
    size, kind = insn.spec.size, _kind(insn)
    access = f"{kind} of {size} byte{'s' if size > 1 else ''} at 0x{addr:x}"
    if insn.spec.form is Form.ATOMIC and addr % size:
        return f"{access} is not {size}-byte aligned (atomic accesses must be)"
    if kind != "load":
        block = next((b for b in prog.memory if b.contains(addr, size)), None)
        if block is not None and not block.writable:
            return f"{access} writes to read-only memory ({block.name})"
    allowed = native.checks.get(pc, Check.ANY)
    return f"{access} is outside {_names(allowed)}"
