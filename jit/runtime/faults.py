"""What a failed run of generated code reports: the :class:`jit.BpfError`
for an :class:`~jit.core.abi.ErrorCode`, naming the instruction, and why a
failed bounds check failed. Native and emulated runs report through here, so
they raise the same errors."""

from __future__ import annotations

from collections.abc import Mapping

from jit.core.abi import Check, ErrorCode
from jit.core.errors import (
    CallDepthError,
    ExecutionError,
    HelperError,
    Interrupted,
    MemoryAccessError,
    StepLimitError,
)
from jit.core.isa import Access
from jit.frontend.program import Program

_ERRORS: dict[ErrorCode, tuple[type[ExecutionError], str]] = {
    ErrorCode.MEMORY: (MemoryAccessError, "bad memory access"),
    ErrorCode.STEPS: (StepLimitError, "step budget (max_steps) exhausted"),
    ErrorCode.CALL_DEPTH: (CallDepthError, "local calls nested too deep"),
    ErrorCode.HELPER: (HelperError, "helper call failed"),
    ErrorCode.FELL_OFF: (ExecutionError, "execution fell off the end of the program"),
    ErrorCode.BAD_CALLX: (HelperError, "callx with a helper id outside the helper table"),
    ErrorCode.INTERRUPTED: (Interrupted, "interrupted by a signal (the run stopped here)"),
}
_REGION_NAMES = (
    (Check.MEM, "the input buffer"),
    (Check.FRAME, "the current stack frame"),
    (Check.STACK, "the active stack frames"),
    (Check.BLOCKS, "the program's memory blocks"),
)


def execution_error(code: int, pc: int | None, prog: Program, detail: str = "") -> ExecutionError:
    """The exception for a run-time error code reported by generated code."""
    cls, what = _ERRORS.get(ErrorCode(code), (ExecutionError, f"error code {code}"))
    where = prog.describe(pc) if pc is not None else "unknown instruction"
    return cls(f"{where}: {what}{': ' + detail if detail else ''}", pc=pc)


def fault_detail(prog: Program, checks: Mapping[int, Check], pc: int | None, addr: int) -> str:
    """Why the bounds check of the access at ``pc`` failed for address ``addr``
    (``checks``: where each checked access was allowed to land)."""
    if pc is None or pc not in prog.index_of or prog.at(pc).spec.access is None:
        return f"address 0x{addr:x}"
    spec = prog.at(pc).spec
    size, kind = spec.size, spec.access
    access = f"{kind.value} of {size} byte{'s' if size > 1 else ''} at 0x{addr:x}"
    if kind is Access.ATOMIC and addr % size:
        return f"{access} is not {size}-byte aligned (atomic accesses must be)"
    if kind is not Access.LOAD:
        block = next((b for b in prog.memory if b.contains(addr, size)), None)
        if block is not None and not block.writable:
            return f"{access} writes to read-only memory ({block.name})"
    row = next((b for b in prog.memory if b.stride and b.address <= addr < b.end), None)
    if row is not None and not row.contains(addr, size):
        return f"{access} crosses the end of a {row.item}-byte value of {row.name}"
    allowed = checks.get(pc, Check.ANY)
    names = [name for flag, name in _REGION_NAMES if flag in allowed]
    where = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{access} is outside {where}"
