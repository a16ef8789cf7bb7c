"""Classic BPF to eBPF, with Linux's conventions (``bpf_convert_filter``).

The result is an ordinary :class:`jit.Program` taking the packet in R1 and its
length in R2 (the project's ABI), which the verifier proves safe, so
``jit.compile`` runs it with no run-time checks. Registers, as in Linux:

    A = R0 (also the return value)   X = R7
    D = R8 packet data (R1 at entry)  H = R9 packet length (R2 at entry)
    R1, R2 scratch                    M[k] = the 32-bit stack word at R10 - 64 + 4k

Every value of A and X is kept zero-extended (32-bit ALU and JMP32 only).
Lowerings (``s`` the load size; ``OUT`` the program's first reachable ``ret
#0``, or a ``r0 = 0; exit`` added at the end when it has none):

* ``ld [k]``: ``if H < k+s goto OUT; A = *(u{s}*)(D + k); A = be(A)``
* ``ld [x+k]``: ``R1 = X + k + s; if R1 > H goto OUT; R1 += D; A = *(R1 - s)``, be
* ``ldxb 4*([k]&0xf)``: ``if H <= k goto OUT; X = *(u8*)(D + k); X &= 15; X <<= 2``
* ``div/mod x``: ``if X == 0 goto OUT`` first (libpcap: the filter returns 0);
  ``lsh/rsh x``: A = 0 when X >= 32 (libpcap), else the 32-bit shift
* ``jeq/jgt/jge/jset`` with ``jt``/``jf``: one conditional jump when either
  target is the next instruction (the inverted condition when only ``jf`` is
  taken, where there is one), else a conditional jump and a ``ja``
* ``ret #k``: ``A = k; exit``; ``ret a``: ``exit``

A length check that every path to a load has already made is left out (the
translation tracks the length each instruction may assume, as the verifier
does), and so are instructions no path reaches (the verifier refuses dead code).

``ld #len`` is the buffer's length, H, unless the translation is asked for the
wire length (``wire_length=True``, as a capture of packets cut short by a
snap length needs: libpcap's ``len`` is the length on the wire). Then the
buffer is a :data:`WIRE_PREFIX`-byte little-endian u32, the wire length, then
the packet: every packet offset is moved past the prefix, a buffer shorter
than the prefix returns 0, and W = R6 holds the wire length (``ld #len``).
"""

from __future__ import annotations

from dataclasses import dataclass

from jit.core import isa
from jit.core.bits import s32
from jit.core.bytecode import Instruction
from jit.core.errors import CompileError, UsageError
from jit.core.isa import Form
from jit.frontend.cbpf import ALU_BINARY, MEMWORDS, ClassicInsn, ClassicProgram, COp, Mode, load_classic
from jit.frontend.program import Program

A, X, D, H, T1, W, FP = 0, 7, 8, 9, 1, 6, 10
WIRE_PREFIX = 4  # bytes of wire length before the packet (wire_length=True)
OUT = "out"
_SPECS = {(spec.mnemonic, spec.form): spec for spec in isa.ISA}
_LOAD = {1: "ldxb", 2: "ldxh", 4: "ldxw"}
_SWAP = {2: "be16", 4: "be32"}
_JUMPS = {COp.JEQ: "jeq32", COp.JGT: "jgt32", COp.JGE: "jge32", COp.JSET: "jset32"}
_INVERSE = {COp.JEQ: "jne32", COp.JGT: "jle32", COp.JGE: "jlt32"}  # jset has none
IMM_MAX = 0x7FFFFFFF  # larger constants do not fit a sign-extended imm32


@dataclass
class _Item:
    """One eBPF instruction being laid out; ``target`` is a classic index,
    OUT, or None (``off`` is then final)."""

    mnemonic: str
    form: Form
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: int | str | None = None


