"""Classic BPF (what tcpdump and libpcap produce) as one declarative table.

A classic instruction is ``struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}``:
8 bytes, little-endian (host order, as Linux takes it from user space). Its
machine has an accumulator ``A``, an index register ``X`` and 16 scratch words
``M[0..15]``; packet loads are big-endian and a load past the end of the
packet ends the filter with 0.

:data:`CLASSIC` has one row per opcode; decoding, the ``tcpdump -d`` style
disassembler and validation read it, and the classic interpreter
(:mod:`jit.runtime.cbpf_interpreter`) and the translation to eBPF
(:mod:`jit.frontend.cbpf_translate`) dispatch on a row's :class:`COp`.

Inputs: ``sock_filter`` arrays (:meth:`ClassicProgram.from_bytes`),
``tcpdump -dd`` C-array text (``{ 0x28, 0, 0, 0x0000000c },``), ``tcpdump
-ddd`` decimal text (a count line, then ``code jt jf k`` lines; the one-line
comma-separated form ``4,40 0 0 12,...`` too) through
:meth:`ClassicProgram.from_text`. Malformed input raises
:class:`jit.DecodeError`; :meth:`ClassicProgram.validate` applies Linux's
``bpf_check_classic`` rules and raises :class:`jit.VerifierError`; both name
the instruction.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from jit.core.bits import s32
from jit.core.errors import DecodeError, UsageError, VerifierError
from jit.core.usage import check_int

MEMWORDS = 16  # BPF_MEMWORDS: scratch words M[0..15]
MAX_INSNS = 4096  # Linux's BPF_MAXINSNS
_INSN = struct.Struct("<HBBI")

# Classes (low 3 bits), sizes, modes, sources (as in <linux/filter.h>).
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
K, X = 0x00, 0x08
RET_K, RET_A = 0x00, 0x10
TAX, TXA = 0x00, 0x80


class COp(enum.StrEnum):
    """What a classic instruction does; engines dispatch on it."""

    LD = "ld"  # A <- operand
    LDX = "ldx"  # X <- operand
    ST = "st"  # M[k] <- A
    STX = "stx"  # M[k] <- X
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    OR = "or"
    AND = "and"
    LSH = "lsh"
    RSH = "rsh"
    NEG = "neg"
    MOD = "mod"
    XOR = "xor"
    JA = "ja"
    JEQ = "jeq"
    JGT = "jgt"
    JGE = "jge"
    JSET = "jset"
    RET = "ret"
    TAX = "tax"
    TXA = "txa"


class Mode(enum.Enum):
    """The operand of a row and how ``tcpdump -d`` writes it (``%d``: k as a
    signed int, ``%x``: k in hex)."""

    ABS = "[%d]"  # packet at k
    IND = "[x + %d]"  # packet at X + k
    MSH = "4*([%d]&0xf)"  # X <- 4 * (packet[k] & 0xf)
    IMM = "#0x%x"  # the constant k
    MEM = "M[%d]"  # scratch word k
    LEN = "#pktlen"  # the packet length
    K = "#%d"  # ALU/ret constant, decimal
    KHEX = "#0x%x"  # logical ALU/jump constant, hex
    X = "x"
    A = ""  # ret a (libpcap prints no operand)
    NONE = ""
    TARGET = "%d"  # ja: the absolute target


@dataclass(frozen=True)
class ClassicSpec:
    """One row of the classic opcode table: ``size`` is the packet load width
    in bytes (1, 2, 4; 0 when the row loads no packet bytes)."""

    code: int
    op: COp
    mode: Mode
    size: int = 0
    mnemonic: str = ""

    def __post_init__(self) -> None:
        if not self.mnemonic:
            suffix = {1: "b", 2: "h"}.get(self.size, "")
            object.__setattr__(self, "mnemonic", self.op.value + suffix)

    @property
    def is_jump(self) -> bool:
        return self.op in JUMPS

    @property
    def is_conditional(self) -> bool:
        return self.op in CONDITIONS

    @property
    def uses_memory(self) -> bool:
        """Whether ``k`` names a scratch word."""
        return self.mode is Mode.MEM

    @property
    def source_x(self) -> bool:
        return self.mode is Mode.X


ALU_OPS = (
    (COp.ADD, 0x00, Mode.K),
    (COp.SUB, 0x10, Mode.K),
    (COp.MUL, 0x20, Mode.K),
    (COp.DIV, 0x30, Mode.K),
    (COp.OR, 0x40, Mode.KHEX),
    (COp.AND, 0x50, Mode.KHEX),
    (COp.LSH, 0x60, Mode.K),
    (COp.RSH, 0x70, Mode.K),
    (COp.MOD, 0x90, Mode.K),
    (COp.XOR, 0xA0, Mode.KHEX),
)
JUMP_OPS = ((COp.JEQ, 0x10), (COp.JGT, 0x20), (COp.JGE, 0x30), (COp.JSET, 0x40))
JUMPS = frozenset({COp.JA, *(op for op, _ in JUMP_OPS)})
CONDITIONS = frozenset(op for op, _ in JUMP_OPS)
ALU_BINARY = frozenset(op for op, _, _ in ALU_OPS)


def _rows() -> list[ClassicSpec]:
    rows = []
    for size, bits in ((4, W), (2, H), (1, B)):
        rows.append(ClassicSpec(LD | bits | ABS, COp.LD, Mode.ABS, size))
        rows.append(ClassicSpec(LD | bits | IND, COp.LD, Mode.IND, size))
    rows += [
        ClassicSpec(LD | W | IMM, COp.LD, Mode.IMM),
        ClassicSpec(LD | W | MEM, COp.LD, Mode.MEM),
        ClassicSpec(LD | W | LEN, COp.LD, Mode.LEN),
        ClassicSpec(LDX | W | IMM, COp.LDX, Mode.IMM),
        ClassicSpec(LDX | W | MEM, COp.LDX, Mode.MEM),
        ClassicSpec(LDX | W | LEN, COp.LDX, Mode.LEN),
        ClassicSpec(LDX | B | MSH, COp.LDX, Mode.MSH, 1, "ldxb"),
        ClassicSpec(ST, COp.ST, Mode.MEM),
        ClassicSpec(STX, COp.STX, Mode.MEM),
    ]
    for op, code, mode in ALU_OPS:
        rows.append(ClassicSpec(ALU | code | K, op, mode))
        rows.append(ClassicSpec(ALU | code | X, op, Mode.X))
    rows.append(ClassicSpec(ALU | 0x80, COp.NEG, Mode.NONE))
    rows.append(ClassicSpec(JMP | 0x00, COp.JA, Mode.TARGET))
    for op, code in JUMP_OPS:
        rows.append(ClassicSpec(JMP | code | K, op, Mode.KHEX))
        rows.append(ClassicSpec(JMP | code | X, op, Mode.X))
    rows += [
        ClassicSpec(RET | RET_K, COp.RET, Mode.K),
        ClassicSpec(RET | RET_A, COp.RET, Mode.A),
        ClassicSpec(MISC | TAX, COp.TAX, Mode.NONE),
        ClassicSpec(MISC | TXA, COp.TXA, Mode.NONE),
    ]
    return rows


CLASSIC: tuple[ClassicSpec, ...] = tuple(_rows())
BY_CODE: dict[int, ClassicSpec] = {spec.code: spec for spec in CLASSIC}
assert len(BY_CODE) == len(CLASSIC), "two rows share an opcode"


@dataclass(frozen=True, slots=True)
class ClassicInsn:
    """One ``sock_filter``: ``code``, ``jt``, ``jf`` (u8 forward offsets) and
    ``k`` (u32). ``spec`` is its row; an unknown opcode is a DecodeError."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0
    spec: ClassicSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, limit in (("code", 0xFFFF), ("jt", 0xFF), ("jf", 0xFF), ("k", 0xFFFFFFFF)):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= limit:
                raise DecodeError(f"classic instruction field {name}={value!r} is out of range (0..{limit:#x})")
        spec = BY_CODE.get(self.code)
        if spec is None:
            raise DecodeError(f"unknown classic BPF opcode {self.code:#06x} ({_explain(self.code)})")
        object.__setattr__(self, "spec", spec)

    @property
    def op(self) -> COp:
        return self.spec.op

    def encode(self) -> bytes:
        return _INSN.pack(self.code, self.jt, self.jf, self.k)

    def targets(self, pc: int) -> tuple[int, ...]:
        """Where control goes after this instruction at ``pc`` (() for ret)."""
        op = self.spec.op
        if op is COp.RET:
            return ()
        if op is COp.JA:
            return (pc + 1 + self.k,)
        if self.spec.is_conditional:
            return (pc + 1 + self.jt, pc + 1 + self.jf)
        return (pc + 1,)

    def image(self, pc: int) -> str:
        """The ``tcpdump -d`` line of this instruction at ``pc`` (libpcap's ``bpf_image``)."""
        spec = self.spec
        fmt = spec.mode.value
        if spec.mode is Mode.TARGET:
            operand = fmt % s32(pc + 1 + self.k)
        elif "%x" in fmt:
            operand = fmt % self.k
        elif "%d" in fmt:
            operand = fmt % s32(self.k)
        else:
            operand = fmt
        if spec.is_conditional:
            return f"({pc:03d}) {spec.mnemonic:<8} {operand:<16} jt {pc + 1 + self.jt}\tjf {pc + 1 + self.jf}"
        return f"({pc:03d}) {spec.mnemonic:<8} {operand}".rstrip()

    def __str__(self) -> str:
        return self.image(0).split(" ", 1)[1].strip()


