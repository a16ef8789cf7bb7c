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

A second entry point with the same signature, ``labels["direct"]`` (the stub
just before the prologue, falling into it), first clears ``ctx->error`` and
sets ``ctx->repeat = 1`` and ``ctx->mem_start``/``mem_end`` from mem and len:
one run with no context field set by the caller. ``fn(mem)`` from Python and
the batch driver enter there.

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
* reads the u32 key and the descriptor fields (offsets ``jit.core.abi.Desc``)
  and returns ``values + key * value_stride``, or 0 when ``key >=
  max_entries``, without leaving generated code.

It is ordinary generated code, so it runs the same under the emulator (only
the fallback reaches the trap).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field

from jit.core.abi import HELPER_SLOTS, Check, Span
from jit.core.bytecode import Bytecode, Instruction
from jit.core.errors import CompileError
from jit.core.isa import FRAME_POINTER, Access, Op

ASSEMBLERS = ("patch", "keystone")


@dataclass(frozen=True)
class CodegenOptions:
    """Choices that change the generated code."""

    helper_ids: frozenset[int] = frozenset()  # helpers the program may call
    max_steps: int | None = None  # count back-edges and calls when set
    bounds_check: bool | str = False  # False | True | "auto"
    array_maps: tuple[int, ...] = ()  # descriptor addresses the map-lookup stub serves
    # Run-time bounds checks: slot -> where the access may land (jit.analysis.checks
    # plans them from bounds_check and the verifier's result).
    checks: Mapping[int, Check] = field(default_factory=dict, hash=False)
    # The program's host memory blocks (maps, global data): where Check.BLOCKS lets an access land.
    blocks: tuple[Span, ...] = ()
    # Zero the BPF stack before every run (as the interpreter does). A verified
    # program never reads a stack byte it has not written, so jit.compile turns
    # this off for verified programs: it is most of the fixed cost of a run.
    zero_stack: bool = True
    # "patch": copy-and-patch from keystone's bytes for each distinct line
    # (jit.backends.patching); "keystone": keystone assembles the whole text.
    # The same bytes either way (tests/test_patching.py).
    assembler: str = "patch"

    def __post_init__(self) -> None:
        if self.assembler not in ASSEMBLERS:
            raise CompileError(f"unknown assembler {self.assembler!r} (valid: {', '.join(ASSEMBLERS)})")


@dataclass(frozen=True)
class CodeFacts:
    """What the runtime asks of every program it wraps, found in one pass."""

    helper_ids: frozenset[int] | None  # helpers called directly; None: callx (any id)
    loops: bool  # a jump or local call to an earlier slot
    stores: bool  # a store or atomic through a register other than R10 (it may write the input)

    @classmethod
    def of(cls, prog: Bytecode) -> CodeFacts:
        ids: set[int] | None = set()
        loops = stores = False
        for pc, insn, target in zip(prog.pcs, prog.instructions, prog.targets):
            spec = insn.spec
            if spec.op is Op.CALLX:
                ids = None
            elif spec.op is Op.CALL and ids is not None:
                ids.add(insn.imm)
            loops = loops or (target is not None and target <= pc)
            stores = stores or (spec.access in (Access.STORE, Access.ATOMIC) and insn.dst != FRAME_POINTER)
        return cls(None if ids is None else frozenset(ids), loops, stores)


@dataclass
class NativeCode:
    """Machine code for one program plus the map back to BPF slots.

    ``offsets[i]`` is the native offset of ``prog.instructions[i]``;
    ``entry`` is the offset of the entry point (the prologue); ``facts``
    are computed once (a copy made with ``dataclasses.replace`` keeps them).
    """

    arch: str
    code: bytes
    offsets: tuple[int, ...]
    entry: int
    prog: Bytecode
    assembly: str = ""
    # Named native offsets of code that belongs to no instruction (prologue,
    # epilogue, error stubs), for listings; optional.
    labels: dict[str, int] = field(default_factory=dict)
    # The run-time bounds checks emitted: slot -> allowed regions.
    checks: Mapping[int, Check] = field(default_factory=dict)
    facts: CodeFacts = None  # type: ignore[assignment] # filled from prog when not given

    def __post_init__(self) -> None:
        if self.facts is None:
            self.facts = CodeFacts.of(self.prog)

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


@dataclass(frozen=True)
class Emulation:
    """How unicorn runs one architecture's code (unicorn's register ids), for
    :mod:`jit.runtime.emulated`."""

    uc_arch: int
    uc_mode: int
    entry_args: tuple[int, int, int]  # mem, len, ctx
    helper_args: tuple[int, int, int, int, int]  # R1-R5 at a helper call
    result: int  # the C return register
    sp: int
    pc: int
    link: int | None  # register holding the return address; None: pushed on the stack
    ret: bytes  # one native return instruction, 4 bytes
    registers: tuple[int, ...]  # every general-purpose register, zeroed once
    bpf_registers: tuple[int, ...]  # the registers holding R0..R10, for traces


class Backend(ABC):
    """One emitter per architecture: a single loop over the instructions that
    dispatches on ``insn.op`` and produces assembly text for keystone."""

    arch: str

    @abstractmethod
    def generate(self, prog: Bytecode, options: CodegenOptions) -> str:
        """The whole program as one assembly text, with a label per instruction."""

    @abstractmethod
    def compile(self, prog: Bytecode, options: CodegenOptions) -> NativeCode:
        """Generate, assemble in one keystone call, and record the offsets."""

    @abstractmethod
    def emulation(self) -> Emulation:
        """How unicorn runs this architecture (imports unicorn)."""

    @abstractmethod
    def disassembler(self) -> object:
        """A capstone disassembler for this architecture (imports capstone)."""

    @abstractmethod
    def interrupt_handler(self, data: int) -> bytes:
        """Machine code of a ``SA_SIGINFO`` signal handler ``(signum, info, ucontext)``
        for this host. ``data`` is the address of four u64: ``start``, ``size``,
        ``stub``, ``stopped_at``. When the interrupted program counter lies in
        ``[start, start + size)`` the handler stores it in ``stopped_at`` and
        resumes at ``stub`` instead; anywhere else it changes nothing
        (jit.runtime.interrupts)."""


def checked_helper_id(prog: Bytecode, pc: int, helper_id: int, options: CodegenOptions) -> int:
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


def block_spans(options: CodegenOptions, write: bool) -> tuple[Span, ...]:
    """The host memory blocks an access may land in: the writable ones for a write."""
    return tuple(block for block in options.blocks if block.writable or not write)


def check_regions(insn: Instruction, allowed: Check, options: CodegenOptions) -> list[Check]:
    """The regions a backend tests for one checked access, one flag each,
    likeliest first: the buffer, the stack, the blocks, but the stack first
    for an access through R10; without the blocks when it could land in none."""
    order = [Check.MEM, Check.FRAME, Check.STACK, Check.BLOCKS]
    if insn.base_register == FRAME_POINTER:
        order = [Check.FRAME, Check.STACK, Check.MEM, Check.BLOCKS]
    blocks = block_spans(options, writes(insn))
    return [region for region in order if region in allowed and (region is not Check.BLOCKS or blocks)]


def writes(insn: Instruction) -> bool:
    """Whether a memory access writes (stores and atomics)."""
    return insn.spec.access is not Access.LOAD


def emitted_checks(prog: Bytecode, checks: Mapping[int, Check]) -> dict[int, Check]:
    """The planned checks that belong to a memory access of ``prog`` (what a backend emits)."""
    return {
        pc: allowed
        for pc, allowed in checks.items()
        if allowed and pc in prog.index_of and prog.at(pc).spec.access is not None
    }
