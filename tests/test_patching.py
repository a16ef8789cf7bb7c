"""The copy-and-patch assembler (jit.backends.patching) gives exactly keystone's
bytes, offsets and labels: on every ISA row, the conformance suite, the bench
programs and generated programs, with and without run-time checks and a step
budget, for both architectures."""

from __future__ import annotations

import random

import pytest
from conftest import conformance_files
from test_x86_64 import _example

import jit
from jit.analysis.checks import plan_checks
from jit.backends import architectures, get_backend
from jit.backends.base import CodegenOptions
from jit.backends.patching import PatchAssembler
from jit.bench import suite
from jit.core import isa
from jit.core.bytecode import Bytecode, Instruction
from jit.frontend import conformance
from jit.tools.fuzz import FUZZ_HELPERS, generate

SETTINGS = {"plain": {}, "checked": {"bounds_check": True}, "steps": {"max_steps": 1000}}


def assert_same_code(prog: Bytecode, helper_ids: frozenset[int] = frozenset()) -> None:
    for arch in architectures():
        backend = get_backend(arch)
        for name, setting in SETTINGS.items():
            checks = plan_checks(prog, setting.get("bounds_check", False), None)
            options = CodegenOptions(helper_ids=helper_ids, max_steps=setting.get("max_steps"), checks=checks)
            patched = backend.compile(prog, options)
            reference = backend.compile(prog, CodegenOptions(**{**options.__dict__, "assembler": "keystone"}))
            where = f"{prog.name} on {arch}, {name}"
            assert patched.code == reference.code, where
            assert (patched.offsets, patched.labels) == (reference.offsets, reference.labels), where


def test_every_isa_row() -> None:
    refused = {spec for spec in isa.ISA if spec.op == "call_btf" or (spec.op == "lddw" and spec.src != 0)}
    rows = [spec for spec in isa.ISA if spec not in refused]
    prog = Bytecode((*(_example(spec) for spec in rows), Instruction(isa.lookup(0x95, 0, 0, 0, 0))), name="isa")
    assert_same_code(prog, frozenset({5}))


@pytest.mark.parametrize("path", conformance_files(), ids=lambda p: p.stem)
def test_conformance_programs(path) -> None:
    case = conformance.load(path)
    assert_same_code(case.program, frozenset(range(8)))


@pytest.mark.parametrize("bench", suite.SUITE, ids=lambda b: b.name)
def test_bench_programs(bench) -> None:
    assert_same_code(Bytecode.from_bytes(bench.bytecode.read_bytes(), name=bench.name))


@pytest.mark.parametrize("seed", range(40))
def test_generated_programs(seed: int) -> None:
    prog = jit.assemble(generate(random.Random(seed), max_ops=60).program())
    assert_same_code(prog, frozenset(range(8)) | frozenset(FUZZ_HELPERS))


def test_far_branches_grow_to_their_long_form_until_the_layout_settles() -> None:
    """A chain where lengthening one jump pushes another out of rel8 range:
    the fixpoint keystone reaches, reached here too."""
    backend = get_backend("x86_64")
    body = ["jmp .Lend", *(["nop"] * 60), "jmp .Lmid", *(["nop"] * 66), ".Lmid:", *(["nop"] * 2), "jmp .Lend"]
    text = "\n".join([*body, *(["nop"] * 63), ".Lend:", "ret"]) + "\n"
    patcher = PatchAssembler(backend.assemble, backend.branch_form, backend.branch_mnemonics)
    code, placed = patcher.assemble(text, "chain")
    assert code == backend.assemble(text, "chain")
    assert placed[".Lend"] == len(code) - 1


def test_an_undefined_label_is_a_compile_error() -> None:
    backend = get_backend("x86_64")
    with pytest.raises(jit.CompileError, match=r"bad: keystone rejected .* Cannot find a symbol"):
        PatchAssembler(backend.assemble, backend.branch_form, backend.branch_mnemonics).assemble(
            "jmp .Lnowhere\nret\n", "bad"
        )


def test_arm64_lines_are_learned_without_marker_labels() -> None:
    """Fixed-width code is split by size; a line that is not one instruction is refused."""
    backend = get_backend("arm64")
    patcher = PatchAssembler(backend.assemble, backend.branch_form, backend.branch_mnemonics, width=4)
    code, placed = patcher.assemble("Lstart:\nmov x0, #1\nb Lstart\nret\n", "tiny")
    assert code == backend.assemble("Lstart:\nmov x0, #1\nb Lstart\nret\n", "tiny") and placed == {"Lstart": 0}
    with pytest.raises(jit.CompileError, match="1 instructions assembled to 0 bytes"):
        patcher.assemble(".align 3\n", "directive")


def test_an_unknown_assembler_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BPFJIT_ASSEMBLER", "gas")
    with pytest.raises(jit.CompileError, match="unknown assembler 'gas'"):
        jit.compile("mov %r0, 1\nexit", cache=False)


def test_a_full_memo_starts_again_without_losing_the_lines_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from jit.backends import patching

    monkeypatch.setattr(patching, "MEMO_LINES", 8)
    backend = get_backend("x86_64")
    patcher = PatchAssembler(backend.assemble, backend.branch_form, backend.branch_mnemonics)
    first = "\n".join(f"mov eax, {i}" for i in range(6)) + "\n"
    second = "\n".join(f"mov eax, {i}" for i in range(3, 9)) + "\n"  # 3 known lines, 3 new: past the bound
    assert patcher.assemble(first, "first")[0] == backend.assemble(first, "first")
    assert patcher.assemble(second, "second")[0] == backend.assemble(second, "second")
    assert len(patcher._memo) <= 8


def test_a_layout_pass_checks_every_branch_against_one_consistent_layout() -> None:
    """40 jumps that must all grow, then a jump to the very next line: judged with
    the growth of the first 40 but not yet of itself, it looked 160 bytes
    backward and grew too (a bug the generated programs found)."""
    backend = get_backend("x86_64")
    text = "\n".join([*(["je .Lend"] * 40), "jmp .Lnext", ".Lnext:", *(["nop"] * 200), ".Lend:", "ret"]) + "\n"
    patcher = PatchAssembler(backend.assemble, backend.branch_form, backend.branch_mnemonics)
    code, _ = patcher.assemble(text, "stale")
    assert code == backend.assemble(text, "stale")
    assert code[240:242] == b"\xeb\x00"  # the short jmp with a zero displacement
