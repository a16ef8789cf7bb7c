"""What every backend shares: the run-time context layout, the backend interface
and the record of generated code.

Native entry point, identical on both architectures::

    uint64_t entry(uint8_t *mem, uint64_t mem_len, Context *ctx);

R1 = mem, R2 = mem_len, R10 = ``ctx->stack_end`` (the BPF stack is a separate
buffer owned by the runtime, ``STACK_BYTES`` long, so that its address is known
to the runtime, the helper accessor and the emulator alike).

The prologue saves the host's callee-saved registers, stores the host stack
pointer in ``ctx->saved_sp`` and *calls* the main program; every BPF ``exit``
is a native return, so a local call's exit returns to its caller and the main
program's exit returns to the prologue. The prologue repeats that call
``ctx->repeat`` times (the native batch loop behind ``fn.run_many``), reloading
R1, R2 and R10 each time, then restores registers and returns R0.

Errors detected in generated code (failed bounds check, exhausted step budget,
call depth, a helper that raised, a bad ``callx`` id, falling off the end) store
an ``ErrorCode`` in ``ctx->error`` and the BPF slot in ``ctx->error_pc``, then
jump to the abort stub, which reloads the host stack pointer from
``ctx->saved_sp`` and runs the epilogue. The runtime turns the code into the
matching :class:`jit.BpfError`.

Helper call: a Python helper is reached through one dispatcher shared by all
compiled programs, so the call passes the helper id and the context too::

    uint64_t helper(u64 r1, u64 r2, u64 r3, u64 r4, u64 r5, u64 helper_id, Context *ctx);

x86-64: id in r9, ctx as the 7th argument on the stack. ARM64: id in x5, ctx in
x6. The function pointer is ``ctx->helpers[helper_id]`` (native helpers ignore
the two extra arguments). After the call the generated code checks
``ctx->error`` and aborts if it is set.

Array-map lookup fast path (helper 1, ``map_lookup_elem``). When
``CodegenOptions.array_maps`` lists map descriptor addresses (the compiler
fills it with the program's array and per-CPU array maps unless the user
replaced helper 1 or passed ``fast_lookup=False``), the backend emits a small
stub, labelled ``map_lookup`` in ``NativeCode.labels``, and the runtime puts
its address in ``ctx->helpers[1]``, moving the previous entry (the Python
dispatcher, or the emulator's trap slot 1) to ``ctx->lookup_fallback``. The
stub is entered exactly like a helper and:

* compares R1 with each listed descriptor address (so a stray R1 is never
  dereferenced); no match: it *jumps* to ``ctx->lookup_fallback`` with every
  argument register, the helper id and the stack untouched, and the Python
  helper runs (other map types, bad pointers with their proper error);
* checks that the 4-byte key at R2 lies inside the BPF stack (where clang
  puts keys); else the fallback, which checks the access like any helper;
* reads the u32 key and the descriptor fields (offsets ``jit.maps.Desc``)
  and returns ``values + key * value_stride``, or 0 when ``key >=
  max_entries``, without leaving generated code.

It is ordinary generated code, so it runs the same under the emulator (only
the fallback reaches the trap).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field

from jit.core.errors import CompileError
from jit.core.isa import MAX_CALL_DEPTH, STACK_SIZE
from jit.core.program import Program


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
    HELPERS = 128  # HELPER_SLOTS function pointers, indexed by helper id


HELPER_SLOTS = 512
CONTEXT_SIZE = Ctx.HELPERS + 8 * HELPER_SLOTS
STACK_BYTES = STACK_SIZE * MAX_CALL_DEPTH  # one 512-byte frame per call level


class ErrorCode(enum.IntEnum):
    NONE = 0
    MEMORY = 1  # bounds check failed
    STEPS = 2  # max_steps exhausted
    CALL_DEPTH = 3  # too many nested local calls
    HELPER = 4  # a helper raised, or an unknown helper id
    FELL_OFF = 5  # execution ran past the last instruction
    BAD_CALLX = 6  # callx with an id outside the helper table


class Check(enum.IntFlag):
    """Where a run-time bounds check lets one access land (``[addr, addr+size)``
    inside one of these; atomics must also be naturally aligned)."""

    MEM = 1  # the input buffer
    FRAME = 2  # the current stack frame [R10 - 512, R10)
    STACK = 4  # every active stack frame [R10 - 512, stack end)
    BLOCKS = 8  # the program's host memory blocks (prog.memory); stores: writable ones only
    ANY = MEM | STACK | BLOCKS


@dataclass(frozen=True)
class CodegenOptions:
    """Choices that change the generated code."""

    helper_ids: frozenset[int] = frozenset()  # helpers the program may call
    max_steps: int | None = None  # count back-edges and calls when set
    bounds_check: bool | str = False  # False | True | "auto" (issue 7)
    array_maps: tuple[int, ...] = ()  # descriptor addresses the map-lookup stub serves
    # Run-time bounds checks: slot -> where the access may land (jit.safety
    # plans them from bounds_check and the verifier's result).
    checks: Mapping[int, Check] = field(default_factory=dict, hash=False)
    # Zero the BPF stack before every run (as the interpreter does). A verified
    # program never reads a stack byte it has not written, so jit.compile turns
    # this off for verified programs: it is most of the fixed cost of a run.
    zero_stack: bool = True


@dataclass
class NativeCode:
    """Machine code for one program plus the map back to BPF slots.

    ``offsets[i]`` is the native offset of ``prog.instructions[i]``;
    ``entry`` is the offset of the entry point (the prologue).
    """

    arch: str
    code: bytes
    offsets: tuple[int, ...]
    entry: int
    prog: Program
    assembly: str = ""
    # Named native offsets of code that belongs to no instruction (prologue,
    # epilogue, error stubs), for listings; optional.
    labels: dict[str, int] = field(default_factory=dict)
    # The run-time bounds checks emitted: slot -> allowed regions (issue 7).
    checks: Mapping[int, Check] = field(default_factory=dict)

    @property
    def checked(self) -> frozenset[int]:
        """Slots of the accesses that got a run-time bounds check."""
        return frozenset(self.checks)

    def pc_at(self, native_offset: int) -> int | None:
        """The BPF slot whose code contains ``native_offset`` (None outside it)."""
        if not self.offsets or native_offset < self.offsets[0]:
            return None
        index = bisect_right(self.offsets, native_offset) - 1
        return self.prog.pcs[index]


class Backend(ABC):
    """One emitter per architecture: a single loop over the instructions that
    dispatches on ``insn.op`` and produces assembly text for keystone."""

    arch: str
    bpf_registers: tuple[str, ...]  # the CPU register holding R0..R10 (for emulator traces)

    @abstractmethod
    def generate(self, prog: Program, options: CodegenOptions) -> str:
        """The whole program as one assembly text, with a label per instruction."""

    @abstractmethod
    def compile(self, prog: Program, options: CodegenOptions) -> NativeCode:
        """Generate, assemble in one keystone call, and record the offsets."""


def checked_helper_id(prog: Program, pc: int, helper_id: int, options: CodegenOptions) -> int:
    """``helper_id`` of the call at ``pc``, once checked to be registered and
    inside the helper table; raises CompileError naming the instruction."""
    if helper_id not in options.helper_ids:
        known = ", ".join(map(str, sorted(options.helper_ids))) or "none"
        raise CompileError(f"{prog.describe(pc)}: unknown helper id {helper_id} (known: {known})")
    if not 0 <= helper_id < HELPER_SLOTS:
        raise CompileError(
            f"{prog.describe(pc)}: helper id {helper_id} is outside the helper table (0..{HELPER_SLOTS - 1})"
        )
    return helper_id
