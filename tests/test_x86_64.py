"""The x86-64 backend: register map, code layout and offsets, one keystone call,
the encodings that are easy to get wrong, and hand-worked results of the
operations that fight over rax/rdx/rcx, on native x86-64 and under unicorn.
The ABI checks (stack alignment at calls out, helper arguments) use tiny
machine-code helpers and run natively."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import capstone
import pytest

import jit
from jit.backends import get_backend
from jit.backends.base import CodegenOptions, NativeCode
from jit.backends.x86_64 import CONTEXT, REGS, SCRATCH, X86_64Backend
from jit.core import isa
from jit.core.bytecode import Instruction
from jit.core.host import host_arch
from jit.frontend.program import Program
from jit.tools.engines import Engine, engines

X86_ENGINES = [engine for engine in engines() if engine.arch == "x86_64"]
MASK64 = (1 << 64) - 1
native_only = pytest.mark.skipif(host_arch() != "x86_64", reason="runs machine code natively: needs an x86-64 host")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", X86_ENGINES, ids=[engine.name for engine in X86_ENGINES])


def compile_text(text: str, **options) -> NativeCode:
    return X86_64Backend().compile(jit.assemble(text), CodegenOptions(**options))


def run(engine: Engine, text: str, mem: bytearray | None = None, **kw) -> int:
    return engine.prepare(jit.assemble(text), **kw)(mem)


# --- structure -----------------------------------------------------------------


def test_register_map_is_the_kernels() -> None:
    names = [reg.q for reg in REGS]
    assert names == ["rax", "rdi", "rsi", "rdx", "rcx", "r8", "rbx", "r13", "r14", "r15", "rbp"]
    assert [reg.q for reg in SCRATCH] == ["r11", "r10", "r9"]
    assert CONTEXT.q == "r12"
    assert not {reg.q for reg in SCRATCH} & set(names)
    assert CONTEXT.q not in names + [reg.q for reg in SCRATCH]


def test_get_backend() -> None:
    assert isinstance(get_backend("x86_64"), X86_64Backend)
    with pytest.raises(jit.CompileError, match="unknown architecture 'sparc'"):
        get_backend("sparc")


def _example(spec: isa.OpSpec) -> Instruction:
    """A valid instruction for a table row (targets point at the exit)."""
    fields = {"dst": 1, "src": 2, "off": 1, "imm": 1}
    if spec.form in (isa.Form.JA32, isa.Form.CALL_LOCAL):
        fields["imm"] = 0
    if spec.form in (isa.Form.CALL_HELPER,):
        fields["imm"] = 5
    if spec.form is isa.Form.CALLX:
        fields["dst"] = 3
    return Instruction(spec, **fields)


def test_every_row_of_the_isa_table_lowers() -> None:
    """One program with every instruction; only BTF calls and relocations are refused."""
    backend = X86_64Backend()
    refused = {spec for spec in isa.ISA if spec.op == "call_btf" or (spec.op == "lddw" and spec.src != 0)}
    rows = [spec for spec in isa.ISA if spec not in refused]
    # every instruction jumps/calls at most to the next slot, so the whole program is valid
    prog = Program((*(_example(spec) for spec in rows), Instruction(isa.lookup(0x95, 0, 0, 0, 0))))
    native = backend.compile(prog, CodegenOptions(helper_ids=frozenset({5})))
    assert len(native.offsets) == len(prog.instructions)
    for spec in refused:
        with pytest.raises(jit.CompileError, match=r"instruction 0 \("):
            backend.compile(Program((_example(spec), _example(rows[-1]))), CodegenOptions())


def test_offsets_land_on_instruction_boundaries() -> None:
    text = "mov %r0, 1\nlddw %r1, 0x123456789abcdef\ndiv %r0, %r3\nlsh %r2, %r5\njne %r0, 3, +1\ncall 5\nexit"
    native = compile_text(text, helper_ids=frozenset({5}))
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    starts = {insn.address for insn in cs.disasm(native.code, 0)}
    assert set(native.offsets) <= starts
    assert list(native.offsets) == sorted(native.offsets)
    assert native.labels["direct"] == 0 < native.entry == native.labels["prologue"]  # direct falls into it
    assert native.offsets[0] > native.labels["epilogue"]
    assert native.labels["fell_off"] > native.offsets[-1]
    assert native.pc_at(native.offsets[2] + 1) == 3  # the lddw takes slots 1-2


def test_whole_program_is_assembled_in_one_keystone_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import keystone

    calls = []
    real = keystone.Ks.asm
    monkeypatch.setattr(keystone.Ks, "asm", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    compile_text("\n".join(["add %r1, 1"] * 500 + ["exit"]), assembler="keystone")
    assert len(calls) == 1
    calls.clear()  # copy and patch: at most one call, for the lines it has not seen yet
    compile_text("\n".join(["add %r1, 1", "add %r2, 7"] * 300 + ["exit"]))
    assert len(calls) <= 1


def test_immediates_are_written_as_signed_decimal() -> None:
    """Keystone rejects add/cmp with 0x80000000 and zero-extends 0xffffffff in mov."""
    assembly = compile_text("add %r1, 0x80000000\njeq %r1, 0xffffffff, +0\nmov %r2, 0xffffffff\nexit").assembly
    assert "add rdi, -2147483648" in assembly
    assert "cmp rdi, -1" in assembly
    assert "mov rsi, -1" in assembly


def _disasm(native: NativeCode, index: int) -> list[str]:
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    start, end = native.offsets[index], native.offsets[index + 1]
    return [f"{i.mnemonic} {i.op_str}" for i in cs.disasm(native.code[start:end], start)]


@pytest.mark.parametrize(("src", "name"), [(1, "dil"), (2, "sil"), (10, "bpl")])
def test_byte_stores_use_rex_byte_registers(src: int, name: str) -> None:
    native = compile_text(f"stxb [%r3-1], %r{src}\nexit")
    assert _disasm(native, 0) == [f"mov byte ptr [rdx - 1], {name}"]


def test_division_never_reaches_div_without_a_guard() -> None:
    """Register divisors are tested for zero (and -1 when signed) before div/idiv;
    immediate 0 and -1 divisors compile to no division at all."""
    for op in ("div", "mod", "sdiv", "smod"):
        for width in ("", "32"):
            lines = compile_text(f"{op}{width} %r3, %r0\nexit").assembly.splitlines()
            division = next(i for i, line in enumerate(lines) if line.startswith(("div ", "idiv ")))
            assert any(line.startswith("test r11") for line in lines[:division])
            if op.startswith("s"):
                assert any(line.startswith("cmp r11") and line.endswith("-1") for line in lines[:division])
            for imm in (0, -1) if op.startswith("s") else (0,):
                assembly = compile_text(f"{op}{width} %r3, {imm}\nexit").assembly
                assert "div " not in assembly


# --- results worked out by hand, on native and emulated x86-64 ---------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # div r0, r3 = 100 / 7 = 14, R3 untouched: 14 * 1000 + 7
        ("mov %r0, 100\nmov %r3, 7\ndiv %r0, %r3\nmul %r0, 1000\nadd %r0, %r3", 14007),
        # mod r3, r0 = 100 % 7 = 2, R0 untouched: 7 * 1000 + 2
        ("mov %r3, 100\nmov %r0, 7\nmod %r3, %r0\nmul %r0, 1000\nadd %r0, %r3", 7002),
        # sdiv r0, r0 (aliased): -5 / -5 = 1
        ("mov %r0, -5\nsdiv %r0, %r0", 1),
        # smod r3, r3 (aliased): x % x = 0; then R0 = R3 + 9
        ("mov %r3, -5\nsmod %r3, %r3\nmov %r0, %r3\nadd %r0, 9", 9),
        # LLONG_MIN sdiv -1 = LLONG_MIN (no #DE), smod -1 = 0
        ("lddw %r0, 0x8000000000000000\nmov %r3, -1\nsdiv %r0, %r3", 1 << 63),
        ("lddw %r3, 0x8000000000000000\nmov %r0, -1\nsmod %r3, %r0\nmov %r0, %r3", 0),
        # INT_MIN sdiv32 -1 = 0x80000000 (zero-extended)
        ("lddw %r0, 0xffffffff80000000\nsdiv32 %r0, -1", 0x8000_0000),
        # x / 0 = 0 and x % 0 = x; mod32 by zero keeps the low half only
        ("mov %r0, 77\nmov %r3, 0\ndiv %r0, %r3", 0),
        ("lddw %r0, 0xffffffff12345678\nmov %r3, 0\nmod32 %r0, %r3", 0x1234_5678),
        ("lddw %r0, 0xffffffff12345678\nmov %r3, 0\nmod %r0, %r3", 0xFFFF_FFFF_1234_5678),
        # 32-bit zero check looks at the low half only: 2^32 is zero in div32
        ("mov %r0, 9\nlddw %r3, 0x100000000\ndiv32 %r0, %r3", 0),
        # -13 smod 3 = -1 (truncating), -13 sdiv 3 = -4
        ("mov %r0, -13\nsmod %r0, 3", MASK64),
        ("mov %r0, -13\nmov %r3, 3\nsdiv %r0, %r3", -4 & MASK64),
        # shifts: R4 (rcx) as destination, as count, and both
        ("mov %r4, 1\nmov %r2, 4\nlsh %r4, %r2\nmov %r0, %r4", 16),
        ("mov %r0, 256\nmov %r4, 4\nrsh %r0, %r4\nmul %r0, 100\nadd %r0, %r4", 1604),
        ("lddw %r4, 0x100000003\nlsh32 %r4, %r4\nmov %r0, %r4", 24),  # count 3, low half 3 << 3
        ("lddw %r0, 0xffffffff80000000\nmov %r4, 32\narsh32 %r0, %r4", 0x8000_0000),  # count & 31 = 0
        ("mov %r0, -1\nlsh32 %r0, 0", 0xFFFF_FFFF),  # shift by 0 still zero-extends
        # byte swaps
        ("lddw %r0, 0x1122334455667788\nbe16 %r0", 0x8877),
        ("lddw %r0, 0x1122334455667788\nbswap32 %r0", 0x8877_6655),
        ("lddw %r0, 0x1122334455667788\nle32 %r0", 0x5566_7788),
        # movsx from sil, and JMP32 ignores the upper half
        ("mov %r2, 0x80\nmovsx864 %r0, %r2", 0xFFFF_FFFF_FFFF_FF80),
        ("lddw %r1, 0x700000005\nmov %r0, 1\njeq32 %r1, 5, +1\nmov %r0, 2", 1),
    ],
)
def test_hand_worked_results(engine: Engine, text: str, expected: int) -> None:
    assert run(engine, text + "\nexit") == expected


def test_cmpxchg32_zero_extends_r0(engine: Engine) -> None:
    # success: memory 5 == low half of R0, R0 = old value 5 with the upper half cleared
    text = "stdw [%r10-8], 5\nlddw %r0, 0xffffffff00000005\nmov %r2, 9\nlock cmpxchg32 [%r10-8], %r2\nexit"
    assert run(engine, text) == 5
    # failure: R0 = old value 5, memory unchanged
    text = "stdw [%r10-8], 5\nlddw %r0, 0xffffffff00000006\nlock cmpxchg32 [%r10-8], %r2\nldxdw %r1, [%r10-8]\nadd %r0, %r1\nexit"
    assert run(engine, text) == 10


def test_fetch_or_with_src_r0(engine: Engine) -> None:
    # memory 0b1100, R0 = 0b1010: memory becomes 0b1110, R0 the old 0b1100 = 12
    text = "stdw [%r10-8], 12\nmov %r0, 10\nlock fetch or [%r10-8], %r0\nldxdw %r1, [%r10-8]\nmul %r1, 100\nadd %r0, %r1\nexit"
    assert run(engine, text) == 1412


def test_packet_load_out_of_bounds_inside_a_local_call_returns_zero(engine: Engine) -> None:
    # The callee reads the caller's R6, which the verifier rejects: unverified.
    text = "mov %r6, %r1\nmov %r0, 7\ncall local +1\nexit\nldabsw 6\nmov %r0, 99\nexit"
    assert run(engine, text, bytearray(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"), verify=False) == 99
    assert run(engine, text, bytearray(8), verify=False) == 0


# --- ABI, natively --------------------------------------------------------------


def _machine_helper(assembly: str) -> int:
    """Address of a tiny native helper (kept mapped for the test session)."""
    from jit.backends.x86_64 import assemble
    from jit.runtime.codemem import map_code

    address, _ = map_code(assemble(assembly))
    return address


@native_only
def test_host_stack_is_aligned_at_every_call_out() -> None:
    """At a helper's entry rsp = 8 (mod 16), in main, in nested local calls and
    after another helper call; the helper returns rsp & 15."""
    helper = _machine_helper("mov rax, rsp\nand rax, 15\nret")
    text = (
        "call 90\nmov %r6, %r0\ncall local +3\nlsh %r0, 4\nor %r0, %r6\nexit\n"
        "call local +1\nexit\ncall 90\nmov %r7, %r0\ncall 90\nlsh %r0, 4\nor %r0, %r7\nexit"
    )
    assert jit.compile(text, helpers={90: helper})() == 0x888


@native_only
def test_helper_gets_its_id_in_r9_and_the_context_on_the_stack() -> None:
    helper_id = _machine_helper("mov rax, r9\nret")
    context = _machine_helper("mov rax, qword ptr [rsp+8]\nret")
    fn = jit.compile("call 91\nmov %r6, %r0\ncall 92\nexit", helpers={91: helper_id, 92: context})
    assert fn() == ctypes.addressof(fn._context)
    assert jit.compile("call 91\nexit", helpers={91: helper_id})() == 91


@native_only
def test_r1_to_r5_survive_a_helper_that_clobbers_them() -> None:
    clobber = _machine_helper("xor edi, edi\nxor esi, esi\nxor edx, edx\nxor ecx, ecx\nxor r8d, r8d\nmov eax, 1\nret")
    text = "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 93\n"
    text += "mul %r1, 10000\nmul %r2, 1000\nmul %r3, 100\nmul %r4, 10\nadd %r0, %r1\nadd %r0, %r2\n"
    text += "add %r0, %r3\nadd %r0, %r4\nadd %r0, %r5\nexit"
    # R1-R5 are unreadable after a call for the verifier: unverified.
    assert jit.compile(text, helpers={93: clobber}, verify=False)() == 1 + 12345


def test_bounds_check_and_max_steps_options_are_validated() -> None:
    with pytest.raises(jit.CompileError, match="bounds_check must be 'auto', True or False, not 'yes'"):
        jit.compile("mov %r0, 0\nexit", bounds_check="yes")
    with pytest.raises(jit.UsageError, match="max_steps must be"):
        compile_text("exit", max_steps=-1)


# --- regressions ----------------------------------------------------------------


def test_regression_plain_stores_and_packet_loads_are_not_atomics_or_calls() -> None:
    """Form.ATOMIC and Form.LDABS used to be enum aliases of STORE_X and
    CALL_HELPER (equal values), so stxw lowered as an atomic and ldabs as a call."""
    assert isa.Form.ATOMIC is not isa.Form.STORE_X
    assert isa.Form.LDABS is not isa.Form.CALL_HELPER
    native = compile_text("stxw [%r1+2], %r2\nlock add32 [%r1+2], %r2\nexit")
    assert _disasm(native, 0) == ["mov dword ptr [rdi + 2], esi"]
    assert _disasm(native, 1) == ["lock add dword ptr [rdi + 2], esi"]
    assert "call" not in " ".join(_disasm(compile_text("mov %r6, %r1\nldabsb 1\nexit"), 1))


@native_only
def test_regression_a_zero_repeat_count_runs_once() -> None:
    """The batch loop ended on ``jnz`` after decrementing ctx->repeat, so an
    entry call with repeat 0 ran 2**64 times; it now runs once. (In a
    subprocess with a timeout, so a regression fails instead of hanging.)"""
    script = (
        "import jit\n"
        "fn = jit.compile('mov %r0, 5\\nexit')\n"
        "assert fn() == 5\n"  # leaves ctx->repeat at 0
        "print(fn._entry(0, 0, fn._context_address))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "5"
