"""The eBPF instruction set (RFC 9669, v4 included) as one declarative table.

Every engine and tool reads this table: the decoder and encoder
(:mod:`jit.core.bytecode`), the assembler and disassembler
(:mod:`jit.frontend.asm`), the verifier, the interpreter, both backends and
the fuzzer, which all dispatch on a row's :class:`Op`. A row describes one
instruction form: its opcode byte, its mnemonic in the conformance-suite
dialect, its operation, its operand form (which fields are operands, how they
are written), the values other fields must hold to select it (``off`` for
sdiv/smod and movsx, ``imm`` for byte swaps and atomics, ``src`` for calls
and LD_IMM64), and the facts derived from those: the registers it reads and
writes, where control goes next, and the memory it accesses.

Adding an instruction is adding one row to ``ISA`` (and, for a new operation,
one ``Op`` member, which every engine's dispatch table must then handle:
tests/test_dispatch.py checks that they all do).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# Instruction classes (low 3 bits of the opcode).
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
CLASS_NAMES = ("ld", "ldx", "st", "stx", "alu", "jmp", "jmp32", "alu64")

# Source bit of ALU/JMP opcodes: K = immediate, X = register.
K, X = 0x00, 0x08

# Size and mode bits of load/store opcodes.
SIZE_BITS = {4: 0x00, 2: 0x08, 1: 0x10, 8: 0x18}
SIZE_SUFFIX = {1: "b", 2: "h", 4: "w", 8: "dw"}
MODE_IMM, MODE_ABS, MODE_IND, MODE_MEM, MODE_MEMSX, MODE_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0

MAX_REG = 10
FRAME_POINTER = 10  # R10, read-only
MAX_SLOTS = 1_000_000
STACK_SIZE = 512
MAX_CALL_DEPTH = 8
FETCH = 0x01
ARGUMENT_REGISTERS = (1, 2, 3, 4, 5)  # helper and local-call arguments, clobbered by calls


class Op(enum.StrEnum):
    """What an instruction does; every engine dispatches on it.

    Members compare equal to their names in the assembly dialect (``Op.ADD ==
    "add"``). Atomics have members of their own: ``Op.ATOMIC_ADD`` applies
    ``Op.ADD`` to memory (see :data:`ATOMIC_ALU`)."""

    # ALU, 32 and 64 bits (the row's ``bits``)
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    SDIV = "sdiv"
    OR = "or"
    AND = "and"
    LSH = "lsh"
    RSH = "rsh"
    MOD = "mod"
    SMOD = "smod"
    XOR = "xor"
    MOV = "mov"
    ARSH = "arsh"
    NEG = "neg"
    MOVSX = "movsx"
    LE = "le"
    BE = "be"
    BSWAP = "bswap"
    # conditional jumps, 32 and 64 bits
    JEQ = "jeq"
    JGT = "jgt"
    JGE = "jge"
    JSET = "jset"
    JNE = "jne"
    JSGT = "jsgt"
    JSGE = "jsge"
    JLT = "jlt"
    JLE = "jle"
    JSLT = "jslt"
    JSLE = "jsle"
    # control
    JA = "ja"
    CALL = "call"  # a helper, by id in imm
    CALL_LOCAL = "call_local"
    CALL_BTF = "call_btf"
    CALLX = "callx"  # a helper, by id in a register
    EXIT = "exit"
    # memory
    LDDW = "lddw"
    LDX = "ldx"
    LDXS = "ldxs"
    ST = "st"
    STX = "stx"
    LDABS = "ldabs"
    LDIND = "ldind"
    ATOMIC_ADD = "atomic_add"
    ATOMIC_OR = "atomic_or"
    ATOMIC_AND = "atomic_and"
    ATOMIC_XOR = "atomic_xor"
    XCHG = "xchg"
    CMPXCHG = "cmpxchg"


class Form(enum.Enum):
    """Operand form: which instruction fields are operands, and their syntax.

    Letters: D dst register, S src register, I imm32, Q imm64 (LD_IMM64),
    T jump target in ``off``, T32 jump target in ``imm``,
    M memory operand ``[%rB+off]`` (base in src for loads, in dst for stores).
    """

    ALU_X = ("D, S", ("dst", "src"))
    ALU_K = ("D, I", ("dst", "imm"))
    UNARY = ("D", ("dst",))
    JMP_X = ("D, S, T", ("dst", "src", "off"))
    JMP_K = ("D, I, T", ("dst", "imm", "off"))
    JA = ("T", ("off",))
    JA32 = ("T32", ("imm",))
    CALL_HELPER = ("I", ("imm",))
    CALL_LOCAL = ("local T32", ("imm",))
    CALL_BTF = ("runtime I", ("imm",))
    CALLX = ("%rD", ("dst",))
    EXIT = ("", ())
    LDDW = ("D, Q", ("dst", "imm"))
    LOAD = ("D, [S+off]", ("dst", "src", "off"))
    STORE_K = ("[D+off], I", ("dst", "off", "imm"))
    STORE_X = ("[D+off], S", ("dst", "src", "off"))
    # The tag keeps ATOMIC a member of its own: with STORE_X's value it would be its alias.
    ATOMIC = ("[D+off], S", ("dst", "src", "off"), "atomic")
    LDABS = ("I", ("imm",), "ldabs")  # tagged: CALL_HELPER has the same syntax and operands
    LDIND = ("S, I", ("src", "imm"))

    def __init__(self, syntax: str, operands: tuple[str, ...], tag: str = ""):
        self.syntax = syntax
        self.operands = operands
        # The operand fields that name a register.
        self.registers = tuple(name for name in operands if name in ("dst", "src"))


class Flow(enum.Enum):
    """Where control goes after an instruction (inside its subprogram)."""

    NEXT = "next"  # the following instruction
    BRANCH = "branch"  # the following instruction or the target
    GOTO = "goto"  # the target only
    CALL = "call"  # a local call: the target, then back to the following instruction
    EXIT = "exit"  # back to the caller, or the end of the run


class Access(enum.Enum):
    """The kind of memory access an instruction makes through a register."""

    LOAD = "load"
    STORE = "store"
    ATOMIC = "atomic access"


_FLOWS = {
    Form.JMP_X: Flow.BRANCH,
    Form.JMP_K: Flow.BRANCH,
    Form.JA: Flow.GOTO,
    Form.JA32: Flow.GOTO,
    Form.CALL_LOCAL: Flow.CALL,
    Form.EXIT: Flow.EXIT,
}
_ACCESSES = {Form.LOAD: Access.LOAD, Form.STORE_K: Access.STORE, Form.STORE_X: Access.STORE, Form.ATOMIC: Access.ATOMIC}
_CALLS = frozenset({Form.CALL_HELPER, Form.CALLX, Form.CALL_LOCAL, Form.LDABS, Form.LDIND})
# A register operand is named by its field; fixed registers by number.
_Reg = str | int


def _registers(form: Form, op: Op, fetch: bool) -> tuple[tuple[_Reg, ...], tuple[_Reg, ...]]:
    """(registers read, registers written) by a row, as operand names or numbers."""
    if form in (Form.ALU_X, Form.ALU_K):
        source = ("src",) if form is Form.ALU_X else ()
        return (source if op in (Op.MOV, Op.MOVSX) else ("dst", *source)), ("dst",)
    if form is Form.UNARY:
        return ("dst",), ("dst",)
    if form in (Form.JMP_X, Form.JMP_K):
        return ("dst", "src") if form is Form.JMP_X else ("dst",), ()
    if form in (Form.CALL_HELPER, Form.CALL_LOCAL):
        return ARGUMENT_REGISTERS, (0,)
    if form is Form.CALLX:
        return ("dst", *ARGUMENT_REGISTERS), (0,)
    if form is Form.EXIT:
        return (0,), ()
    if form is Form.LDDW:
        return (), ("dst",)
    if form is Form.LOAD:
        return ("src",), ("dst",)
    if form is Form.STORE_K:
        return ("dst",), ()
    if form is Form.STORE_X:
        return ("dst", "src"), ()
    if form is Form.ATOMIC:
        if op is Op.CMPXCHG:
            return ("dst", "src", 0), (0,)
        return ("dst", "src"), (("src",) if fetch else ())
    if form in (Form.LDABS, Form.LDIND):
        return (6, "src") if form is Form.LDIND else (6,), (0,)
    return (), ()  # JA, JA32, CALL_BTF


@dataclass(frozen=True, eq=False)  # rows are unique: equal and hashed by identity (fast, in every Instruction hash)
class OpSpec:
    """One row of the instruction table.

    ``op`` is what engines dispatch on. ``bits`` is the operand width of
    ALU/JMP operations (32 or 64). ``size`` is the memory access size in bytes.
    ``ext`` is the source width of movsx and the width of byte swaps, in bits.
    ``dst``/``src``/``off``/``imm``, when not None, are the values that field
    must hold for this row. Fields that are not operands of the form default to
    0 (reserved, must be zero); the others tell apart rows sharing an opcode.

    Derived facts: ``flow`` (where control goes next), ``access`` and
    ``base`` (the kind of memory access and the operand holding its address),
    ``reads``/``writes`` (registers, as operand names or numbers; resolved per
    instruction by :class:`jit.core.bytecode.Instruction`) and ``calls`` (an
    instruction engines may implement as a call, after which R1-R5 are
    clobbered).
    """

    opcode: int
    mnemonic: str
    op: Op
    form: Form
    bits: int = 64
    size: int = 0
    ext: int = 0
    dst: int | None = None
    src: int | None = None
    off: int | None = None
    imm: int | None = None
    fetch: bool = False
    # Derived in __post_init__ (read on hot paths, so stored rather than computed).
    is_wide: bool = field(init=False, repr=False)  # LD_IMM64, the only two-slot instruction
    is_jump: bool = field(init=False, repr=False)  # operand is a jump target (not calls)
    flow: Flow = field(init=False, repr=False)
    access: Access | None = field(init=False, repr=False)
    base: str | None = field(init=False, repr=False)
    reads: tuple[_Reg, ...] = field(init=False, repr=False)
    writes: tuple[_Reg, ...] = field(init=False, repr=False)
    calls: bool = field(init=False, repr=False)
    fixed: tuple[tuple[str, int], ...] = field(init=False, repr=False)  # (field, value) the row fixes

    def __post_init__(self) -> None:
        for name in ("dst", "src", "off", "imm"):
            if name not in self.form.operands and getattr(self, name) is None:
                object.__setattr__(self, name, 0)
        flow = _FLOWS.get(self.form, Flow.NEXT)
        access = _ACCESSES.get(self.form)
        reads, writes = _registers(self.form, self.op, self.fetch)
        derived = {
            "is_wide": self.form is Form.LDDW,
            "is_jump": flow in (Flow.BRANCH, Flow.GOTO),
            "flow": flow,
            "access": access,
            "base": None if access is None else "src" if access is Access.LOAD else "dst",
            "reads": reads,
            "writes": writes,
            "calls": self.form in _CALLS,
            "fixed": tuple(
                (name, getattr(self, name)) for name in ("dst", "src", "off", "imm") if getattr(self, name) is not None
            ),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def cls(self) -> int:
        return self.opcode & 0x07

    @property
    def uses_src_reg(self) -> bool:
        return "src" in self.form.registers

    def __repr__(self) -> str:
        return f"<OpSpec 0x{self.opcode:02x} {self.mnemonic}>"


# --- ALU ---------------------------------------------------------------------
# (operation, op nibble, offset discriminator); rows are made for both widths
# and both sources, so one line here is the whole family of an operation.
_ALU_BINARY = (
    (Op.ADD, 0x00, 0),
    (Op.SUB, 0x10, 0),
    (Op.MUL, 0x20, 0),
    (Op.DIV, 0x30, 0),
    (Op.SDIV, 0x30, 1),
    (Op.OR, 0x40, 0),
    (Op.AND, 0x50, 0),
    (Op.LSH, 0x60, 0),
    (Op.RSH, 0x70, 0),
    (Op.MOD, 0x90, 0),
    (Op.SMOD, 0x90, 1),
    (Op.XOR, 0xA0, 0),
    (Op.MOV, 0xB0, 0),
    (Op.ARSH, 0xC0, 0),
)


def _alu_rows() -> list[OpSpec]:
    rows = []
    for cls, bits, suffix in ((ALU64, 64, ""), (ALU, 32, "32")):
        for op, code, off in _ALU_BINARY:
            rows.append(OpSpec(code | X | cls, op + suffix, op, Form.ALU_X, bits, off=off))
            rows.append(OpSpec(code | K | cls, op + suffix, op, Form.ALU_K, bits, off=off))
        rows.append(OpSpec(0x80 | cls, "neg" + suffix, Op.NEG, Form.UNARY, bits))
    # Sign-extending moves: MOV X with the source width in ``off``.
    for ext in (8, 16, 32):
        rows.append(OpSpec(0xBF, f"movsx{ext}64", Op.MOVSX, Form.ALU_X, 64, ext=ext, off=ext))
    for ext in (8, 16):
        rows.append(OpSpec(0xBC, f"movsx{ext}32", Op.MOVSX, Form.ALU_X, 32, ext=ext, off=ext))
    # Byte order: ALU class 0xd4 = to little endian, 0xdc = to big endian,
    # ALU64 class 0xd7 = unconditional swap. Width in ``imm``.
    for ext in (16, 32, 64):
        rows.append(OpSpec(0xD4, f"le{ext}", Op.LE, Form.UNARY, 64, ext=ext, imm=ext))
        rows.append(OpSpec(0xDC, f"be{ext}", Op.BE, Form.UNARY, 64, ext=ext, imm=ext))
        rows.append(OpSpec(0xD7, f"bswap{ext}", Op.BSWAP, Form.UNARY, 64, ext=ext, imm=ext))
    return rows


# --- JMP / JMP32 ---------------------------------------------------------------
_JMP_CONDITIONS = (
    (Op.JEQ, 0x10),
    (Op.JGT, 0x20),
    (Op.JGE, 0x30),
    (Op.JSET, 0x40),
    (Op.JNE, 0x50),
    (Op.JSGT, 0x60),
    (Op.JSGE, 0x70),
    (Op.JLT, 0xA0),
    (Op.JLE, 0xB0),
    (Op.JSLT, 0xC0),
    (Op.JSLE, 0xD0),
)


def _jmp_rows() -> list[OpSpec]:
    rows = []
    for cls, bits, suffix in ((JMP, 64, ""), (JMP32, 32, "32")):
        for op, code in _JMP_CONDITIONS:
            rows.append(OpSpec(code | X | cls, op + suffix, op, Form.JMP_X, bits))
            rows.append(OpSpec(code | K | cls, op + suffix, op, Form.JMP_K, bits))
    rows += [
        OpSpec(0x05, "ja", Op.JA, Form.JA),
        OpSpec(0x06, "ja32", Op.JA, Form.JA32, bits=32),  # "gotol": target in imm
        OpSpec(0x85, "call", Op.CALL, Form.CALL_HELPER),
        OpSpec(0x85, "call", Op.CALL_LOCAL, Form.CALL_LOCAL, src=1),
        OpSpec(0x85, "call", Op.CALL_BTF, Form.CALL_BTF, src=2),
        # callx (not in RFC 9669): helper id in the register named by dst, as
        # the conformance suite encodes it (LLVM 14 reads imm instead).
        OpSpec(0x8D, "call", Op.CALLX, Form.CALLX),
        OpSpec(0x95, "exit", Op.EXIT, Form.EXIT),
    ]
    return rows


# --- Loads and stores ------------------------------------------------------------
# LD_IMM64 source types (RFC 9669 section 5.4); src 0 is a plain constant, the
# rest are relocations that a loader must resolve before code generation.
LDDW_KINDS = ("", ".mapfd", ".mapval", ".var", ".code", ".mapidx", ".mapvalidx")

# (operation, ALU operation it applies to memory, imm selector)
_ATOMIC_ROWS = ((Op.ATOMIC_ADD, Op.ADD, 0x00), (Op.ATOMIC_OR, Op.OR, 0x40))
_ATOMIC_ROWS += ((Op.ATOMIC_AND, Op.AND, 0x50), (Op.ATOMIC_XOR, Op.XOR, 0xA0))


def _memory_rows() -> list[OpSpec]:
    rows = [OpSpec(0x18, "lddw" + kind, Op.LDDW, Form.LDDW, size=8, src=src) for src, kind in enumerate(LDDW_KINDS)]
    for size, sfx in SIZE_SUFFIX.items():
        sz = SIZE_BITS[size]
        rows.append(OpSpec(LDX | MODE_MEM | sz, "ldx" + sfx, Op.LDX, Form.LOAD, size=size))
        if size < 8:
            rows.append(OpSpec(LDX | MODE_MEMSX | sz, "ldxs" + sfx, Op.LDXS, Form.LOAD, size=size))
        rows.append(OpSpec(ST | MODE_MEM | sz, "st" + sfx, Op.ST, Form.STORE_K, size=size))
        rows.append(OpSpec(STX | MODE_MEM | sz, "stx" + sfx, Op.STX, Form.STORE_X, size=size))
        if size < 8:
            rows.append(OpSpec(LD | MODE_ABS | sz, "ldabs" + sfx, Op.LDABS, Form.LDABS, size=size))
            rows.append(OpSpec(LD | MODE_IND | sz, "ldind" + sfx, Op.LDIND, Form.LDIND, size=size))
    for size, bits, suffix in ((8, 64, ""), (4, 32, "32")):
        opcode = STX | MODE_ATOMIC | SIZE_BITS[size]
        for op, alu, code in _ATOMIC_ROWS:
            rows.append(OpSpec(opcode, f"lock {alu}{suffix}", op, Form.ATOMIC, bits, size=size, imm=code))
            rows.append(
                OpSpec(opcode, f"lock fetch {alu}{suffix}", op, Form.ATOMIC, bits, size, imm=code | FETCH, fetch=True)
            )
        rows.append(OpSpec(opcode, f"lock xchg{suffix}", Op.XCHG, Form.ATOMIC, bits, size, imm=0xE1, fetch=True))
        rows.append(OpSpec(opcode, f"lock cmpxchg{suffix}", Op.CMPXCHG, Form.ATOMIC, bits, size, imm=0xF1, fetch=True))
    return rows


ISA: tuple[OpSpec, ...] = tuple(_alu_rows() + _jmp_rows() + _memory_rows())

# Mnemonics the assembler accepts as exact aliases of a table mnemonic.
ALIASES = {"swap16": "bswap16", "swap32": "bswap32", "swap64": "bswap64", "lock fetch xchg": "lock xchg"}
ALIASES.update({"lock fetch xchg32": "lock xchg32", "lock fetch cmpxchg": "lock cmpxchg"})
ALIASES.update({"lock fetch cmpxchg32": "lock cmpxchg32"})

# Derived indexes (built once from ISA; never edited by hand).
BY_OPCODE: dict[int, tuple[OpSpec, ...]] = {}
for _spec in ISA:
    BY_OPCODE[_spec.opcode] = (*BY_OPCODE.get(_spec.opcode, ()), _spec)

ALU_BINARY_OPS = frozenset(op for op, _, _ in _ALU_BINARY)
JUMP_CONDITIONS = frozenset(op for op, _ in _JMP_CONDITIONS)
ATOMIC_ALU: dict[Op, Op] = {op: alu for op, alu, _ in _ATOMIC_ROWS}  # the ALU operation an atomic applies
ATOMIC_OPS = frozenset({*ATOMIC_ALU, Op.XCHG, Op.CMPXCHG})


# Per opcode: each row with the fields it fixes, as (position, value) pairs
# into (dst, src, off, imm), so that lookup compares only what matters.
_SELECTORS: dict[int, tuple[tuple[OpSpec, tuple[tuple[int, int], ...]], ...]] = {
    opcode: tuple(
        (spec, tuple((i, want) for i, want in enumerate((spec.dst, spec.src, spec.off, spec.imm)) if want is not None))
        for spec in specs
    )
    for opcode, specs in BY_OPCODE.items()
}


def lookup(opcode: int, dst: int, src: int, off: int, imm: int) -> OpSpec | None:
    """The row selected by an instruction's fields, or None if there is none."""
    fields = (dst, src, off, imm)
    for spec, fixed in _SELECTORS.get(opcode, ()):
        for i, want in fixed:
            if fields[i] != want:
                break
        else:
            return spec
    return None
