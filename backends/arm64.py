"""ARM64 (AArch64) backend: eBPF to ARM64 assembly text, assembled by keystone.

Register map (DESIGN.md section 4, the Linux kernel's)::

    R0 x7   R1-R5 x0-x4   R6-R9 x19-x22   R10 x25   scratch x9-x12
    x26  the run-time context (callee-saved, so it survives helper calls)
    x5   helper id at a helper call, x6 the context (see backends.base)

The generated code follows the native ABI of :mod:`backends.base`:
``entry(mem, len, ctx)`` saves the host's callee-saved registers, keeps
``sp`` 16-byte aligned and *calls* the main program ``ctx->repeat`` times,
each run with a zeroed BPF stack, R0 and R3-R9 zero and the step budget
re-armed. Every BPF ``exit`` is a ``ret``; a local call saves the caller's
R6-R9, R10 and x30 on the host stack and gets a fresh 512-byte frame. A
helper call keeps R1-R5 (the interpreter's choice) and copies x0 to R0.

Keystone silently mis-assembles out-of-range branches, so the emitter lays
the code out itself (every ARM64 instruction is 4 bytes) and checks every
branch: a conditional branch (``b.cond``/``cbz``/``cbnz``, +-1 MiB) whose
target is too far becomes the inverted condition over an unconditional ``b``
(+-128 MiB); a ``b``/``bl`` beyond that is a CompileError (1,000,000 BPF slots
cannot produce that much code). After assembling, the offsets keystone gives
the instruction labels (read from a ``.quad`` table appended to the text and
stripped again) are compared with the emitter's own layout.

Layout: the prologue, epilogue, abort path, the array-map lookup stub (when
the program has array maps, see backends.base) and error stubs come first (so a
native offset there maps to no BPF instruction), then one label ``L<i>`` per
instruction, then the stub that reports falling off the end.

Run-time bounds checks (``CodegenOptions.checks``, planned by :mod:`jit.safety`;
the same tests as the x86-64 backend's): x11 = address, x12 = address + size
- 8, then per allowed region the input buffer (``ctx->check_mem_start`` and
``ctx->check_mem_last``, set by the prologue), the current frame (``x11 -
(R10 - 512) <= 512 - size``, unsigned), the active frames (``R10 - 512 <=
x11``, ``x12 <= ctx->stack_last``), the host memory blocks (a shared routine
entered with ``bl``, x30 parked in x10, answering in x9). An atomic must also
be naturally aligned. A failure stores x11 in ``ctx->fault_addr`` and reports
MEMORY.
"""

from __future__ import annotations

import struct
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
from jit.core.bytecode import Bytecode, Instruction, check_control_flow
from jit.core.errors import CompileError
from jit.core.isa import STACK_SIZE, Form, Op

# --- register map ----------------------------------------------------------------
_BPF_REGS = (7, 0, 1, 2, 3, 4, 19, 20, 21, 22, 25)  # x-register number of R0..R10
X = tuple(f"x{n}" for n in _BPF_REGS)
W = tuple(f"w{n}" for n in _BPF_REGS)
SCRATCH = (9, 10, 11, 12)  # never BPF-visible; nothing live in them across a call
CTX = "x26"
HELPER_ID, HELPER_CTX = "x5", "x6"

MASK64 = (1 << 64) - 1
COND_RANGE = 1 << 20  # b.cond / cbz / cbnz: signed 19-bit word offset
JUMP_RANGE = 1 << 27  # b / bl: signed 26-bit word offset
_CONDITIONAL = frozenset({"cbz", "cbnz"})

COND = {
    "jeq": "eq",
    "jne": "ne",
    "jgt": "hi",
    "jge": "hs",
    "jlt": "lo",
    "jle": "ls",
    "jsgt": "gt",
    "jsge": "ge",
    "jslt": "lt",
    "jsle": "le",
    "jset": "ne",
}
# Labels of the code that belongs to no instruction, as NativeCode.labels names.
STUB_LABELS = {
    "prologue": "entry",
    "epilogue": "epilogue",
    "exit0": "exit0",
    "fail": "fail",
    "error_stubs": "error_stubs",
    "fell_off": "fell_off",
}
LOOKUP_LABEL = "map_lookup"  # the array-map lookup stub, when emitted (see backends.base)
CHECKS_LABEL = "bounds_checks"  # fault stubs and block routines of bounds checks, when emitted

