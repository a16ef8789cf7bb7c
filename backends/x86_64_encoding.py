"""x86-64 facts the emitter and the copy-and-patch assembler use: the register
file (each register under its 64/32/16/8-bit names, where each BPF register
lives, the registers with a fixed role: scratch, the context, the operands div
and shifts need) and the encodings of branches to labels."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from jit.backends.patching import BranchForm


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


def _rel(short: bytes, long: bytes) -> Callable[[int, bool], bytes]:
    return lambda disp, is_long: long + struct.pack("<i", disp) if is_long else short + struct.pack("<b", disp)


# jmp and jcc: rel8 or rel32, as keystone relaxes them; call: rel32 only.
_CC = {"o": 0, "no": 1, "b": 2, "c": 2, "nae": 2, "ae": 3, "nb": 3, "nc": 3, "e": 4, "z": 4, "ne": 5, "nz": 5}
_CC |= {"be": 6, "na": 6, "a": 7, "nbe": 7, "s": 8, "ns": 9, "p": 10, "pe": 10, "np": 11, "po": 11}
_CC |= {"l": 12, "nge": 12, "ge": 13, "nl": 13, "le": 14, "ng": 14, "g": 15, "nle": 15}
BRANCHES = {
    f"j{cc}": BranchForm(6, _rel(bytes([0x70 + n]), bytes([0x0F, 0x80 + n])), 2, range(-128, 128))
    for cc, n in _CC.items()
}
BRANCHES["jmp"] = BranchForm(5, _rel(b"\xeb", b"\xe9"), 2, range(-128, 128))
BRANCHES["call"] = BranchForm(5, lambda disp, _: b"\xe8" + struct.pack("<i", disp))
