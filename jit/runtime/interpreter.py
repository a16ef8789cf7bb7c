"""The reference interpreter: the semantics every engine is held to (RFC 9669).

The rules are in the operation tables below, one small pure function per
operation on unsigned operands of the instruction's width (32 or 64 bits).
Everything else only moves values between registers, memory and those
functions.

Speed: a program is decoded once into a tuple of closures, one per slot, each
running its instruction and returning the next slot. The run loop is
``pc = handlers[pc]()``. Decoded machines are kept on the Program and reused.

Choices the RFC leaves open, decided here (the JIT engines follow them):

* R1-R5 keep their values after a helper call (the RFC says they are
  clobbered: a program must not rely on them, and this choice is the simplest).
* ``callx`` (opcode 0x8d) calls the helper whose id is in the register.
* ``call runtime`` (BTF id) and LD_IMM64 with src != 0 (relocations) are
  rejected with :class:`jit.CompileError` before the program runs.
* Atomic accesses must be naturally aligned; other accesses may be unaligned.
* Legacy LD_ABS/LD_IND read the input buffer: address = R6 + imm (ABS) or
  R6 + src + imm (IND), imm sign-extended. If the bytes are not all inside the
  input buffer the program ends at once with R0 = 0; otherwise R0 = the
  big-endian value, zero-extended. R1-R5 are left unchanged.
* A local call gets a fresh 512-byte stack frame below the caller's; its
  contents are unspecified (the stack starts zeroed at every run). At most
  ``MAX_CALL_DEPTH`` (8) frames, the main program's included, are active.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jit.core import isa
from jit.core.abi import check_max_steps
from jit.core.bits import MASK32, MASK64, sign_extend
from jit.core.bytecode import Dispatch, Instruction
from jit.core.errors import CallDepthError, CompileError, ExecutionError, HelperError, Interrupted, StepLimitError
from jit.core.gcpause import gc_paused
from jit.core.helpers import Helper
from jit.core.isa import Form, Op
from jit.core.semantics import ALU_OPS, BYTE_ORDER, CONDITIONS
from jit.frontend.loader import ProgramLike, load_program
from jit.frontend.program import Program
from jit.runtime.buffers import Mem
from jit.runtime.helpers import program_helpers
from jit.runtime.memory import Memory
from jit.runtime.tailcalls import TailCallChain, run_with_tail_calls

MASKS = {32: MASK32, 64: MASK64}
_POOL_SIZE = 4  # idle decoded machines kept per Program (recursion, threads)


# --- run state and results --------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """The outcome of :func:`run`: R0, all 11 registers at the end, executed instructions."""

    r0: int
    regs: tuple[int, ...]
    steps: int


Trace = list[tuple[int, tuple[int, ...]]]  # (slot, R0..R10 before executing it) per step


class _Halt(Exception):
    """The top-level exit (or an out-of-bounds LD_ABS) ended the run."""


class _FromHelper(BaseException):
    """Carries a helper's KeyboardInterrupt or SystemExit past the run loop,
    which turns a KeyboardInterrupt of its own (Ctrl-C) into jit.Interrupted."""

    def __init__(self, exc: BaseException):
        super().__init__()
        self.exc = exc


Handler = Callable[[], int]


class _Machine:
    """Registers, memory and call frames of one run, and the program's handlers
    bound to them. Reused across runs of the same Program (one run at a time)."""

    def __init__(self, prog: Program):
        self.prog = prog
        self.regs = [0] * (isa.MAX_REG + 1)
        self.memory = Memory(blocks=prog.memory)
        self.frames: list[tuple[int, ...]] = []  # (return slot, R6, R7, R8, R9, R10) per active call
        self.helpers: Mapping[int, Helper] = {}
        with gc_paused():  # decoding allocates many closures: collections would cost 5x the time
            self.handlers = _Decoder(self).handlers()

    def run(self, mem: Mem, helpers: Mapping[int, Helper], max_steps: int | None, trace: Trace | None) -> RunResult:
        regs, memory = self.regs, self.memory
        memory.reset(mem)
        self.frames.clear()
        self.helpers = helpers
        regs[:] = [0] * len(regs)
        regs[1], regs[2], regs[10] = memory.input_address, memory.input_length, memory.set_frames(1)
        try:
            steps = self._loop(max_steps) if trace is None else self._traced_loop(max_steps, trace)
            return RunResult(regs[0], tuple(regs), steps)
        finally:
            memory.release()
            self.helpers = {}

    def _loop(self, max_steps: int | None) -> int:
        """Run from slot 0 to the top-level exit; returns the executed instruction count."""
        handlers = self.handlers
        pc = n = 0
        try:
            for n in itertools.count() if max_steps is None else range(max_steps):  # noqa: B007
                pc = handlers[pc]()
        except _Halt:
            return n + 1
        except _FromHelper as wrapped:
            raise wrapped.exc from None
        except KeyboardInterrupt as exc:  # Ctrl-C in the middle of the run
            raise Interrupted(
                f"{self.prog.describe(pc)}: interrupted by a signal (the run stopped here)", pc=pc
            ) from exc
        except ExecutionError as exc:
            if exc.pc is not None:  # already names its instruction
                raise
            raise type(exc)(f"{self.prog.describe(pc)}: {exc}", pc=pc) from exc.__cause__
        raise StepLimitError(
            f"{self.prog.describe(pc)}: step limit of {max_steps} executed instructions reached", pc=pc
        )

    def _traced_loop(self, max_steps: int | None, trace: Trace) -> int:
        """:meth:`_loop` that also records ``(slot, registers before it)`` per step."""
        handlers, regs = self.handlers, self.regs
        step = 0

        def traced(pc: int) -> int:
            trace.append((pc, tuple(regs)))
            return handlers[pc]()

        original, self.handlers = handlers, [functools.partial(traced, pc) for pc in range(len(handlers))]
        try:
            step = self._loop(max_steps)
        finally:
            self.handlers = original
        return step


# --- decoding into handlers -------------------------------------------------------


class _Decoder:
    """Builds one closure per slot. Each ``_<family>`` method takes an
    instruction and its slot and returns the handler; errors raised by a
    handler without a ``pc`` get the current instruction named by the run loop."""

    def __init__(self, machine: _Machine):
        self.m = machine
        self.prog = machine.prog
        self.regs = machine.regs
        self.extra: list[Handler] = []  # error handlers for bad jump targets, at len(prog) + 1 ...

    def handlers(self) -> tuple[Handler, ...]:
        prog = self.prog
        size = len(prog)
        table: list[Handler] = [_raiser(ExecutionError, "the second slot of an LD_IMM64 is not an instruction")] * size
        for pc, insn in prog:
            table[pc] = DISPATCH(prog, pc, insn)(self, insn, pc)
        last = prog.pcs[-1]
        table.append(
            _raiser(ExecutionError, f"{prog.describe(last)}: execution fell off the end of the program", pc=last)
        )
        return tuple(table + self.extra)

    def _target(self, insn: Instruction, pc: int) -> int:
        """The handler index a jump or local call transfers to; an invalid
        target becomes an error handler naming the jump."""
        target = insn.target(pc)
        if target in self.prog.index_of:
            return target
        where = "the second slot of an LD_IMM64" if 0 <= target < len(self.prog) else "outside the program"
        message = f"{self.prog.describe(pc)}: jump target {target} is {where} (0..{len(self.prog) - 1})"
        self.extra.append(_raiser(ExecutionError, message, pc=pc))
        return len(self.prog) + len(self.extra)

    # --- ALU -------------------------------------------------------------------

    def _alu(self, insn: Instruction, pc: int) -> Handler:
        spec, regs, d, s, nxt = insn.spec, self.regs, insn.dst, insn.src, pc + 1
        mask = MASKS[spec.bits]
        if spec.op == "movsx":
            ext, bits = spec.ext, spec.bits

            def movsx() -> int:
                regs[d] = sign_extend(regs[s], ext, bits)
                return nxt

            return movsx
        f = ALU_OPS[spec.bits][spec.op]
        if spec.form is Form.ALU_K:
            b = insn.imm & mask  # sign-extended to 64 bits, or its low 32 bits
            if spec.bits == 64:

                def alu64_k() -> int:
                    regs[d] = f(regs[d], b)
                    return nxt

                return alu64_k

            def alu32_k() -> int:
                regs[d] = f(regs[d] & MASK32, b)
                return nxt

            return alu32_k
        if spec.bits == 64:

            def alu64_x() -> int:
                regs[d] = f(regs[d], regs[s])
                return nxt

            return alu64_x

        def alu32_x() -> int:
            regs[d] = f(regs[d] & MASK32, regs[s] & MASK32)
            return nxt

        return alu32_x

    def _unary(self, insn: Instruction, pc: int) -> Handler:
        spec, regs, d, nxt = insn.spec, self.regs, insn.dst, pc + 1
        if spec.op == "neg":
            mask = MASKS[spec.bits]

            def neg() -> int:
                regs[d] = -(regs[d] & mask) & mask
                return nxt

            return neg
        convert, ext = BYTE_ORDER[spec.op], spec.ext

        def byte_order() -> int:
            regs[d] = convert(regs[d], ext)
            return nxt

        return byte_order

    # --- jumps -----------------------------------------------------------------

    def _jump(self, insn: Instruction, pc: int) -> Handler:
        spec, regs, d, s, nxt = insn.spec, self.regs, insn.dst, insn.src, pc + 1
        taken, mask, cond = self._target(insn, pc), MASKS[spec.bits], CONDITIONS[spec.bits][spec.op]
        if spec.form is Form.JMP_K:
            b = insn.imm & mask  # 64-bit: the sign-extended imm, compared unsigned too
            if spec.bits == 64:
                return lambda: taken if cond(regs[d], b) else nxt
            return lambda: taken if cond(regs[d] & MASK32, b) else nxt
        if spec.bits == 64:
            return lambda: taken if cond(regs[d], regs[s]) else nxt
        return lambda: taken if cond(regs[d] & MASK32, regs[s] & MASK32) else nxt

    def _ja(self, insn: Instruction, pc: int) -> Handler:
        taken = self._target(insn, pc)
        return lambda: taken

    # --- calls and exit ----------------------------------------------------------

    def _call_helper(self, insn: Instruction, pc: int) -> Handler:
        m, regs, nxt = self.m, self.regs, pc + 1
        fixed_id = insn.imm if insn.spec.form is Form.CALL_HELPER else None
        d = insn.dst

        def call_helper() -> int:
            helper_id = regs[d] if fixed_id is None else fixed_id
            helper = m.helpers.get(helper_id)
            if helper is None:
                raise HelperError(f"unknown helper id {helper_id}")
            if helper.is_native:
                raise HelperError(
                    f"helper {helper_id} ({helper.name}) is a native function; the interpreter can only call"
                    " Python helpers"
                )
            try:
                regs[0] = helper.call((regs[1], regs[2], regs[3], regs[4], regs[5]), m.memory)
            except Exception as exc:
                raise HelperError(f"helper {helper_id} ({helper.name}) raised {type(exc).__name__}: {exc}") from exc
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: the helper's own, passed on unchanged
                raise _FromHelper(exc) from None
            return nxt

        return call_helper

    def _call_local(self, insn: Instruction, pc: int) -> Handler:
        regs, frames, memory = self.regs, self.m.frames, self.m.memory
        target, nxt = self._target(insn, pc), pc + 1

        def call_local() -> int:
            if len(frames) + 1 >= isa.MAX_CALL_DEPTH:
                raise CallDepthError(
                    f"local call would nest {len(frames) + 2} frames, more than the limit of {isa.MAX_CALL_DEPTH}"
                )
            frames.append((nxt, regs[6], regs[7], regs[8], regs[9], regs[10]))
            regs[10] = memory.set_frames(len(frames) + 1)
            return target

        return call_local

    def _exit(self, insn: Instruction, pc: int) -> Handler:
        regs, frames, memory = self.regs, self.m.frames, self.m.memory

        def exit_() -> int:
            if not frames:
                raise _Halt
            back, regs[6], regs[7], regs[8], regs[9], regs[10] = frames.pop()
            memory.set_frames(len(frames) + 1)
            return back

        return exit_

    def _reject(self, insn: Instruction, pc: int) -> Handler:
        raise CompileError(
            f"{self.prog.describe(pc)}: calls by BTF id (call runtime) are not supported; "
            "only helper ids (call N) and local calls"
        )

    # --- loads and stores --------------------------------------------------------

    def _lddw(self, insn: Instruction, pc: int) -> Handler:
        if insn.src != 0:
            raise CompileError(
                f"{self.prog.describe(pc)}: unresolved relocation (LD_IMM64 src={insn.src}, "
                f"{insn.spec.mnemonic}); resolve it before running the program"
            )
        regs, d, value, nxt = self.regs, insn.dst, insn.imm, pc + 2

        def lddw() -> int:
            regs[d] = value
            return nxt

        return lddw

    def _load(self, insn: Instruction, pc: int) -> Handler:
        spec, regs, d, s, off, nxt = insn.spec, self.regs, insn.dst, insn.src, insn.off, pc + 1
        load, size = self.m.memory.load, spec.size
        if spec.op == "ldxs":
            bits = size * 8

            def ldxs() -> int:
                regs[d] = sign_extend(load(regs[s] + off, size), bits)
                return nxt

            return ldxs

        def ldx() -> int:
            regs[d] = load(regs[s] + off, size)
            return nxt

        return ldx

    def _store(self, insn: Instruction, pc: int) -> Handler:
        spec, regs, d, s, off, nxt = insn.spec, self.regs, insn.dst, insn.src, insn.off, pc + 1
        store, size = self.m.memory.store, spec.size
        mask = (1 << (size * 8)) - 1
        if spec.form is Form.STORE_K:
            value = insn.imm & mask  # low bytes of the sign-extended imm

            def st() -> int:
                store(regs[d] + off, size, value)
                return nxt

            return st

        def stx() -> int:
            store(regs[d] + off, size, regs[s] & mask)
            return nxt

        return stx

    def _atomic(self, insn: Instruction, pc: int) -> Handler:
        spec, regs, d, s, off, nxt = insn.spec, self.regs, insn.dst, insn.src, insn.off, pc + 1
        update, size, mask = self.m.memory.update, spec.size, MASKS[spec.bits]
        if spec.op == "cmpxchg":

            def cmpxchg() -> int:
                expected, new = regs[0] & mask, regs[s] & mask
                regs[0] = update(regs[d] + off, size, lambda old: new if old == expected else old)
                return nxt

            return cmpxchg
        f = (lambda old, value: value) if spec.op == "xchg" else ALU_OPS[spec.bits][isa.ATOMIC_ALU[spec.op]]
        fetch = spec.fetch

        def atomic() -> int:
            value = regs[s] & mask
            old = update(regs[d] + off, size, lambda old: f(old, value))
            if fetch:
                regs[s] = old
            return nxt

        return atomic

    def _ldabs(self, insn: Instruction, pc: int) -> Handler:
        spec, regs, s, nxt = insn.spec, self.regs, insn.src, pc + 1
        load_be, size = self.m.memory.input_load_be, spec.size
        imm = insn.imm & MASK64  # sign-extended
        indirect = spec.form is Form.LDIND

        def ldabs() -> int:
            addr = (regs[6] + (regs[s] if indirect else 0) + imm) & MASK64
            value = load_be(addr, size)
            if value is None:  # out of bounds: the program ends with R0 = 0
                regs[0] = 0
                raise _Halt
            regs[0] = value
            return nxt

        return ldabs


# What the decoder builds for each operation.
DISPATCH: Dispatch[Callable[[_Decoder, Instruction, int], Handler]] = Dispatch(
    "interpreter",
    {
        **dict.fromkeys(isa.ALU_BINARY_OPS | {Op.MOVSX}, _Decoder._alu),
        **dict.fromkeys((Op.NEG, Op.LE, Op.BE, Op.BSWAP), _Decoder._unary),
        **dict.fromkeys(isa.JUMP_CONDITIONS, _Decoder._jump),
        Op.JA: _Decoder._ja,
        Op.CALL: _Decoder._call_helper,
        Op.CALLX: _Decoder._call_helper,
        Op.CALL_LOCAL: _Decoder._call_local,
        Op.CALL_BTF: _Decoder._reject,
        Op.EXIT: _Decoder._exit,
        Op.LDDW: _Decoder._lddw,
        Op.LDX: _Decoder._load,
        Op.LDXS: _Decoder._load,
        Op.ST: _Decoder._store,
        Op.STX: _Decoder._store,
        **dict.fromkeys(isa.ATOMIC_OPS, _Decoder._atomic),
        Op.LDABS: _Decoder._ldabs,
        Op.LDIND: _Decoder._ldabs,
    },
)


def _raiser(cls: type[ExecutionError], message: str, pc: int | None = None) -> Handler:
    def fail() -> int:
        raise cls(message, pc=pc)

    return fail


# --- public API -------------------------------------------------------------------


def _machines(prog: Program) -> list[_Machine]:
    """The idle decoded machines cached on ``prog`` (rebuilt if its instructions changed)."""
    cached = prog.cache.get("interpreter.machines")
    if cached is None or cached[0] is not prog.instructions:  # type: ignore[index]
        cached = prog.cache["interpreter.machines"] = (prog.instructions, [])
    return cached[1]  # type: ignore[index]


def run(
    prog: ProgramLike,
    mem: Mem = None,
    helpers: Mapping[int, object] | None = None,
    max_steps: int | None = None,
    trace: Trace | None = None,
) -> RunResult:
    """Run ``prog`` on ``mem``; returns R0, the final registers and the executed instruction count.

    Raises a :class:`jit.ExecutionError` subclass naming the instruction on a
    bad memory access, an unknown or failing helper, nesting local calls deeper
    than 8 frames, running past ``max_steps`` instructions or past the end.
    With ``trace`` (a list), every step appends ``(slot, registers before it)``.
    """
    check_max_steps(max_steps)
    program = load_program(prog)
    chain, table = _helper_table(program, helpers)
    if not program.maps:  # no prog array, so no tail calls
        return _run_once(program, mem, table, max_steps, trace)
    result: list[RunResult] = []

    def run_one(current: Program, buffer: bytearray | memoryview, _chain: TailCallChain) -> int:
        result.append(_run_once(current, buffer, table, max_steps, trace))
        return result[-1].r0

    run_with_tail_calls(run_one, program, mem, chain)
    return result[-1]


def _helper_table(program: Program, helpers: Mapping[int, object] | None) -> tuple[TailCallChain, dict[int, Helper]]:
    """The program's helpers (Linux helpers over its maps, then the user's);
    cached on the program for the common ``helpers=None`` case."""
    if helpers is None and "interpreter.helpers" in program.cache:
        return program.cache["interpreter.helpers"]  # type: ignore[return-value]
    chain = TailCallChain()
    entry = (chain, program_helpers(program, helpers, chain))
    if helpers is None:
        program.cache["interpreter.helpers"] = entry
    return entry


def _run_once(
    program: Program, mem: Mem, table: Mapping[int, Helper], max_steps: int | None, trace: Trace | None = None
) -> RunResult:
    pool = _machines(program)
    try:
        machine = pool.pop()
    except IndexError:
        machine = _Machine(program)
    try:
        return machine.run(mem, table, max_steps, trace)
    finally:
        if len(pool) < _POOL_SIZE:
            pool.append(machine)


def interpret(
    prog: ProgramLike,
    mem: Mem = None,
    helpers: Mapping[int, object] | None = None,
    max_steps: int | None = None,
) -> int:
    """Run ``prog`` and return R0 as an unsigned 64-bit int (see :func:`run`)."""
    return run(prog, mem, helpers, max_steps).r0
