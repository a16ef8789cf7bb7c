"""jit.crosscheck (jit.tools.crosscheck): every engine against the interpreter, and finding the first diverging instruction."""

from __future__ import annotations

import itertools

import jit
from jit.tools.crosscheck import crosscheck, deterministic_helpers, normalise
from jit.tools.engines import engines

PROGRAM = """
    mov %r0, 1
    mov %r3, 7
    add %r0, %r3
    stxdw [%r10-8], %r0
    ldxdw %r4, [%r10-8]
    stxb [%r1+1], %r4
    call 5
    add %r0, %r4
    exit
"""


def test_agreeing_program_reports_every_engine_and_no_divergence():
    report = crosscheck(jit.assemble(PROGRAM), b"abc")
    assert report.ok, str(report)
    assert [o.engine for o in report.outcomes] == [e.name for e in engines()]
    # deterministic ktime: the first call returns 1000, plus R4 = 8
    assert {o.r0 for o in report.outcomes} == {1008}
    assert {o.memory for o in report.outcomes} == {b"a\x08c"}
    assert "all engines agree" in str(report)


def test_traced_engines_agree_on_final_registers_with_pointers_as_offsets():
    report = crosscheck(jit.assemble(PROGRAM), b"abc")
    traced = [o for o in report.outcomes if o.trace is not None]
    assert len(traced) >= 2  # interpreter + at least one emulated engine
    finals = {o.registers() for o in traced}
    assert len(finals) == 1
    final = finals.pop()
    assert final[1] == "mem+0" and final[10].startswith("stack+")


def test_a_helper_that_differs_per_engine_is_located_at_its_call():
    engine_index = itertools.count()

    def factory():
        value = next(engine_index)  # engine k's helper returns k
        return {5: lambda *_: value}

    report = crosscheck(jit.assemble(PROGRAM), b"abc", helpers=factory)
    assert not report.ok
    by_engine = {d.engine: d for d in report.divergences}
    assert set(by_engine) == {e.name for e in engines()[1:]}
    for name, divergence in by_engine.items():
        assert divergence.what == "result"
        if name.endswith("emulated"):
            assert divergence.first_pc == 6  # the call
            assert "call 5" in divergence.describe(report.prog)


def test_errors_must_match_in_type():
    prog = jit.assemble("ldxdw %r0, [%r1+100]\nexit")
    checked = [e for e in engines() if e.arch is None or e.emulated]  # the engines that fault on this access
    report = crosscheck(prog, b"short", engine_list=checked)
    assert report.ok, str(report)
    assert all(isinstance(o.error, jit.MemoryAccessError) for o in report.outcomes)


def test_normalise_shows_region_offsets_and_plain_values():
    regions = {"mem": (0x1000, 0x1010), "stack": (0x8000, 0x9000)}
    assert normalise([0x1004, 0x9000, 5, 0], regions) == ("mem+4", "stack+4096", "0x5", "0x0")


def test_deterministic_helpers_restart_for_each_engine():
    first, second = deterministic_helpers(), deterministic_helpers()
    assert [first[5](), first[5]()] == [1000, 2000]
    assert second[5]() == 1000
    assert first[7]() == second[7]()
