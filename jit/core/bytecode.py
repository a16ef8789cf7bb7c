"""Decoded eBPF code: :class:`Instruction` and :class:`Bytecode`.

Decoding and encoding are driven by the table in :mod:`jit.core.isa`; this module
adds the slot bookkeeping (LD_IMM64 takes two slots), validation of reserved
fields and registers, and the one-line rendering of an instruction in the
conformance-suite dialect that every error message uses.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, Self, TypeVar

from jit.core import isa
from jit.core.bits import s32
from jit.core.errors import CompileError, DecodeError, UsageError, VerifierError
from jit.core.gcpause import gc_paused
from jit.core.isa import Flow, Form, Op, OpSpec

_SLOT = struct.Struct("<BBhi")  # opcode, regs (src<<4 | dst), off, imm
_FIELDS = ("dst", "src", "off", "imm")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction. ``imm`` is a signed 32-bit value, except for LD_IMM64
    where it is the whole unsigned 64-bit constant. Fields fixed by the table
    row (e.g. ``off=1`` for sdiv) are filled in from ``spec``."""

    spec: OpSpec
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def __post_init__(self) -> None:
        for name, fixed in self.spec.fixed:
            if getattr(self, name) != fixed:
                object.__setattr__(self, name, fixed)
        dst, src = self.dst, self.src
        if (
            not (type(dst) is int and type(src) is int and type(self.off) is int and type(self.imm) is int)
            or (dst | src) >> 4
        ):
            raise UsageError(
                f"{self.spec.mnemonic}: dst and src are registers 0..15, off and imm ints;"
                f" got dst={self.dst!r} src={self.src!r} off={self.off!r} imm={self.imm!r}"
            )

    @property
    def op(self) -> Op:
        return self.spec.op

    @property
    def slots(self) -> int:
        return 2 if self.spec.is_wide else 1

    def encode(self) -> bytes:
        """The 8 (or 16, for LD_IMM64) little-endian bytes of the instruction."""
        regs = (self.src << 4) | self.dst
        wide = self.spec.is_wide
        if not -0x8000 <= self.off <= 0x7FFF or not (
            -(1 << 63) <= self.imm < 1 << 64 if wide else -(1 << 31) <= self.imm < 1 << 32
        ):
            raise UsageError(
                f"{format_instruction(self)}: off must fit 16 signed bits and imm {64 if wide else 32} bits to encode"
            )
        if wide:
            lo, hi = s32(self.imm), s32(self.imm >> 32)
            return _SLOT.pack(self.spec.opcode, regs, self.off, lo) + _SLOT.pack(0, 0, 0, hi)
        return _SLOT.pack(self.spec.opcode, regs, self.off, s32(self.imm))

    def target(self, pc: int) -> int | None:
        """The slot a jump or local call at ``pc`` transfers control to."""
        form = self.spec.form
        if form in (Form.JMP_X, Form.JMP_K, Form.JA):
            return pc + 1 + self.off
        if form in (Form.JA32, Form.CALL_LOCAL):
            return pc + 1 + self.imm
        return None

    def successors(self, pc: int) -> tuple[int, ...]:
        """Where control goes after the instruction at ``pc``, inside its
        subprogram (a local call comes back to the next instruction)."""
        flow = self.spec.flow
        if flow is Flow.EXIT:
            return ()
        if flow is Flow.GOTO:
            return (pc + 1 + (self.imm if self.spec.form is Form.JA32 else self.off),)
        if flow is Flow.BRANCH:
            return (pc + 1, pc + 1 + self.off)
        return (pc + self.slots,)

    @property
    def regs_read(self) -> tuple[int, ...]:
        """The registers the instruction reads (R1-R5 for calls)."""
        return tuple(self._register(r) for r in self.spec.reads)

    @property
    def regs_written(self) -> tuple[int, ...]:
        """The registers the instruction writes (not counting R1-R5 clobbered by calls)."""
        return tuple(self._register(r) for r in self.spec.writes)

    @property
    def base_register(self) -> int | None:
        """The register holding the address of a memory access (None if it makes none)."""
        base = self.spec.base
        return None if base is None else self.dst if base == "dst" else self.src

    def _register(self, operand: str | int) -> int:
        return operand if isinstance(operand, int) else self.dst if operand == "dst" else self.src

    def __str__(self) -> str:
        return format_instruction(self)