INVERT = {"eq": "ne", "ne": "eq", "hi": "ls", "ls": "hi", "hs": "lo", "lo": "hs"}
INVERT.update({"gt": "le", "le": "gt", "ge": "lt", "lt": "ge", "mi": "pl", "pl": "mi", "cs": "cc", "cc": "cs"})

_ALU_REG = {
    "add": "add",
    "sub": "sub",
    "mul": "mul",
    "or": "orr",
    "and": "and",
    "xor": "eor",
    "lsh": "lsl",
    "rsh": "lsr",
    "arsh": "asr",
    "div": "udiv",
    "sdiv": "sdiv",
}
_SXT = {8: "sxtb", 16: "sxth", 32: "sxtw"}
_LOGICAL = frozenset({"or", "and", "xor"})
_ATOMIC_ALU = {Op.ATOMIC_ADD: "add", Op.ATOMIC_OR: "orr", Op.ATOMIC_AND: "and", Op.ATOMIC_XOR: "eor"}

# (op, size) -> (scaled mnemonic, unscaled mnemonic, register width)
_MEM = {
    ("ldx", 1): ("ldrb", "ldurb", 32),
    ("ldx", 2): ("ldrh", "ldurh", 32),
    ("ldx", 4): ("ldr", "ldur", 32),
    ("ldx", 8): ("ldr", "ldur", 64),
    ("ldxs", 1): ("ldrsb", "ldursb", 64),
    ("ldxs", 2): ("ldrsh", "ldursh", 64),
    ("ldxs", 4): ("ldrsw", "ldursw", 64),
}
for _size, (_scaled, _unscaled) in {1: ("strb", "sturb"), 2: ("strh", "sturh"), 4: ("str", "stur")}.items():
    _MEM["st", _size] = _MEM["stx", _size] = (_scaled, _unscaled, 32)
_MEM["st", 8] = _MEM["stx", 8] = ("str", "stur", 64)


def _reg(number: int, bits: int) -> str:
    return f"{'x' if bits == 64 else 'w'}{number}"


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def imm_value(imm: int, bits: int) -> int:
    """An instruction's imm32 as the operand value: sign-extended to 64 bits
    for 64-bit operations, the 32-bit pattern for 32-bit ones (unsigned)."""
    return _s32(imm) & MASK64 if bits == 64 else imm & 0xFFFFFFFF


def is_addsub_imm(value: int) -> bool:
    """True if ``value`` fits an add/sub/cmp immediate: 12 bits, optionally shifted by 12."""
    return 0 <= value < 4096 or (value & 0xFFF == 0 and 0 <= value >> 12 < 4096)


def is_logical_imm(value: int, bits: int) -> bool:
    """True if ``value`` is an ARM64 bitmask immediate of width ``bits``: a
    repeated element of 2..bits bits holding one rotated run of ones."""
    mask = (1 << bits) - 1
    value &= mask
    if value in (0, mask):
        return False
    size = 2
    while size < bits:
        element = value & ((1 << size) - 1)
        if all((value >> shift) & ((1 << size) - 1) == element for shift in range(size, bits, size)):
            break
        size *= 2
    element = value & ((1 << size) - 1)
    rotated = (element >> 1) | ((element & 1) << (size - 1))
    return bin(element ^ rotated).count("1") == 2  # exactly one 0->1 and one 1->0 edge


@dataclass(slots=True)
class Branch:
    """A branch whose encoding depends on the distance to its label.

    ``op`` is ``b``, ``bl``, ``b.<cond>``, ``cbz`` or ``cbnz`` (``reg`` is the
    tested register of the last two). ``far`` selects the inverted condition
    over an unconditional ``b``.
    """

    op: str
    target: str
    reg: str = ""
    far: bool = False
    pos: int = 0

    @property
    def conditional(self) -> bool:
        return self.op.startswith("b.") or self.op in _CONDITIONAL

    @property
    def size(self) -> int:
        return 8 if self.far else 4

    def render(self, skip_label: str) -> str:
        operands = f"{self.reg}, " if self.reg else ""
        if not self.far:
            return f"{self.op} {operands}{self.target}"
        inverse = {"cbz": "cbnz", "cbnz": "cbz"}.get(self.op) or f"b.{INVERT[self.op[2:]]}"
        return f"{inverse} {operands}{skip_label}\nb {self.target}\n{skip_label}:"


