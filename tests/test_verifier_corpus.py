"""The verifier corpus (tests/verifier_corpus.py): each case's verdict is the
one Linux gives, and every program Linux accepts runs to its hand-worked
result on every engine with jit.compile's default settings.

A case with ``known_gap`` is a verdict the verifier gets wrong today; it is an
expected failure (strict: fixing it makes the test fail until the mark goes).
"""

from __future__ import annotations

import pytest
from verifier_corpus import ACCEPT, CASES, Case

import jit

ACCEPTED = [case for case in CASES if case.verdict == ACCEPT]


def _verdict_params() -> list:
    params = []
    for case in CASES:
        marks = [pytest.mark.xfail(reason=f"known gap: {case.known_gap}", strict=True)] if case.known_gap else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


@pytest.mark.parametrize("case", _verdict_params())
def test_verdict_is_linux_verdict(case: Case) -> None:
    prog = case.program()
    if case.verdict == ACCEPT:
        jit.verify(prog, mem_size=case.mem_size, allow_loops=case.allow_loops)
        return
    with pytest.raises(jit.VerifierError) as raised:
        jit.verify(prog, mem_size=case.mem_size, allow_loops=case.allow_loops)
    assert case.fragment is not None and case.fragment.lower() in str(raised.value).lower()


@pytest.mark.parametrize("engine", jit.engines(), ids=lambda engine: engine.name)
def test_accepted_programs_run_to_their_result(engine) -> None:
    """Never refused by default (imprecision is a run-time check), and correct."""
    wrong = []
    for case in ACCEPTED:
        mem = bytearray(case.mem) if case.mem is not None else None
        try:
            r0 = engine.prepare(case.program())(mem)
        except jit.BpfError as exc:
            wrong.append(f"{case.name}: {type(exc).__name__}: {exc}")
            continue
        if r0 != case.result:
            wrong.append(f"{case.name}: R0 = {r0:#x}, expected {case.result:#x}")
    assert not wrong, "\n".join(wrong)


def test_the_corpus_is_large_and_covers_every_kind() -> None:
    from verifier_corpus import KINDS

    assert len(CASES) >= 300
    assert {case.kind for case in CASES} == set(KINDS)
    assert len({case.name for case in CASES}) == len(CASES)