def _imm(value: int) -> str:
    """An imm32 as the assembler reads it: small values in signed decimal,
    others as the hex bit pattern."""
    return str(value) if -4096 <= value <= 4096 else f"0x{value & 0xFFFFFFFF:x}"


def _rel(value: int) -> str:
    return f"{value:+d}"


def _mem(base: int, off: int) -> str:
    return f"[%r{base}{off:+d}]" if off else f"[%r{base}]"


def format_instruction(insn: Instruction) -> str:
    """Render one instruction in the conformance-suite assembly dialect."""
    spec, form = insn.spec, insn.spec.form
    d, s, m = f"%r{insn.dst}", f"%r{insn.src}", spec.mnemonic
    operands = {
        Form.ALU_X: lambda: f"{d}, {s}",
        Form.ALU_K: lambda: f"{d}, {_imm(insn.imm)}",
        Form.UNARY: lambda: d,
        Form.JMP_X: lambda: f"{d}, {s}, {_rel(insn.off)}",
        Form.JMP_K: lambda: f"{d}, {_imm(insn.imm)}, {_rel(insn.off)}",
        Form.JA: lambda: _rel(insn.off),
        Form.JA32: lambda: _rel(insn.imm),
        Form.CALL_HELPER: lambda: str(insn.imm),
        Form.CALL_LOCAL: lambda: f"local {_rel(insn.imm)}",
        Form.CALL_BTF: lambda: f"runtime {insn.imm}",
        Form.CALLX: lambda: d,
        Form.EXIT: lambda: "",
        Form.LDDW: lambda: f"{d}, 0x{insn.imm:x}",
        Form.LOAD: lambda: f"{d}, {_mem(insn.src, insn.off)}",
        Form.STORE_K: lambda: f"{_mem(insn.dst, insn.off)}, {_imm(insn.imm)}",
        Form.STORE_X: lambda: f"{_mem(insn.dst, insn.off)}, {s}",
        Form.ATOMIC: lambda: f"{_mem(insn.dst, insn.off)}, {s}",
        Form.LDABS: lambda: _imm(insn.imm),
        Form.LDIND: lambda: f"{s}, {_imm(insn.imm)}",
    }[form]()
    return f"{m} {operands}" if operands else m


def _hex(raw: bytes) -> str:
    return raw.hex(" ")


def decode(raw: bytes) -> list[Instruction]:
    """Decode bytecode into instructions, rejecting anything malformed.

    Raises :class:`DecodeError` naming the slot and showing its bytes.
    """
    raw = bytes(raw)
    if not raw:
        raise DecodeError("empty program: no instructions")
    if len(raw) % 8:
        raise DecodeError(
            f"program length {len(raw)} bytes is not a multiple of 8 (instruction slots are 8 bytes):"
            f" slot {len(raw) // 8} is incomplete ({_hex(raw[len(raw) // 8 * 8 :])})"
        )
    count = len(raw) // 8
    if count > isa.MAX_SLOTS:
        raise DecodeError(
            f"program has {count} slots, more than the limit of {isa.MAX_SLOTS}: slot {isa.MAX_SLOTS}"
            f" ({_hex(raw[isa.MAX_SLOTS * 8 : isa.MAX_SLOTS * 8 + 8])}) is beyond it"
        )
    with gc_paused():  # many small objects and no cycles
        return _decode_slots(raw, list(_SLOT.iter_unpack(raw)))


