"""The run-time ABI that generated code, the runtime and the emulator share.

Native entry point, identical on both architectures::

    uint64_t entry(uint8_t *mem, uint64_t mem_len, Context *ctx);

``Context`` is a block of u64 fields at the byte offsets of :class:`Ctx`,
followed by the helper table: ``HELPER_SLOTS`` function pointers indexed by
helper id. The BPF stack is a buffer of ``STACK_BYTES`` owned by the runtime
(one 512-byte frame per call level), so that its address is known to the
runtime, the helper accessor and the emulator alike. Errors detected in
generated code are reported as an :class:`ErrorCode` in ``ctx->error`` and the
BPF slot in ``ctx->error_pc``. Where a run-time bounds check lets an access
land is a :class:`Check` set; the memory blocks a program may reach besides
its buffer and stack (maps, global data) are :class:`Span` records. A map
descriptor (what ``lddw.mapfd`` resolves to) has the fields of :class:`Desc`.
See :mod:`jit.backends.base` for the code-generation side.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from jit.core.errors import UsageError
from jit.core.isa import MAX_CALL_DEPTH, STACK_SIZE


class Ctx(enum.IntEnum):
    """Byte offsets of the u64 fields of the run-time context."""

    ERROR = 0  # ErrorCode set by generated code or the helper dispatcher
    ERROR_PC = 8  # BPF slot of the instruction that failed
    SAVED_SP = 16  # host stack pointer at entry, restored by the abort stub
    STEPS = 24  # remaining step budget (when max_steps is set)
    STACK_LIMIT = 32  # lowest R10 a local call may create (call depth limit)
    REPEAT = 40  # runs left in this batch (>= 1)
    MEM_START = 48  # input buffer bounds, for run-time bounds checks
    MEM_END = 56
    STACK_START = 64  # BPF stack bounds (all frames)
    STACK_END = 72
    HANDLE = 80  # opaque id of the Python run state, read by the dispatcher
    LOOKUP_FALLBACK = 88  # helper 1 for lookups the array-map stub does not serve
    FAULT_ADDR = 96  # address of the access whose bounds check failed
    CHECK_MEM_START = 104  # input buffer for bounds checks: start (all ones when empty)
    CHECK_MEM_LAST = 112  # ... and end - 8 (0 when empty); set by the prologue
    STACK_LAST = 120  # BPF stack end - 8; set by the prologue
    BATCH_JOB = 128  # the BatchJob a batch entry runs (set by the entry itself)
    HELPERS = 136  # HELPER_SLOTS function pointers, indexed by helper id


HELPER_SLOTS = 512
CONTEXT_SIZE = Ctx.HELPERS + 8 * HELPER_SLOTS
STACK_BYTES = STACK_SIZE * MAX_CALL_DEPTH  # one 512-byte frame per call level


class ErrorCode(enum.IntEnum):
    """What ``ctx->error`` holds after a failed run."""

    NONE = 0
    MEMORY = 1  # bounds check failed
    STEPS = 2  # max_steps exhausted
    CALL_DEPTH = 3  # too many nested local calls
    HELPER = 4  # a helper raised, or an unknown helper id
    FELL_OFF = 5  # execution ran past the last instruction
    BAD_CALLX = 6  # callx with an id outside the helper table
    INTERRUPTED = 7  # a signal redirected the code to its interrupt stub (jit.runtime.interrupts)


class Check(enum.IntFlag):
    """Where a run-time bounds check lets one access land (``[addr, addr+size)``
    inside one of these; atomics must also be naturally aligned)."""

    MEM = 1  # the input buffer
    FRAME = 2  # the current stack frame [R10 - 512, R10)
    STACK = 4  # every active stack frame [R10 - 512, stack end)
    BLOCKS = 8  # the program's host memory blocks (prog.memory); stores: writable ones only
    ANY = MEM | STACK | BLOCKS


class Desc(enum.IntEnum):
    """Byte offsets of the u64 fields of a map descriptor."""

    TYPE = 0
    KEY_SIZE = 8
    VALUE_SIZE = 16
    MAX_ENTRIES = 24
    VALUES = 32  # host address of value slot 0
    VALUE_STRIDE = 40  # round_up(value_size, 8)
    FLAGS = 48


DESCRIPTOR_SIZE = 64


@dataclass(frozen=True)
class Span:
    """A named span of memory ``[start, end)`` in some engine's addresses,
    and whether the program may write it. A map's value area is a row of
    ``item``-byte values every ``stride`` bytes: an access must stay inside
    one value (``stride`` 0: the span is one piece)."""

    name: str
    start: int
    end: int
    writable: bool = True
    stride: int = 0
    item: int = 0

    def contains(self, addr: int, size: int) -> bool:
        if not (self.start <= addr and addr + size <= self.end):
            return False
        return not self.stride or (addr - self.start) % self.stride + size <= self.item


MAX_STEPS = 1 << 63  # the step budget is a signed 64-bit counter in native code


def check_max_steps(value: object) -> None:
    """Raise UsageError unless ``value`` is None or a step budget every engine can count."""
    if value is not None and (type(value) is not int or not 0 <= value < MAX_STEPS):
        raise UsageError(f"max_steps must be an int in 0..2**63-1, not {value!r}")


class BatchJob(enum.IntEnum):
    """Byte offsets of the u64 fields of a batch job, the first argument of a
    program's batch entry ``entry(BatchJob *job, 0, ctx)`` (``NativeCode.labels["batch"]``,
    see :mod:`jit.backends.base`): it runs the program once per packet
    ``index <= i < count`` on ``base + offsets[i]``, ``lengths[i]`` bytes long,
    stores R0 in ``out[i]`` and advances ``index``; a failed run stops it with
    ``ctx->error`` set and ``index`` at the failing packet."""

    BASE = 0
    OFFSETS = 8
    LENGTHS = 16
    OUT = 24
    COUNT = 32
    INDEX = 40


BATCH_JOB_SIZE = 48


def batch_job(base: int, offsets: int, lengths: int, out: int, count: int) -> bytes:
    """The bytes of a :class:`BatchJob` holding these addresses, at packet 0."""
    fields = {BatchJob.BASE: base, BatchJob.OFFSETS: offsets, BatchJob.LENGTHS: lengths, BatchJob.OUT: out}
    fields[BatchJob.COUNT] = count
    return struct.pack(f"<{len(BatchJob)}Q", *(fields.get(field, 0) for field in BatchJob))  # fields in offset order
