"""Every engine dispatches on the ISA table's ``Op``: each handles every row,
and an operation an engine lacks is a CompileError naming the instruction,
never a KeyError."""

from __future__ import annotations

import random
import re

import pytest

import jit
from jit.analysis import fixpoint
from jit.backends import architectures, get_backend, template
from jit.backends.base import CodegenOptions
from jit.core import isa
from jit.core.bytecode import Bytecode, Dispatch, Instruction
from jit.core.isa import Op
from jit.runtime import interpreter
from jit.tools import fuzz

ENGINES = {"interpreter": interpreter.DISPATCH, "verifier": fixpoint.DISPATCH, "backends": template.LOWERING}


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engine_handles_every_row(name: str) -> None:
    assert ENGINES[name].missing() == set()


def test_every_op_has_a_row_and_every_row_an_op() -> None:
    assert {spec.op for spec in isa.ISA} == set(Op)


def test_atomics_are_operations_of_their_own() -> None:
    atomic = {spec.op for spec in isa.ISA if spec.form is isa.Form.ATOMIC}
    assert atomic == isa.ATOMIC_OPS
    assert not atomic & {spec.op for spec in isa.ISA if spec.form is not isa.Form.ATOMIC}
    assert isa.ATOMIC_ALU[Op.ATOMIC_XOR] is Op.XOR


def test_unhandled_op_names_the_instruction() -> None:
    table = Dispatch("test engine", {op: op.name for op in Op if op is not Op.NEG})
    prog = jit.assemble("mov %r0, 1\nneg %r0\nexit")
    assert table(prog, 0, prog.at(0)) == "MOV"
    with pytest.raises(jit.CompileError, match=r"instruction 1 \(neg %r0\): the test engine has no handler for NEG"):
        table(prog, 1, prog.at(1))
    assert table.missing() == {Op.NEG}


def test_the_interpreter_reports_an_unhandled_op(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = dict(interpreter.DISPATCH.handlers)
    del handlers[Op.NEG]
    monkeypatch.setattr(interpreter, "DISPATCH", Dispatch("interpreter", handlers))
    with pytest.raises(jit.CompileError, match=r"instruction 1 \(neg32 %r0\)"):
        jit.interpret("mov %r0, 1\nneg32 %r0\nexit")


def test_the_fuzzer_covers_the_table() -> None:
    assert fuzz.GENERATORS.missing() == set(fuzz.NOT_GENERATED)
    seen = set()
    rng = random.Random(2026)
    for _ in range(300):
        seen |= {insn.op for insn in jit.assemble(fuzz.generate(rng).program()).instructions}
    assert set(fuzz.GENERATORS.handlers) <= seen, set(fuzz.GENERATORS.handlers) - seen


@pytest.mark.parametrize("arch", architectures())
def test_every_backend_provides_every_primitive(arch: str) -> None:
    emitter = get_backend(arch).emitter
    assert not emitter.__abstractmethods__
    assert all(callable(getattr(emitter, name)) for name in set(template.LOWERING.handlers.values()))


@pytest.mark.parametrize("arch", architectures())
def test_backend_reports_an_unhandled_op(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = {op: name for op, name in template.LOWERING.handlers.items() if op is not Op.NEG}
    monkeypatch.setattr(template, "LOWERING", Dispatch("backend", handlers))
    with pytest.raises(jit.CompileError, match=r"instruction 1 \(neg %r0\): the backend has no handler for NEG"):
        get_backend(arch).compile(jit.assemble("mov %r0, 1\nneg %r0\nexit"), CodegenOptions())


def _row(mnemonic: str) -> isa.OpSpec:
    return next(spec for spec in isa.ISA if spec.mnemonic == mnemonic)


@pytest.mark.parametrize("arch", architectures())
@pytest.mark.parametrize("off", [5, -3])
def test_backend_rejects_a_jump_outside_the_program(arch: str, off: int) -> None:
    """The JIT front door checks control flow once, but a backend called
    directly still refuses a bad target with a CompileError, not a KeyError
    or an assembler message."""
    prog = Bytecode((Instruction(_row("ja"), off=off), Instruction(_row("exit"))))
    with pytest.raises(jit.CompileError, match=re.escape(f"instruction 0 (ja {off:+d}): jump target {off + 1} is not")):
        get_backend(arch).compile(prog, CodegenOptions())


@pytest.mark.parametrize("arch", architectures())
@pytest.mark.parametrize("value", [-1, 1 << 63, 1.5, True, "10"])
def test_backend_refuses_a_budget_it_cannot_count(arch: str, value: object) -> None:
    with pytest.raises(jit.UsageError, match=r"max_steps must be an int in 0..2\*\*63-1, not "):
        get_backend(arch).compile(jit.assemble("exit"), CodegenOptions(max_steps=value))  # type: ignore[arg-type]
