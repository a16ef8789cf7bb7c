"""The emitter template: the code-generation algorithm both backends share.

A backend is a subclass of :class:`Emitter` that says *how* to express each
step in its own assembly, and a subclass of :class:`TemplateBackend` that
names its emitter, its assembler and its unicorn/capstone descriptions. The
template decides *what* is emitted and in which order:

* **the driver**: one loop over the instructions; each gets the label
  ``insn_label(pc)`` and is lowered by the primitive :data:`LOWERING` names
  for its :class:`~jit.core.isa.Op` (an operation without a row is a
  CompileError naming the instruction). A jump to a slot that is not an
  instruction is a CompileError too.
* **the layout**: the prologue (save host registers, bind the context, the
  batch loop that runs the program ``ctx->repeat`` times with fresh
  registers, stack and step budget), the epilogue, the ``exit0`` and ``fail``
  paths, the array-map lookup stub, the bounds-check slow paths and fault
  stubs, the error stubs; then the program; then the fell-off-the-end stub.
  Everything before the first instruction maps to no BPF slot.
* **error stubs**: ``site(code, pc)`` names a stub that stores an
  :class:`~jit.core.abi.ErrorCode` and the slot and aborts; one per pair.
* **run-time bounds checks**: which regions are tested, in which order, the
  first inline and the others out of line (see :meth:`Emitter.check_access`).
* **the max_steps budget**: validated once; back-edges and local calls cost
  one step (the backend's ``count_step``).
* **the offset table**: a ``.quad`` table of every label, appended to the text
  so that one keystone call also reports where each instruction landed.

What a new backend must provide (each primitive is documented on
:class:`Emitter`): the label prefix ``LOCAL``; ``emit``-level helpers of its
own; the lowerings ``alu shift divide neg movsx byteswap jump callx
call_local call_out exit load_imm64 load store atomic ldpacket``; the fixed
code ``direct_entry batch_begin batch_next batch_store enter zero_stack start_run call_program next_run epilogue exit0
abort error_stub``; ``count_step`` and ``goto``; the bounds-check steps
``check_setup check_address check_aligned region_test record_fault
block_test block_answers``; the lookup-stub steps ``lookup_match
lookup_fallback lookup_array return_zero``; and, on its TemplateBackend,
``assemble``, ``emulation`` and ``disassembler``. Then one entry in
``jit.backends._BACKENDS``.
"""

from __future__ import annotations

import functools
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from jit.backends.base import (
    Backend,
    CodegenOptions,
    NativeCode,
    block_spans,
    check_regions,
    checked_helper_id,
    emitted_checks,
)
from jit.backends.patching import BranchForm, PatchAssembler
from jit.core import isa
from jit.core.abi import Check, ErrorCode, Span, check_max_steps
from jit.core.bytecode import Bytecode, Dispatch, Instruction
from jit.core.errors import CompileError
from jit.core.isa import Form, Op

# The primitive of Emitter that lowers each operation.
LOWERING: Dispatch[str] = Dispatch(
    "backend",
    {
        **dict.fromkeys((Op.ADD, Op.SUB, Op.MUL, Op.OR, Op.AND, Op.XOR, Op.MOV), "alu"),
        **dict.fromkeys((Op.LSH, Op.RSH, Op.ARSH), "shift"),
        **dict.fromkeys((Op.DIV, Op.SDIV, Op.MOD, Op.SMOD), "divide"),
        Op.NEG: "neg",
        Op.MOVSX: "movsx",
        **dict.fromkeys((Op.LE, Op.BE, Op.BSWAP), "byteswap"),
        **dict.fromkeys(isa.JUMP_CONDITIONS, "jump"),
        Op.JA: "ja",
        Op.CALL: "call_helper",
        Op.CALLX: "callx",
        Op.CALL_LOCAL: "call_local",
        Op.CALL_BTF: "call_btf",
        Op.EXIT: "exit",
        Op.LDDW: "lddw",
        **dict.fromkeys((Op.LDX, Op.LDXS), "load"),
        **dict.fromkeys((Op.ST, Op.STX), "store"),
        **dict.fromkeys(isa.ATOMIC_OPS, "atomic"),
        **dict.fromkeys((Op.LDABS, Op.LDIND), "ldpacket"),
    },
)