def _decode_slots(raw: bytes, slots: list[tuple[int, int, int, int]]) -> list[Instruction]:
    count = len(slots)
    out: list[Instruction] = []
    # Programs repeat instructions a lot: decode each distinct one-slot
    # instruction once (Instructions are immutable, so sharing them is safe).
    seen: dict[tuple[int, int, int, int], Instruction] = {}
    pc = 0
    while pc < count:
        slot = slots[pc]
        insn = seen.get(slot)
        if insn is not None:
            out.append(insn)
            pc += 1
            continue
        opcode, regs, off, imm = slot
        dst, src = regs & 0x0F, regs >> 4
        spec = isa.lookup(opcode, dst, src, off, imm)
        if spec is None:
            raise DecodeError(
                f"slot {pc}: {_explain_unknown(opcode, dst, src, off, imm)} ({_hex(raw[pc * 8 : pc * 8 + 8])})"
            )
        for name in spec.form.registers:
            reg = dst if name == "dst" else src
            if reg > isa.MAX_REG:
                raise DecodeError(
                    f"slot {pc}: register r{reg} in {name} is out of range (r0-r10) ({_hex(raw[pc * 8 : pc * 8 + 8])})"
                )
        if spec.is_wide:
            if pc + 1 >= count:
                raise DecodeError(f"slot {pc}: truncated LD_IMM64, the second slot is missing ({_hex(raw[pc * 8 :])})")
            op2, regs2, off2, hi = slots[pc + 1]
            if op2 or regs2 or off2:
                raise DecodeError(
                    f"slot {pc + 1}: the second slot of LD_IMM64 at slot {pc} must have opcode, registers and offset"
                    f" zero ({_hex(raw[pc * 8 + 8 : pc * 8 + 16])})"
                )
            out.append(Instruction(spec, dst, src, off, ((hi & 0xFFFFFFFF) << 32) | (imm & 0xFFFFFFFF)))
            pc += 2
            continue
        insn = seen[slot] = Instruction(spec, dst, src, off, imm)
        out.append(insn)
        pc += 1
    return out


def _explain_unknown(opcode: int, dst: int, src: int, off: int, imm: int) -> str:
    candidates = isa.BY_OPCODE.get(opcode)
    if not candidates:
        return f"unknown opcode 0x{opcode:02x}"
    got = {"dst": dst, "src": src, "off": off, "imm": imm}

    def mismatches(spec: OpSpec) -> list[str]:
        return [name for name in _FIELDS if getattr(spec, name) is not None and getattr(spec, name) != got[name]]

    best = min(candidates, key=lambda spec: len(mismatches(spec)))
    problems = []
    for name in mismatches(best):
        allowed = sorted({getattr(c, name) for c in candidates if getattr(c, name) is not None})
        if name not in best.form.operands and allowed == [0]:
            problems.append(f"reserved field {name} must be 0, not {got[name]}")
        else:
            problems.append(f"{name}={got[name]} is not valid (allowed: {', '.join(map(str, allowed))})")
    return f"opcode 0x{opcode:02x} ({best.mnemonic}): " + "; ".join(problems)


