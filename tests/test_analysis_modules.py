"""The verifier's modules: each Op has a transfer function, an unhandled one
is a CompileError naming the instruction, the public names stay where callers
import them, and the bit constants have one definition (jit.core.bits)."""

from __future__ import annotations

import ast

import pytest
from conftest import REPO

import jit
from jit.analysis import fixpoint, verifier
from jit.core.bytecode import Dispatch
from jit.core.isa import Op

ANALYSIS = sorted((REPO / "jit" / "analysis").glob("*.py"))


def test_the_verifier_handles_every_row() -> None:
    assert fixpoint.DISPATCH.missing() == set()


def test_the_verifier_reports_an_unhandled_op(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = dict(fixpoint.DISPATCH.handlers)
    del handlers[Op.NEG]
    monkeypatch.setattr(fixpoint, "DISPATCH", Dispatch("verifier", handlers))
    with pytest.raises(jit.CompileError, match=r"instruction 1 \(neg32 %r0\): the verifier has no handler for NEG"):
        verifier.analyze(jit.assemble("mov %r0, 1\nneg32 %r0\nexit"))


def test_public_names_are_importable_from_the_verifier() -> None:
    assert {"analyze", "verify", "VerifierResult", "Region"} <= set(verifier.__all__)
    assert jit.verify is verifier.verify and jit.VerifierResult is verifier.VerifierResult
    assert verifier.Region.STACK.value == "the stack"


@pytest.mark.parametrize("path", ANALYSIS, ids=lambda p: p.name)
def test_every_module_says_what_it_holds(path) -> None:
    assert ast.get_docstring(ast.parse(path.read_text())), path


@pytest.mark.parametrize("path", ANALYSIS, ids=lambda p: p.name)
def test_no_local_bit_constants(path) -> None:
    """MASK32, MASK64, s64 and sign_extend come from jit.core.bits."""
    tree = ast.parse(path.read_text())
    defined = {
        t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)
    }
    defined |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert not defined & {"M32", "M64", "MASK32", "MASK64", "s32", "s64", "sign_extend", "to_signed"}