def _explain(code: int) -> str:
    cls = code & 7
    names = ("ld", "ldx", "st", "stx", "alu", "jmp", "ret", "misc")
    if code > 0xFF:
        return "opcodes are 8 bits; the upper byte must be 0"
    return f"class {names[cls]}, no such operation or mode"


@dataclass(frozen=True)
class ClassicProgram:
    """A decoded classic BPF program: a tuple of :class:`ClassicInsn`."""

    insns: tuple[ClassicInsn, ...]
    name: str = "cbpf"

    def __post_init__(self) -> None:
        object.__setattr__(self, "insns", tuple(self.insns))
        if not self.insns:
            raise DecodeError("empty classic program: no instructions")

    def __len__(self) -> int:
        return len(self.insns)

    def __iter__(self) -> Iterator[tuple[int, ClassicInsn]]:
        return iter(enumerate(self.insns))

    def describe(self, pc: int) -> str:
        """``instruction 3 (jeq #0x800 jt 4 jf 9)``, for error messages."""
        check_int("pc", pc, 0, len(self.insns) - 1)
        line = self.insns[pc].image(pc).split(" ", 1)[1]
        return f"instruction {pc} ({' '.join(line.split())})"

    # --- input ------------------------------------------------------------------------

    @classmethod
    def from_tuples(cls, rows: list[tuple[int, int, int, int]], name: str = "cbpf") -> ClassicProgram:
        """From ``(code, jt, jf, k)`` tuples; a bad one is a DecodeError naming it."""
        insns = []
        for pc, row in enumerate(rows):
            try:
                insns.append(ClassicInsn(*row))
            except (DecodeError, TypeError) as exc:
                raise DecodeError(f"classic instruction {pc} {tuple(row)}: {exc}") from None
        return cls(tuple(insns), name)

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview, name: str = "cbpf") -> ClassicProgram:
        """From a ``struct sock_filter`` array (8 bytes per instruction, little-endian)."""
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise UsageError(f"a sock_filter array is bytes, bytearray or memoryview, not {type(raw).__name__}")
        raw = bytes(raw)
        if not raw or len(raw) % _INSN.size:
            raise DecodeError(
                f"a sock_filter array is a non-empty multiple of 8 bytes, not {len(raw)} bytes"
                + (f" (instruction {len(raw) // 8} is incomplete)" if raw else "")
            )
        return cls.from_tuples(list(_INSN.iter_unpack(raw)), name)

    @classmethod
    def from_text(cls, text: str, name: str = "cbpf") -> ClassicProgram:
        """From ``tcpdump -dd`` (C array) or ``tcpdump -ddd`` (decimal) output."""
        if "{" in text:
            return cls.from_tuples(_parse_c_array(text), name)
        return cls.from_tuples(_parse_decimal(text), name)

    # --- output -----------------------------------------------------------------------

    @property
    def reads_wire_length(self) -> bool:
        """Whether the program reads the packet's length (``ld #len``, ``ldx #len``:
        libpcap's ``len``, ``greater``, ``less``), the length on the wire."""
        return any(insn.spec.mode is Mode.LEN for _, insn in self)

    def to_bytes(self) -> bytes:
        return b"".join(insn.encode() for insn in self.insns)

    def to_tuples(self) -> list[tuple[int, int, int, int]]:
        return [(i.code, i.jt, i.jf, i.k) for i in self.insns]

    def to_c_array(self) -> str:
        """``tcpdump -dd`` text."""
        return "".join(f"{{ 0x{i.code:x}, {i.jt}, {i.jf}, 0x{i.k:08x} }},\n" for i in self.insns)

    def to_decimal(self) -> str:
        """``tcpdump -ddd`` text."""
        return f"{len(self.insns)}\n" + "".join(f"{i.code} {i.jt} {i.jf} {i.k}\n" for i in self.insns)

    def disassemble(self) -> str:
        """``tcpdump -d`` text."""
        return "".join(insn.image(pc) + "\n" for pc, insn in self)

    # --- checks -----------------------------------------------------------------------

    def validate(self) -> ClassicProgram:
        """Linux's ``bpf_check_classic`` rules; returns self or raises VerifierError.

        At most 4096 instructions; jumps forward and inside the program; scratch
        indexes below 16; no division or modulo by the constant 0 and no shift
        by a constant of 32 or more; the last instruction a ``ret``; no scratch
        word read on a path where it was not written before."""
        if len(self.insns) > MAX_INSNS:
            raise VerifierError(f"classic program has {len(self.insns)} instructions, more than {MAX_INSNS}")
        n = len(self.insns)
        for pc, insn in self:
            spec = insn.spec
            problem = None
            if spec.uses_memory and insn.k >= MEMWORDS:
                problem = f"scratch word M[{insn.k}] does not exist (M[0]..M[{MEMWORDS - 1}])"
            elif spec.op in (COp.DIV, COp.MOD) and spec.mode is not Mode.X and insn.k == 0:
                problem = f"{spec.op.value} by the constant 0"
            elif spec.op in (COp.LSH, COp.RSH) and spec.mode is not Mode.X and insn.k >= 32:
                problem = f"shift by the constant {insn.k} (must be below 32)"
            elif spec.is_jump:
                outside = [t for t in insn.targets(pc) if t >= n]
                if outside:
                    problem = f"jump target {outside[0]} is beyond the last instruction ({n - 1})"
            if problem:
                raise VerifierError(f"{self.describe(pc)}: {problem}")
        if self.insns[-1].op is not COp.RET:
            raise VerifierError(f"{self.describe(n - 1)}: the last instruction must be a ret")
        self._check_scratch()
        return self

    def _check_scratch(self) -> None:
        """No M[k] read before a write on every path to it (forward jumps only,
        so one pass in program order computes the words written on all paths)."""
        written: list[int | None] = [None] * len(self.insns)
        written[0] = 0
        for pc, insn in self:
            known = written[pc]
            if known is None:  # unreachable
                continue
            op = insn.spec.op
            if insn.spec.uses_memory and op in (COp.LD, COp.LDX) and not known >> insn.k & 1:
                raise VerifierError(f"{self.describe(pc)}: M[{insn.k}] may be read before it is written")
            if op in (COp.ST, COp.STX):
                known |= 1 << insn.k
            for target in insn.targets(pc):
                before = written[target]
                written[target] = known if before is None else before & known

    def reachable(self) -> list[bool]:
        """Per instruction, whether some path from instruction 0 reaches it."""
        seen = [False] * len(self.insns)
        seen[0] = True
        for pc, insn in self:
            if seen[pc]:
                for target in insn.targets(pc):
                    if target < len(seen):
                        seen[target] = True
        return seen