@dataclass
class Bytecode:
    """A decoded eBPF program as code only: its instructions and their slots.

    ``len(code)`` counts 8-byte slots; ``code.instructions`` lists the decoded
    instructions (one entry per LD_IMM64, which spans two slots) and
    ``code.pcs`` the slot of each. Iterating yields ``(pc, instruction)``.
    What a program needs besides its code (maps, global data, relocations) is
    on :class:`jit.frontend.program.Program`, which every front end returns.
    """

    instructions: tuple[Instruction, ...]
    name: str = "prog"
    pcs: tuple[int, ...] = field(init=False, repr=False)
    index_of: dict[int, int] = field(init=False, repr=False)
    slot_count: int = field(init=False, repr=False)
    # What engines derive from the code and keep with it (the interpreter's
    # decoded machines), by engine; never part of the program's value.
    cache: dict[str, object] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self.instructions = tuple(self.instructions)
        except TypeError:
            self.instructions = (self.instructions,)
        if not all(type(insn) is Instruction for insn in self.instructions):
            kinds = sorted({type(insn).__name__ for insn in self.instructions} - {"Instruction"})
            raise UsageError(f"a program's instructions are jit.Instruction objects, not {', '.join(kinds)}")
        if not isinstance(self.name, str):
            raise UsageError(f"a program's name is a str, not {type(self.name).__name__}")
        if not self.instructions:
            raise DecodeError("empty program: no instructions")
        pcs, pc = [], 0
        for insn in self.instructions:
            pcs.append(pc)
            pc += insn.slots
        if pc > isa.MAX_SLOTS:
            raise DecodeError(f"program has {pc} slots, more than the limit of {isa.MAX_SLOTS}")
        self.pcs = tuple(pcs)
        self.index_of = {pc: i for i, pc in enumerate(pcs)}
        self.slot_count = pc

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview, name: str = "prog") -> Self:
        """Decode little-endian bytecode (8-byte slots)."""
        raw = bytes(raw)
        code = cls(tuple(decode(raw)), name=name)
        code.cache["bytes"] = (code.instructions, raw)  # decoding is canonical: what to_bytes() would give
        return code

    @property
    def targets(self) -> tuple[int | None, ...]:
        """Each instruction's jump or local-call target slot (None: it has none), found once."""
        kept = self.cache.get("targets")
        if kept is not None and kept[0] is self.instructions:
            return kept[1]
        targets = tuple(insn.target(pc) for pc, insn in zip(self.pcs, self.instructions))
        self.cache["targets"] = (self.instructions, targets)
        return targets

    def to_bytes(self) -> bytes:
        """The program as bytecode (kept after the first call)."""
        kept = self.cache.get("bytes")
        if kept is not None and kept[0] is self.instructions:
            return kept[1]
        raw = b"".join(insn.encode() for insn in self.instructions)
        self.cache["bytes"] = (self.instructions, raw)
        return raw

    def __len__(self) -> int:
        return self.slot_count

    def __iter__(self) -> Iterator[tuple[int, Instruction]]:
        return zip(self.pcs, self.instructions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bytecode) and self.instructions == other.instructions

    def at(self, pc: int) -> Instruction:
        """The instruction starting at slot ``pc``."""
        return self.instructions[self.index_of[pc]]

    def describe(self, pc: int) -> str:
        """``instruction 5 (ldxw %r0, [%r1+4])``, for error messages."""
        index = self.index_of.get(pc)
        if index is None:
            return f"slot {pc}"
        return f"instruction {pc} ({self.instructions[index]})"

    @property
    def subprograms(self) -> tuple[int, ...]:
        """Start slots of the main program (0) and of every local-call target."""
        starts = {0}
        for pc, insn in self:
            if insn.spec.form is Form.CALL_LOCAL:
                target = insn.target(pc)
                if target in self.index_of:
                    starts.add(target)
        return tuple(sorted(starts))


def check_control_flow(prog: Bytecode) -> None:
    """Every jump and local-call target is an instruction of the program.

    Engines that translate the whole program ahead of time (the JITs) need
    this; raises :class:`VerifierError` naming the offending instruction.
    """
    for pc, target in zip(prog.pcs, prog.targets):
        if target is None:
            continue
        if not 0 <= target < len(prog):
            raise VerifierError(
                f"{prog.describe(pc)}: jump target {target} is outside the program (0..{len(prog) - 1})"
            )
        if target not in prog.index_of:
            raise VerifierError(f"{prog.describe(pc)}: jump target {target} is the second slot of an LD_IMM64")


Handler = TypeVar("Handler")


class Dispatch(Generic[Handler]):
    """An engine's handler for each :class:`~jit.core.isa.Op`.

    Every engine (interpreter, verifier, backends, fuzzer) builds one; looking
    up an operation it does not handle raises :class:`CompileError` naming
    the instruction, never a bare ``KeyError``, and :meth:`missing` lets a
    test check that the engine handles every row of the ISA table.
    """

    def __init__(self, engine: str, handlers: dict[Op, Handler]):
        self.engine = engine
        self.handlers = handlers

    def __call__(self, code: Bytecode, pc: int, insn: Instruction) -> Handler:
        handler = self.handlers.get(insn.spec.op)
        if handler is None:
            raise CompileError(f"{code.describe(pc)}: the {self.engine} has no handler for {insn.spec.op.name}")
        return handler

    def missing(self) -> set[Op]:
        """The operations of the ISA table this engine does not handle."""
        return {spec.op for spec in isa.ISA} - set(self.handlers)
