"""ARM64 (AArch64) backend: eBPF to ARM64 assembly text, assembled by keystone.

Register map (the Linux kernel's)::

    R0 x7   R1-R5 x0-x4   R6-R9 x19-x22   R10 x25   scratch x9-x12
    x26  the run-time context (callee-saved, so it survives helper calls)
    x5   helper id at a helper call, x6 the context (see jit.backends.base)

The generated code follows the native ABI of :mod:`jit.backends.base`:
``entry(mem, len, ctx)`` saves the host's callee-saved registers, keeps
``sp`` 16-byte aligned and *calls* the main program ``ctx->repeat`` times,
each run with a zeroed BPF stack, R0 and R3-R9 zero and the step budget
re-armed. Every BPF ``exit`` is a ``ret``; a local call saves the caller's
R6-R9, R10 and x30 on the host stack and gets a fresh 512-byte frame. A
helper call keeps R1-R5 (the interpreter's choice) and copies x0 to R0.

Branch ranges are checked by the emitter's own layout
(:mod:`jit.backends.arm64_encoding`); after assembling, the offsets keystone gives
the labels (the template's ``.quad`` table) are compared with that layout.

Layout: the emitter template's (backends.template): the prologue, epilogue,
abort path, the array-map lookup stub, bounds-check slow paths and error stubs
first (so a native offset there maps to no BPF instruction), then one label
``L<slot>`` per instruction, then the stub that reports falling off the end.

Run-time bounds checks (``CodegenOptions.checks``, planned by :mod:`jit.analysis.checks`;
the template's tests): x11 = address, x12 = address + size
- 8, then per allowed region the input buffer (``ctx->check_mem_start`` and
``ctx->check_mem_last``, set by the prologue), the current frame (``x11 -
(R10 - 512) <= 512 - size``, unsigned), the active frames (``R10 - 512 <=
x11``, ``x12 <= ctx->stack_last``), the host memory blocks (a shared routine
entered with ``bl``, x30 parked in x10, answering in x9). An atomic must also
be naturally aligned. A failure stores x11 in ``ctx->fault_addr`` and reports
MEMORY.
"""

from __future__ import annotations

from jit.backends.arm64_encoding import (
    ALU_REG,
    ATOMIC_ALU,
    BRANCH_MNEMONICS,
    COND,
    LOGICAL,
    MEM,
    SXT,
    Branch,
    branch_form,
    imm_value,
    is_addsub_imm,
    is_logical_imm,
    resolve,
)
from jit.backends.base import CodegenOptions, Emulation, writes
from jit.backends.template import Emitter, TemplateBackend
from jit.core.abi import HELPER_SLOTS, STACK_BYTES, BatchJob, Check, Ctx, Desc, ErrorCode, Span
from jit.core.bits import s32
from jit.core.bytecode import Bytecode, Instruction
from jit.core.errors import CompileError
from jit.core.isa import STACK_SIZE, Form, Op

# --- register map ----------------------------------------------------------------
_BPF_REGS = (7, 0, 1, 2, 3, 4, 19, 20, 21, 22, 25)  # x-register number of R0..R10
X = tuple(f"x{n}" for n in _BPF_REGS)
W = tuple(f"w{n}" for n in _BPF_REGS)
SCRATCH = (9, 10, 11, 12)  # never BPF-visible; nothing live in them across a call
CTX = "x26"
HELPER_ID, HELPER_CTX = "x5", "x6"


def _reg(number: int, bits: int) -> str:
    return f"{'x' if bits == 64 else 'w'}{number}"