_NOT_BATCHABLE = frozenset({isa.Op.CALL, isa.Op.CALLX, isa.Op.LDABS, isa.Op.LDIND})
PREAMBLES_KEPT = 64
_PREAMBLES: dict[tuple, tuple[str, ...]] = {}  # Emitter.preamble's texts, shared by the process's compiles

# Code that belongs to no instruction, under its NativeCode.labels name.
STUBS = (
    "direct",
    "prologue",
    "batch",
    "epilogue",
    "exit0",
    "fail",
    "generated",
    "map_lookup",
    "bounds_checks",
    "error_stubs",
    "interrupt",
    "fell_off",
)


class Emitter(ABC):
    """Assembly for one program, a fresh emitter per compilation.

    ``items`` holds the output: strings are instructions or label
    definitions (ending in ``:``); a backend may add objects of its own
    (ARM64's range-checked branches) and resolve them in :meth:`render`.
    """

    LOCAL: ClassVar[str]  # prefix of every label the emitter makes

    def __init__(self, prog: Bytecode, options: CodegenOptions):
        check_max_steps(options.max_steps)
        self.prog = prog
        self.options = options
        self.items: list = []
        self.sites: dict[tuple[ErrorCode, int], str] = {}
        self.faults: dict[int, str] = {}  # slot -> stub recording a failed bounds check
        self.block_routines: dict[bool, str] = {}  # for stores? -> routine label
        self.slow_paths: list = []  # out-of-line tests of the second and later check regions
        self.temps = 0
        self.temp_prefix = ""  # "p" while the preamble is emitted: its labels never meet the body's
        lowering = {op: getattr(self, name) for op, name in LOWERING.handlers.items()}
        self.lower: Dispatch[Callable[[int, Instruction], None]] = Dispatch(LOWERING.engine, lowering)

    # -- output ----------------------------------------------------------------

    def emit(self, *lines: str) -> None:
        self.items.extend(lines)

    def label(self, name: str) -> None:
        self.items.append(name + ":")

    def local(self, name: str) -> str:
        return self.LOCAL + name

    def fresh(self) -> str:
        """A new label name, unique in this program."""
        self.temps += 1
        return self.local(f"{self.temp_prefix}t{self.temps}")

    def stub(self, name: str) -> str:
        """The label of the fixed code ``name`` (one of :data:`STUBS`)."""
        return self.local(name)

    def insn_label(self, pc: int) -> str:
        return self.local(str(pc))

    def error(self, pc: int, message: str) -> CompileError:
        return CompileError(f"{self.prog.describe(pc)}: {message}")

    def site(self, code: ErrorCode, pc: int) -> str:
        """Label of the stub reporting ``code`` at slot ``pc``."""
        return self.sites.setdefault((code, pc), self.local(f"s{int(code)}_{pc}"))

    @contextmanager
    def out_of_line(self) -> Iterator[None]:
        """Emit into the bounds-check slow paths instead of the main line."""
        inline, self.items = self.items, self.slow_paths
        try:
            yield
        finally:
            self.items = inline

    # -- the driver --------------------------------------------------------------

    def build(self) -> str:
        """The whole program as one assembly text."""
        for pc, insn in self.prog:
            self.label(self.insn_label(pc))
            self.lower(self.prog, pc, insn)(pc, insn)
        self.label(self.stub("fell_off"))
        self.goto(self.site(ErrorCode.FELL_OFF, self.prog.pcs[-1]))
        body, self.items = self.items, self.preamble()
        # From here on the context register and ctx->saved_sp hold at every
        # instruction, so a signal may send the code to the interrupt stub.
        self.label(self.stub("generated"))
        self.map_lookup_stub()
        self.check_stubs()
        self.label(self.stub("error_stubs"))
        for (code, pc), label in self.sites.items():
            self.label(label)
            self.error_stub(code, pc)
        self.label(self.stub("interrupt"))  # the slot comes from where the signal found the code
        self.error_stub(ErrorCode.INTERRUPTED, 0)
        self.items += body
        return self.render()

    def preamble(self) -> list:
        """The items of :meth:`prologue`, emitted once per backend and choice of the
        options it depends on (a pure-text preamble is the same for every program)."""
        key = (type(self), bool(self.options.checks), self.options.zero_stack, self.options.max_steps, self.batchable)
        kept = _PREAMBLES.get(key)
        if kept is not None:
            return list(kept)
        outer, self.items = self.items, []
        temps, self.temps, self.temp_prefix = self.temps, 0, "p"
        try:
            self.prologue()
            items = self.items
        finally:
            self.items, self.temps, self.temp_prefix = outer, temps, ""
        if all(type(item) is str for item in items):  # a backend's own items (ARM64 branches) belong to one emitter
            if len(_PREAMBLES) >= PREAMBLES_KEPT:
                _PREAMBLES.clear()
            _PREAMBLES[key] = tuple(items)
        return items

    def render(self) -> str:
        return "\n".join(self.items) + "\n"

    def prologue(self) -> None:
        batch, resume = self.local("repeat"), self.local("resume")
        self.label(self.stub("direct"))
        self.direct_entry()
        self.label(self.stub("prologue"))
        self.enter()
        if self.options.checks:
            self.check_setup()
        self.label(batch)
        if self.options.zero_stack:
            self.zero_stack()
        self.start_run(self.options.max_steps)
        self.call_program(self.insn_label(self.prog.pcs[0]))
        self.label(resume)
        self.next_run(batch)
        self.label(self.stub("epilogue"))
        self.epilogue()
        self.label(self.stub("exit0"))
        self.exit0(resume)
        self.label(self.stub("fail"))
        self.abort()
        if self.batchable:
            self.batch_entry()

    @functools.cached_property
    def batchable(self) -> bool:
        """Whether the code gets a batch entry: no helper calls, no back-edges
        (a batch cannot be interrupted) and no LD_ABS/LD_IND (whose exit0 resumes
        the repeat loop)."""
        for pc, insn, target in zip(self.prog.pcs, self.prog.instructions, self.prog.targets):
            if insn.spec.op in _NOT_BATCHABLE or (target is not None and target <= pc):
                return False
        return True

    def batch_entry(self) -> None:
        """``entry(BatchJob *job, 0, ctx)``: the program once per packet of the
        job, each run set up as the prologue sets up one (see :class:`jit.core.abi.BatchJob`)."""
        packet = self.local("packet")
        self.label(self.stub("batch"))
        self.enter()
        self.batch_begin()
        self.label(packet)
        self.batch_next(self.stub("epilogue"))
        if self.options.checks:
            self.check_setup()
        if self.options.zero_stack:
            self.zero_stack()
        self.start_run(self.options.max_steps)
        self.call_program(self.insn_label(self.prog.pcs[0]))
        self.batch_store(packet)

    def target(self, pc: int, insn: Instruction) -> tuple[str, bool]:
        """The label of a jump's or local call's target, and whether it is a back-edge."""
        target = self.prog.targets[self.prog.index_of[pc]]
        if target not in self.prog.index_of:
            raise self.error(pc, f"jump target {target} is not an instruction of the program")
        return self.insn_label(target), target <= pc

    # -- lowerings the template owns -------------------------------------------------

    def ja(self, pc: int, insn: Instruction) -> None:
        label, back = self.target(pc, insn)
        if back:
            self.count_step(pc)
        self.goto(label)

    def call_helper(self, pc: int, insn: Instruction) -> None:
        self.call_out(pc, checked_helper_id(self.prog, pc, insn.imm, self.options))

    def call_btf(self, pc: int, insn: Instruction) -> None:
        raise self.error(pc, "calls by BTF id (call runtime) are not supported")

    def lddw(self, pc: int, insn: Instruction) -> None:
        if insn.src:
            raise self.error(pc, f"unresolved relocation ({insn.spec.mnemonic}): LD_IMM64 with src {insn.src}")
        self.load_imm64(insn.dst, insn.imm)

    # -- run-time bounds checks ----------------------------------------------------

    def check_access(self, pc: int, insn: Instruction) -> None:
        """The bounds check of the access at ``pc``, when one is planned: the
        first region inline (the common case runs straight through), the others
        on an out-of-line slow path that returns to ``ok`` or reports the fault."""
        allowed = self.options.checks.get(pc)
        if not allowed:
            return
        regions = check_regions(insn, allowed, self.options)
        fault = self.faults.setdefault(pc, self.local(f"f{pc}"))
        self.check_address(insn, last=regions != [Check.FRAME])
        if insn.spec.form is Form.ATOMIC:
            self.check_aligned(insn.spec.size, fault)
        if not regions:
            self.goto(fault)
            return
        slow = self.fresh() if len(regions) > 1 else fault
        self.region_test(regions[0], insn, miss=slow)
        if len(regions) == 1:
            return
        ok = self.fresh()
        self.label(ok)
        with self.out_of_line():
            self.label(slow)
            for region in regions[1:-1]:
                miss = self.fresh()
                self.region_test(region, insn, miss=miss, hit=ok)
                self.label(miss)
            self.region_test(regions[-1], insn, miss=fault)
            self.goto(ok)

    def block_routine(self, write: bool) -> str:
        """The routine that tests the (writable, for a store) host memory blocks."""
        return self.block_routines.setdefault(write, self.local(f"blocks_{'w' if write else 'r'}"))

    def check_stubs(self) -> None:
        """The slow paths, one fault stub per checked access (record the
        address, report MEMORY) and the block routines."""
        if not self.faults:
            return
        self.label(self.stub("bounds_checks"))
        self.items += self.slow_paths
        for pc, label in self.faults.items():
            self.label(label)
            self.record_fault()
            self.goto(self.site(ErrorCode.MEMORY, pc))
        for write, routine in self.block_routines.items():
            found = f"{routine}_found"
            self.label(routine)
            for block in block_spans(self.options, write):
                skip = self.fresh()
                self.block_test(block, skip, found)
                self.label(skip)
            self.block_answers(found)

    # -- the array-map lookup stub (backends.base) -------------------------------------

    def map_lookup_stub(self) -> None:
        if not self.options.array_maps:
            return
        array, fallback, miss = self.local("lookup_array"), self.local("lookup_fallback"), self.local("lookup_miss")
        self.label(self.stub("map_lookup"))
        for address in self.options.array_maps:
            self.lookup_match(address, array)
        self.label(fallback)
        self.lookup_fallback()
        self.label(array)
        self.lookup_array(fallback, miss)
        self.label(miss)
        self.return_zero()

    # -- what each backend provides ------------------------------------------------

    @abstractmethod
    def alu(self, pc: int, insn: Instruction) -> None:
        """add sub mul or and xor mov, register or immediate operand, 32 or 64 bits."""

    @abstractmethod
    def shift(self, pc: int, insn: Instruction) -> None:
        """lsh rsh arsh; the count is taken modulo the width."""

    @abstractmethod
    def divide(self, pc: int, insn: Instruction) -> None:
        """div sdiv mod smod: x / 0 = 0, x % 0 = x, INT_MIN / -1 = INT_MIN, never a trap."""

    @abstractmethod
    def neg(self, pc: int, insn: Instruction) -> None: ...

    @abstractmethod
    def movsx(self, pc: int, insn: Instruction) -> None: ...

    @abstractmethod
    def byteswap(self, pc: int, insn: Instruction) -> None:
        """le (truncate on a little-endian host), be and bswap."""

    @abstractmethod
    def jump(self, pc: int, insn: Instruction) -> None:
        """A conditional jump; back-edges cost a step (``count_step``)."""

    @abstractmethod
    def callx(self, pc: int, insn: Instruction) -> None:
        """A helper by id from a register: BAD_CALLX outside the table, HELPER for an empty slot."""

    @abstractmethod
    def call_local(self, pc: int, insn: Instruction) -> None:
        """A BPF-to-BPF call: a step, a fresh frame (CALL_DEPTH when none is left), R6-R10 kept."""

    @abstractmethod
    def call_out(self, pc: int, helper_id: int) -> None:
        """Call helper ``helper_id`` through ``ctx->helpers`` (the helper ABI of
        jit.backends.base), R1-R5 kept, R0 = result, then HELPER if ``ctx->error``."""

    @abstractmethod
    def exit(self, pc: int, insn: Instruction) -> None:
        """A native return (the caller's call, or the prologue's)."""

    @abstractmethod
    def load_imm64(self, reg: int, value: int) -> None:
        """BPF register ``reg`` = the 64-bit constant ``value``."""

    @abstractmethod
    def load(self, pc: int, insn: Instruction) -> None:
        """ldx/ldxs, after ``check_access``."""

    @abstractmethod
    def store(self, pc: int, insn: Instruction) -> None:
        """st/stx, after ``check_access``."""

    @abstractmethod
    def atomic(self, pc: int, insn: Instruction) -> None:
        """The atomic operations, after ``check_access``."""

    @abstractmethod
    def ldpacket(self, pc: int, insn: Instruction) -> None:
        """LD_ABS/LD_IND: R0 = big-endian load from the input buffer; out of bounds jumps to exit0."""

    @abstractmethod
    def direct_entry(self) -> None:
        """The one-run entry (falls into the prologue): ``ctx->error = 0``,
        ``ctx->repeat = 1``, ``ctx->mem_start``/``mem_end`` from mem and len,
        so a call from Python sets no context field itself."""

    @abstractmethod
    def batch_begin(self) -> None:
        """Right after :meth:`enter` in the batch entry: ``ctx->batch_job`` = the
        first argument, ``ctx->error`` = 0."""

    @abstractmethod
    def batch_next(self, done: str) -> None:
        """To ``done`` when ``job->index == job->count``; else the packet
        ``job->index`` becomes mem and len (where :meth:`start_run` reads them)
        and ``ctx->mem_start``/``mem_end``. Any register but the context's."""

    @abstractmethod
    def batch_store(self, packet: str) -> None:
        """``job->out[job->index] = R0``, ``job->index += 1``, back to ``packet``."""

    @abstractmethod
    def enter(self) -> None:
        """Save the host's callee-saved registers and mem/len, bind the context, store saved_sp."""

    @abstractmethod
    def zero_stack(self) -> None: ...

    @abstractmethod
    def start_run(self, max_steps: int | None) -> None:
        """R1 = mem, R2 = len, R10 = stack end, the other registers 0, the step budget armed."""

    @abstractmethod
    def call_program(self, label: str) -> None: ...

    @abstractmethod
    def next_run(self, batch: str) -> None:
        """``ctx->repeat -= 1``; back to ``batch`` while it is positive."""

    @abstractmethod
    def epilogue(self) -> None:
        """Restore the host registers and return R0."""

    @abstractmethod
    def exit0(self, resume: str) -> None:
        """Unwind to saved_sp, R0 = 0, continue at ``resume``."""

    @abstractmethod
    def abort(self) -> None:
        """Store the error code and slot (set by an error stub), unwind, run the epilogue."""

    @abstractmethod
    def error_stub(self, code: ErrorCode, pc: int) -> None:
        """Load ``code`` and ``pc`` where ``abort`` expects them and go there."""

    @abstractmethod
    def goto(self, label: str) -> None: ...

    @abstractmethod
    def count_step(self, pc: int) -> None:
        """One step of the max_steps budget, STEPS when exhausted (nothing when no budget)."""

    @abstractmethod
    def check_setup(self) -> None:
        """At entry: the input buffer's check bounds (nothing fits when it is empty) and the stack's."""

    @abstractmethod
    def check_address(self, insn: Instruction, last: bool) -> None:
        """The access's first address (and, with ``last``, its address + size - 8) in scratch registers."""

    @abstractmethod
    def check_aligned(self, size: int, fault: str) -> None: ...

    @abstractmethod
    def region_test(self, region: Check, insn: Instruction, miss: str, hit: str | None = None) -> None:
        """Whether the access lies in ``region``: go to ``hit`` if so (else fall
        through), or with ``hit`` None fall through if so (else go to ``miss``)."""

    @abstractmethod
    def record_fault(self) -> None:
        """``ctx->fault_addr`` = the checked address."""

    @abstractmethod
    def block_test(self, block: Span, skip: str, found: str) -> None:
        """Go to ``found`` if the access lies in ``block``, to ``skip`` if not."""

    @abstractmethod
    def block_answers(self, found: str) -> None:
        """A block routine's two returns: not found, then ``found``."""

    @abstractmethod
    def lookup_match(self, address: int, array: str) -> None:
        """Go to ``array`` when R1 is the descriptor at ``address``."""

    @abstractmethod
    def lookup_fallback(self) -> None:
        """Jump to ``ctx->lookup_fallback`` with every argument untouched."""

    @abstractmethod
    def lookup_array(self, fallback: str, miss: str) -> None:
        """The key in the BPF stack (else ``fallback``), below max_entries (else
        ``miss``): return values + key * value_stride."""

    @abstractmethod
    def return_zero(self) -> None: ...


