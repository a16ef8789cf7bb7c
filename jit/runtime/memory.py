"""The interpreter's memory model: named regions of a flat 64-bit address space.

Every address a program can hold that points at memory lies in one region:

* ``mem``: the input buffer, at :data:`MEM_BASE` plus the host buffer's address
  modulo 8 (so atomics are aligned here when they are natively; R1 holds that address and R2
  its length; both are 0 when there is no buffer, and then the region is empty);
* ``stack``: `jit.core.isa.MAX_CALL_DEPTH` frames of `jit.core.isa.STACK_SIZE`
  bytes ending at :data:`STACK_TOP` (the main program's R10). A local call gets
  the next frame below; only the frames of active calls are accessible;
* the program's host memory blocks (maps, global data: ``prog.memory``), at
  their host addresses, which every engine shares;
* regions a helper hands out at run time with :meth:`Memory.expose`.

Each load, store and atomic must lie entirely inside one region, otherwise it
raises :class:`jit.MemoryAccessError`. Non-atomic accesses may be unaligned;
atomic ones must be naturally aligned. Memory is little-endian.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jit.core.bits import MASK64
from jit.core.errors import MemoryAccessError
from jit.core.isa import MAX_CALL_DEPTH, STACK_SIZE
from jit.frontend.hostmem import HostMemory
from jit.runtime.buffers import Mem, alignment_offset, writable_buffer

MEM_BASE = 0x1_0000_0000
STACK_BYTES = STACK_SIZE * MAX_CALL_DEPTH
STACK_BASE = 0x2_0000_0000
STACK_TOP = STACK_BASE + STACK_BYTES
EXPOSED_BASE = 0x10_0000_0000
EXPOSED_STRIDE = 0x1_0000_0000  # one 4 GiB slot per exposed buffer: regions never touch

Buffer = bytearray | memoryview


class Segment:
    """A buffer mapped at ``base``; ``[lo, end)`` is the part a program may touch."""

    __slots__ = ("base", "buf", "end", "item", "lo", "name", "stride", "writable")

    def __init__(self, name: str, base: int, buf: Buffer, writable: bool = True, stride: int = 0, item: int = 0):
        self.name = name
        self.base = base
        self.buf = buf
        self.writable = writable
        self.lo = base
        self.end = base + len(buf)
        self.stride, self.item = stride, item  # a row of map values: stay inside one (jit.core.abi.Span)

    def contains(self, addr: int, size: int) -> bool:
        if not (self.lo <= addr and addr + size <= self.end):
            return False
        return not self.stride or (addr - self.base) % self.stride + size <= self.item

    def __repr__(self) -> str:
        access = "rw" if self.writable else "ro"
        return f"{self.name} [0x{self.lo:x}, 0x{self.end:x}) {access}"


class Memory:
    """The regions of one interpreter run; also the helpers' memory accessor.

    It implements :class:`jit.MemoryAccessor` (``read``/``write``) and
    :meth:`expose`, through which a helper hands the program a buffer of its own.
    """

    def __init__(self, mem: Mem = None, blocks: Sequence[HostMemory] = ()):
        self.stack = Segment("stack", STACK_BASE, bytearray(STACK_BYTES))
        self.blocks = [Segment(b.name, b.address, b.view, b.writable, b.stride, b.item) for b in blocks]
        self.reset(mem)

    def reset(self, mem: Mem = None) -> None:
        """Start a run: ``mem`` as the input buffer, a zeroed stack with one frame."""
        buf, _ = writable_buffer(mem)
        self.input = Segment("mem", MEM_BASE + alignment_offset(buf), buf)  # the host's alignment
        self.stack.buf[:] = bytes(STACK_BYTES)
        self.set_frames(1)
        self.regions = [self.stack, self.input, *self.blocks]

    def release(self) -> None:
        """End a run: drop every reference to the caller's and helpers' buffers."""
        self.reset(None)

    @property
    def input_address(self) -> int:
        """What R1 holds at entry: the input buffer's address, or 0 if it is empty."""
        return self.input.base if len(self.input.buf) else 0

    @property
    def input_length(self) -> int:
        return len(self.input.buf)

    def set_frames(self, count: int) -> int:
        """Make the top ``count`` stack frames accessible; returns the newest frame's R10."""
        self.stack.lo = STACK_TOP - STACK_SIZE * count
        return STACK_TOP - STACK_SIZE * (count - 1)

    def expose(self, buffer: Buffer | bytes, name: str, writable: bool = True) -> int:
        """Map ``buffer`` for the rest of the run and return its address.

        A bytearray or writable memoryview is used in place (program writes
        land in it); bytes can only be exposed read-only.
        """
        buf = buffer if isinstance(buffer, bytearray) else memoryview(buffer).cast("B")
        if writable and isinstance(buf, memoryview) and buf.readonly:
            raise TypeError(f"cannot expose read-only {type(buffer).__name__} {name!r} as writable")
        exposed = len(self.regions) - 2 - len(self.blocks)
        if len(buf) >= EXPOSED_STRIDE:
            raise ValueError(f"buffer {name!r} is too large to expose ({len(buf)} bytes)")
        region = Segment(name, EXPOSED_BASE + exposed * EXPOSED_STRIDE, buf, writable)
        self.regions.append(region)
        return region.base

    # --- checked access -------------------------------------------------------

    def region_at(self, addr: int, size: int, write: bool = False) -> Segment:
        """The region holding ``[addr, addr + size)``; raises MemoryAccessError."""
        for region in self.regions:
            if region.lo <= addr and addr + size <= region.end:
                if region.stride and (addr - region.base) % region.stride + size > region.item:
                    raise MemoryAccessError(
                        f"{'store' if write else 'load'} of {size} bytes at 0x{addr:x} crosses the end of a"
                        f" {region.item}-byte value of {region!r}"
                    )
                if write and not region.writable:
                    raise MemoryAccessError(f"store of {size} bytes at 0x{addr:x} into read-only region {region!r}")
                return region
        kind = "store" if write else "load"
        regions = ", ".join(repr(r) for r in self.regions if r.end > r.lo)
        raise MemoryAccessError(
            f"{kind} of {size} bytes at 0x{addr & MASK64:x} is outside every memory region ({regions})"
        )

    def load(self, addr: int, size: int) -> int:
        """The unsigned little-endian value of ``size`` bytes at ``addr``."""
        region = self.region_at(addr, size)
        offset = addr - region.base
        return int.from_bytes(region.buf[offset : offset + size], "little")

    def store(self, addr: int, size: int, value: int) -> None:
        """Store the low ``size`` bytes of ``value`` (unsigned) at ``addr``."""
        region = self.region_at(addr, size, write=True)
        offset = addr - region.base
        region.buf[offset : offset + size] = value.to_bytes(size, "little")

    def update(self, addr: int, size: int, fn: Callable[[int], int]) -> int:
        """Atomically replace the value at ``addr`` with ``fn(old)``; returns ``old``.

        Atomic accesses must be naturally aligned.
        """
        if addr % size:
            raise MemoryAccessError(f"atomic access of {size} bytes at 0x{addr & MASK64:x} is not {size}-byte aligned")
        region = self.region_at(addr, size, write=True)
        offset = addr - region.base
        old = int.from_bytes(region.buf[offset : offset + size], "little")
        region.buf[offset : offset + size] = fn(old).to_bytes(size, "little")
        return old

    def input_load_be(self, addr: int, size: int) -> int | None:
        """Big-endian value of ``size`` bytes of the input buffer at ``addr``,
        or None when they are not all inside it (legacy LD_ABS/LD_IND)."""
        region = self.input
        if not region.contains(addr, size):
            return None
        offset = addr - region.base
        return int.from_bytes(region.buf[offset : offset + size], "big")

    # --- jit.MemoryAccessor ----------------------------------------------

    def read(self, addr: int, size: int) -> bytes:
        region = self.region_at(addr, size)
        offset = addr - region.base
        return bytes(region.buf[offset : offset + size])

    def write(self, addr: int, data: bytes) -> None:
        region = self.region_at(addr, len(data), write=True)
        offset = addr - region.base
        region.buf[offset : offset + len(data)] = bytes(data)