class _Emitter(Emitter):
    """ARM64 instructions for one program (the template's primitives): strings
    are single instructions (4 bytes) or labels, and :class:`Branch` items are
    resolved once the layout is known (:meth:`render`)."""

    LOCAL = "L"

    def __init__(self, prog: Bytecode, options: CodegenOptions):
        super().__init__(prog, options)
        self.branches: list[Branch] = []
        self.labels: dict[str, int] = {}  # native offset of every label, once resolved
        self.size = 0  # code size in bytes, once resolved

    # --- primitives ------------------------------------------------------------------
    def branch(self, op: str, target: str, reg: str = "") -> None:
        item = Branch(op, target, reg)
        self.items.append(item)
        self.branches.append(item)

    def goto(self, label: str) -> None:
        self.branch("b", label)

    def fail(self, op: str, code: ErrorCode, pc: int, reg: str = "") -> None:
        """Branch (``op``: a condition or cbz/cbnz) to the stub reporting ``code`` at ``pc``."""
        self.branch(op, self.site(code, pc), reg)

    def mov_imm(self, reg: int, value: int, bits: int = 64) -> None:
        """Load a constant: one orr with a bitmask immediate, else movz/movn + movk."""
        name, mask = _reg(reg, bits), (1 << bits) - 1
        value &= mask
        if is_logical_imm(value, bits):
            self.emit(f"orr {name}, {'x' if bits == 64 else 'w'}zr, #0x{value:x}")
            return
        halves = [(value >> shift) & 0xFFFF for shift in range(0, bits, 16)]
        inverted = halves.count(0xFFFF) > halves.count(0)  # movn starts from all ones
        fill = 0xFFFF if inverted else 0
        first, *rest = [index for index, half in enumerate(halves) if half != fill] or [0]
        operand = ~halves[first] & 0xFFFF if inverted else halves[first]
        self.emit(f"{'movn' if inverted else 'movz'} {name}, #0x{operand:x}, lsl #{16 * first}")
        self.emit(*(f"movk {name}, #0x{halves[index]:x}, lsl #{16 * index}" for index in rest))

    def add_imm(self, dst: str, src: str, value: int, bits: int, scratch: int) -> None:
        """dst = src + value (value taken modulo 2**bits) with add/sub or a scratch."""
        mask = (1 << bits) - 1
        value &= mask
        negated = -value & mask
        if is_addsub_imm(value):
            if value or dst != src or bits == 32:
                self.emit(f"add {dst}, {src}, #{value}")
        elif is_addsub_imm(negated):
            self.emit(f"sub {dst}, {src}, #{negated}")
        else:
            self.mov_imm(scratch, value, bits)
            self.emit(f"add {dst}, {src}, {_reg(scratch, bits)}")

    def count_step(self, pc: int) -> None:
        if self.options.max_steps is None:
            return
        self.emit(f"ldr x9, [{CTX}, #{Ctx.STEPS}]", "subs x9, x9, #1", f"str x9, [{CTX}, #{Ctx.STEPS}]")
        self.fail("b.mi", ErrorCode.STEPS, pc)

    # --- fixed code --------------------------------------------------------------------------
    def direct_entry(self) -> None:
        assert Ctx.MEM_END == Ctx.MEM_START + 8  # one stp
        self.emit(f"str xzr, [x2, #{Ctx.ERROR}]", "mov x9, #1", f"str x9, [x2, #{Ctx.REPEAT}]")
        self.emit("add x9, x0, x1", f"stp x0, x9, [x2, #{Ctx.MEM_START}]")

    def batch_begin(self) -> None:
        self.emit(f"str x0, [{CTX}, #{Ctx.BATCH_JOB}]", f"str xzr, [{CTX}, #{Ctx.ERROR}]")

    def batch_next(self, done: str) -> None:  # x9 job, x10 index, x11 mem, x12 len
        self.emit(f"ldr x9, [{CTX}, #{Ctx.BATCH_JOB}]", f"ldr x10, [x9, #{BatchJob.INDEX}]")
        self.emit(f"ldr x11, [x9, #{BatchJob.COUNT}]", "cmp x10, x11")
        self.branch("b.hs", done)
        self.emit(f"ldr x11, [x9, #{BatchJob.OFFSETS}]", "ldr x11, [x11, x10, lsl #3]")
        self.emit(f"ldr x12, [x9, #{BatchJob.BASE}]", "add x11, x11, x12")
        self.emit(f"ldr x12, [x9, #{BatchJob.LENGTHS}]", "ldr x12, [x12, x10, lsl #3]")
        self.emit("stp x11, x12, [sp, #64]", "add x12, x11, x12")  # mem and len, as enter() saved them
        self.emit(f"stp x11, x12, [{CTX}, #{Ctx.MEM_START}]")

    def batch_store(self, packet: str) -> None:
        self.emit(f"ldr x9, [{CTX}, #{Ctx.BATCH_JOB}]", f"ldr x10, [x9, #{BatchJob.INDEX}]")
        self.emit(f"ldr x11, [x9, #{BatchJob.OUT}]", f"str {X[0]}, [x11, x10, lsl #3]")
        self.emit("add x10, x10, #1", f"str x10, [x9, #{BatchJob.INDEX}]")
        self.goto(packet)

    def enter(self) -> None:
        self.emit(
            "stp x29, x30, [sp, #-80]!",
            "mov x29, sp",
            f"stp {X[6]}, {X[7]}, [sp, #16]",
            f"stp {X[8]}, {X[9]}, [sp, #32]",
            f"stp {X[10]}, {CTX}, [sp, #48]",
            "stp x0, x1, [sp, #64]",  # mem and len, reloaded for every run of the batch
            f"mov {CTX}, x2",
            "mov x9, sp",
            f"str x9, [{CTX}, #{Ctx.SAVED_SP}]",
        )

    def zero_stack(self) -> None:
        zero = self.fresh()
        self.emit(f"ldr x9, [{CTX}, #{Ctx.STACK_START}]", f"mov x10, #{STACK_BYTES // 16}")
        self.label(zero)
        self.emit("stp xzr, xzr, [x9], #16", "subs x10, x10, #1")
        self.branch("b.ne", zero)

    def start_run(self, max_steps: int | None) -> None:
        self.emit(f"ldp {X[1]}, {X[2]}, [sp, #64]", f"ldr {X[10]}, [{CTX}, #{Ctx.STACK_END}]")
        self.emit(*(f"mov {X[r]}, #0" for r in (0, 3, 4, 5, 6, 7, 8, 9)))
        if max_steps is not None:
            self.mov_imm(SCRATCH[0], max_steps)
            self.emit(f"str x9, [{CTX}, #{Ctx.STEPS}]")

    def call_program(self, label: str) -> None:
        self.branch("bl", label)

    def next_run(self, batch: str) -> None:
        self.emit(f"ldr x9, [{CTX}, #{Ctx.REPEAT}]", "subs x9, x9, #1", f"str x9, [{CTX}, #{Ctx.REPEAT}]")
        self.branch("b.gt", batch)

    def epilogue(self) -> None:
        self.emit(
            f"mov x0, {X[0]}",
            f"ldp {X[6]}, {X[7]}, [sp, #16]",
            f"ldp {X[8]}, {X[9]}, [sp, #32]",
            f"ldp {X[10]}, {CTX}, [sp, #48]",
            "ldp x29, x30, [sp], #80",
            "ret",
        )

    def exit0(self, resume: str) -> None:
        self.emit(f"mov {X[0]}, #0", f"ldr x9, [{CTX}, #{Ctx.SAVED_SP}]", "mov sp, x9")
        self.goto(resume)

    def abort(self) -> None:  # x9 = ErrorCode, x10 = BPF slot
        self.emit(f"str x9, [{CTX}, #{Ctx.ERROR}]", f"str x10, [{CTX}, #{Ctx.ERROR_PC}]")
        self.emit(f"ldr x9, [{CTX}, #{Ctx.SAVED_SP}]", "mov sp, x9")
        self.goto(self.stub("epilogue"))

    def error_stub(self, code: ErrorCode, pc: int) -> None:
        self.mov_imm(SCRATCH[1], pc)
        self.emit(f"mov x{SCRATCH[0]}, #{int(code)}")
        self.goto(self.stub("fail"))

    # --- ALU -------------------------------------------------------------------------------
    def alu(self, pc: int, insn: Instruction) -> None:
        """Every ALU operation (shift, divide and neg too): udiv/sdiv and register
        shifts already behave as BPF wants."""
        op, bits = insn.op, insn.spec.bits
        regs = X if bits == 64 else W
        dst = regs[insn.dst]
        if op == Op.NEG:
            self.emit(f"neg {dst}, {dst}")
            return
        if insn.spec.form is Form.ALU_X:
            self.alu_reg(op, dst, regs[insn.src], bits)
            return
        value = imm_value(insn.imm, bits)
        if op == Op.MOV:
            self.mov_imm(_BPF_REGS[insn.dst], value, bits)
        elif op in (Op.ADD, Op.SUB):
            self.add_imm(dst, dst, value if op == Op.ADD else -value, bits, SCRATCH[0])
        elif op in (Op.LSH, Op.RSH, Op.ARSH):
            count = value & (bits - 1)
            if count or bits == 32:
                self.emit(f"{ALU_REG[op]} {dst}, {dst}, #{count}")
        elif op in LOGICAL and is_logical_imm(value, bits):
            self.emit(f"{ALU_REG[op]} {dst}, {dst}, #0x{value:x}")
        else:
            self.mov_imm(SCRATCH[1], value, bits)
            self.alu_reg(op, dst, _reg(SCRATCH[1], bits), bits)

    shift = divide = neg = alu

    def alu_reg(self, op: str, dst: str, src: str, bits: int) -> None:
        if op == Op.MOV:
            self.emit(f"mov {dst}, {src}")
        elif op in (Op.MOD, Op.SMOD):
            # q = dst / src (0 when src is 0), dst -= q * src: x % 0 == x, INT_MIN % -1 == 0.
            quotient = _reg(SCRATCH[0], bits)
            self.emit(f"{'udiv' if op == Op.MOD else 'sdiv'} {quotient}, {dst}, {src}")
            self.emit(f"msub {dst}, {quotient}, {src}, {dst}")
        else:
            # udiv/sdiv give 0 for a zero divisor and INT_MIN for INT_MIN / -1, as BPF
            # wants; register shifts use the count modulo the width, as BPF masks it.
            self.emit(f"{ALU_REG[op]} {dst}, {dst}, {src}")

    def movsx(self, pc: int, insn: Instruction) -> None:
        bits = insn.spec.bits
        dst = (X if bits == 64 else W)[insn.dst]
        self.emit(f"{SXT[insn.spec.ext]} {dst}, {W[insn.src]}")

    def byteswap(self, pc: int, insn: Instruction) -> None:
        ext, w, x = insn.spec.ext, W[insn.dst], X[insn.dst]
        if insn.op == Op.LE:  # the host is little-endian: truncate and zero-extend only
            if ext == 16:
                self.emit(f"uxth {w}, {w}")
            elif ext == 32:
                self.emit(f"mov {w}, {w}")
        elif ext == 16:
            self.emit(f"rev16 {w}, {w}", f"uxth {w}, {w}")
        elif ext == 32:
            self.emit(f"rev {w}, {w}")  # not rev32 x: the upper half must become zero
        else:
            self.emit(f"rev {x}, {x}")

    def load_imm64(self, reg: int, value: int) -> None:
        self.mov_imm(_BPF_REGS[reg], value)

    # --- jumps and calls -------------------------------------------------------------------
    def jump(self, pc: int, insn: Instruction) -> None:
        bits, op = insn.spec.bits, insn.op
        regs = X if bits == 64 else W
        dst = regs[insn.dst]
        label, back = self.target(pc, insn)
        if back:  # a step per execution, taken or not (as on x86-64); before the compare: it sets the flags
            self.count_step(pc)
        test = "tst" if op == Op.JSET else "cmp"
        if insn.spec.form is Form.JMP_X:
            self.emit(f"{test} {dst}, {regs[insn.src]}")
        else:
            value, signed = imm_value(insn.imm, bits), s32(insn.imm)
            if op == Op.JSET and is_logical_imm(value, bits):
                self.emit(f"tst {dst}, #0x{value:x}")
            elif op != Op.JSET and is_addsub_imm(signed):
                self.emit(f"cmp {dst}, #{signed}")
            elif op != Op.JSET and signed < 0 and is_addsub_imm(-signed):
                self.emit(f"cmn {dst}, #{-signed}")
            else:
                self.mov_imm(SCRATCH[0], value, bits)
                self.emit(f"{test} {dst}, {_reg(SCRATCH[0], bits)}")
        self.branch(f"b.{COND[op]}", label)

    def call_local(self, pc: int, insn: Instruction) -> None:
        label, _ = self.target(pc, insn)
        self.count_step(pc)
        self.emit(f"sub x9, {X[10]}, #{STACK_SIZE}", f"ldr x10, [{CTX}, #{Ctx.STACK_LIMIT}]", "cmp x9, x10")
        self.fail("b.lo", ErrorCode.CALL_DEPTH, pc)
        self.emit(
            f"stp {X[6]}, {X[7]}, [sp, #-48]!",
            f"stp {X[8]}, {X[9]}, [sp, #16]",
            f"stp {X[10]}, x30, [sp, #32]",
            f"mov {X[10]}, x9",
        )
        self.branch("bl", label)
        self.emit(
            f"ldp {X[10]}, x30, [sp, #32]",
            f"ldp {X[8]}, {X[9]}, [sp, #16]",
            f"ldp {X[6]}, {X[7]}, [sp], #48",
        )

    def call_out(self, pc: int, helper_id: int) -> None:
        self.emit(f"ldr x9, [{CTX}, #{Ctx.HELPERS + 8 * helper_id}]")
        self.mov_imm(5, helper_id)
        self._call(pc)

    def callx(self, pc: int, insn: Instruction) -> None:
        self.emit(f"mov {HELPER_ID}, {X[insn.dst]}", f"cmp {HELPER_ID}, #{HELPER_SLOTS}")
        self.fail("b.hs", ErrorCode.BAD_CALLX, pc)
        self.emit(f"add x9, {CTX}, {HELPER_ID}, lsl #3", f"ldr x9, [x9, #{Ctx.HELPERS}]")
        self.fail("cbz", ErrorCode.HELPER, pc, "x9")
        self._call(pc)

    def _call(self, pc: int) -> None:
        """Call the function pointer in x9 (id already in x5); R0 = its result.

        R1-R5 keep their values (the interpreter's choice) and x30 is saved:
        48 bytes of host stack, so sp stays 16-byte aligned.
        """
        self.emit(
            f"stp {X[1]}, {X[2]}, [sp, #-48]!",
            f"stp {X[3]}, {X[4]}, [sp, #16]",
            f"stp {X[5]}, x30, [sp, #32]",
            f"mov {HELPER_CTX}, {CTX}",
            "blr x9",
            f"mov {X[0]}, x0",
            f"ldp {X[5]}, x30, [sp, #32]",
            f"ldp {X[3]}, {X[4]}, [sp, #16]",
            f"ldp {X[1]}, {X[2]}, [sp], #48",
            f"ldr x9, [{CTX}, #{Ctx.ERROR}]",
        )
        self.fail("cbnz", ErrorCode.HELPER, pc, "x9")

    def exit(self, pc: int, insn: Instruction) -> None:
        self.emit("ret")

    # --- the array-map lookup stub: x5 (helper id), x6 (ctx) and x30 stay intact for the fallback
    def lookup_match(self, address: int, array: str) -> None:
        self.mov_imm(10, address)
        self.emit(f"cmp {X[1]}, x10")
        self.branch("b.eq", array)

    def lookup_fallback(self) -> None:
        self.emit(f"ldr x9, [{CTX}, #{Ctx.LOOKUP_FALLBACK}]", "br x9")

    def lookup_array(self, fallback: str, miss: str) -> None:
        desc, key = X[1], X[2]
        # The key must lie in the BPF stack: offset from its start <= STACK_BYTES - 4 (unsigned).
        self.emit(f"ldr x10, [{CTX}, #{Ctx.STACK_START}]", f"sub x10, {key}, x10")
        self.mov_imm(11, STACK_BYTES - 4)
        self.emit("cmp x10, x11")
        self.branch("b.hi", fallback)
        self.emit(f"ldr w10, [{key}]", f"ldr x11, [{desc}, #{Desc.MAX_ENTRIES}]", "cmp x10, x11")
        self.branch("b.hs", miss)
        self.emit(f"ldr x11, [{desc}, #{Desc.VALUE_STRIDE}]", f"ldr x12, [{desc}, #{Desc.VALUES}]")
        self.emit("madd x0, x10, x11, x12", "ret")  # x0: the C return register

    def return_zero(self) -> None:
        self.emit("mov x0, #0", "ret")

    # --- memory ------------------------------------------------------------------------------
    def address(self, base: str, off: int, size: int, mnemonics: tuple[str, str, int]) -> tuple[str, str]:
        """The mnemonic and memory operand for ``[base + off]`` (scratch x9 when needed)."""
        scaled, unscaled, _ = mnemonics
        if off >= 0 and off % size == 0 and off // size < 4096:
            return scaled, f"[{base}, #{off}]"
        if -256 <= off < 256:
            return unscaled, f"[{base}, #{off}]"
        self.mov_imm(SCRATCH[0], off)
        return scaled, f"[{base}, x{SCRATCH[0]}]"

    def load(self, pc: int, insn: Instruction) -> None:
        self.check_access(pc, insn)
        mnemonics = MEM[insn.op, insn.spec.size]
        op, operand = self.address(X[insn.src], insn.off, insn.spec.size, mnemonics)
        self.emit(f"{op} {_reg(_BPF_REGS[insn.dst], mnemonics[2])}, {operand}")

    def store(self, pc: int, insn: Instruction) -> None:
        self.check_access(pc, insn)
        size = insn.spec.size
        mnemonics = MEM[insn.op, size]
        bits = mnemonics[2]
        if insn.op == Op.STX:
            value = _reg(_BPF_REGS[insn.src], bits)
        elif insn.imm == 0:
            value = f"{'x' if bits == 64 else 'w'}zr"
        else:
            self.mov_imm(SCRATCH[1], imm_value(insn.imm, bits), bits)
            value = _reg(SCRATCH[1], bits)
        op, operand = self.address(X[insn.dst], insn.off, size, mnemonics)
        self.emit(f"{op} {value}, {operand}")

    def atomic(self, pc: int, insn: Instruction) -> None:
        """An exclusive load/store retry loop (keystone rejects the LSE atomics)."""
        self.check_access(pc, insn)
        bits, op = insn.spec.bits, insn.op
        addr = X[insn.dst]
        if insn.off:
            addr = f"x{SCRATCH[2]}"
            self.add_imm(addr, X[insn.dst], insn.off, 64, SCRATCH[0])
        src = _reg(_BPF_REGS[insn.src], bits)
        old, new, status = _reg(SCRATCH[0], bits), _reg(SCRATCH[3], bits), f"w{SCRATCH[1]}"
        retry = self.fresh()
        self.label(retry)
        self.emit(f"ldaxr {old}, [{addr}]")
        if op == Op.CMPXCHG:
            done = self.fresh()
            r0 = _reg(_BPF_REGS[0], bits)
            self.emit(f"cmp {old}, {r0}")
            self.branch("b.ne", done)
            self.emit(f"stlxr {status}, {src}, [{addr}]")
            self.branch("cbnz", retry, status)
            self.label(done)
            self.emit(f"mov {r0}, {old}")  # always the old value; a w write zero-extends
            return
        stored = src
        if op != Op.XCHG:
            stored = new
            self.emit(f"{ATOMIC_ALU[op]} {new}, {old}, {src}")
        self.emit(f"stlxr {status}, {stored}, [{addr}]")
        self.branch("cbnz", retry, status)
        if insn.spec.fetch:
            self.emit(f"mov {src}, {old}")

    def ldpacket(self, pc: int, insn: Instruction) -> None:
        size, exit0 = insn.spec.size, self.stub("exit0")
        if insn.op == Op.LDIND:
            self.emit(f"add x9, {X[6]}, {X[insn.src]}")
        else:
            self.emit(f"mov x9, {X[6]}")
        self.add_imm("x9", "x9", s32(insn.imm), 64, SCRATCH[1])
        self.emit(f"ldr x10, [{CTX}, #{Ctx.MEM_START}]", "cmp x9, x10")
        self.branch("b.lo", exit0)
        self.emit(f"adds x11, x9, #{size}")
        self.branch("b.cs", exit0)
        self.emit(f"ldr x10, [{CTX}, #{Ctx.MEM_END}]", "cmp x11, x10")
        self.branch("b.hi", exit0)
        load, swap = {1: ("ldrb", ""), 2: ("ldrh", "rev16"), 4: ("ldr", "rev")}[size]
        self.emit(f"{load} {W[0]}, [x9]")
        if swap:
            self.emit(f"{swap} {W[0]}, {W[0]}")

    # --- run-time bounds checks (see the module docstring) ------------------------------
    def check_setup(self) -> None:
        self.emit(f"ldr x9, [{CTX}, #{Ctx.MEM_START}]", f"ldr x10, [{CTX}, #{Ctx.MEM_END}]", "cmp x9, x10")
        self.emit("csinv x9, x9, xzr, lo", "mov x11, #8", "csel x10, x10, x11, lo", "sub x10, x10, #8")
        self.emit(f"str x9, [{CTX}, #{Ctx.CHECK_MEM_START}]", f"str x10, [{CTX}, #{Ctx.CHECK_MEM_LAST}]")
        self.emit(f"ldr x9, [{CTX}, #{Ctx.STACK_END}]", "sub x9, x9, #8", f"str x9, [{CTX}, #{Ctx.STACK_LAST}]")

    def check_address(self, insn: Instruction, last: bool) -> None:
        size = insn.spec.size
        self.add_imm("x11", X[insn.base_register], insn.off, 64, SCRATCH[0])
        if last:
            self.emit(f"sub x12, x11, #{8 - size}" if size < 8 else "mov x12, x11")

    def check_aligned(self, size: int, fault: str) -> None:
        self.emit(f"tst x11, #{size - 1}")
        self.branch("b.ne", fault)

    def region_test(self, region: Check, insn: Instruction, miss: str, hit: str | None = None) -> None:
        size = insn.spec.size
        if region is Check.MEM:
            self.emit(f"ldp x9, x10, [{CTX}, #{Ctx.CHECK_MEM_START}]", "cmp x11, x9")
            self.branch("b.lo", miss)
            self.emit("cmp x12, x10")
        elif region is Check.FRAME:  # x11 - (R10 - 512) <= 512 - size, unsigned
            self.emit(f"sub x10, x11, {X[10]}", f"add x10, x10, #{STACK_SIZE}", f"cmp x10, #{STACK_SIZE - size}")
        elif region is Check.STACK:
            self.emit(f"sub x10, {X[10]}, #{STACK_SIZE}", "cmp x11, x10")
            self.branch("b.lo", miss)
            self.emit(f"ldr x9, [{CTX}, #{Ctx.STACK_LAST}]", "cmp x12, x9")
        else:  # the block routine answers in x9; x30 parked in x10
            self.emit("mov x10, x30")
            self.branch("bl", self.block_routine(writes(insn)))
            self.emit("mov x30, x10")
            self.branch(*(("cbnz", hit) if hit else ("cbz", miss)), "x9")
            return
        self.branch(*(("b.ls", hit) if hit else ("b.hi", miss)))  # after comparing with the region's end

    def record_fault(self) -> None:
        self.emit(f"str x11, [{CTX}, #{Ctx.FAULT_ADDR}]")

    def block_test(self, block: Span, skip: str, found: str) -> None:
        """x9 = 1 when [x11, x12 + 8) lies in one block, else 0 (see block_answers)."""
        self.mov_imm(SCRATCH[0], block.start)
        self.emit("cmp x11, x9")
        self.branch("b.lo", skip)
        if not block.stride:
            self.mov_imm(SCRATCH[0], block.end - 8)
            self.emit("cmp x12, x9")
            self.branch("b.ls", found)
            return
        # Map values: (addr - start) % stride + x12 - x11 + 8 <= item (x10 holds x30; x13, x14 are free).
        self.emit("sub x9, x11, x9")
        self.mov_imm(13, block.end - 8)
        self.emit("cmp x12, x13")
        self.branch("b.hi", skip)
        self.mov_imm(13, block.stride)
        self.emit("udiv x14, x9, x13", "msub x9, x14, x13, x9", "sub x13, x12, x11", "add x9, x9, x13")
        self.mov_imm(13, block.item - 8)
        self.emit("cmp x9, x13")
        self.branch("b.le", found)
        self.branch("b", skip)

    def block_answers(self, found: str) -> None:
        self.emit("mov x9, #0", "ret", f"{found}:", "mov x9, #1", "ret")

    def render(self) -> str:
        self.labels, self.size, text = resolve(self.items, self.branches, self.prog.name)
        return text