class TemplateBackend(Backend):
    """A backend built from an :class:`Emitter` subclass and an assembler."""

    emitter: ClassVar[type[Emitter]]

    def generate(self, prog: Bytecode, options: CodegenOptions) -> str:
        return self.emitter(prog, options).build()

    def compile(self, prog: Bytecode, options: CodegenOptions) -> NativeCode:
        emitter = self.emitter(prog, options)
        text = emitter.build()
        absent = {"map_lookup"} if not options.array_maps else set()
        absent |= {"bounds_checks"} if not emitter.faults else set()
        absent |= {"batch"} if not emitter.batchable else set()
        stubs = {name: emitter.stub(name) for name in STUBS if name not in absent}
        names = [emitter.insn_label(pc) for pc in prog.pcs] + list(stubs.values())
        if options.assembler == "keystone":
            table = "".join(f".quad {', '.join(names[i : i + 64])}\n" for i in range(0, len(names), 64))
            code = self.assemble(text + table, prog.name)
            split = len(code) - 8 * len(names)
            offsets = struct.unpack_from(f"<{len(names)}Q", code, split)
        else:
            code, placed = _patcher(type(self)).assemble(text, prog.name)
            split, offsets = len(code), tuple(placed[name] for name in names)
        self.check_layout(emitter, split, dict(zip(names, offsets)))
        count = len(prog.pcs)
        labels = dict(zip(stubs, offsets[count:]))
        checks = emitted_checks(prog, options.checks)
        return NativeCode(
            self.arch, code[:split], offsets[:count], labels["prologue"], prog, text, labels=labels, checks=checks
        )

    @abstractmethod
    def assemble(self, text: str, what: str) -> bytes:
        """Assembly text to machine code in one keystone call (CompileError naming ``what`` when rejected)."""

    width: ClassVar[int | None] = None  # bytes of every instruction, on a fixed-width ISA
    branch_mnemonics: ClassVar[frozenset[str]]  # the mnemonics branch_form encodes

    @staticmethod
    @abstractmethod
    def branch_form(mnemonic: str, operands: tuple[str, ...]) -> BranchForm | None:
        """How the copy-and-patch assembler encodes a branch to a label (None: not one)."""

    def check_layout(self, emitter: Emitter, size: int, placed: dict[str, int]) -> None:
        """Raise CompileError if the assembler's layout (code size, label -> offset)
        is not the one the emitter planned; nothing to check by default."""


@functools.cache
def _patcher(backend: type[TemplateBackend]) -> PatchAssembler:
    """The process's copy-and-patch assembler for a backend (its memo is shared)."""
    instance = backend()
    return PatchAssembler(instance.assemble, backend.branch_form, backend.branch_mnemonics, backend.width)
