"""x86-64 backend: BPF instructions to Intel-syntax assembly, assembled by keystone.

Register map (the Linux kernel's, DESIGN.md section 4): R0 rax, R1-R5 rdi rsi
rdx rcx r8 (the C argument registers, so helper calls need no moves), R6-R9 rbx
r13 r14 r15 (callee-saved), R10 rbp. r12 holds the run-time context for the
whole run: it is callee-saved, so it survives helper calls. r9, r10 and r11 are
the only scratch registers (``SCRATCH``); none of them is live across a call.

Layout of the generated code::

    prologue   save host registers, remember rsp in ctx->saved_sp, then
               ctx->repeat times: zero the BPF stack, load R1, R2, R10, zero
               the other registers, call L0
    epilogue   restore host registers, return R0
    L0 ...     one label per BPF instruction; ``exit`` is ``ret``
    stubs      fell-off-the-end, one small stub per (error, instruction) that
               loads the error code and slot, the shared ``fail``/``abort``
               path (reload rsp from ctx->saved_sp, run the epilogue) and the
               ``exit0`` path of LD_ABS/LD_IND (unwind, R0 = 0, next run)
    map_lookup the array-map lookup stub (see backends.base), when the
               program has array maps: ``ctx->helpers[1]`` points at it

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

Run-time bounds checks (``CodegenOptions.checks``, planned by :mod:`jit.safety`):
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

from collections.abc import Callable
from dataclasses import dataclass

from backends.base import (
    Backend,
    CodegenOptions,
    Emulation,
    NativeCode,
    block_spans,
    check_regions,
    checked_helper_id,
    emitted_checks,
    writes,
)
from jit.core.abi import HELPER_SLOTS, STACK_BYTES, Check, Ctx, Desc, ErrorCode
from jit.core.bytecode import Bytecode, Instruction
from jit.core.errors import CompileError
from jit.core.isa import JUMP_CONDITIONS, STACK_SIZE, Form, Op


@dataclass(frozen=True)
class Reg:
    """One x86-64 register under its 64/32/16/8-bit names."""

    q: str
    d: str
    w: str
    b: str

    def sized(self, bits: int) -> str:
        return self.q if bits == 64 else self.d

    def part(self, size: int) -> str:
        """The name that covers ``size`` bytes."""
        return {8: self.q, 4: self.d, 2: self.w, 1: self.b}[size]


def _legacy(x: str) -> Reg:
    return Reg(f"r{x}x", f"e{x}x", f"{x}x", f"{x}l")


def _indexed(name: str) -> Reg:
    return Reg(name, f"{name}d", f"{name}w", f"{name}b")


def _pointer(x: str) -> Reg:
    return Reg(f"r{x}", f"e{x}", x, f"{x}l")


RAX, RCX, RDX, RBX = _legacy("a"), _legacy("c"), _legacy("d"), _legacy("b")
RSI, RDI, RBP = _pointer("si"), _pointer("di"), _pointer("bp")
R8, R9, R10, R11, R12, R13, R14, R15 = (_indexed(f"r{n}") for n in range(8, 16))

# BPF register number -> x86-64 register.
REGS: tuple[Reg, ...] = (RAX, RDI, RSI, RDX, RCX, R8, RBX, R13, R14, R15, RBP)
# The only registers the emitter may clobber besides BPF-visible ones.
SCRATCH: tuple[Reg, ...] = (R11, R10, R9)
CONTEXT = R12  # ctx for the whole run (callee-saved: survives helper calls)
HELPER_ID_ARG = R9  # 6th C argument of the helper ABI (a scratch register)
SHIFT_COUNT = 4  # BPF R4 lives in rcx, the only register a shift can count with
DIVIDEND, REMAINDER = 0, 3  # BPF R0/R3 live in rax/rdx, which div/idiv use
CALLEE_SAVED_BPF = (6, 7, 8, 9, 10)  # pushed around a local call
ARGUMENTS = (1, 2, 3, 4, 5)  # pushed around a helper call
HOST_SAVED = (RBP, RBX, R12, R13, R14, R15)  # callee-saved in the SysV ABI

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
_ATOMIC = "atomic"  # dispatch key of every Form.ATOMIC row
_ATOMIC_ALU = {Op.ATOMIC_ADD: "add", Op.ATOMIC_OR: "or", Op.ATOMIC_AND: "and", Op.ATOMIC_XOR: "xor"}

# Labels of the code that belongs to no instruction, as NativeCode.labels names.
STUB_LABELS = {
    "prologue": ".Lentry",
    "epilogue": ".Lepilogue",
    "fell_off": ".Lfell_off",
    "error_stubs": ".Lsites",
    "fail": ".Lfail",
    "exit0": ".Lexit0",
}
LOOKUP_LABEL = ".Lmap_lookup"  # the array-map lookup stub, when emitted
CHECKS_LABEL = ".Lbounds_checks"  # fault stubs and block routines of bounds checks, when emitted


def _ctx(field: Ctx) -> str:
    return f"qword ptr [{CONTEXT.q}+{int(field)}]"


def _mem(base: str, off: int, size: int) -> str:
    disp = f"{off:+d}" if off else ""
    return f"{_PTR[size]} ptr [{base}{disp}]"


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _label(pc: int) -> str:
    return f".L{pc}"


class _Emitter:
    """Assembly text for one program; a fresh emitter per compilation."""

    def __init__(self, prog: Bytecode, options: CodegenOptions):
        self.prog = prog
        self.options = options
        self.lines: list[str] = []
        self.sites: dict[tuple[ErrorCode, int], str] = {}
        self.faults: dict[int, str] = {}  # slot -> stub recording a failed bounds check
        self.block_routines: dict[bool, str] = {}  # for stores? -> routine label
        self.slow_paths: list[str] = []  # out-of-line tests of the second and later check regions
        self.lower: dict[str, Callable[[int, Instruction], None]] = {
            **dict.fromkeys(_ALU, self._alu),
            **dict.fromkeys(_SHIFTS, self._shift),
            **dict.fromkeys(("div", "sdiv", "mod", "smod"), self._divmod),
            **dict.fromkeys(JUMP_CONDITIONS, self._jump),
            _ATOMIC: self._atomic,
            **dict.fromkeys(("le", "be", "bswap"), self._byteswap),
            **dict.fromkeys(("ldabs", "ldind"), self._ldpacket),
            "neg": self._neg,
            "movsx": self._movsx,
            "ja": self._ja,
            "call": self._call_helper,
            "callx": self._callx,
            "call_local": self._call_local,
            "call_btf": self._call_btf,
            "exit": self._exit,
            "lddw": self._lddw,
            "ldx": self._load,
            "ldxs": self._load,
            "st": self._store,
            "stx": self._store,
        }

    # -- driver --------------------------------------------------------------

    def generate(self) -> str:
        self._prologue()
        for pc, insn in self.prog:
            self.emit(f"{_label(pc)}:")
            # Atomics share op names with ALU operations (add, or, ...).
            self.lower[_ATOMIC if insn.spec.form is Form.ATOMIC else insn.op](pc, insn)
        self.emit(f"{STUB_LABELS['fell_off']}:", f"jmp {self.site(ErrorCode.FELL_OFF, self.prog.pcs[-1])}")
        self._stubs()
        self._map_lookup_stub()
        self._check_stubs()
        return "\n".join(self.lines) + "\n"

    def emit(self, *lines: str) -> None:
        self.lines.extend(lines)

    def error(self, pc: int, message: str) -> CompileError:
        return CompileError(f"{self.prog.describe(pc)}: {message}")

    def site(self, code: ErrorCode, pc: int) -> str:
        """Label of an out-of-line stub reporting ``code`` at slot ``pc``."""
        return self.sites.setdefault((code, pc), f".Ls{int(code)}_{pc}")

    def _prologue(self) -> None:
        repeat, after = ".Lrepeat", ".Lnext"
        self.emit(f"{STUB_LABELS['prologue']}:")
        self.emit(*(f"push {reg.q}" for reg in HOST_SAVED))
        # mem and len stay on the host stack for the batch loop; the extra
        # 8 bytes align rsp to 16 (entry rsp = 8 mod 16, 8 pushes above).
        self.emit(f"push {RDI.q}", f"push {RSI.q}", "sub rsp, 8")
        self.emit(f"mov {CONTEXT.q}, {RDX.q}", f"mov {_ctx(Ctx.SAVED_SP)}, rsp")
        if self.options.checks:
            self._check_setup()
        self.emit(f"{repeat}:")
        if self.options.zero_stack:  # a zeroed BPF stack for every run (rep stosq: rdi, rcx, rax)
            self.emit(f"mov {RDI.q}, {_ctx(Ctx.STACK_START)}", f"mov {RCX.d}, {STACK_BYTES // 8}")
            self.emit(f"xor {RAX.d}, {RAX.d}", "rep stosq")
        self.emit(f"mov {REGS[1].q}, qword ptr [rsp+16]", f"mov {REGS[2].q}, qword ptr [rsp+8]")
        self.emit(f"mov {REGS[10].q}, {_ctx(Ctx.STACK_END)}")
        self.emit(*(f"xor {REGS[r].d}, {REGS[r].d}" for r in (0, 3, 4, 5, 6, 7, 8, 9)))
        if self.options.max_steps is not None:
            self.emit(f"movabs {SCRATCH[0].q}, {self.options.max_steps}", f"mov {_ctx(Ctx.STEPS)}, {SCRATCH[0].q}")
        self.emit(f"call {_label(0)}")
        # jg, not jnz: a repeat count of 0 (or garbage) still means one run, never 2**64
        self.emit(f"{after}:", f"sub {_ctx(Ctx.REPEAT)}, 1", f"jg {repeat}")
        self.emit(f"{STUB_LABELS['epilogue']}:", "add rsp, 24")
        self.emit(*(f"pop {reg.q}" for reg in reversed(HOST_SAVED)), "ret")

    def _stubs(self) -> None:
        pc_reg, code_reg = SCRATCH[0], SCRATCH[1]
        self.emit(f"{STUB_LABELS['error_stubs']}:")
        for (code, pc), label in self.sites.items():
            self.emit(
                f"{label}:", f"mov {pc_reg.d}, {pc}", f"mov {code_reg.d}, {int(code)}", f"jmp {STUB_LABELS['fail']}"
            )
        self.emit(f"{STUB_LABELS['fail']}:")
        self.emit(f"mov {_ctx(Ctx.ERROR)}, {code_reg.q}", f"mov {_ctx(Ctx.ERROR_PC)}, {pc_reg.q}")
        self.emit(f"mov rsp, {_ctx(Ctx.SAVED_SP)}", f"jmp {STUB_LABELS['epilogue']}")
        self.emit(f"{STUB_LABELS['exit0']}:")
        self.emit(f"mov rsp, {_ctx(Ctx.SAVED_SP)}", f"xor {RAX.d}, {RAX.d}", "jmp .Lnext")

    def _count_step(self, pc: int) -> None:
        if self.options.max_steps is not None:
            self.emit(f"sub {_ctx(Ctx.STEPS)}, 1", f"js {self.site(ErrorCode.STEPS, pc)}")

    # -- ALU -----------------------------------------------------------------

    def _alu(self, pc: int, insn: Instruction) -> None:
        bits = insn.spec.bits
        dst, mnemonic = REGS[insn.dst].sized(bits), _ALU[insn.op]
        if insn.spec.form is Form.ALU_X:
            self.emit(f"{mnemonic} {dst}, {REGS[insn.src].sized(bits)}")
        elif mnemonic == "imul":
            self.emit(f"imul {dst}, {dst}, {insn.imm}")
        else:
            self.emit(f"{mnemonic} {dst}, {insn.imm}")

    def _neg(self, pc: int, insn: Instruction) -> None:
        self.emit(f"neg {REGS[insn.dst].sized(insn.spec.bits)}")

    def _shift(self, pc: int, insn: Instruction) -> None:
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

    def _divmod(self, pc: int, insn: Instruction) -> None:
        """div/mod/sdiv/smod without ever executing a trapping div/idiv."""
        bits = insn.spec.bits
        signed, is_mod = insn.op.startswith("s"), insn.op.endswith("mod")
        dst = REGS[insn.dst]
        divisor = SCRATCH[0]
        done = f".L{pc}_done"

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
            if signed and _signed(value, bits) == -1:
                return by_minus_one()
            self.emit(f"mov {divisor.sized(bits)}, {insn.imm}")
        else:
            nonzero = f".L{pc}_nz"
            self.emit(f"mov {divisor.sized(bits)}, {REGS[insn.src].sized(bits)}")
            self.emit(f"test {divisor.sized(bits)}, {divisor.sized(bits)}", f"jnz {nonzero}")
            by_zero()
            self.emit(f"jmp {done}", f"{nonzero}:")
            if signed:
                divide = f".L{pc}_div"
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

    def _movsx(self, pc: int, insn: Instruction) -> None:
        bits, ext = insn.spec.bits, insn.spec.ext
        src = REGS[insn.src].part(ext // 8)
        mnemonic = "movsxd" if ext == 32 else "movsx"
        self.emit(f"{mnemonic} {REGS[insn.dst].sized(bits)}, {src}")

    def _byteswap(self, pc: int, insn: Instruction) -> None:
        dst, ext = REGS[insn.dst], insn.spec.ext
        if insn.op == "le":  # a little-endian host only truncates
            if ext < 64:
                self.emit(f"movzx {dst.d}, {dst.w}" if ext == 16 else f"mov {dst.d}, {dst.d}")
        elif ext == 16:
            self.emit(f"ror {dst.w}, 8", f"movzx {dst.d}, {dst.w}")
        else:
            self.emit(f"bswap {dst.sized(ext)}")

    # -- jumps and calls -------------------------------------------------------

    def _jump(self, pc: int, insn: Instruction) -> None:
        bits, target = insn.spec.bits, insn.target(pc)
        if target <= pc:
            self._count_step(pc)
        rhs = REGS[insn.src].sized(bits) if insn.spec.form is Form.JMP_X else str(insn.imm)
        compare = "test" if insn.op == "jset" else "cmp"
        self.emit(f"{compare} {REGS[insn.dst].sized(bits)}, {rhs}", f"j{_CONDITIONS[insn.op]} {_label(target)}")

    def _ja(self, pc: int, insn: Instruction) -> None:
        target = insn.target(pc)
        if target <= pc:
            self._count_step(pc)
        self.emit(f"jmp {_label(target)}")

    def _call_out(self, pc: int, function: str) -> None:
        """Call a helper (R1-R5 already in place, id in r9), then check ctx->error.

        R1-R5 keep their values across the call, as in the interpreter. The
        context goes on the stack twice: once as the 7th argument, once as
        padding that aligns rsp to 16 at the call (5 + 2 pushes from 8 mod 16).
        """
        self.emit(*(f"push {REGS[r].q}" for r in ARGUMENTS), f"push {CONTEXT.q}", f"push {CONTEXT.q}")
        self.emit(f"call {function}", "add rsp, 16", *(f"pop {REGS[r].q}" for r in reversed(ARGUMENTS)))
        self.emit(f"cmp {_ctx(Ctx.ERROR)}, 0", f"jne {self.site(ErrorCode.HELPER, pc)}")

    def _call_helper(self, pc: int, insn: Instruction) -> None:
        helper_id = checked_helper_id(self.prog, pc, insn.imm, self.options)
        self.emit(f"mov {HELPER_ID_ARG.d}, {helper_id}")
        self._call_out(pc, f"qword ptr [{CONTEXT.q}+{Ctx.HELPERS + 8 * helper_id}]")

    def _callx(self, pc: int, insn: Instruction) -> None:
        """Helper id from a register: range-checked, and an empty slot reports HELPER."""
        function = SCRATCH[0]
        self.emit(f"mov {function.q}, {REGS[insn.dst].q}", f"cmp {function.q}, {HELPER_SLOTS}")
        self.emit(f"jae {self.site(ErrorCode.BAD_CALLX, pc)}", f"mov {HELPER_ID_ARG.q}, {function.q}")
        self.emit(f"mov {function.q}, qword ptr [{CONTEXT.q}+{function.q}*8+{int(Ctx.HELPERS)}]")
        self.emit(f"test {function.q}, {function.q}", f"jz {self.site(ErrorCode.HELPER, pc)}")
        self._call_out(pc, function.q)

    def _call_local(self, pc: int, insn: Instruction) -> None:
        """Fresh 512-byte frame; R6-R9 and R10 restored after the callee's ret."""
        frame = REGS[10].q
        self.emit(*(f"push {REGS[r].q}" for r in CALLEE_SAVED_BPF))
        self.emit(f"sub {frame}, {STACK_SIZE}", f"cmp {frame}, {_ctx(Ctx.STACK_LIMIT)}")
        self.emit(f"jb {self.site(ErrorCode.CALL_DEPTH, pc)}")
        self._count_step(pc)
        self.emit(f"call {_label(insn.target(pc))}")
        self.emit(*(f"pop {REGS[r].q}" for r in reversed(CALLEE_SAVED_BPF)))

    def _map_lookup_stub(self) -> None:
        """helpers[1] when the program has array maps (the fast path of
        backends.base). r9 (helper id) and the stack stay intact for the fallback."""
        if not self.options.array_maps:
            return
        desc, key, scratch = REGS[1].q, REGS[2].q, SCRATCH[1].q
        array, fallback, miss = ".Llookup_array", ".Llookup_fallback", ".Llookup_miss"
        self.emit(f"{LOOKUP_LABEL}:")
        for address in self.options.array_maps:
            self.emit(f"movabs {scratch}, {_signed(address, 64)}", f"cmp {desc}, {scratch}", f"je {array}")
        self.emit(f"{fallback}:", f"jmp {_ctx(Ctx.LOOKUP_FALLBACK)}")
        # The key must lie in the BPF stack: offset from its start <= STACK_BYTES - 4 (unsigned).
        self.emit(f"{array}:", f"mov {scratch}, {key}", f"sub {scratch}, {_ctx(Ctx.STACK_START)}")
        self.emit(f"cmp {scratch}, {STACK_BYTES - 4}", f"ja {fallback}")
        self.emit(f"mov {SCRATCH[1].d}, dword ptr [{key}]", f"cmp {scratch}, {_mem(desc, Desc.MAX_ENTRIES, 8)}")
        self.emit(f"jae {miss}", f"imul {scratch}, {_mem(desc, Desc.VALUE_STRIDE, 8)}")
        self.emit(f"mov {RAX.q}, {_mem(desc, Desc.VALUES, 8)}", f"add {RAX.q}, {scratch}", "ret")
        self.emit(f"{miss}:", f"xor {RAX.d}, {RAX.d}", "ret")

    def _call_btf(self, pc: int, insn: Instruction) -> None:
        raise self.error(pc, "calls by BTF id (call runtime) are not supported")

    def _exit(self, pc: int, insn: Instruction) -> None:
        self.emit("ret")

    # -- memory ----------------------------------------------------------------

    def _lddw(self, pc: int, insn: Instruction) -> None:
        if insn.src != 0:
            raise self.error(pc, f"unresolved relocation ({insn.spec.mnemonic}): LD_IMM64 with src {insn.src}")
        dst, value = REGS[insn.dst], insn.imm
        if value < 1 << 32:
            self.emit(f"mov {dst.d}, {_signed(value, 32)}")
        elif _signed(value, 64) >= -(1 << 31):
            self.emit(f"mov {dst.q}, {_signed(value, 64)}")
        else:
            self.emit(f"movabs {dst.q}, {_signed(value, 64)}")

    def _load(self, pc: int, insn: Instruction) -> None:
        self._check_access(pc, insn)
        size, dst = insn.spec.size, REGS[insn.dst]
        source = _mem(REGS[insn.src].q, insn.off, size)
        if insn.op == "ldxs":
            self.emit(f"{'movsxd' if size == 4 else 'movsx'} {dst.q}, {source}")
        elif size < 4:
            self.emit(f"movzx {dst.d}, {source}")
        else:
            self.emit(f"mov {dst.part(size)}, {source}")

    def _store(self, pc: int, insn: Instruction) -> None:
        self._check_access(pc, insn)
        size = insn.spec.size
        target = _mem(REGS[insn.dst].q, insn.off, size)
        if insn.spec.form is Form.STORE_K:
            value = insn.imm if size == 8 else _signed(insn.imm, size * 8)
        else:
            value = REGS[insn.src].part(size)
        self.emit(f"mov {target}, {value}")

    def _atomic(self, pc: int, insn: Instruction) -> None:
        self._check_access(pc, insn)
        size, op = insn.spec.size, insn.op
        bits = size * 8
        target = _mem(REGS[insn.dst].q, insn.off, size)
        src = REGS[insn.src]
        if op == "cmpxchg":
            self.emit(f"lock cmpxchg {target}, {src.sized(bits)}")
            if bits == 32:  # R0 gets the old value zero-extended, on success too
                self.emit(f"mov {RAX.d}, {RAX.d}")
        elif op == "xchg":
            self.emit(f"xchg {target}, {src.sized(bits)}")
        elif not insn.spec.fetch:
            self.emit(f"lock {_ATOMIC_ALU[op]} {target}, {src.sized(bits)}")
        elif op == Op.ATOMIC_ADD:
            self.emit(f"lock xadd {target}, {src.sized(bits)}")
        else:
            self._fetch_loop(pc, insn)

    def _fetch_loop(self, pc: int, insn: Instruction) -> None:
        """Fetching and/or/xor: a cmpxchg loop on rax (R0), which is saved around it."""
        bits = insn.spec.size * 8
        address, saved_r0, new = SCRATCH
        operand = saved_r0 if insn.src == 0 else REGS[insn.src]
        loop = f".L{pc}_retry"
        self.emit(f"lea {address.q}, [{REGS[insn.dst].q}{insn.off:+d}]", f"mov {saved_r0.q}, {RAX.q}")
        self.emit(f"mov {RAX.sized(bits)}, {_mem(address.q, 0, bits // 8)}")
        self.emit(f"{loop}:", f"mov {new.q}, {RAX.q}")
        self.emit(f"{_ATOMIC_ALU[insn.op]} {new.sized(bits)}, {operand.sized(bits)}")
        self.emit(f"lock cmpxchg {_mem(address.q, 0, bits // 8)}, {new.sized(bits)}", f"jne {loop}")
        if insn.src != 0:  # src gets the old value; R0 is restored
            self.emit(f"mov {REGS[insn.src].sized(bits)}, {RAX.sized(bits)}", f"mov {RAX.q}, {saved_r0.q}")

    # -- run-time bounds checks (issue 7; see the module docstring) -------------

    def _check_setup(self) -> None:
        """At entry: the check bounds of the input buffer and of the stack."""
        start, last = SCRATCH[0], SCRATCH[1]
        nonempty = ".Lcheck_mem"
        self.emit(f"mov {start.q}, {_ctx(Ctx.MEM_START)}", f"mov {last.q}, {_ctx(Ctx.MEM_END)}")
        self.emit(f"cmp {start.q}, {last.q}", f"jb {nonempty}")
        self.emit(f"mov {start.q}, -1", f"mov {last.d}, 8")  # empty: bounds no access fits in
        self.emit(f"{nonempty}:", f"sub {last.q}, 8")
        self.emit(f"mov {_ctx(Ctx.CHECK_MEM_START)}, {start.q}", f"mov {_ctx(Ctx.CHECK_MEM_LAST)}, {last.q}")
        self.emit(f"mov {last.q}, {_ctx(Ctx.STACK_END)}", f"sub {last.q}, 8", f"mov {_ctx(Ctx.STACK_LAST)}, {last.q}")

    def _check_access(self, pc: int, insn: Instruction) -> None:
        """The bounds check of the access at ``pc``, when one is planned: the
        first region inline (the common case runs straight through), the others
        on an out-of-line slow path that returns to ``ok`` or reports the fault."""
        allowed = self.options.checks.get(pc)
        if not allowed:
            return
        size, base = insn.spec.size, insn.base_register
        addr, last, _ = SCRATCH
        ok = f".L{pc}_ok"
        fault = self.faults.setdefault(pc, f".Lf{pc}")
        self.site(ErrorCode.MEMORY, pc)
        regions = check_regions(insn, allowed, self.options)
        self.emit(f"lea {addr.q}, [{REGS[base].q}{insn.off:+d}]")
        if regions != [Check.FRAME]:
            self.emit(f"lea {last.q}, [{REGS[base].q}{insn.off + size - 8:+d}]")
        if insn.spec.form is Form.ATOMIC:
            self.emit(f"test {addr.d}, {size - 1}", f"jnz {fault}")
        if not regions:
            self.emit(f"jmp {fault}")
            return
        slow = f".Lslow{pc}" if len(regions) > 1 else fault
        self.lines += self._region_test(regions[0], insn, miss=slow)
        self.emit(f"{ok}:")
        if len(regions) > 1:
            path = [f"{slow}:"]
            for index, region in enumerate(regions[1:-1], 1):
                path += [*self._region_test(region, insn, miss=f"{slow}_{index}", hit=ok), f"{slow}_{index}:"]
            path += [*self._region_test(regions[-1], insn, miss=fault), f"jmp {ok}"]
            self.slow_paths += path

    def _region_test(self, region: Check, insn: Instruction, miss: str, hit: str | None = None) -> list[str]:
        """Whether [r11, r10 + 8) lies in ``region``: jump to ``hit`` if so (else
        fall through), or with ``hit`` None fall through if so (else jump to ``miss``)."""
        addr, last, temp = SCRATCH
        size = insn.spec.size
        inside = f"jbe {hit}" if hit else f"ja {miss}"  # after comparing with the region's end
        if region is Check.MEM:
            return [
                f"cmp {addr.q}, {_ctx(Ctx.CHECK_MEM_START)}",
                f"jb {miss}",
                f"cmp {last.q}, {_ctx(Ctx.CHECK_MEM_LAST)}",
                inside,
            ]
        if region is Check.FRAME:  # addr - (R10 - 512) <= 512 - size, unsigned
            return [
                f"lea {temp.q}, [{addr.q}+{STACK_SIZE}]",
                f"sub {temp.q}, {REGS[10].q}",
                f"cmp {temp.q}, {STACK_SIZE - size}",
                inside,
            ]
        if region is Check.STACK:
            return [
                f"lea {temp.q}, [{REGS[10].q}-{STACK_SIZE}]",
                f"cmp {addr.q}, {temp.q}",
                f"jb {miss}",
                f"cmp {last.q}, {_ctx(Ctx.STACK_LAST)}",
                inside,
            ]
        write = writes(insn)
        routine = self.block_routines.setdefault(write, f".Lblocks_{'w' if write else 'r'}")
        return [f"call {routine}", f"test {temp.d}, {temp.d}", f"jnz {hit}" if hit else f"jz {miss}"]

    def _check_stubs(self) -> None:
        """Fault stubs (record the address, report MEMORY) and the block routines:
        r9 = 1 when [r11, r10 + 8) lies in one block, else 0."""
        if not self.faults:
            return
        self.emit(f"{CHECKS_LABEL}:", *self.slow_paths)
        for pc, label in self.faults.items():
            self.emit(
                f"{label}:", f"mov {_ctx(Ctx.FAULT_ADDR)}, {SCRATCH[0].q}", f"jmp {self.site(ErrorCode.MEMORY, pc)}"
            )
        addr, last, temp = SCRATCH
        for write, routine in self.block_routines.items():
            found = f"{routine}_found"
            self.emit(f"{routine}:")
            for index, block in enumerate(block_spans(self.options, write)):
                skip = f"{routine}_{index}"
                self.emit(f"movabs {temp.q}, {_signed(block.start, 64)}", f"cmp {addr.q}, {temp.q}", f"jb {skip}")
                self.emit(f"movabs {temp.q}, {_signed(block.end - 8, 64)}", f"cmp {last.q}, {temp.q}", f"jbe {found}")
                self.emit(f"{skip}:")
            self.emit(f"xor {temp.d}, {temp.d}", "ret", f"{found}:", f"mov {temp.d}, 1", "ret")

    def _ldpacket(self, pc: int, insn: Instruction) -> None:
        """Legacy packet load: R0 = big-endian [R6 (+ src) + imm] within the input
        buffer; out of bounds ends the whole run with R0 = 0."""
        size = insn.spec.size
        addr, length, end = SCRATCH
        start = _ctx(Ctx.MEM_START)
        self.emit(f"mov {addr.q}, {REGS[6].q}")
        if insn.op == "ldind":
            self.emit(f"add {addr.q}, {REGS[insn.src].q}")
        if insn.imm:
            self.emit(f"add {addr.q}, {insn.imm}")
        # offset = addr - start (wraps when below); in bounds iff offset < len
        # and offset + size <= len.
        self.emit(f"sub {addr.q}, {start}", f"mov {length.q}, {_ctx(Ctx.MEM_END)}", f"sub {length.q}, {start}")
        self.emit(f"cmp {addr.q}, {length.q}", f"jae {STUB_LABELS['exit0']}")
        self.emit(f"lea {end.q}, [{addr.q}+{size}]", f"cmp {end.q}, {length.q}", f"ja {STUB_LABELS['exit0']}")
        self.emit(f"add {addr.q}, {start}")
        source = _mem(addr.q, 0, size)
        if size == 1:
            self.emit(f"movzx {RAX.d}, {source}")
        elif size == 2:
            self.emit(f"movzx {RAX.d}, {source}", f"rol {RAX.w}, 8")
        else:
            self.emit(f"mov {RAX.d}, {source}", f"bswap {RAX.d}")