class Arm64Backend(TemplateBackend):
    """eBPF to ARM64 machine code (see the module docstring for the ABI)."""

    arch = "arm64"
    emitter = _Emitter
    branch_form = staticmethod(branch_form)
    branch_mnemonics = BRANCH_MNEMONICS
    width = 4

    def __init__(self) -> None:
        self._ks = None  # keystone instance, made on first use

    def check_layout(self, emitter: Emitter, size: int, placed: dict[str, int]) -> None:
        """Keystone must have put every label where the emitter's branch ranges assumed."""
        assert isinstance(emitter, _Emitter)
        name = emitter.prog.name
        if size != emitter.size:
            raise CompileError(f"{name}: keystone produced {size} bytes of code, expected {emitter.size}")
        if any(emitter.labels[label] != offset for label, offset in placed.items()):
            raise CompileError(f"{name}: keystone's layout differs from the emitter's (branch ranges unsafe)")

    def emulation(self) -> Emulation:
        from unicorn import UC_ARCH_ARM64, UC_MODE_ARM
        from unicorn import arm64_const as uc

        def reg(name: str) -> int:
            return getattr(uc, f"UC_ARM64_REG_{name.upper()}")

        x = tuple(reg(f"x{n}") for n in range(31))
        fixed = (x[:3], x[:5], x[0], reg("sp"), reg("pc"), x[30])  # entry args, helper args, result, sp, pc, link
        return Emulation(UC_ARCH_ARM64, UC_MODE_ARM, *fixed, bytes.fromhex("c0035fd6"), x, tuple(map(reg, X)))  # type: ignore[arg-type]

    def disassembler(self) -> object:
        import capstone

        arch = getattr(capstone, "CS_ARCH_ARM64", None) or capstone.CS_ARCH_AARCH64
        return capstone.Cs(arch, capstone.CS_MODE_ARM)

    def interrupt_handler(self, data: int) -> bytes:
        # Branch-free; x2 = ucontext, its saved pc at +440 (uc_mcontext at 176, then fault_address, x0-x30, sp).
        load = "".join(f"; movk x9, #0x{(data >> s) & 0xFFFF:x}, lsl #{s}" for s in (16, 32, 48))
        body = "ldr x10, [x2, #440]; ldp x11, x12, [x9]; sub x13, x10, x11; cmp x13, x12; ldp x14, x15, [x9, #16]"
        tail = "csel x14, x14, x10, lo; str x14, [x2, #440]; csel x15, x10, x15, lo; str x15, [x9, #24]; ret"
        return self.assemble(f"movz x9, #0x{data & 0xFFFF:x}{load}; {body}; {tail}", "the interrupt handler")

    def assemble(self, text: str, what: str) -> bytes:
        from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks, KsError

        for attempt in (1, 2):
            if self._ks is None:
                self._ks = Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN)
            try:
                encoding, _ = self._ks.asm(text, 0)
                return bytes(encoding or b"")
            except KsError as exc:
                # keystone 0.9.2's ARM64 parser has failed valid texts (error 547, "Unknown
                # error") after another instance had assembled many labelled texts, and then
                # assembled them on a later try: one retry on a new instance before calling
                # the text bad (jit.backends.patching learns ARM64 lines without labels).
                self._ks = None
                if attempt == 2:
                    raise CompileError(f"{what}: keystone rejected the generated ARM64 code: {exc}") from exc
        raise AssertionError("unreachable")
