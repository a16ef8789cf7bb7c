"""The reference interpreter of classic BPF, with libpcap's semantics (``bpf_filter``).

``A`` and ``X`` start at 0 and every scratch word at 0. Arithmetic is on
unsigned 32-bit values; a shift by 32 or more gives 0; division or modulo by
``X == 0`` ends the filter with 0. Packet loads are big-endian and bounds
checked against the captured length: a load past the end ends the filter
with 0. ``ld #len`` gives the wire length (the captured length unless
``wirelen`` says otherwise). A jump past the end, falling off the end, or a
scratch index of 16 or more (a program that :meth:`ClassicProgram.validate`
rejects) also returns 0, as libpcap does.
"""

from __future__ import annotations

from jit.core.bits import MASK32
from jit.core.errors import UsageError
from jit.frontend.cbpf import MEMWORDS, ClassicProgram, COp, Mode, load_classic

_ALU = {
    COp.ADD: lambda a, b: a + b,
    COp.SUB: lambda a, b: a - b,
    COp.MUL: lambda a, b: a * b,
    COp.OR: lambda a, b: a | b,
    COp.AND: lambda a, b: a & b,
    COp.XOR: lambda a, b: a ^ b,
    COp.LSH: lambda a, b: a << b if b < 32 else 0,
    COp.RSH: lambda a, b: a >> b if b < 32 else 0,
}
_JUMP = {
    COp.JEQ: lambda a, b: a == b,
    COp.JGT: lambda a, b: a > b,
    COp.JGE: lambda a, b: a >= b,
    COp.JSET: lambda a, b: a & b != 0,
}


def run_classic(
    prog: ClassicProgram | bytes | str, packet: bytes | bytearray | memoryview, wirelen: int | None = None
) -> int:
    """What the classic filter ``prog`` returns for ``packet`` (u32; 0 rejects)."""
    prog = load_classic(prog)
    if not isinstance(packet, bytes | bytearray | memoryview):
        raise UsageError(f"packet must be bytes, bytearray or memoryview, not {type(packet).__name__}")
    data = bytes(packet)
    buflen = len(data)
    length = buflen if wirelen is None else wirelen
    a = x = 0
    mem = [0] * MEMWORDS
    insns = prog.insns
    pc = 0
    while pc < len(insns):
        insn = insns[pc]
        spec, k = insn.spec, insn.k
        op, mode = spec.op, spec.mode
        pc += 1
        if op is COp.LD or op is COp.LDX:
            if mode is Mode.ABS or mode is Mode.IND or mode is Mode.MSH:
                offset = k + x if mode is Mode.IND else k
                if offset + spec.size > buflen:
                    return 0
                value = int.from_bytes(data[offset : offset + spec.size], "big")
                if mode is Mode.MSH:
                    value = (value & 0xF) << 2
            elif mode is Mode.IMM:
                value = k
            elif mode is Mode.LEN:
                value = length & MASK32
            else:  # MEM
                if k >= MEMWORDS:
                    return 0
                value = mem[k]
            if op is COp.LD:
                a = value
            else:
                x = value
        elif op is COp.ST or op is COp.STX:
            if k >= MEMWORDS:
                return 0
            mem[k] = a if op is COp.ST else x
        elif op in _JUMP:
            operand = x if mode is Mode.X else k
            pc += insn.jt if _JUMP[op](a, operand) else insn.jf
        elif op is COp.JA:
            pc += k
        elif op is COp.RET:
            return a if mode is Mode.A else k
        elif op is COp.TAX:
            x = a
        elif op is COp.TXA:
            a = x
        elif op is COp.NEG:
            a = -a & MASK32
        else:
            operand = x if mode is Mode.X else k
            if op is COp.DIV or op is COp.MOD:
                if operand == 0:
                    return 0
                a = a // operand if op is COp.DIV else a % operand
            else:
                a = _ALU[op](a, operand) & MASK32
    return 0
