"""The eBPF instruction set (RFC 9669, v4 included) as one declarative table.

Every engine and tool reads this table: the decoder and encoder
(:mod:`jit.program`), the assembler and disassembler (:mod:`jit.asm`), the
interpreter and the backends. A row describes one instruction form: its opcode
byte, its mnemonic in the conformance-suite dialect, the operation the engines
dispatch on, its operand form (which fields are operands, how they are written)
and the values that other fields must hold to select it (``off`` for sdiv/smod
and movsx, ``imm`` for byte swaps and atomics, ``src`` for calls and LD_IMM64).

Adding an instruction is adding one row to ``ISA``.
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
MAX_SLOTS = 1_000_000
STACK_SIZE = 512
MAX_CALL_DEPTH = 8
FETCH = 0x01


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


@dataclass(frozen=True)
class OpSpec:
    """One row of the instruction table.

    ``op`` is what engines dispatch on. ``bits`` is the operand width of
    ALU/JMP operations (32 or 64). ``size`` is the memory access size in bytes.
    ``ext`` is the source width of movsx and the width of byte swaps, in bits.
    ``dst``/``src``/``off``/``imm``, when not None, are the values that field
    must hold for this row. Fields that are not operands of the form default to
    0 (reserved, must be zero); the others tell apart rows sharing an opcode.
    """

    opcode: int
    mnemonic: str
    op: str
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

    def __post_init__(self) -> None:
        for name in ("dst", "src", "off", "imm"):
            if name not in self.form.operands and getattr(self, name) is None:
                object.__setattr__(self, name, 0)
        object.__setattr__(self, "is_wide", self.form is Form.LDDW)
        object.__setattr__(self, "is_jump", self.form in (Form.JMP_X, Form.JMP_K, Form.JA, Form.JA32))

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
    ("add", 0x00, 0),
    ("sub", 0x10, 0),
    ("mul", 0x20, 0),
    ("div", 0x30, 0),
    ("sdiv", 0x30, 1),
    ("or", 0x40, 0),
    ("and", 0x50, 0),
    ("lsh", 0x60, 0),
    ("rsh", 0x70, 0),
    ("mod", 0x90, 0),
    ("smod", 0x90, 1),
    ("xor", 0xA0, 0),
    ("mov", 0xB0, 0),
    ("arsh", 0xC0, 0),
)


def _alu_rows() -> list[OpSpec]:
    rows = []
    for cls, bits, suffix in ((ALU64, 64, ""), (ALU, 32, "32")):
        for op, code, off in _ALU_BINARY:
            rows.append(OpSpec(code | X | cls, op + suffix, op, Form.ALU_X, bits, off=off))
            rows.append(OpSpec(code | K | cls, op + suffix, op, Form.ALU_K, bits, off=off))
        rows.append(OpSpec(0x80 | cls, "neg" + suffix, "neg", Form.UNARY, bits))
    # Sign-extending moves: MOV X with the source width in ``off``.
    for ext in (8, 16, 32):
        rows.append(OpSpec(0xBF, f"movsx{ext}64", "movsx", Form.ALU_X, 64, ext=ext, off=ext))
    for ext in (8, 16):
        rows.append(OpSpec(0xBC, f"movsx{ext}32", "movsx", Form.ALU_X, 32, ext=ext, off=ext))
    # Byte order: ALU class 0xd4 = to little endian, 0xdc = to big endian,
    # ALU64 class 0xd7 = unconditional swap. Width in ``imm``.
    for ext in (16, 32, 64):
        rows.append(OpSpec(0xD4, f"le{ext}", "le", Form.UNARY, 64, ext=ext, imm=ext))
        rows.append(OpSpec(0xDC, f"be{ext}", "be", Form.UNARY, 64, ext=ext, imm=ext))
        rows.append(OpSpec(0xD7, f"bswap{ext}", "bswap", Form.UNARY, 64, ext=ext, imm=ext))
    return rows


# --- JMP / JMP32 ---------------------------------------------------------------
_JMP_CONDITIONS = (
    ("jeq", 0x10),
    ("jgt", 0x20),
    ("jge", 0x30),
    ("jset", 0x40),
    ("jne", 0x50),
    ("jsgt", 0x60),
    ("jsge", 0x70),
    ("jlt", 0xA0),
    ("jle", 0xB0),
    ("jslt", 0xC0),
    ("jsle", 0xD0),
)


def _jmp_rows() -> list[OpSpec]:
    rows = []
    for cls, bits, suffix in ((JMP, 64, ""), (JMP32, 32, "32")):
        for op, code in _JMP_CONDITIONS:
            rows.append(OpSpec(code | X | cls, op + suffix, op, Form.JMP_X, bits))
            rows.append(OpSpec(code | K | cls, op + suffix, op, Form.JMP_K, bits))
    rows += [
        OpSpec(0x05, "ja", "ja", Form.JA),
        OpSpec(0x06, "ja32", "ja", Form.JA32, bits=32),  # "gotol": target in imm
        OpSpec(0x85, "call", "call", Form.CALL_HELPER),
        OpSpec(0x85, "call", "call_local", Form.CALL_LOCAL, src=1),
        OpSpec(0x85, "call", "call_btf", Form.CALL_BTF, src=2),
        # callx (not in RFC 9669): helper id in the register named by dst, as
        # the conformance suite encodes it (LLVM 14 reads imm instead).
        OpSpec(0x8D, "call", "callx", Form.CALLX),
        OpSpec(0x95, "exit", "exit", Form.EXIT),
    ]
    return rows


# --- Loads and stores ------------------------------------------------------------
# LD_IMM64 source types (RFC 9669 section 5.4); src 0 is a plain constant, the
# rest are relocations that a loader must resolve before code generation.
LDDW_KINDS = ("", ".mapfd", ".mapval", ".var", ".code", ".mapidx", ".mapvalidx")

ATOMIC_OPS = (("add", 0x00), ("or", 0x40), ("and", 0x50), ("xor", 0xA0))


def _memory_rows() -> list[OpSpec]:
    rows = [OpSpec(0x18, "lddw" + kind, "lddw", Form.LDDW, size=8, src=src) for src, kind in enumerate(LDDW_KINDS)]
    for size, sfx in SIZE_SUFFIX.items():
        sz = SIZE_BITS[size]
        rows.append(OpSpec(LDX | MODE_MEM | sz, "ldx" + sfx, "ldx", Form.LOAD, size=size))
        if size < 8:
            rows.append(OpSpec(LDX | MODE_MEMSX | sz, "ldxs" + sfx, "ldxs", Form.LOAD, size=size))
        rows.append(OpSpec(ST | MODE_MEM | sz, "st" + sfx, "st", Form.STORE_K, size=size))
        rows.append(OpSpec(STX | MODE_MEM | sz, "stx" + sfx, "stx", Form.STORE_X, size=size))
        if size < 8:
            rows.append(OpSpec(LD | MODE_ABS | sz, "ldabs" + sfx, "ldabs", Form.LDABS, size=size))
            rows.append(OpSpec(LD | MODE_IND | sz, "ldind" + sfx, "ldind", Form.LDIND, size=size))
    for size, bits, suffix in ((8, 64, ""), (4, 32, "32")):
        opcode = STX | MODE_ATOMIC | SIZE_BITS[size]
        for name, code in ATOMIC_OPS:
            rows.append(OpSpec(opcode, f"lock {name}{suffix}", name, Form.ATOMIC, bits, size=size, imm=code))
            rows.append(
                OpSpec(
                    opcode, f"lock fetch {name}{suffix}", name, Form.ATOMIC, bits, size, imm=code | FETCH, fetch=True
                )
            )
        rows.append(OpSpec(opcode, f"lock xchg{suffix}", "xchg", Form.ATOMIC, bits, size, imm=0xE1, fetch=True))
        rows.append(OpSpec(opcode, f"lock cmpxchg{suffix}", "cmpxchg", Form.ATOMIC, bits, size, imm=0xF1, fetch=True))
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

ATOMIC_OPERATIONS = frozenset(name for name, _ in ATOMIC_OPS) | {"xchg", "cmpxchg"}
JMP_OPERATIONS = frozenset(name for name, _ in _JMP_CONDITIONS)


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