class X86_64Backend(Backend):
    """x86-64 code generation (see the module docstring for the layout)."""

    arch = "x86_64"

    def generate(self, prog: Bytecode, options: CodegenOptions) -> str:
        if options.max_steps is not None and not 0 <= options.max_steps < 1 << 63:
            raise CompileError(f"max_steps must be an int in 0..2**63-1, not {options.max_steps!r}")
        return _Emitter(prog, options).generate()

    def compile(self, prog: Bytecode, options: CodegenOptions) -> NativeCode:
        text = self.generate(prog, options)
        stubs = {**STUB_LABELS, "map_lookup": LOOKUP_LABEL} if options.array_maps else dict(STUB_LABELS)
        checks = emitted_checks(prog, options.checks)
        if checks:
            stubs["bounds_checks"] = CHECKS_LABEL
        names = [_label(pc) for pc in prog.pcs] + list(stubs.values())
        table = "".join(f".quad {', '.join(names[i : i + 64])}\n" for i in range(0, len(names), 64))
        code = assemble(text + table)
        split = len(code) - 8 * len(names)
        offsets = [int.from_bytes(code[split + 8 * i : split + 8 * i + 8], "little") for i in range(len(names))]
        count = len(prog.pcs)
        labels = dict(zip(stubs, offsets[count:]))
        return NativeCode(
            self.arch,
            code[:split],
            tuple(offsets[:count]),
            labels["prologue"],
            prog,
            text,
            labels=labels,
            checks=checks,
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


def assemble(text: str) -> bytes:
    """Intel-syntax x86-64 assembly to machine code, in one keystone call."""
    import keystone

    try:
        encoding, _ = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(text, 0)
    except keystone.KsError as exc:
        raise CompileError(f"keystone rejected the generated x86-64 assembly: {exc}") from exc
    return bytes(encoding or b"")