class _Emitter:
    """Builds the instruction list of one program: strings are single ARM64
    instructions (4 bytes) or label definitions (ending in ``:``), and
    :class:`Branch` items are resolved once the layout is known."""

    def __init__(self, prog: Bytecode, options: CodegenOptions):
        self.prog = prog
        self.options = options
        self.items: list[str | Branch] = []
        self.branches: list[Branch] = []
        self.stubs: dict[tuple[ErrorCode, int], str] = {}
        self.faults: dict[int, str] = {}  # slot -> stub recording a failed bounds check
        self.block_routines: dict[bool, str] = {}  # for stores? -> routine label
        self.slow_paths: list[str | Branch] = []  # out-of-line tests of the second and later check regions
        self.temps = 0
        self.labels: dict[str, int] = {}  # native offset of every label, once resolved

    # --- primitives ------------------------------------------------------------------
    def emit(self, *lines: str) -> None:
        self.items.extend(lines)

    def label(self, name: str) -> None:
        self.items.append(name + ":")

    def branch(self, op: str, target: str, reg: str = "") -> None:
        item = Branch(op, target, reg)
        self.items.append(item)
        self.branches.append(item)

    def fresh(self) -> str:
        self.temps += 1
        return f"T{self.temps}"

    def fail(self, op: str, code: ErrorCode, pc: int, reg: str = "") -> None:
        """Branch (``op``: a condition or cbz/cbnz) to a stub that reports ``code``
        at ``pc`` and aborts."""
        stub = self.stubs.setdefault((code, pc), f"E{len(self.stubs)}")
        self.branch(op, stub, reg)

    def error(self, pc: int, message: str) -> CompileError:
        return CompileError(f"{self.prog.describe(pc)}: {message}")

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
        """Decrement ctx->steps (back-edges and local calls) when max_steps is set."""
        if self.options.max_steps is None:
            return
        self.emit(f"ldr x9, [{CTX}, #{Ctx.STEPS}]", "subs x9, x9, #1", f"str x9, [{CTX}, #{Ctx.STEPS}]")
        self.fail("b.mi", ErrorCode.STEPS, pc)

    # --- the one loop ------------------------------------------------------------------
    def program(self) -> None:
        prog = self.prog
        handlers = {
            "movsx": self.movsx,
            "neg": self.alu,
            "le": self.endian,
            "be": self.endian,
            "bswap": self.endian,
            "ja": self.ja,
            "call": self.call_helper,
            "call_local": self.call_local,
            "call_btf": self.call_btf,
            "callx": self.callx,
            "exit": self.exit,
            "lddw": self.lddw,
            "ldx": self.load,
            "ldxs": self.load,
            "st": self.store,
            "stx": self.store,
            "ldabs": self.ldabs,
            "ldind": self.ldabs,
        }
        for op in _ALU_REG.keys() | {"mod", "smod", "mov"}:
            handlers[op] = self.alu
        for op in COND:
            handlers[op] = self.jump
        for index, (pc, insn) in enumerate(prog):
            self.items.append(f"L{index}:")
            # Atomics share their op names (add, or, ...) with ALU operations.
            handler = self.atomic if insn.spec.form is Form.ATOMIC else handlers[insn.op]
            handler(pc, insn)

    # --- ALU -------------------------------------------------------------------------------
    def alu(self, pc: int, insn: Instruction) -> None:
        op, bits = insn.op, insn.spec.bits
        regs = X if bits == 64 else W
        dst = regs[insn.dst]
        if op == "neg":
            self.emit(f"neg {dst}, {dst}")
            return
        if insn.spec.form is Form.ALU_X:
            self.alu_reg(op, dst, regs[insn.src], bits)
            return
        value = imm_value(insn.imm, bits)
        if op == "mov":
            self.mov_imm(_BPF_REGS[insn.dst], value, bits)
        elif op in ("add", "sub"):
            self.add_imm(dst, dst, value if op == "add" else -value, bits, SCRATCH[0])
        elif op in ("lsh", "rsh", "arsh"):
            count = value & (bits - 1)
            if count or bits == 32:
                self.emit(f"{_ALU_REG[op]} {dst}, {dst}, #{count}")
        elif op in _LOGICAL and is_logical_imm(value, bits):
            self.emit(f"{_ALU_REG[op]} {dst}, {dst}, #0x{value:x}")
        else:
            self.mov_imm(SCRATCH[1], value, bits)
            self.alu_reg(op, dst, _reg(SCRATCH[1], bits), bits)

    def alu_reg(self, op: str, dst: str, src: str, bits: int) -> None:
        if op == "mov":
            self.emit(f"mov {dst}, {src}")
        elif op in ("mod", "smod"):
            # q = dst / src (0 when src is 0), dst -= q * src: x % 0 == x, INT_MIN % -1 == 0.
            quotient = _reg(SCRATCH[0], bits)
            self.emit(f"{'udiv' if op == 'mod' else 'sdiv'} {quotient}, {dst}, {src}")
            self.emit(f"msub {dst}, {quotient}, {src}, {dst}")
        else:
            # udiv/sdiv give 0 for a zero divisor and INT_MIN for INT_MIN / -1, as BPF
            # wants; register shifts use the count modulo the width, as BPF masks it.
            self.emit(f"{_ALU_REG[op]} {dst}, {dst}, {src}")

    def movsx(self, pc: int, insn: Instruction) -> None:
        bits = insn.spec.bits
        dst = (X if bits == 64 else W)[insn.dst]
        self.emit(f"{_SXT[insn.spec.ext]} {dst}, {W[insn.src]}")

    def endian(self, pc: int, insn: Instruction) -> None:
        ext, w, x = insn.spec.ext, W[insn.dst], X[insn.dst]
        if insn.op == "le":  # the host is little-endian: truncate and zero-extend only
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

    def lddw(self, pc: int, insn: Instruction) -> None:
        if insn.src:
            raise self.error(pc, f"unresolved relocation (LD_IMM64 src={insn.src}); load the program with its maps")
        self.mov_imm(_BPF_REGS[insn.dst], insn.imm)

    # --- jumps and calls -------------------------------------------------------------------
    def target(self, pc: int, insn: Instruction) -> tuple[str, bool]:
        """The label of a jump's target and whether it is a back-edge."""
        target = insn.target(pc)
        return f"L{self.prog.index_of[target]}", target <= pc

    def ja(self, pc: int, insn: Instruction) -> None:
        label, back = self.target(pc, insn)
        if back:
            self.count_step(pc)
        self.branch("b", label)

    def jump(self, pc: int, insn: Instruction) -> None:
        bits, op = insn.spec.bits, insn.op
        regs = X if bits == 64 else W
        dst = regs[insn.dst]
        test = "tst" if op == "jset" else "cmp"
        if insn.spec.form is Form.JMP_X:
            self.emit(f"{test} {dst}, {regs[insn.src]}")
        else:
            value, signed = imm_value(insn.imm, bits), _s32(insn.imm)
            if op == "jset" and is_logical_imm(value, bits):
                self.emit(f"tst {dst}, #0x{value:x}")
            elif op != "jset" and is_addsub_imm(signed):
                self.emit(f"cmp {dst}, #{signed}")
            elif op != "jset" and signed < 0 and is_addsub_imm(-signed):
                self.emit(f"cmn {dst}, #{-signed}")
            else:
                self.mov_imm(SCRATCH[0], value, bits)
                self.emit(f"{test} {dst}, {_reg(SCRATCH[0], bits)}")
        label, back = self.target(pc, insn)
        cond = COND[op]
        if back and self.options.max_steps is not None:
            skip = self.fresh()
            self.branch(f"b.{INVERT[cond]}", skip)
            self.count_step(pc)
            self.branch("b", label)
            self.label(skip)
        else:
            self.branch(f"b.{cond}", label)

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

    def call_helper(self, pc: int, insn: Instruction) -> None:
        helper_id = checked_helper_id(self.prog, pc, insn.imm, self.options)
        self.emit(f"ldr x9, [{CTX}, #{Ctx.HELPERS + 8 * helper_id}]")
        self.mov_imm(5, helper_id)
        self.call_out(pc)

    def callx(self, pc: int, insn: Instruction) -> None:
        """Helper id from a register: range-checked; an empty slot reports HELPER."""
        self.emit(f"mov {HELPER_ID}, {X[insn.dst]}", f"cmp {HELPER_ID}, #{HELPER_SLOTS}")
        self.fail("b.hs", ErrorCode.BAD_CALLX, pc)
        self.emit(f"add x9, {CTX}, {HELPER_ID}, lsl #3", f"ldr x9, [x9, #{Ctx.HELPERS}]")
        self.fail("cbz", ErrorCode.HELPER, pc, "x9")
        self.call_out(pc)

    def call_out(self, pc: int) -> None:
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

    def map_lookup_stub(self) -> None:
        """helpers[1] when the program has array maps (the fast path of
        backends.base). x5 (helper id), x6 (ctx) and x30 stay intact for the fallback."""
        if not self.options.array_maps:
            return
        desc, key = X[1], X[2]
        self.label(LOOKUP_LABEL)
        for address in self.options.array_maps:
            self.mov_imm(10, address)
            self.emit(f"cmp {desc}, x10")
            self.branch("b.eq", "lookup_array")
        self.label("lookup_fallback")
        self.emit(f"ldr x9, [{CTX}, #{Ctx.LOOKUP_FALLBACK}]", "br x9")
        # The key must lie in the BPF stack: offset from its start <= STACK_BYTES - 4 (unsigned).
        self.label("lookup_array")
        self.emit(f"ldr x10, [{CTX}, #{Ctx.STACK_START}]", f"sub x10, {key}, x10")
        self.mov_imm(11, STACK_BYTES - 4)
        self.emit("cmp x10, x11")
        self.branch("b.hi", "lookup_fallback")
        self.emit(f"ldr w10, [{key}]", f"ldr x11, [{desc}, #{Desc.MAX_ENTRIES}]", "cmp x10, x11")
        self.branch("b.hs", "lookup_miss")
        self.emit(f"ldr x11, [{desc}, #{Desc.VALUE_STRIDE}]", f"ldr x12, [{desc}, #{Desc.VALUES}]")
        self.emit("madd x0, x10, x11, x12", "ret")  # x0: the C return register
        self.label("lookup_miss")
        self.emit("mov x0, #0", "ret")

    def call_btf(self, pc: int, insn: Instruction) -> None:
        raise self.error(pc, "calls by BTF id (call with src=2) are not supported")

    def exit(self, pc: int, insn: Instruction) -> None:
        self.emit("ret")

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
        mnemonics = _MEM[insn.op, insn.spec.size]
        op, operand = self.address(X[insn.src], insn.off, insn.spec.size, mnemonics)
        self.emit(f"{op} {_reg(_BPF_REGS[insn.dst], mnemonics[2])}, {operand}")

    def store(self, pc: int, insn: Instruction) -> None:
        self.check_access(pc, insn)
        size = insn.spec.size
        mnemonics = _MEM[insn.op, size]
        bits = mnemonics[2]
        if insn.op == "stx":
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
        if op == "cmpxchg":
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
        if op != "xchg":
            stored = new
            self.emit(f"{_ATOMIC_ALU[op]} {new}, {old}, {src}")
        self.emit(f"stlxr {status}, {stored}, [{addr}]")
        self.branch("cbnz", retry, status)
        if insn.spec.fetch:
            self.emit(f"mov {src}, {old}")

    def ldabs(self, pc: int, insn: Instruction) -> None:
        """Legacy packet load: R0 = big-endian value at R6 (+ src) + imm, checked
        against the input buffer; out of bounds ends the program with R0 = 0."""
        size = insn.spec.size
        if insn.op == "ldind":
            self.emit(f"add x9, {X[6]}, {X[insn.src]}")
        else:
            self.emit(f"mov x9, {X[6]}")
        self.add_imm("x9", "x9", _s32(insn.imm), 64, SCRATCH[1])
        self.emit(f"ldr x10, [{CTX}, #{Ctx.MEM_START}]", "cmp x9, x10")
        self.branch("b.lo", STUB_LABELS["exit0"])
        self.emit(f"adds x11, x9, #{size}")
        self.branch("b.cs", STUB_LABELS["exit0"])
        self.emit(f"ldr x10, [{CTX}, #{Ctx.MEM_END}]", "cmp x11, x10")
        self.branch("b.hi", STUB_LABELS["exit0"])
        load, swap = {1: ("ldrb", ""), 2: ("ldrh", "rev16"), 4: ("ldr", "rev")}[size]
        self.emit(f"{load} {W[0]}, [x9]")
        if swap:
            self.emit(f"{swap} {W[0]}, {W[0]}")

    # --- run-time bounds checks (issue 7; see the module docstring) ------------------------------
    def check_setup(self) -> None:
        """At entry: the check bounds of the input buffer (all ones and 0 when it
        is empty, so nothing fits in) and of the stack."""
        self.emit(f"ldr x9, [{CTX}, #{Ctx.MEM_START}]", f"ldr x10, [{CTX}, #{Ctx.MEM_END}]", "cmp x9, x10")
        self.emit("csinv x9, x9, xzr, lo", "mov x11, #8", "csel x10, x10, x11, lo", "sub x10, x10, #8")
        self.emit(f"str x9, [{CTX}, #{Ctx.CHECK_MEM_START}]", f"str x10, [{CTX}, #{Ctx.CHECK_MEM_LAST}]")
        self.emit(f"ldr x9, [{CTX}, #{Ctx.STACK_END}]", "sub x9, x9, #8", f"str x9, [{CTX}, #{Ctx.STACK_LAST}]")

    def check_access(self, pc: int, insn: Instruction) -> None:
        """The bounds check of the access at ``pc``, when one is planned: the
        first region inline (the common case runs straight through), the others
        on an out-of-line slow path that returns to ``ok`` or reports the fault."""
        allowed = self.options.checks.get(pc)
        if not allowed:
            return
        size, base = insn.spec.size, insn.base_register
        regions = check_regions(insn, allowed, self.options)
        fault = self.faults.setdefault(pc, f"M{pc}")
        self.add_imm("x11", X[base], insn.off, 64, SCRATCH[0])
        if regions != [Check.FRAME]:
            self.emit(f"sub x12, x11, #{8 - size}" if size < 8 else "mov x12, x11")
        if insn.spec.form is Form.ATOMIC:
            self.emit(f"tst x11, #{size - 1}")
            self.branch("b.ne", fault)
        if not regions:
            self.branch("b", fault)
            return
        slow, ok = (self.fresh(), self.fresh()) if len(regions) > 1 else (fault, "")
        self.region_test(regions[0], size, insn, miss=slow)
        if len(regions) == 1:
            return
        self.label(ok)
        inline, self.items = self.items, self.slow_paths
        self.label(slow)
        for region in regions[1:-1]:
            miss = self.fresh()
            self.region_test(region, size, insn, miss=miss, hit=ok)
            self.label(miss)
        self.region_test(regions[-1], size, insn, miss=fault)
        self.branch("b", ok)
        self.items = inline

    def region_test(self, region: Check, size: int, insn: Instruction, miss: str, hit: str = "") -> None:
        """Whether [x11, x12 + 8) lies in ``region``: branch to ``hit`` if so (else
        fall through), or without ``hit`` fall through if so (else branch to ``miss``)."""
        inside = ("b.ls", hit) if hit else ("b.hi", miss)  # after comparing with the region's end
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
        else:
            write = writes(insn)
            routine = self.block_routines.setdefault(write, f"blocks_{'w' if write else 'r'}")
            self.emit("mov x10, x30")
            self.branch("bl", routine)
            self.emit("mov x30, x10")
            self.branch(*(("cbnz", hit) if hit else ("cbz", miss)), "x9")
            return
        self.branch(*inside)

    def check_stubs(self) -> None:
        """Fault stubs (record the address, report MEMORY) and the block routines:
        x9 = 1 when [x11, x12 + 8) lies in one block, else 0."""
        if not self.faults:
            return
        self.label(CHECKS_LABEL)
        self.items += self.slow_paths
        for pc, label in self.faults.items():
            self.label(label)
            self.emit(f"str x11, [{CTX}, #{Ctx.FAULT_ADDR}]")
            self.fail("b", ErrorCode.MEMORY, pc)
        for write, routine in self.block_routines.items():
            found = f"{routine}_found"
            self.label(routine)
            for block in block_spans(self.options, write):
                skip = self.fresh()
                self.mov_imm(SCRATCH[0], block.start)
                self.emit("cmp x11, x9")
                self.branch("b.lo", skip)
                self.mov_imm(SCRATCH[0], block.end - 8)
                self.emit("cmp x12, x9")
                self.branch("b.ls", found)
                self.label(skip)
            self.emit("mov x9, #0", "ret")
            self.label(found)
            self.emit("mov x9, #1", "ret")

    # --- fixed code around the program ------------------------------------------------------------
    def prologue(self) -> list[str | Branch]:
        """Entry, batch loop, epilogue, abort path and the error stubs."""
        saved, self.items = self.items, []
        self.label(STUB_LABELS["prologue"])
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
        if self.options.checks:
            self.check_setup()
        self.label("batch")  # every run: zeroed BPF stack (unless verified), fresh registers and step budget
        if self.options.zero_stack:
            self.emit(f"ldr x9, [{CTX}, #{Ctx.STACK_START}]", f"mov x10, #{STACK_BYTES // 16}")
            self.label("zero")
            self.emit("stp xzr, xzr, [x9], #16", "subs x10, x10, #1")
            self.branch("b.ne", "zero")
        self.emit(f"ldp {X[1]}, {X[2]}, [sp, #64]", f"ldr {X[10]}, [{CTX}, #{Ctx.STACK_END}]")
        self.emit(*(f"mov {X[r]}, #0" for r in (0, 3, 4, 5, 6, 7, 8, 9)))
        if self.options.max_steps is not None:
            self.mov_imm(SCRATCH[0], self.options.max_steps)
            self.emit(f"str x9, [{CTX}, #{Ctx.STEPS}]")
        self.branch("bl", "L0")
        self.label("resume")
        self.emit(f"ldr x9, [{CTX}, #{Ctx.REPEAT}]", "subs x9, x9, #1", f"str x9, [{CTX}, #{Ctx.REPEAT}]")
        self.branch("b.gt", "batch")
        self.label(STUB_LABELS["epilogue"])
        self.emit(
            f"mov x0, {X[0]}",
            f"ldp {X[6]}, {X[7]}, [sp, #16]",
            f"ldp {X[8]}, {X[9]}, [sp, #32]",
            f"ldp {X[10]}, {CTX}, [sp, #48]",
            "ldp x29, x30, [sp], #80",
            "ret",
        )
        self.label(STUB_LABELS["exit0"])  # LD_ABS/LD_IND out of bounds: this run returns 0
        self.emit(f"mov {X[0]}, #0", f"ldr x9, [{CTX}, #{Ctx.SAVED_SP}]", "mov sp, x9")
        self.branch("b", "resume")
        self.label(STUB_LABELS["fail"])  # x9 = ErrorCode, x10 = BPF slot
        self.emit(
            f"str x9, [{CTX}, #{Ctx.ERROR}]",
            f"str x10, [{CTX}, #{Ctx.ERROR_PC}]",
            f"ldr x9, [{CTX}, #{Ctx.SAVED_SP}]",
            "mov sp, x9",
        )
        self.branch("b", STUB_LABELS["epilogue"])
        self.map_lookup_stub()
        self.check_stubs()
        self.label(STUB_LABELS["error_stubs"])
        for (code, pc), stub in self.stubs.items():
            self.label(stub)
            self.mov_imm(SCRATCH[1], pc)
            self.emit(f"mov x{SCRATCH[0]}, #{int(code)}")
            self.branch("b", STUB_LABELS["fail"])
        head, self.items = self.items, saved
        return head

    def build(self) -> tuple[str, int]:
        """The whole program as assembly text, branches resolved; and its code size."""
        self.program()
        self.label(STUB_LABELS["fell_off"])
        self.fail("b", ErrorCode.FELL_OFF, self.prog.pcs[-1])
        self.items = self.prologue() + self.items
        size = self.resolve()
        lines, far = [], 0
        for item in self.items:
            if item.__class__ is str:
                lines.append(item)
            else:
                far += item.far
                lines.append(item.render(f"F{far}"))
        return "\n".join(lines) + "\n", size

    def layout(self) -> tuple[dict[str, int], int]:
        labels: dict[str, int] = {}
        pos = 0
        for item in self.items:
            if item.__class__ is str:
                if item[-1] == ":":
                    labels[item[:-1]] = pos
                else:
                    pos += 4
            else:
                item.pos = pos
                pos += item.size
        return labels, pos

    def resolve(self) -> int:
        """Make every out-of-range conditional branch far, until nothing changes
        (far branches only grow the code), then check the unconditional ones."""
        while True:
            labels, size = self.layout()
            changed = False
            for br in self.branches:
                if br.conditional and not br.far and not -COND_RANGE <= labels[br.target] - br.pos < COND_RANGE:
                    br.far = changed = True
            if not changed:
                break
        for br in self.branches:
            start = br.pos + 4 if br.far else br.pos
            if (br.far or not br.conditional) and not -JUMP_RANGE <= labels[br.target] - start < JUMP_RANGE:
                raise CompileError(f"{self.prog.name}: generated code too large for an ARM64 branch ({br.op})")
        self.labels = labels
        return size