class _Translation:
    def __init__(self, prog: ClassicProgram, wire_length: bool):
        self.prog = prog
        self.wire_length = wire_length
        self.base = WIRE_PREFIX if wire_length else 0  # where the packet starts in the buffer
        self.items: list[_Item] = []
        self.starts: dict[int, int] = {}
        self.origin: list[int] = []  # classic index of each item

    def emit(self, mnemonic: str, form: Form, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
             target: int | str | None = None) -> None:  # fmt: skip
        self.items.append(_Item(mnemonic, form, dst, src, off, imm, target))
        self.origin.append(self.pc)

    def mov32(self, dst: int, value: int) -> None:
        self.emit("mov32", Form.ALU_K, dst, imm=s32(value))

    def run(self) -> Program:
        self.pc = -1
        self.emit("mov", Form.ALU_X, D, 1)
        self.emit("mov", Form.ALU_X, H, 2)
        self.mov32(A, 0)
        self.mov32(X, 0)
        if self.wire_length:
            self.emit("jlt", Form.JMP_K, H, imm=WIRE_PREFIX, target=OUT)
            self.emit("ldxw", Form.LOAD, W, D, off=0)
        live = self.prog.reachable()
        # The buffer length each instruction may assume (checked on every path to it).
        self.known: list[int | None] = [None] * len(self.prog)
        self.known[0] = self.base
        for pc, insn in self.prog:
            if live[pc]:
                self.pc = pc
                self.starts[pc] = len(self.items)
                self.length = self.known[pc] or 0
                self.lower(pc, insn)
                for target in insn.targets(pc):
                    before = self.known[target]
                    self.known[target] = self.length if before is None else min(before, self.length)
        # OUT is a reachable "ret #0" when there is one, else a stub at the end.
        zeros = [
            pc for pc, insn in self.prog if live[pc] and insn.spec.mode is Mode.K and insn.op is COp.RET and not insn.k
        ]
        self.out = zeros[0] if zeros else len(self.prog)
        if not zeros and any(item.target == OUT for item in self.items):
            self.pc = len(self.prog)
            self.starts[len(self.prog)] = len(self.items)
            self.mov32(A, 0)
            self.emit("exit", Form.EXIT)
        return Program(tuple(self.resolve()), name=self.prog.name)

    def resolve(self) -> list[Instruction]:
        out = []
        for index, item in enumerate(self.items):
            off = item.off
            if item.target is not None:
                where = self.out if item.target == OUT else item.target
                off = self.starts[where] - index - 1  # type: ignore[index]
            if not -(1 << 15) <= off < 1 << 15:
                raise CompileError(
                    f"{self.prog.describe(self.origin[index])}: the eBPF jump it needs spans {off} instructions,"
                    " more than a 16-bit offset holds"
                )
            spec = _SPECS[item.mnemonic, item.form]
            out.append(Instruction(spec, item.dst, item.src, off, item.imm))
        return out

    # --- lowerings -----------------------------------------------------------------------------

    def lower(self, pc: int, insn: ClassicInsn) -> None:
        spec, k = insn.spec, insn.k
        op, mode = spec.op, spec.mode
        if op in (COp.LD, COp.LDX):
            dst = A if op is COp.LD else X
            if mode is Mode.ABS:
                self.load_abs(dst, k, spec.size)
            elif mode is Mode.IND:
                self.load_ind(dst, k, spec.size)
            elif mode is Mode.MSH:
                self.load_abs(dst, k, 1)
                self.emit("and32", Form.ALU_K, dst, imm=0xF)
                self.emit("lsh32", Form.ALU_K, dst, imm=2)
            elif mode is Mode.IMM:
                self.mov32(dst, k)
            elif mode is Mode.LEN:
                self.emit("mov32", Form.ALU_X, dst, W if self.wire_length else H)
            else:
                self.emit("ldxw", Form.LOAD, dst, FP, off=_slot(k))
        elif op in (COp.ST, COp.STX):
            self.emit("stxw", Form.STORE_X, FP, A if op is COp.ST else X, off=_slot(k))
        elif op in ALU_BINARY:
            self.alu(op, mode, k)
        elif op is COp.NEG:
            self.emit("neg32", Form.UNARY, A)
        elif op is COp.TAX:
            self.emit("mov32", Form.ALU_X, X, A)
        elif op is COp.TXA:
            self.emit("mov32", Form.ALU_X, A, X)
        elif op is COp.JA:
            if k:
                self.emit("ja", Form.JA, target=pc + 1 + k)
        elif op is COp.RET:
            if mode is Mode.K:
                self.mov32(A, k)
            self.emit("exit", Form.EXIT)
        else:
            self.branch(pc, insn)

    def load_abs(self, dst: int, k: int, size: int) -> None:
        end = self.base + k + size  # exact: the buffer offset just past the load
        if end > IMM_MAX:
            self.mov32(T1, k)  # exact: a zero-extended u32
            self.emit("add", Form.ALU_K, T1, imm=self.base + size)
            self.load_checked(dst, size)
            return
        if end > self.length:
            self.emit("jlt", Form.JMP_K, H, imm=end, target=OUT)
            self.length = end
        start = end - size
        if start <= 0x7FFF:
            self.emit(_LOAD[size], Form.LOAD, dst, D, off=start)
        else:
            self.emit("mov", Form.ALU_X, T1, D)
            self.emit("add", Form.ALU_K, T1, imm=start)
            self.emit(_LOAD[size], Form.LOAD, dst, T1)
        self.swap(dst, size)

    def load_ind(self, dst: int, k: int, size: int) -> None:
        if self.base + k + size <= IMM_MAX:
            self.emit("mov", Form.ALU_X, T1, X)
            self.emit("add", Form.ALU_K, T1, imm=self.base + k + size)
        else:
            self.mov32(T1, k)
            self.emit("add", Form.ALU_X, T1, X)
            self.emit("add", Form.ALU_K, T1, imm=self.base + size)
        self.load_checked(dst, size)

    def load_checked(self, dst: int, size: int) -> None:
        """T1 = offset + size (exact): the load of ``size`` bytes ending there."""
        self.emit("jgt", Form.JMP_X, T1, H, target=OUT)
        self.emit("add", Form.ALU_X, T1, D)
        self.emit(_LOAD[size], Form.LOAD, dst, T1, off=-size)
        self.swap(dst, size)

    def swap(self, dst: int, size: int) -> None:
        if size > 1:
            self.emit(_SWAP[size], Form.UNARY, dst, imm=size * 8)

    def alu(self, op: COp, mode: Mode, k: int) -> None:
        name = op.value + "32"
        if mode is not Mode.X:
            self.emit(name, Form.ALU_K, A, imm=s32(k))
        elif op in (COp.DIV, COp.MOD):
            self.emit("jeq32", Form.JMP_K, X, imm=0, target=OUT)
            self.emit(name, Form.ALU_X, A, X)
        elif op in (COp.LSH, COp.RSH):
            self.emit("jlt32", Form.JMP_K, X, imm=32, off=2)
            self.mov32(A, 0)
            self.emit("ja", Form.JA, off=1)
            self.emit(name, Form.ALU_X, A, X)
        else:
            self.emit(name, Form.ALU_X, A, X)

    def branch(self, pc: int, insn: ClassicInsn) -> None:
        op = insn.spec.op
        taken, fallen = pc + 1 + insn.jt, pc + 1 + insn.jf
        source = (
            {"form": Form.JMP_X, "src": X} if insn.spec.mode is Mode.X else {"form": Form.JMP_K, "imm": s32(insn.k)}
        )
        if taken == fallen:
            if insn.jt:
                self.emit("ja", Form.JA, target=taken)
        elif insn.jf == 0:
            self.emit(_JUMPS[op], dst=A, target=taken, **source)  # type: ignore[arg-type]
        elif insn.jt == 0 and op in _INVERSE:
            self.emit(_INVERSE[op], dst=A, target=fallen, **source)  # type: ignore[arg-type]
        else:
            self.emit(_JUMPS[op], dst=A, target=taken, **source)  # type: ignore[arg-type]
            self.emit("ja", Form.JA, target=fallen)


def _slot(k: int) -> int:
    """The stack offset (from R10) of scratch word M[k]."""
    return -4 * (MEMWORDS - k)


def classic_to_ebpf(prog: ClassicProgram | bytes | str, validate: bool = True, wire_length: bool = False) -> Program:
    """The eBPF :class:`jit.Program` equivalent to the classic program ``prog``
    (validated first, see :meth:`ClassicProgram.validate`). With
    ``wire_length`` its buffer is the wire length, then the packet (see the
    module docstring: :func:`with_wire_length` builds one)."""
    prog = load_classic(prog)
    if validate:
        prog.validate()
    return _Translation(prog, wire_length).run()


def with_wire_length(packet: bytes | bytearray | memoryview, wirelen: int | None = None) -> bytearray:
    """The buffer a ``wire_length=True`` translation takes: the wire length
    (the packet's own length when None) and the packet."""
    length = len(packet) if wirelen is None else wirelen
    if not 0 <= length <= 0xFFFFFFFF:
        raise UsageError(f"a wire length must be in 0..2**32-1, not {length}")
    return bytearray(length.to_bytes(WIRE_PREFIX, "little")) + packet
