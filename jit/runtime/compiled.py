"""What every compiled engine shares: the callable users get back from
:func:`jit.compile`, input-buffer handling, the helper memory accessor, the
mapping of run-time error codes to exceptions, and the disassembly listing.

Concrete engines: :class:`jit.native.NativeProgram` (x86-64 code run in this
process) and :class:`backends.emulator.EmulatedProgram` (unicorn).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from backends.base import NativeCode
from jit.core.abi import Span
from jit.core.errors import (
    MemoryAccessError,
)
from jit.core.helpers import Helper

if TYPE_CHECKING:
    from jit.analysis.verifier import VerifierResult

Mem = bytes | bytearray | memoryview | None


class RegionAccessor:
    """A :class:`jit.helpers.MemoryAccessor` over a list of regions.

    ``read_raw``/``write_raw`` do the actual transfer once the access has been
    checked to lie inside one region, so a helper can never touch memory the
    program does not own.
    """

    def __init__(
        self,
        regions: list[Span],
        read_raw: Callable[[int, int], bytes],
        write_raw: Callable[[int, bytes], None],
    ):
        self.regions = regions
        self._read_raw = read_raw
        self._write_raw = write_raw

    def _region(self, addr: int, size: int, write: bool) -> Span:
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
