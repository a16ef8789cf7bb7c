"""What every compiled engine shares: the callable users get back from
:func:`jit.compile`, input-buffer handling, the helper memory accessor, the
mapping of run-time error codes to exceptions, and the disassembly listing.

Concrete engines: :class:`jit.native.NativeProgram` (x86-64 code run in this
process) and :class:`backends.emulator.EmulatedProgram` (unicorn).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.base import ErrorCode, NativeCode
from jit.core.errors import (
    CallDepthError,
    ExecutionError,
    HelperError,
    MemoryAccessError,
    StepLimitError,
)
from jit.core.program import Program
from jit.frontend.hostmem import HostMemory
from jit.runtime.helpers import Helper

if TYPE_CHECKING:
    from jit.analysis.verifier import VerifierResult

Mem = bytes | bytearray | memoryview | None


@dataclass(frozen=True)
class Region:
    """A span of program memory: ``[start, end)`` in the engine's addresses."""

    name: str
    start: int
    end: int
    writable: bool = True

    def contains(self, addr: int, size: int) -> bool:
        return self.start <= addr and addr + size <= self.end


def block_regions(blocks: Iterable[HostMemory]) -> list[Region]:
    """Regions over host memory blocks (``prog.memory``: maps, global data) at
    their host addresses, read-only where the program may not write."""
    return [Region(block.name, block.address, block.end, block.writable) for block in blocks]


class RegionAccessor:
    """A :class:`jit.helpers.MemoryAccessor` over a list of regions.

    ``read_raw``/``write_raw`` do the actual transfer once the access has been
    checked to lie inside one region, so a helper can never touch memory the
    program does not own.
    """

    def __init__(
        self,
        regions: list[Region],
        read_raw: Callable[[int, int], bytes],
        write_raw: Callable[[int, bytes], None],
    ):
        self.regions = regions
        self._read_raw = read_raw
        self._write_raw = write_raw

    def _region(self, addr: int, size: int, write: bool) -> Region:
        for region in self.regions:
            if region.contains(addr, size):
                if write and not region.writable:
                    raise MemoryAccessError(f"helper wrote {size} bytes to read-only {region.name} at 0x{addr:x}")
                return region
        kind = "wrote" if write else "read"
        raise MemoryAccessError(f"helper {kind} {size} bytes at 0x{addr:x}, outside every memory region of the program")

    def read(self, addr: int, size: int) -> bytes:
        self._region(addr, size, write=False)
        return self._read_raw(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        self._region(addr, len(data), write=True)
        self._write_raw(addr, bytes(data))


def writable_buffer(mem: Mem) -> tuple[bytearray | memoryview, bool]:
    """A writable buffer holding ``mem`` and whether it is the caller's own.

    A bytearray or a writable memoryview is used in place, so the program's
    writes land in the caller's object; bytes and read-only views are copied.
    """
    if mem is None:
        return bytearray(), False
    if isinstance(mem, bytearray):
        return mem, True
    if isinstance(mem, memoryview):
        if not mem.readonly and mem.contiguous:
            return mem.cast("B"), True
        return bytearray(mem.tobytes()), False
    if isinstance(mem, bytes):
        return bytearray(mem), False
    raise TypeError(f"mem must be None, bytes, bytearray or memoryview, not {type(mem).__name__}")


_ERRORS: dict[ErrorCode, tuple[type[ExecutionError], str]] = {
    ErrorCode.MEMORY: (MemoryAccessError, "bad memory access"),
    ErrorCode.STEPS: (StepLimitError, "step budget (max_steps) exhausted"),
    ErrorCode.CALL_DEPTH: (CallDepthError, "local calls nested too deep"),
    ErrorCode.HELPER: (HelperError, "helper call failed"),
    ErrorCode.FELL_OFF: (ExecutionError, "execution fell off the end of the program"),
    ErrorCode.BAD_CALLX: (HelperError, "callx with a helper id outside the helper table"),
}


def execution_error(code: int, pc: int | None, prog: Program, detail: str = "") -> ExecutionError:
    """The exception for a run-time error code reported by generated code."""
    cls, what = _ERRORS.get(ErrorCode(code), (ExecutionError, f"error code {code}"))
    where = prog.describe(pc) if pc is not None else "unknown instruction"
    return cls(f"{where}: {what}{': ' + detail if detail else ''}", pc=pc)


class CompiledProgram(ABC):
    """The callable returned by :func:`jit.compile`: ``fn(mem=None) -> int``.

    ``fn.code`` is the machine code, ``fn.arch`` its architecture,
    ``fn.emulated`` whether it runs under unicorn, ``fn.disasm()`` a listing.
    """

    emulated: bool = False
    # What the verifier found (set by jit.compile; None with verify=False):
    # fn.verification.unproven, and fn.native.checked for the checks emitted.
    verification: VerifierResult | None = None

    def __init__(self, native: NativeCode, helpers: dict[int, Helper]):
        self.native = native
        self.prog = native.prog
        self.helpers = helpers

    @property
    def code(self) -> bytes:
        return self.native.code

    @property
    def arch(self) -> str:
        return self.native.arch

    def __call__(self, mem: Mem = None) -> int:
        """Run once; returns R0 as an unsigned 64-bit int."""
        return self.run_many(mem, 1)

    @abstractmethod
    def run_many(self, mem: Mem, n: int) -> int:
        """Run ``n`` times on the same buffer in one native loop; returns the last R0."""

    def close(self) -> None:
        """Release the code and run-time memory now rather than at garbage collection."""

    def __enter__(self) -> CompiledProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def disasm(self) -> str:
        """Capstone listing: each BPF instruction above the native code it became."""
        from backends.listing import listing

        return listing(self.native)
