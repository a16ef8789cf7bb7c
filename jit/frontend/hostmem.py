"""Page-aligned blocks of host memory shared by every engine.

Everything a program can reach besides its input buffer and its stack (map
values, map descriptors, global data) lives in :class:`HostMemory` blocks.
A block has one stable host address for its whole life, so all engines use
the same addresses:

* native code dereferences the host address directly;
* the unicorn runner maps each block at the same guest address
  (``uc.mem_map_ptr(block.address, block.mapped_size, perms, block.address)``,
  with ``perms`` read-only when ``block.writable`` is False);
* the interpreter adds a region ``[address, address + size)`` over
  ``block.view``.

Blocks are mapped read-write and never executable. ``writable`` describes the
program's view only (``.rodata`` is read-only for the program, while Python
may still write it through ``view``).
"""

from __future__ import annotations

import ctypes
import mmap

from jit.core.abi import Span
from jit.core.bits import round_up

PAGE_SIZE = mmap.PAGESIZE


class HostMemory:
    """``size`` zeroed bytes at a page-aligned, stable host address.

    ``view`` is a writable memoryview of exactly ``size`` bytes;
    ``mapped_size`` is the page-rounded length of the mapping (what an
    emulator maps). ``data`` initialises the first bytes.
    """

    def __init__(self, size: int, name: str, writable: bool = True, data: bytes = b"", stride: int = 0, item: int = 0):
        if size < 0:
            raise ValueError(f"host memory {name!r}: negative size {size}")
        if len(data) > size:
            raise ValueError(f"host memory {name!r}: {len(data)} bytes of data do not fit in {size}")
        self.name = name
        self.size = size
        self.writable = writable
        self.stride, self.item = stride, item  # a row of values (see jit.core.abi.Span)
        self.mapped_size = round_up(max(size, 1), PAGE_SIZE)
        self._mmap = mmap.mmap(-1, self.mapped_size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        # The ctypes array keeps an export on the mapping: it can never be
        # closed (and its address reused) while this block is alive.
        self._anchor = (ctypes.c_char * self.mapped_size).from_buffer(self._mmap)
        self.address: int = ctypes.addressof(self._anchor)
        self.view = memoryview(self._mmap)[:size]
        self.view[: len(data)] = data

    @property
    def span(self) -> Span:
        """Where the block lies, and whether the program may write it."""
        return Span(self.name, self.address, self.end, self.writable, self.stride, self.item)

    @property
    def end(self) -> int:
        """One past the last byte a program may access."""
        return self.address + self.size

    def contains(self, addr: int, size: int = 1) -> bool:
        """True when ``[addr, addr + size)`` lies inside the block (inside one value of a row)."""
        return self.span.contains(addr, size)

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` from the start of the block."""
        return bytes(self.view[offset : offset + size])

    def write(self, offset: int, data: bytes) -> None:
        """Store ``data`` at ``offset`` from the start of the block."""
        self.view[offset : offset + len(data)] = data

    def __repr__(self) -> str:
        access = "rw" if self.writable else "ro"
        return f"<HostMemory {self.name} 0x{self.address:x}+{self.size} {access}>"
