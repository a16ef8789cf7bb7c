"""x86-64 backend: BPF instructions to Intel-syntax assembly, assembled by keystone.

Register map (the Linux kernel's): R0 rax, R1-R5 rdi rsi
rdx rcx r8 (the C argument registers, so helper calls need no moves), R6-R9 rbx
r13 r14 r15 (callee-saved), R10 rbp. r12 holds the run-time context for the
whole run: it is callee-saved, so it survives helper calls. r9, r10 and r11 are
the only scratch registers (``SCRATCH``); none of them is live across a call.

The code is laid out by the emitter template (backends.template): the
prologue with its batch loop, epilogue, abort and ``exit0`` paths, the
array-map lookup stub, bounds-check slow paths and error stubs first, then
one label ``.L<slot>`` per instruction (``exit`` is ``ret``), then the
fell-off-the-end stub.

Stack discipline: the prologue calls L0 with rsp 16-byte aligned, so at every
BPF instruction rsp = 8 (mod 16). A local call pushes five registers and a
return address (48 bytes), keeping that invariant; a helper call pushes the
context as the 7th argument, so rsp is aligned at the ``call``. R1-R5 are
preserved across helper calls (the interpreter's choice; the RFC allows it).

``max_steps`` is a budget in ``ctx->steps``, re-armed by the prologue before
every run: each execution of a jump to its own slot or earlier (taken or not)
and each local call costs one; StepLimitError when it would go negative.
``callx`` takes the helper id from a register: an id outside the table raises
BAD_CALLX, an empty (zero) table slot raises HELPER, both without calling out.

Run-time bounds checks (``CodegenOptions.checks``, planned by :mod:`jit.analysis.checks`):
before a checked load, store or atomic, r11 = address and r10 = address +
size - 8, then one test per allowed region, cheapest first: the input buffer
(``ctx->check_mem_start <= r11`` and ``r10 <= ctx->check_mem_last``), the
current frame (``r11 - (R10 - 512) <= 512 - size``, unsigned), the active
frames (``R10 - 512 <= r11``, ``r10 <= ctx->stack_last``), the program's host
memory blocks (a shared routine comparing with their addresses, which are
the same on every engine; stores see only writable blocks). The ``- 8`` form
never wraps around (every region starts at 8 or above; the prologue gives an
empty buffer bounds nothing fits in). An atomic must also be naturally
aligned. A failure stores r11 in ``ctx->fault_addr`` and reports MEMORY.
"""

from __future__ import annotations

from jit.backends.base import Emulation, writes
from jit.backends.patching import branch_table
from jit.backends.template import Emitter, TemplateBackend
from jit.backends.x86_64_encoding import (
    ARGUMENTS,
    BRANCHES,
    CALLEE_SAVED_BPF,
    CONTEXT,
    DIVIDEND,
    HELPER_ID_ARG,
    HOST_SAVED,
    RAX,
    RCX,
    RDI,
    RDX,
    REGS,
    REMAINDER,
    RSI,
    SCRATCH,
    SHIFT_COUNT,
    Reg,
)
from jit.core.abi import HELPER_SLOTS, STACK_BYTES, BatchJob, Check, Ctx, Desc, ErrorCode, Span
from jit.core.bits import to_signed
from jit.core.bytecode import Instruction
from jit.core.errors import CompileError
from jit.core.isa import STACK_SIZE, Form, Op

_PTR = {1: "byte", 2: "word", 4: "dword", 8: "qword"}
_ALU = {"add": "add", "sub": "sub", "mul": "imul", "or": "or", "and": "and", "xor": "xor", "mov": "mov"}
_SHIFTS = {"lsh": "shl", "rsh": "shr", "arsh": "sar"}
_CONDITIONS = {
    "jeq": "e",
    "jne": "ne",
    "jset": "ne",
    "jgt": "a",
    "jge": "ae",
    "jlt": "b",
    "jle": "be",
    "jsgt": "g",
    "jsge": "ge",
    "jslt": "l",
    "jsle": "le",
}
_ATOMIC_ALU = {Op.ATOMIC_ADD: "add", Op.ATOMIC_OR: "or", Op.ATOMIC_AND: "and", Op.ATOMIC_XOR: "xor"}


