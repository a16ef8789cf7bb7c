"""What ARM64's encodings allow, for the ARM64 emitter: the mnemonic for each
BPF operation, which constants fit an immediate field, and how far a branch
reaches.

Keystone silently mis-assembles out-of-range branches, so the emitter lays the
code out itself (every ARM64 instruction is 4 bytes) and :func:`resolve`
checks every branch: a conditional branch (``b.cond``/``cbz``/``cbnz``,
+-1 MiB) whose target is too far becomes the inverted condition over an
unconditional ``b`` (+-128 MiB); a ``b``/``bl`` beyond that is a CompileError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jit.backends.patching import BranchForm
from jit.core.bits import MASK64, s32
from jit.core.errors import CompileError
from jit.core.isa import Op

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
ALU_REG = {
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
SXT = {8: "sxtb", 16: "sxth", 32: "sxtw"}
LOGICAL = frozenset({"or", "and", "xor"})
ATOMIC_ALU = {Op.ATOMIC_ADD: "add", Op.ATOMIC_OR: "orr", Op.ATOMIC_AND: "and", Op.ATOMIC_XOR: "eor"}

# (op, size) -> (scaled mnemonic, unscaled mnemonic, register width)
MEM = {
    ("ldx", 1): ("ldrb", "ldurb", 32),
    ("ldx", 2): ("ldrh", "ldurh", 32),
    ("ldx", 4): ("ldr", "ldur", 32),
    ("ldx", 8): ("ldr", "ldur", 64),
    ("ldxs", 1): ("ldrsb", "ldursb", 64),
    ("ldxs", 2): ("ldrsh", "ldursh", 64),
    ("ldxs", 4): ("ldrsw", "ldursw", 64),
}
_STORES = {1: ("strb", "sturb", 32), 2: ("strh", "sturh", 32), 4: ("str", "stur", 32), 8: ("str", "stur", 64)}
MEM.update({(op, size): row for size, row in _STORES.items() for op in ("st", "stx")})

COND_RANGE = 1 << 20  # b.cond / cbz / cbnz: signed 19-bit word offset
JUMP_RANGE = 1 << 27  # b / bl: signed 26-bit word offset
_CONDITIONAL = frozenset({"cbz", "cbnz"})


INVERT = {"eq": "ne", "ne": "eq", "hi": "ls", "ls": "hi", "hs": "lo", "lo": "hs"}
INVERT.update({"gt": "le", "le": "gt", "ge": "lt", "lt": "ge", "mi": "pl", "pl": "mi", "cs": "cc", "cc": "cs"})


def imm_value(imm: int, bits: int) -> int:
    """An instruction's imm32 as the operand value: sign-extended to 64 bits
    for 64-bit operations, the 32-bit pattern for 32-bit ones (unsigned)."""
    return s32(imm) & MASK64 if bits == 64 else imm & 0xFFFFFFFF


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


def resolve(items: list, branches: list[Branch], name: str) -> tuple[dict[str, int], int, str]:
    """Lay out ``items`` (instruction strings, ``label:`` strings and the
    :class:`Branch` objects listed in ``branches``), making every out-of-range
    conditional branch far until nothing changes (far branches only grow the
    code), then check the unconditional ones. Returns the offset of every
    label, the code size and the assembly text."""
    while True:
        labels, size = _layout(items)
        changed = False
        for br in branches:
            if br.conditional and not br.far and not -COND_RANGE <= labels[br.target] - br.pos < COND_RANGE:
                br.far = changed = True
        if not changed:
            break
    for br in branches:
        start = br.pos + 4 if br.far else br.pos
        if (br.far or not br.conditional) and not -JUMP_RANGE <= labels[br.target] - start < JUMP_RANGE:
            raise CompileError(f"{name}: generated code too large for an ARM64 branch ({br.op})")
    lines, far = [], 0
    for item in items:
        if item.__class__ is str:
            lines.append(item)
        else:
            far += item.far
            lines.append(item.render(f"F{far}"))
    return labels, size, "\n".join(lines) + "\n"


def _layout(items: list) -> tuple[dict[str, int], int]:
    labels: dict[str, int] = {}
    pos = 0
    for item in items:
        if item.__class__ is str:
            if item[-1] == ":":
                labels[item[:-1]] = pos
            else:
                pos += 4
        else:
            item.pos = pos
            pos += item.size
    return labels, pos


_CONDITIONS = {"eq": 0, "ne": 1, "hs": 2, "cs": 2, "lo": 3, "cc": 3, "mi": 4, "pl": 5, "vs": 6, "vc": 7}
_CONDITIONS |= {"hi": 8, "ls": 9, "ge": 10, "lt": 11, "gt": 12, "le": 13, "al": 14}


def _word(base: int, field_bits: int, shift: int = 0) -> Callable[[int, bool], bytes]:
    """A branch whose word offset (from the branch itself) fills ``field_bits`` bits at ``shift``."""

    def encode(disp: int, _: bool) -> bytes:
        words = (disp + 4) >> 2  # the patch assembler counts from the branch's end
        if not -(1 << (field_bits - 1)) <= words < 1 << (field_bits - 1):
            raise CompileError(f"an ARM64 branch of {disp + 4} bytes does not fit its {field_bits}-bit field")
        return (base | ((words & ((1 << field_bits) - 1)) << shift)).to_bytes(4, "little")

    return encode


BRANCH_MNEMONICS = frozenset({"b", "bl", "cbz", "cbnz", *(f"b.{cond}" for cond in _CONDITIONS)})


def branch_form(mnemonic: str, operands: tuple[str, ...]) -> BranchForm | None:
    """The patch assembler's encoding of an ARM64 branch to a label (b, bl, b.cond, cbz, cbnz)."""
    if mnemonic in ("b", "bl") and not operands:
        return BranchForm(4, _word(0x14000000 if mnemonic == "b" else 0x94000000, 26))
    if mnemonic.startswith("b.") and not operands and mnemonic[2:] in _CONDITIONS:
        return BranchForm(4, _word(0x54000000 | _CONDITIONS[mnemonic[2:]], 19, 5))
    if (
        mnemonic in ("cbz", "cbnz")
        and len(operands) == 1
        and operands[0][:1] in ("x", "w")
        and operands[0][1:].isdigit()
    ):
        reg = operands[0]
        base = (0x34000000 if mnemonic == "cbz" else 0x35000000) | (reg[0] == "x") << 31 | int(reg[1:])
        return BranchForm(4, _word(base, 19, 5))
    return None