_C_ROW = re.compile(r"\{\s*([^,{}]+?)\s*,\s*([^,{}]+?)\s*,\s*([^,{}]+?)\s*,\s*([^,{}]+?)\s*\}")


def _number(token: str, where: str) -> int:
    try:
        return int(token, 0)
    except ValueError:
        raise DecodeError(f"{where}: {token!r} is not a number") from None


def _parse_c_array(text: str) -> list[tuple[int, int, int, int]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.split("//")[0].strip()
        if not stripped or stripped in ("{", "};", "}"):
            continue
        matches = _C_ROW.findall(stripped)
        if not matches:
            raise DecodeError(f"line {lineno}: expected {{ code, jt, jf, k }}, got {line.strip()!r}")
        for match in matches:
            rows.append(tuple(_number(t, f"line {lineno}") for t in match))
    if not rows:
        raise DecodeError("no { code, jt, jf, k } rows in the text")
    return rows  # type: ignore[return-value]


def _parse_decimal(text: str) -> list[tuple[int, int, int, int]]:
    lines = [part.strip() for part in re.split(r"[\n,]", text) if part.strip()]
    if not lines:
        raise DecodeError("empty classic program text")
    count = _number(lines[0], "line 1 (the instruction count)")
    rows = []
    for index, line in enumerate(lines[1:], 2):
        fields = line.split()
        if len(fields) != 4:
            raise DecodeError(f"line {index}: expected 'code jt jf k', got {line!r}")
        rows.append(tuple(_number(t, f"line {index}") for t in fields))
    if count != len(rows):
        raise DecodeError(f"the count line says {count} instructions but {len(rows)} follow")
    return rows  # type: ignore[return-value]


def load_classic(source: ClassicProgram | bytes | bytearray | memoryview | str) -> ClassicProgram:
    """A ClassicProgram from itself, a sock_filter array or -dd/-ddd text."""
    if isinstance(source, ClassicProgram):
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        return ClassicProgram.from_bytes(source)
    if isinstance(source, str):
        return ClassicProgram.from_text(source)
    raise UsageError(
        f"cannot make a classic program from {type(source).__name__}: give a ClassicProgram,"
        " a sock_filter array (bytes) or tcpdump -dd/-ddd text"
    )