def _ctx(field: Ctx) -> str:
    return f"qword ptr [{CONTEXT.q}+{int(field)}]"


def _mem(base: str, off: int, size: int) -> str:
    disp = f"{off:+d}" if off else ""
    return f"{_PTR[size]} ptr [{base}{disp}]"


class _Emitter(Emitter):
    """Intel-syntax assembly for one program (the template's primitives)."""

    LOCAL = ".L"

    def goto(self, label: str) -> None:
        self.emit(f"jmp {label}")

    def count_step(self, pc: int) -> None:
        if self.options.max_steps is not None:
            self.emit(f"sub {_ctx(Ctx.STEPS)}, 1", f"js {self.site(ErrorCode.STEPS, pc)}")

    # -- fixed code ------------------------------------------------------------

    def direct_entry(self) -> None:
        def field(f: Ctx) -> str:  # the context register is not bound yet: ctx is still in rdx
            return f"qword ptr [{RDX.q}+{int(f)}]"

        self.emit(f"mov {field(Ctx.ERROR)}, 0", f"mov {field(Ctx.REPEAT)}, 1", f"mov {field(Ctx.MEM_START)}, {RDI.q}")
        self.emit(f"lea {RAX.q}, [{RDI.q}+{RSI.q}]", f"mov {field(Ctx.MEM_END)}, {RAX.q}")

    def batch_begin(self) -> None:
        self.emit(f"mov {_ctx(Ctx.BATCH_JOB)}, {RDI.q}", f"mov {_ctx(Ctx.ERROR)}, 0")

    def batch_next(self, done: str) -> None:
        job, index, end = (reg.q for reg in SCRATCH)
        mem, size = RDI.q, RSI.q

        def field(f: BatchJob) -> str:
            return f"qword ptr [{job}+{int(f)}]"

        self.emit(f"mov {job}, {_ctx(Ctx.BATCH_JOB)}", f"mov {index}, {field(BatchJob.INDEX)}")
        self.emit(f"cmp {index}, {field(BatchJob.COUNT)}", f"jae {done}")
        self.emit(f"mov {mem}, {field(BatchJob.OFFSETS)}", f"mov {mem}, qword ptr [{mem}+{index}*8]")
        self.emit(f"add {mem}, {field(BatchJob.BASE)}")
        self.emit(f"mov {size}, {field(BatchJob.LENGTHS)}", f"mov {size}, qword ptr [{size}+{index}*8]")
        self.emit(f"mov qword ptr [rsp+16], {mem}", f"mov qword ptr [rsp+8], {size}")  # as enter() saved them
        self.emit(f"mov {_ctx(Ctx.MEM_START)}, {mem}", f"lea {end}, [{mem}+{size}]", f"mov {_ctx(Ctx.MEM_END)}, {end}")

    def batch_store(self, packet: str) -> None:
        job, index, out = (reg.q for reg in SCRATCH)
        self.emit(f"mov {job}, {_ctx(Ctx.BATCH_JOB)}", f"mov {index}, qword ptr [{job}+{int(BatchJob.INDEX)}]")
        self.emit(f"mov {out}, qword ptr [{job}+{int(BatchJob.OUT)}]", f"mov qword ptr [{out}+{index}*8], {RAX.q}")
        self.emit(f"add {index}, 1", f"mov qword ptr [{job}+{int(BatchJob.INDEX)}], {index}", f"jmp {packet}")

    def enter(self) -> None:
        self.emit(*(f"push {reg.q}" for reg in HOST_SAVED))
        # mem and len stay on the host stack for the batch loop; the extra
        # 8 bytes align rsp to 16 (entry rsp = 8 mod 16, 8 pushes above).
        self.emit(f"push {RDI.q}", f"push {RSI.q}", "sub rsp, 8")
        self.emit(f"mov {CONTEXT.q}, {RDX.q}", f"mov {_ctx(Ctx.SAVED_SP)}, rsp")

    def zero_stack(self) -> None:  # rep stosq: rdi, rcx, rax
        self.emit(f"mov {RDI.q}, {_ctx(Ctx.STACK_START)}", f"mov {RCX.d}, {STACK_BYTES // 8}")
        self.emit(f"xor {RAX.d}, {RAX.d}", "rep stosq")

    def start_run(self, max_steps: int | None) -> None:
        self.emit(f"mov {REGS[1].q}, qword ptr [rsp+16]", f"mov {REGS[2].q}, qword ptr [rsp+8]")
        self.emit(f"mov {REGS[10].q}, {_ctx(Ctx.STACK_END)}")
        self.emit(*(f"xor {REGS[r].d}, {REGS[r].d}" for r in (0, 3, 4, 5, 6, 7, 8, 9)))
        if max_steps is not None:
            self.emit(f"movabs {SCRATCH[0].q}, {max_steps}", f"mov {_ctx(Ctx.STEPS)}, {SCRATCH[0].q}")

    def call_program(self, label: str) -> None:
        self.emit(f"call {label}")

    def next_run(self, batch: str) -> None:
        # jg, not jnz: a repeat count of 0 (or garbage) still means one run, never 2**64
        self.emit(f"sub {_ctx(Ctx.REPEAT)}, 1", f"jg {batch}")

    def epilogue(self) -> None:
        self.emit("add rsp, 24", *(f"pop {reg.q}" for reg in reversed(HOST_SAVED)), "ret")

    def exit0(self, resume: str) -> None:
        self.emit(f"mov rsp, {_ctx(Ctx.SAVED_SP)}", f"xor {RAX.d}, {RAX.d}", f"jmp {resume}")

    def abort(self) -> None:
        pc_reg, code_reg = SCRATCH[0], SCRATCH[1]
        self.emit(f"mov {_ctx(Ctx.ERROR)}, {code_reg.q}", f"mov {_ctx(Ctx.ERROR_PC)}, {pc_reg.q}")
        self.emit(f"mov rsp, {_ctx(Ctx.SAVED_SP)}", f"jmp {self.stub('epilogue')}")

    def error_stub(self, code: ErrorCode, pc: int) -> None:
        self.emit(f"mov {SCRATCH[0].d}, {pc}", f"mov {SCRATCH[1].d}, {int(code)}", f"jmp {self.stub('fail')}")

    # -- ALU -----------------------------------------------------------------

    def alu(self, pc: int, insn: Instruction) -> None:
        bits = insn.spec.bits
        dst, mnemonic = REGS[insn.dst].sized(bits), _ALU[insn.op]
        if insn.spec.form is Form.ALU_X:
            self.emit(f"{mnemonic} {dst}, {REGS[insn.src].sized(bits)}")
        elif mnemonic == "imul":
            self.emit(f"imul {dst}, {dst}, {insn.imm}")
        else:
            self.emit(f"{mnemonic} {dst}, {insn.imm}")

    def neg(self, pc: int, insn: Instruction) -> None:
        self.emit(f"neg {REGS[insn.dst].sized(insn.spec.bits)}")

    def shift(self, pc: int, insn: Instruction) -> None:
        bits = insn.spec.bits
        dst, mnemonic = REGS[insn.dst], _SHIFTS[insn.op]
        # A 32-bit shift by 0 may leave the upper half alone: zero-extend explicitly.
        zero_extend = f"mov {dst.d}, {dst.d}"
        if insn.spec.form is Form.ALU_K:
            count = insn.imm & (bits - 1)
            if count:
                self.emit(f"{mnemonic} {dst.sized(bits)}, {count}")
            elif bits == 32:
                self.emit(zero_extend)
            return
        count_reg = REGS[SHIFT_COUNT]
        if insn.src == SHIFT_COUNT:
            self.emit(f"{mnemonic} {dst.sized(bits)}, {count_reg.b}")
            if bits == 32:
                self.emit(zero_extend)
            return
        # Park R4 in a scratch register, count with rcx, put R4 back. When the
        # destination is R4 itself, shift the parked copy.
        saved = SCRATCH[0]
        target = saved if insn.dst == SHIFT_COUNT else dst
        self.emit(f"mov {saved.q}, {count_reg.q}", f"mov {count_reg.d}, {REGS[insn.src].d}")
        self.emit(f"{mnemonic} {target.sized(bits)}, {count_reg.b}")
        if insn.dst == SHIFT_COUNT:
            self.emit(f"mov {count_reg.sized(bits)}, {saved.sized(bits)}")
        else:
            self.emit(f"mov {count_reg.q}, {saved.q}")
            if bits == 32:
                self.emit(zero_extend)

    def divide(self, pc: int, insn: Instruction) -> None:
        """div/mod/sdiv/smod without ever executing a trapping div/idiv."""
        bits = insn.spec.bits
        signed, is_mod = insn.op in (Op.SDIV, Op.SMOD), insn.op in (Op.MOD, Op.SMOD)
        dst = REGS[insn.dst]
        divisor = SCRATCH[0]
        done = self.fresh()

        def by_zero() -> None:  # x / 0 = 0, x % 0 = x (32-bit: zero-extended)
            if not is_mod:
                self.emit(f"xor {dst.d}, {dst.d}")
            elif bits == 32:
                self.emit(f"mov {dst.d}, {dst.d}")

        def by_minus_one() -> None:  # x s/ -1 = -x (INT_MIN stays), x s% -1 = 0
            self.emit(f"xor {dst.d}, {dst.d}" if is_mod else f"neg {dst.sized(bits)}")

        if insn.spec.form is Form.ALU_K:
            value = insn.imm & ((1 << bits) - 1)
            if value == 0:
                return by_zero()
            if signed and to_signed(value, bits) == -1:
                return by_minus_one()
            self.emit(f"mov {divisor.sized(bits)}, {insn.imm}")
        else:
            nonzero = self.fresh()
            self.emit(f"mov {divisor.sized(bits)}, {REGS[insn.src].sized(bits)}")
            self.emit(f"test {divisor.sized(bits)}, {divisor.sized(bits)}", f"jnz {nonzero}")
            by_zero()
            self.emit(f"jmp {done}", f"{nonzero}:")
            if signed:
                divide = self.fresh()
                self.emit(f"cmp {divisor.sized(bits)}, -1", f"jne {divide}")
                by_minus_one()
                self.emit(f"jmp {done}", f"{divide}:")
        self._divide(insn, signed, is_mod, divisor)
        self.emit(f"{done}:")

    def _divide(self, insn: Instruction, signed: bool, is_mod: bool, divisor: Reg) -> None:
        """The div/idiv itself, with R0 (rax) and R3 (rdx) preserved unless they are dst."""
        bits = insn.spec.bits
        dst = REGS[insn.dst]
        save_rax, save_rdx = SCRATCH[1], SCRATCH[2]
        if insn.dst != DIVIDEND:
            self.emit(f"mov {save_rax.q}, {RAX.q}", f"mov {RAX.q}, {dst.q}")
        if insn.dst != REMAINDER:
            self.emit(f"mov {save_rdx.q}, {RDX.q}")
        if signed:
            self.emit("cqo" if bits == 64 else "cdq", f"idiv {divisor.sized(bits)}")
        else:
            self.emit(f"xor {RDX.d}, {RDX.d}", f"div {divisor.sized(bits)}")
        result, result_index = (RDX, REMAINDER) if is_mod else (RAX, DIVIDEND)
        if insn.dst != result_index:
            self.emit(f"mov {dst.q}, {result.q}")
        if insn.dst != DIVIDEND:
            self.emit(f"mov {RAX.q}, {save_rax.q}")
        if insn.dst != REMAINDER:
            self.emit(f"mov {RDX.q}, {save_rdx.q}")

    def movsx(self, pc: int, insn: Instruction) -> None:
        bits, ext = insn.spec.bits, insn.spec.ext
        src = REGS[insn.src].part(ext // 8)
        mnemonic = "movsxd" if ext == 32 else "movsx"
        self.emit(f"{mnemonic} {REGS[insn.dst].sized(bits)}, {src}")

    def byteswap(self, pc: int, insn: Instruction) -> None:
        dst, ext = REGS[insn.dst], insn.spec.ext
        if insn.op == Op.LE:  # a little-endian host only truncates
            if ext < 64:
                self.emit(f"movzx {dst.d}, {dst.w}" if ext == 16 else f"mov {dst.d}, {dst.d}")
        elif ext == 16:
            self.emit(f"ror {dst.w}, 8", f"movzx {dst.d}, {dst.w}")
        else:
            self.emit(f"bswap {dst.sized(ext)}")

    # -- jumps and calls -------------------------------------------------------

    def jump(self, pc: int, insn: Instruction) -> None:
        bits = insn.spec.bits
        label, back = self.target(pc, insn)
        if back:
            self.count_step(pc)
        rhs = REGS[insn.src].sized(bits) if insn.spec.form is Form.JMP_X else str(insn.imm)
        compare = "test" if insn.op == Op.JSET else "cmp"
        self.emit(f"{compare} {REGS[insn.dst].sized(bits)}, {rhs}", f"j{_CONDITIONS[insn.op]} {label}")

    def call_out(self, pc: int, helper_id: int) -> None:
        self.emit(f"mov {HELPER_ID_ARG.d}, {helper_id}")
        self._call(pc, f"qword ptr [{CONTEXT.q}+{Ctx.HELPERS + 8 * helper_id}]")

    def _call(self, pc: int, function: str) -> None:
        """Call a helper (R1-R5 already in place, id in r9), then check ctx->error.

        R1-R5 keep their values across the call, as in the interpreter. The
        context goes on the stack twice: once as the 7th argument, once as
        padding that aligns rsp to 16 at the call (5 + 2 pushes from 8 mod 16).
        """
        self.emit(*(f"push {REGS[r].q}" for r in ARGUMENTS), f"push {CONTEXT.q}", f"push {CONTEXT.q}")
        self.emit(f"call {function}", "add rsp, 16", *(f"pop {REGS[r].q}" for r in reversed(ARGUMENTS)))
        self.emit(f"cmp {_ctx(Ctx.ERROR)}, 0", f"jne {self.site(ErrorCode.HELPER, pc)}")

    def callx(self, pc: int, insn: Instruction) -> None:
        function = SCRATCH[0]
        self.emit(f"mov {function.q}, {REGS[insn.dst].q}", f"cmp {function.q}, {HELPER_SLOTS}")
        self.emit(f"jae {self.site(ErrorCode.BAD_CALLX, pc)}", f"mov {HELPER_ID_ARG.q}, {function.q}")
        self.emit(f"mov {function.q}, qword ptr [{CONTEXT.q}+{function.q}*8+{int(Ctx.HELPERS)}]")
        self.emit(f"test {function.q}, {function.q}", f"jz {self.site(ErrorCode.HELPER, pc)}")
        self._call(pc, function.q)

    def call_local(self, pc: int, insn: Instruction) -> None:
        """Fresh 512-byte frame; R6-R9 and R10 restored after the callee's ret."""
        label, _ = self.target(pc, insn)
        frame = REGS[10].q
        self.emit(*(f"push {REGS[r].q}" for r in CALLEE_SAVED_BPF))
        self.emit(f"sub {frame}, {STACK_SIZE}", f"cmp {frame}, {_ctx(Ctx.STACK_LIMIT)}")
        self.emit(f"jb {self.site(ErrorCode.CALL_DEPTH, pc)}")
        self.count_step(pc)
        self.emit(f"call {label}")
        self.emit(*(f"pop {REGS[r].q}" for r in reversed(CALLEE_SAVED_BPF)))

    def exit(self, pc: int, insn: Instruction) -> None:
        self.emit("ret")

    # -- the array-map lookup stub: r9 (helper id) and the stack stay intact for the fallback

    def lookup_match(self, address: int, array: str) -> None:
        scratch = SCRATCH[1].q
        self.emit(f"movabs {scratch}, {to_signed(address, 64)}", f"cmp {REGS[1].q}, {scratch}", f"je {array}")

    def lookup_fallback(self) -> None:
        self.emit(f"jmp {_ctx(Ctx.LOOKUP_FALLBACK)}")

    def lookup_array(self, fallback: str, miss: str) -> None:
        desc, key, scratch = REGS[1].q, REGS[2].q, SCRATCH[1].q
        # The key must lie in the BPF stack: offset from its start <= STACK_BYTES - 4 (unsigned).
        self.emit(f"mov {scratch}, {key}", f"sub {scratch}, {_ctx(Ctx.STACK_START)}")
        self.emit(f"cmp {scratch}, {STACK_BYTES - 4}", f"ja {fallback}")
        self.emit(f"mov {SCRATCH[1].d}, dword ptr [{key}]", f"cmp {scratch}, {_mem(desc, Desc.MAX_ENTRIES, 8)}")
        self.emit(f"jae {miss}", f"imul {scratch}, {_mem(desc, Desc.VALUE_STRIDE, 8)}")
        self.emit(f"mov {RAX.q}, {_mem(desc, Desc.VALUES, 8)}", f"add {RAX.q}, {scratch}", "ret")

    def return_zero(self) -> None:
        self.emit(f"xor {RAX.d}, {RAX.d}", "ret")

    # -- memory ----------------------------------------------------------------

    def load_imm64(self, reg: int, value: int) -> None:
        dst = REGS[reg]
        if value < 1 << 32:
            self.emit(f"mov {dst.d}, {to_signed(value, 32)}")
        elif to_signed(value, 64) >= -(1 << 31):
            self.emit(f"mov {dst.q}, {to_signed(value, 64)}")
        else:
            self.emit(f"movabs {dst.q}, {to_signed(value, 64)}")

    def load(self, pc: int, insn: Instruction) -> None:
        self.check_access(pc, insn)
        size, dst = insn.spec.size, REGS[insn.dst]
        source = _mem(REGS[insn.src].q, insn.off, size)
        if insn.op == Op.LDXS:
            self.emit(f"{'movsxd' if size == 4 else 'movsx'} {dst.q}, {source}")
        elif size < 4:
            self.emit(f"movzx {dst.d}, {source}")
        else:
            self.emit(f"mov {dst.part(size)}, {source}")

    def store(self, pc: int, insn: Instruction) -> None:
        self.check_access(pc, insn)
        size = insn.spec.size
        target = _mem(REGS[insn.dst].q, insn.off, size)
        if insn.spec.form is Form.STORE_K:
            value = insn.imm if size == 8 else to_signed(insn.imm, size * 8)
        else:
            value = REGS[insn.src].part(size)
        self.emit(f"mov {target}, {value}")

    def atomic(self, pc: int, insn: Instruction) -> None:
        self.check_access(pc, insn)
        size, op = insn.spec.size, insn.op
        bits = size * 8
        target = _mem(REGS[insn.dst].q, insn.off, size)
        src = REGS[insn.src]
        if op == Op.CMPXCHG:
            self.emit(f"lock cmpxchg {target}, {src.sized(bits)}")
            if bits == 32:  # R0 gets the old value zero-extended, on success too
                self.emit(f"mov {RAX.d}, {RAX.d}")
        elif op == Op.XCHG:
            self.emit(f"xchg {target}, {src.sized(bits)}")
        elif not insn.spec.fetch:
            self.emit(f"lock {_ATOMIC_ALU[op]} {target}, {src.sized(bits)}")
        elif op == Op.ATOMIC_ADD:
            self.emit(f"lock xadd {target}, {src.sized(bits)}")
        else:
            self._fetch_loop(insn)

    def _fetch_loop(self, insn: Instruction) -> None:
        """Fetching and/or/xor: a cmpxchg loop on rax (R0), which is saved around it."""
        bits = insn.spec.size * 8
        address, saved_r0, new = SCRATCH
        operand = saved_r0 if insn.src == 0 else REGS[insn.src]
        loop = self.fresh()
        self.emit(f"lea {address.q}, [{REGS[insn.dst].q}{insn.off:+d}]", f"mov {saved_r0.q}, {RAX.q}")
        self.emit(f"mov {RAX.sized(bits)}, {_mem(address.q, 0, bits // 8)}")
        self.emit(f"{loop}:", f"mov {new.q}, {RAX.q}")
        self.emit(f"{_ATOMIC_ALU[insn.op]} {new.sized(bits)}, {operand.sized(bits)}")
        self.emit(f"lock cmpxchg {_mem(address.q, 0, bits // 8)}, {new.sized(bits)}", f"jne {loop}")
        if insn.src != 0:  # src gets the old value; R0 is restored
            self.emit(f"mov {REGS[insn.src].sized(bits)}, {RAX.sized(bits)}", f"mov {RAX.q}, {saved_r0.q}")

    def ldpacket(self, pc: int, insn: Instruction) -> None:
        size = insn.spec.size
        addr, length, end = SCRATCH
        start, exit0 = _ctx(Ctx.MEM_START), self.stub("exit0")
        self.emit(f"mov {addr.q}, {REGS[6].q}")
        if insn.op == Op.LDIND:
            self.emit(f"add {addr.q}, {REGS[insn.src].q}")
        if insn.imm:
            self.emit(f"add {addr.q}, {insn.imm}")
        # offset = addr - start (wraps when below); in bounds iff offset < len
        # and offset + size <= len.
        self.emit(f"sub {addr.q}, {start}", f"mov {length.q}, {_ctx(Ctx.MEM_END)}", f"sub {length.q}, {start}")
        self.emit(f"cmp {addr.q}, {length.q}", f"jae {exit0}")
        self.emit(f"lea {end.q}, [{addr.q}+{size}]", f"cmp {end.q}, {length.q}", f"ja {exit0}")
        self.emit(f"add {addr.q}, {start}")
        source = _mem(addr.q, 0, size)
        if size == 1:
            self.emit(f"movzx {RAX.d}, {source}")
        elif size == 2:
            self.emit(f"movzx {RAX.d}, {source}", f"rol {RAX.w}, 8")
        else:
            self.emit(f"mov {RAX.d}, {source}", f"bswap {RAX.d}")

    # -- run-time bounds checks (see the module docstring) ----------------------

    def check_setup(self) -> None:
        start, last = SCRATCH[0], SCRATCH[1]
        nonempty = self.fresh()
        self.emit(f"mov {start.q}, {_ctx(Ctx.MEM_START)}", f"mov {last.q}, {_ctx(Ctx.MEM_END)}")
        self.emit(f"cmp {start.q}, {last.q}", f"jb {nonempty}")
        self.emit(f"mov {start.q}, -1", f"mov {last.d}, 8")  # empty: bounds no access fits in
        self.emit(f"{nonempty}:", f"sub {last.q}, 8")
        self.emit(f"mov {_ctx(Ctx.CHECK_MEM_START)}, {start.q}", f"mov {_ctx(Ctx.CHECK_MEM_LAST)}, {last.q}")
        self.emit(f"mov {last.q}, {_ctx(Ctx.STACK_END)}", f"sub {last.q}, 8", f"mov {_ctx(Ctx.STACK_LAST)}, {last.q}")

    def check_address(self, insn: Instruction, last: bool) -> None:
        base = REGS[insn.base_register].q
        self.emit(f"lea {SCRATCH[0].q}, [{base}{insn.off:+d}]")
        if last:
            self.emit(f"lea {SCRATCH[1].q}, [{base}{insn.off + insn.spec.size - 8:+d}]")

    def check_aligned(self, size: int, fault: str) -> None:
        self.emit(f"test {SCRATCH[0].d}, {size - 1}", f"jnz {fault}")

    def region_test(self, region: Check, insn: Instruction, miss: str, hit: str | None = None) -> None:
        addr, last, temp = SCRATCH
        size = insn.spec.size
        inside = f"jbe {hit}" if hit else f"ja {miss}"  # after comparing with the region's end
        if region is Check.MEM:
            self.emit(f"cmp {addr.q}, {_ctx(Ctx.CHECK_MEM_START)}", f"jb {miss}")
            self.emit(f"cmp {last.q}, {_ctx(Ctx.CHECK_MEM_LAST)}", inside)
        elif region is Check.FRAME:  # addr - (R10 - 512) <= 512 - size, unsigned
            self.emit(f"lea {temp.q}, [{addr.q}+{STACK_SIZE}]", f"sub {temp.q}, {REGS[10].q}")
            self.emit(f"cmp {temp.q}, {STACK_SIZE - size}", inside)
        elif region is Check.STACK:
            self.emit(f"lea {temp.q}, [{REGS[10].q}-{STACK_SIZE}]", f"cmp {addr.q}, {temp.q}", f"jb {miss}")
            self.emit(f"cmp {last.q}, {_ctx(Ctx.STACK_LAST)}", inside)
        else:
            self.emit(f"call {self.block_routine(writes(insn))}", f"test {temp.d}, {temp.d}")
            self.emit(f"jnz {hit}" if hit else f"jz {miss}")

    def record_fault(self) -> None:
        self.emit(f"mov {_ctx(Ctx.FAULT_ADDR)}, {SCRATCH[0].q}")

    def block_test(self, block: Span, skip: str, found: str) -> None:
        """r9 = 1 when [r11, r10 + 8) lies in one block, else 0 (see block_answers)."""
        addr, last, temp = SCRATCH
        self.emit(f"movabs {temp.q}, {to_signed(block.start, 64)}", f"cmp {addr.q}, {temp.q}", f"jb {skip}")
        if not block.stride:
            self.emit(f"movabs {temp.q}, {to_signed(block.end - 8, 64)}", f"cmp {last.q}, {temp.q}", f"jbe {found}")
            return
        # A row of map values: (addr - start) % stride + size <= item, size = last - addr + 8.
        # div takes rdx:rax (BPF R3 and R0): saved around it; pop keeps the flags.
        outside = self.fresh()
        self.emit(f"push {RAX.q}", f"push {RDX.q}", f"mov {RAX.q}, {addr.q}", f"sub {RAX.q}, {temp.q}")
        self.emit(f"movabs {temp.q}, {to_signed(block.end - 8, 64)}", f"cmp {last.q}, {temp.q}", f"ja {outside}")
        self.emit(f"xor {RDX.d}, {RDX.d}", f"mov {temp.q}, {block.stride}", f"div {temp.q}")
        self.emit(f"sub {RDX.q}, {addr.q}", f"add {RDX.q}, {last.q}", f"cmp {RDX.q}, {block.item - 8}")
        self.emit(f"pop {RDX.q}", f"pop {RAX.q}", f"jle {found}", f"jmp {skip}")
        self.emit(f"{outside}:", f"pop {RDX.q}", f"pop {RAX.q}", f"jmp {skip}")

    def block_answers(self, found: str) -> None:
        temp = SCRATCH[2]
        self.emit(f"xor {temp.d}, {temp.d}", "ret", f"{found}:", f"mov {temp.d}, 1", "ret")


class X86_64Backend(TemplateBackend):
    """x86-64 code generation (see the module docstring for the layout)."""

    arch = "x86_64"
    emitter = _Emitter
    branch_form = staticmethod(branch_table(BRANCHES))
    branch_mnemonics = frozenset(BRANCHES)

    def assemble(self, text: str, what: str) -> bytes:
        return assemble(text, what)

    def interrupt_handler(self, data: int) -> bytes:
        # Branch-free: rdx = ucontext, whose saved rip is gregs[REG_RIP] at +168
        # (uc_flags, uc_link, uc_stack: 40 bytes; REG_RIP = 16).
        rip = "qword ptr [rdx+168]"
        return self.assemble(
            f"""movabs rax, {data}
            mov rcx, {rip}
            mov r8, rcx
            sub r8, qword ptr [rax]
            cmp r8, qword ptr [rax+8]
            mov r9, qword ptr [rax+16]
            cmovae r9, rcx
            mov {rip}, r9
            mov r10, qword ptr [rax+24]
            cmovb r10, rcx
            mov qword ptr [rax+24], r10
            ret""",
            "the interrupt handler",
        )

    def emulation(self) -> Emulation:
        from unicorn import UC_ARCH_X86, UC_MODE_64
        from unicorn import x86_const as uc

        def reg(name: str) -> int:
            return getattr(uc, f"UC_X86_REG_{name.upper()}")

        everything = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", *(f"r{n}" for n in range(8, 16)))
        return Emulation(
            UC_ARCH_X86,
            UC_MODE_64,
            (reg(RDI.q), reg(RSI.q), reg(RDX.q)),
            tuple(reg(REGS[r].q) for r in ARGUMENTS),  # type: ignore[arg-type]
            reg(RAX.q),
            reg("rsp"),
            reg("rip"),
            None,
            b"\xc3" * 4,
            tuple(map(reg, everything)),
            tuple(reg(r.q) for r in REGS),
        )

    def disassembler(self) -> object:
        import capstone

        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)


def assemble(text: str, what: str = "the generated code") -> bytes:
    """Intel-syntax x86-64 assembly to machine code, in one keystone call."""
    import keystone

    try:
        encoding, _ = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(text, 0)
    except keystone.KsError as exc:
        raise CompileError(f"{what}: keystone rejected the generated x86-64 assembly: {exc}") from exc
    return bytes(encoding or b"")
