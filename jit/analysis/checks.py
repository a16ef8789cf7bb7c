"""Safe execution of compiled code: where run-time bounds checks go,
and what a failed one reports.

``jit.compile(bounds_check=...)`` asks :func:`plan_checks` which memory
accesses (loads, stores, atomics) get a check, and where each may land
(:class:`jit.backends.base.Check`):

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

Without a verifier result (``jit.compile(verify=False)``), or when the
verifier found a possible violation only on a state that joining paths made
imprecise (``VerifierResult.imprecise``: nothing it derived can be trusted
then), ``"auto"`` has nothing proven and checks like ``True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jit.core.abi import Check
from jit.core.bytecode import Bytecode, Instruction
from jit.core.errors import CompileError
from jit.core.isa import FRAME_POINTER, STACK_SIZE, Access

if TYPE_CHECKING:
    from jit.analysis.verifier import VerifierResult

# Verifier region name -> where a check lets the access land.
_REGION_CHECKS = {
    "BUF": Check.MEM,
    "STACK": Check.FRAME,
    "MAP": Check.BLOCKS,
    "MAP_VALUE": Check.BLOCKS,
    "MAP_VALUE_OR_NULL": Check.BLOCKS,
}


def validate_mode(bounds_check: object) -> bool | str:
    """``bounds_check`` if it is one of the modes, else a CompileError."""
    if not (bounds_check is True or bounds_check is False or bounds_check == "auto"):
        raise CompileError(f"bounds_check must be 'auto', True or False, not {bounds_check!r}")
    return bounds_check  # type: ignore[return-value]


def safe_by_construction(insn: Instruction) -> bool:
    """An access at a constant offset from R10 inside the current frame (aligned, for an atomic)."""
    if insn.base_register != FRAME_POINTER:
        return False
    size = insn.spec.size
    aligned = insn.spec.access is not Access.ATOMIC or insn.off % size == 0
    return -STACK_SIZE <= insn.off <= -size and aligned


def writes_frame_pointer(prog: Bytecode) -> bool:
    """Whether any instruction of ``prog`` writes R10 (e.g. its dst, or the src
    of a fetching atomic, which receives the old value)."""
    # R10 is named only by the dst or src field (no instruction writes it implicitly)
    return any(
        FRAME_POINTER in insn.regs_written for insn in prog.instructions if FRAME_POINTER in (insn.dst, insn.src)
    )


def plan_checks(prog: Bytecode, bounds_check: bool | str, result: VerifierResult | None) -> dict[int, Check]:
    """Slot -> allowed regions of every access that gets a run-time check."""
    mode = validate_mode(bounds_check)
    if mode is False:
        return {}
    accesses = [(pc, insn) for pc, insn in prog if insn.spec.access is not None]
    if mode is True or result is None or result.imprecise is not None:
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