class Arm64Backend(Backend):
    """eBPF to ARM64 machine code (see the module docstring for the ABI)."""

    arch = "arm64"

    def __init__(self) -> None:
        self._ks = None  # keystone instance, made on first use

    def _emitter(self, prog: Bytecode, options: CodegenOptions) -> _Emitter:
        if options.max_steps is not None and not 0 <= options.max_steps < 1 << 63:
            raise CompileError(f"max_steps must be an int in 0..2**63-1, not {options.max_steps!r}")
        check_control_flow(prog)
        return _Emitter(prog, options)

    def generate(self, prog: Bytecode, options: CodegenOptions) -> str:
        return self._emitter(prog, options).build()[0]

    def compile(self, prog: Bytecode, options: CodegenOptions) -> NativeCode:
        emitter = self._emitter(prog, options)
        text, size = emitter.build()
        count = len(prog.instructions)
        table = "\n".join(
            ".quad " + ", ".join(f"L{i}" for i in range(start, min(start + 64, count))) for start in range(0, count, 64)
        )
        encoding = self._assemble(prog, text + table + "\n")
        if len(encoding) != size + 8 * count:
            raise CompileError(f"{prog.name}: keystone produced {len(encoding)} bytes, expected {size + 8 * count}")
        offsets = struct.unpack_from(f"<{count}Q", encoding, size)
        expected = tuple(emitter.labels[f"L{i}"] for i in range(count))
        if offsets != expected:
            raise CompileError(f"{prog.name}: keystone's layout differs from the emitter's (branch ranges unsafe)")
        labels = {name: emitter.labels[label] for name, label in STUB_LABELS.items()}
        if LOOKUP_LABEL in emitter.labels:
            labels["map_lookup"] = emitter.labels[LOOKUP_LABEL]
        if CHECKS_LABEL in emitter.labels:
            labels["bounds_checks"] = emitter.labels[CHECKS_LABEL]
        checks = emitted_checks(prog, options.checks)
        return NativeCode(
            self.arch, encoding[:size], offsets, labels["prologue"], prog, text, labels=labels, checks=checks
        )

    def emulation(self) -> Emulation:
        from unicorn import UC_ARCH_ARM64, UC_MODE_ARM
        from unicorn import arm64_const as uc

        def reg(name: str) -> int:
            return getattr(uc, f"UC_ARM64_REG_{name.upper()}")

        return Emulation(
            UC_ARCH_ARM64,
            UC_MODE_ARM,
            (reg("x0"), reg("x1"), reg("x2")),
            tuple(reg(f"x{n}") for n in range(5)),  # type: ignore[arg-type]
            reg("x0"),
            reg("sp"),
            reg("pc"),
            reg("x30"),
            bytes.fromhex("c0035fd6"),
            tuple(reg(f"x{n}") for n in range(31)),
            tuple(map(reg, X)),
        )

    def disassembler(self) -> object:
        import capstone

        arch = getattr(capstone, "CS_ARCH_ARM64", None) or capstone.CS_ARCH_AARCH64
        return capstone.Cs(arch, capstone.CS_MODE_ARM)

    def _assemble(self, prog: Bytecode, text: str) -> bytes:
        from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks, KsError

        if self._ks is None:
            self._ks = Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN)
        try:
            encoding, _ = self._ks.asm(text, 0)
        except KsError as exc:
            raise CompileError(f"{prog.name}: keystone rejected the generated ARM64 code: {exc}") from exc
        return bytes(encoding or b"")
