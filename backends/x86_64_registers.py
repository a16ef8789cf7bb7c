"""The x86-64 register file as the x86-64 emitter uses it: each register under
its 64/32/16/8-bit names, where each BPF register lives, and the registers with
a fixed role (scratch, the context, the operands div and shifts need)."""

from __future__ import annotations

from dataclasses import dataclass


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
