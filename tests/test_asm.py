"""Assembler and disassembler: the dialect of FORMAT.md section 4, errors, round trips.

Expected encodings are worked out by hand from FORMAT.md / RFC 9669, written as
(opcode, dst, src, off, imm) tuples per 8-byte slot.
"""

from __future__ import annotations

import struct

import pytest
from conftest import conformance_dir, conformance_files
from hypothesis import given, settings
from hypothesis import strategies as st

from jit import AssemblyError, Instruction, Program, assemble, disassemble
from jit.core import isa
from jit.frontend.conformance import load, parse


def slots(prog: Program) -> list[tuple[int, int, int, int, int]]:
    """The program's bytes decoded by hand: (opcode, dst, src, off, imm) per slot."""
    raw = prog.to_bytes()
    out = []
    for opcode, regs, off, imm in struct.iter_unpack("<BBhi", raw):
        out.append((opcode, regs & 0x0F, regs >> 4, off, imm))
    return out


def one(text: str) -> tuple[int, int, int, int, int]:
    (slot,) = slots(assemble(text))
    return slot


# --- encodings ---------------------------------------------------------------------

ENCODINGS = [
    # ALU: 64-bit has no suffix, 32-bit has "32"; K and X chosen by the operand.
    ("add %r1, %r2", (0x0F, 1, 2, 0, 0)),
    ("add %r1, 2", (0x07, 1, 0, 0, 2)),
    ("add32 %r1, %r2", (0x0C, 1, 2, 0, 0)),
    ("sub32 %r9, 7", (0x14, 9, 0, 0, 7)),
    ("mov %r1, 0xffffffff", (0xB7, 1, 0, 0, -1)),
    ("mov32 %r1, 0xffffffff", (0xB4, 1, 0, 0, -1)),
    ("mov32 %r1, -1", (0xB4, 1, 0, 0, -1)),
    ("mov %r0, 0x80000000", (0xB7, 0, 0, 0, -0x80000000)),
    ("mov %r0, 2147483647", (0xB7, 0, 0, 0, 0x7FFFFFFF)),
    ("mov %r0, -2147483648", (0xB7, 0, 0, 0, -0x80000000)),
    ("mov %r0, 0xABCdef", (0xB7, 0, 0, 0, 0xABCDEF)),
    ("mov %r2, %r10", (0xBF, 2, 10, 0, 0)),
    ("div %r1, %r2", (0x3F, 1, 2, 0, 0)),
    ("sdiv %r1, 3", (0x37, 1, 0, 1, 3)),
    ("smod32 %r1, %r2", (0x9C, 1, 2, 1, 0)),
    ("mod32 %r1, %r2", (0x9C, 1, 2, 0, 0)),
    ("arsh32 %r0, -16", (0xC4, 0, 0, 0, -16)),
    ("neg %r3", (0x87, 3, 0, 0, 0)),
    ("neg32 %r3", (0x84, 3, 0, 0, 0)),
    ("movsx864 %r1, %r2", (0xBF, 1, 2, 8, 0)),
    ("movsx3264 %r1, %r2", (0xBF, 1, 2, 32, 0)),
    ("movsx1632 %r1, %r2", (0xBC, 1, 2, 16, 0)),
    ("le16 %r1", (0xD4, 1, 0, 0, 16)),
    ("be64 %r1", (0xDC, 1, 0, 0, 64)),
    ("bswap32 %r4", (0xD7, 4, 0, 0, 32)),
    ("swap16 %r4", (0xD7, 4, 0, 0, 16)),
    ("swap64 %r4", (0xD7, 4, 0, 0, 64)),
    # Loads and stores: base in src for loads, in dst for stores.
    ("ldxw %r0, [%r1+4]", (0x61, 0, 1, 4, 0)),
    ("ldxb %r0, [%r1+0x2]", (0x71, 0, 1, 2, 0)),
    ("ldxh %r0, [%r1]", (0x69, 0, 1, 0, 0)),
    ("ldxdw %r0, [%r10-8]", (0x79, 0, 10, -8, 0)),
    ("ldxdw %r0, [%r1+0xffff]", (0x79, 0, 1, -1, 0)),
    ("ldxdw %r0, [%r1+0x8000]", (0x79, 0, 1, -32768, 0)),
    ("ldxdw %r0, [%r1-32768]", (0x79, 0, 1, -32768, 0)),
    ("ldxdw %r0, [%r1+32767]", (0x79, 0, 1, 32767, 0)),
    ("ldxsb %r0, [%r1+1]", (0x91, 0, 1, 1, 0)),
    ("ldxsh %r0, [%r1+1]", (0x89, 0, 1, 1, 0)),
    ("ldxsw %r0, [%r1+1]", (0x81, 0, 1, 1, 0)),
    ("stw [%r1+2], 0x11223344", (0x62, 1, 0, 2, 0x11223344)),
    ("stdw [%r1-2], -5", (0x7A, 1, 0, -2, -5)),
    ("stb [%r10-1], 0xff", (0x72, 10, 0, -1, 0xFF)),
    ("stxdw [%r10-8], %r1", (0x7B, 10, 1, -8, 0)),
    ("stxh [%r2+6], %r3", (0x6B, 2, 3, 6, 0)),
    # Atomics: opcode 0xdb (64) / 0xc3 (32), operation in imm, FETCH = 0x01.
    ("lock add [%r10-8], %r1", (0xDB, 10, 1, -8, 0x00)),
    ("lock fetch add32 [%r10-8], %r1", (0xC3, 10, 1, -8, 0x01)),
    ("lock or [%r1], %r2", (0xDB, 1, 2, 0, 0x40)),
    ("lock fetch or32 [%r1], %r2", (0xC3, 1, 2, 0, 0x41)),
    ("lock and32 [%r1], %r2", (0xC3, 1, 2, 0, 0x50)),
    ("lock fetch xor [%r1+16], %r2", (0xDB, 1, 2, 16, 0xA1)),
    ("lock xchg [%r1], %r2", (0xDB, 1, 2, 0, 0xE1)),
    ("lock fetch xchg [%r1], %r2", (0xDB, 1, 2, 0, 0xE1)),
    ("lock cmpxchg32 [%r1], %r2", (0xC3, 1, 2, 0, 0xF1)),
    ("lock fetch cmpxchg [%r1], %r2", (0xDB, 1, 2, 0, 0xF1)),
    # Jumps: displacement in off, except ja32 (imm).
    ("ja +3", (0x05, 0, 0, 3, 0)),
    ("ja -1", (0x05, 0, 0, -1, 0)),
    ("ja +0x10", (0x05, 0, 0, 16, 0)),
    ("ja +32767", (0x05, 0, 0, 32767, 0)),
    ("ja -32768", (0x05, 0, 0, -32768, 0)),
    ("ja32 -2", (0x06, 0, 0, 0, -2)),
    ("ja32 +100000", (0x06, 0, 0, 0, 100000)),
    ("jeq %r1, 2, +1", (0x15, 1, 0, 1, 2)),
    ("jeq %r1, %r2, -1", (0x1D, 1, 2, -1, 0)),
    ("jsge %r1, 0xffffffff, +0", (0x75, 1, 0, 0, -1)),
    ("jne32 %r1, 5, +0", (0x56, 1, 0, 0, 5)),
    ("jslt32 %r1, %r9, +4", (0xCE, 1, 9, 4, 0)),
    # Calls: src selects the mode; callx keeps the register in dst.
    ("call 5", (0x85, 0, 0, 0, 5)),
    ("call helper 5", (0x85, 0, 0, 0, 5)),
    ("call -1", (0x85, 0, 0, 0, -1)),
    ("call local +2", (0x85, 0, 1, 0, 2)),
    ("call local -3", (0x85, 0, 1, 0, -3)),
    ("call runtime 7", (0x85, 0, 2, 0, 7)),
    ("call %r2", (0x8D, 2, 0, 0, 0)),
    ("call helper %r9", (0x8D, 9, 0, 0, 0)),
    ("exit", (0x95, 0, 0, 0, 0)),
    # Extensions: legacy packet loads.
    ("ldabsw 0x10", (0x20, 0, 0, 0, 16)),
    ("ldabsh 3", (0x28, 0, 0, 0, 3)),
    ("ldabsb -1", (0x30, 0, 0, 0, -1)),
    ("ldindw %r2, 4", (0x40, 0, 2, 0, 4)),
    ("ldindb %r7, 0", (0x50, 0, 7, 0, 0)),
]


@pytest.mark.parametrize(("text", "expected"), ENCODINGS, ids=[t for t, _ in ENCODINGS])
def test_encoding(text: str, expected: tuple[int, int, int, int, int]) -> None:
    assert one(text) == expected


LDDW = [
    ("lddw %r0, -1", [(0x18, 0, 0, 0, -1), (0, 0, 0, 0, -1)]),
    ("lddw %r0, 0xffffffffffffffff", [(0x18, 0, 0, 0, -1), (0, 0, 0, 0, -1)]),
    ("lddw %r0, 18446744073709551615", [(0x18, 0, 0, 0, -1), (0, 0, 0, 0, -1)]),
    ("lddw %r3, 0x1122334455667788", [(0x18, 3, 0, 0, 0x55667788), (0, 0, 0, 0, 0x11223344)]),
    ("lddw %r1, -9223372036854775808", [(0x18, 1, 0, 0, 0), (0, 0, 0, 0, -0x80000000)]),
    ("lddw %r1, 0x80000000", [(0x18, 1, 0, 0, -0x80000000), (0, 0, 0, 0, 0)]),
    ("lddw %r1, 5", [(0x18, 1, 0, 0, 5), (0, 0, 0, 0, 0)]),
    ("lddw.mapfd %r1, 5", [(0x18, 1, 1, 0, 5), (0, 0, 0, 0, 0)]),
    ("lddw.mapval %r1, 5", [(0x18, 1, 2, 0, 5), (0, 0, 0, 0, 0)]),
    ("lddw.var %r1, 5", [(0x18, 1, 3, 0, 5), (0, 0, 0, 0, 0)]),
    ("lddw.code %r1, 5", [(0x18, 1, 4, 0, 5), (0, 0, 0, 0, 0)]),
    ("lddw.mapidx %r1, 5", [(0x18, 1, 5, 0, 5), (0, 0, 0, 0, 0)]),
    ("lddw.mapvalidx %r1, 0x100000002", [(0x18, 1, 6, 0, 2), (0, 0, 0, 0, 1)]),
]


@pytest.mark.parametrize(("text", "expected"), LDDW, ids=[t for t, _ in LDDW])
def test_lddw_takes_two_slots(text: str, expected: list[tuple[int, int, int, int, int]]) -> None:
    prog = assemble(text)
    assert len(prog) == 2 and len(prog.instructions) == 1
    assert slots(prog) == expected


# --- lexical rules ---------------------------------------------------------------------


def test_trailing_comma_is_optional() -> None:
    assert one("mov %r0 %r1") == one("mov %r0, %r1") == (0xBF, 0, 1, 0, 0)
    assert one("jeq %r1, 2, +1,") == (0x15, 1, 0, 1, 2)


def test_only_one_trailing_comma_is_removed() -> None:
    with pytest.raises(AssemblyError, match="bad register '%r0,'"):
        assemble("mov %r0,, %r1")


@pytest.mark.parametrize(
    ("spelling", "dialect"),
    [
        ("mov r0,r1", "mov %r0, %r1"),
        ("ldxw r0, [r1 + 4]", "ldxw %r0, [%r1+4]"),
        ("stxdw [ r10 - 8 ], r1", "stxdw [%r10-8], %r1"),
        ("ldxb r0, [r1]  ; uBPF comment", "ldxb %r0, [%r1]"),
        ("jeq r1, 16, +1 // llvm-mc comment", "jeq %r1, 16, +1"),
        ("lddw r9, 0x100000000", "lddw %r9, 0x100000000"),
    ],
)
def test_other_assemblers_spellings(spelling: str, dialect: str) -> None:
    """uBPF's and llvm-mc's mnemonic spellings read as the suite's dialect."""
    assert assemble(spelling).to_bytes() == assemble(dialect).to_bytes()
    assert disassemble(assemble(spelling)).splitlines()[0] == dialect


def test_whitespace_tabs_and_indentation() -> None:
    assert one("\t  add\t%r1,\t\t%r2  ") == (0x0F, 1, 2, 0, 0)


def test_comments_everywhere() -> None:
    text = "# a comment line\nlock cmpxchg [%r10-8], %r1 # comment\n   # indented comment\nexit#tight"
    assert slots(assemble(text)) == [(0xDB, 10, 1, -8, 0xF1), (0x95, 0, 0, 0, 0)]


def test_crlf_and_blank_lines() -> None:
    assert slots(assemble("\r\nmov %r0, 1\r\n\r\nexit\r\n")) == [(0xB7, 0, 0, 0, 1), (0x95, 0, 0, 0, 0)]


def test_case_sensitive_mnemonics_and_hex_prefix() -> None:
    with pytest.raises(AssemblyError, match="unknown mnemonic"):
        assemble("MOV %r0, 1")
    with pytest.raises(AssemblyError, match="bad immediate"):
        assemble("mov %r0, 0X10")
    with pytest.raises(AssemblyError, match="bad register"):
        assemble("mov %R0, 1")


def test_no_64_suffix_and_no_negative_hex_and_no_plus_on_immediates() -> None:
    for text in ("add64 %r0, 1", "mov %r0, -0x10", "mov %r0, +5", "mov %r0, 1_0", "ldxw %r0, [%r1-0x4]"):
        with pytest.raises(AssemblyError):
            assemble(text)


# --- labels and targets ---------------------------------------------------------------


def test_labels_resolve_in_slots_lddw_counts_two() -> None:
    text = "ja end\nlddw %r0, 1\nmov %r0, 2\nend:\nexit\nback:\nja back"
    # ja at 0 -> end at slot 4: 4 - 1 = 3; ja at 5 -> back at 5: -1.
    assert slots(assemble(text))[0] == (0x05, 0, 0, 3, 0)
    assert slots(assemble(text))[5] == (0x05, 0, 0, -1, 0)


def test_implicit_exit_label_before_and_after() -> None:
    text = "ja exit\nmov %r0, 1\nexit\nja exit"
    # exit at slot 2: from 0, 2 - 1 = +1; from 3, 2 - 4 = -2.
    assert [s[3] for s in slots(assemble(text))] == [1, 0, 0, -2]


def test_implicit_exit_label_is_the_first_exit() -> None:
    assert slots(assemble("mov %r0, 0\nexit\nexit\njne %r0, 0, exit"))[3] == (0x55, 0, 0, -3, 0)


def test_explicit_exit_label_wins_over_the_implicit_one() -> None:
    assert slots(assemble("ja exit\nexit\nexit:\nexit"))[0] == (0x05, 0, 0, 1, 0)


def test_call_local_and_ja32_targets_go_to_imm() -> None:
    text = "call local f\nexit\nf:\nja32 f"
    assert slots(assemble(text)) == [(0x85, 0, 1, 0, 1), (0x95, 0, 0, 0, 0), (0x06, 0, 0, 0, -1)]


def test_label_at_end_of_program() -> None:
    assert one_of(assemble("ja end\nend:")) == (0x05, 0, 0, 0, 0)


def one_of(prog: Program) -> tuple[int, int, int, int, int]:
    return slots(prog)[0]


def test_bare_number_target_is_a_label_name() -> None:
    with pytest.raises(AssemblyError, match="undefined label '1'"):
        assemble("ja 1\nexit")
    assert slots(assemble("ja 1\n1:\nexit"))[0] == (0x05, 0, 0, 0, 0)


def test_label_displacement_must_fit_16_bits() -> None:
    body = "mov %r0, 0\n" * 32767
    assert one_of(assemble(f"ja far\n{body}far:\nexit")) == (0x05, 0, 0, 32767, 0)
    with pytest.raises(AssemblyError, match="16-bit") as info:
        assemble(f"mov %r0, 0\nja far\n{body}mov %r0, 0\nfar:\nexit")
    assert info.value.line == 2
    # ja32 has room for it.
    assert slots(assemble(f"ja32 far\n{body}mov %r0, 0\nfar:\nexit"))[0] == (0x06, 0, 0, 0, 32768)


# --- errors ---------------------------------------------------------------------------

ERRORS = [
    # (text, line of the error, words in the message)
    ("mov %r0, 1\nfrob %r1\nexit", 2, "unknown mnemonic"),
    ("mov %r0, 1\nlock frob [%r1], %r2", 2, "unknown mnemonic"),
    ("lock", 1, "lock needs"),
    ("exit\nlddw %r0", 2, "operand"),
    ("lock or [%r10-8]", 1, "operand"),
    ("exit %r0", 1, "operand"),
    ("neg %r1, %r2", 1, "operand"),
    ("mov %r11, 1", 1, "bad register"),
    ("mov %r1, %r11", 1, "bad register"),
    ("mov %r1, %r", 1, "bad register"),
    ("mov q1, 1", 1, "bad register"),
    ("ldxw %r0, [%r11+4]", 1, "bad register"),
    ("movsx864 %r1, 5", 1, "bad register"),
    ("ldxw %r0, [%r1+]", 1, "malformed memory operand"),
    ("ldxw %r0, [q1+4]", 1, "malformed memory operand"),
    ("ldxw %r0, %r1", 1, "malformed memory operand"),
    ("ldxw %r0, [%r1+4", 1, "malformed memory operand"),
    ("ldxw %r0, [%r1 + ]", 1, "must not contain spaces"),
    ("stw [%r1+4], %r2", 1, "bad immediate"),
    ("mov %r0, 0x100000000", 1, "out of range"),
    ("mov %r0, 2147483648", 1, "out of range"),
    ("mov %r0, -2147483649", 1, "out of range"),
    ("ldxw %r0, [%r1+32768]", 1, "out of range"),
    ("ldxw %r0, [%r1-32769]", 1, "out of range"),
    ("ldxw %r0, [%r1+0x10000]", 1, "out of range"),
    ("lddw %r0, 0x10000000000000000", 1, "out of range"),
    ("lddw %r0, 18446744073709551616", 1, "out of range"),
    ("lddw %r0, -9223372036854775809", 1, "out of range"),
    ("ja +32768", 1, "16-bit"),
    ("jeq %r0, 1, -32769", 1, "16-bit"),
    ("ja32 +2147483648", 1, "32-bit"),
    ("call local -2147483649", 1, "32-bit"),
    ("ja +x", 1, "bad jump target"),
    ("mov %r0, 0\nja nowhere\nexit", 2, "undefined label 'nowhere'"),
    ("a:\nexit\na:\nexit", 3, "duplicate label 'a'"),
    ("a: exit", 1, "alone"),
    ("call foo 5", 1, "bad call mode 'foo'"),
    ("call helper local +1", 1, "operand"),
    ("call local", 1, "bad immediate"),
    ("call locall +1", 1, "bad call mode"),
    ("call 0x100000000", 1, "out of range"),
]


@pytest.mark.parametrize(("text", "line", "words"), ERRORS, ids=[t.replace("\n", "; ") for t, _, _ in ERRORS])
def test_errors_name_the_line_and_show_it(text: str, line: int, words: str) -> None:
    with pytest.raises(AssemblyError) as info:
        assemble(text)
    offending = text.split("\n")[line - 1]
    assert info.value.line == line
    assert info.value.text == offending
    assert words in str(info.value)
    assert f"line {line}" in str(info.value) and offending.strip() in str(info.value)


def test_empty_program_is_an_error() -> None:
    with pytest.raises(AssemblyError, match="empty"):
        assemble("# nothing\n\n")


# --- disassembler ---------------------------------------------------------------------


def test_disassembly_text() -> None:
    prog = assemble("mov32 %r1, 0xffffffff\nlddw %r0, 0x1122334455667788\njeq %r1, 0, +1\nldxw %r2, [%r1-4]\nexit")
    assert disassemble(prog) == (
        "mov32 %r1, -1\nlddw %r0, 0x1122334455667788\njeq %r1, 0, +1\nldxw %r2, [%r1-4]\nexit\n"
    )


def test_disassembly_with_labels() -> None:
    prog = assemble("jeq %r1, 0, +1\nmov %r0, 1\nexit\ncall local -4\nja +100")
    # jeq at 0 -> 2; call local at 3 -> 0; ja at 4 -> 105 is outside, stays numeric.
    assert disassemble(prog, labels=True) == ("L0:\njeq %r1, 0, L2\nmov %r0, 1\nL2:\nexit\ncall local L0\nja +100\n")


def test_disassembly_labels_never_point_into_lddw() -> None:
    prog = Program((Instruction(isa.lookup(0x05, 0, 0, 1, 0), off=1), Instruction(isa.lookup(0x18, 0, 0, 0, 0), imm=7)))
    text = disassemble(prog, labels=True)
    assert text == "ja +1\nlddw %r0, 0x7\n"
    assert assemble(text) == prog


# --- round trips ----------------------------------------------------------------------


def assert_round_trip(prog: Program) -> None:
    raw = prog.to_bytes()
    for labels in (False, True):
        assert assemble(disassemble(prog, labels=labels)).to_bytes() == raw, disassemble(prog, labels=labels)
    assert Program.from_bytes(raw) == prog


def _require_suite() -> None:
    if conformance_dir() is None:
        pytest.skip("conformance suite not found: set BPF_CONFORMANCE_DIR or put it in ../shared/conformance/tests")


@pytest.mark.parametrize("path", conformance_files(), ids=lambda p: p.stem)
def test_round_trip_conformance_file(path) -> None:
    assert_round_trip(load(path).program)


def test_conformance_suite_present() -> None:
    _require_suite()
    assert len(conformance_files()) == 313


def test_lddw_raw_equals_asm() -> None:
    _require_suite()
    path = conformance_dir() / "lddw.data"
    text = path.read_text()
    raw_prog = load(path).program
    without_raw = text.split("-- raw")[0] + "-- result" + text.split("-- result")[1]
    asm_prog = parse(without_raw, "lddw").program
    assert raw_prog.to_bytes() == asm_prog.to_bytes()
    # lddw %r0, 0x1122334455667788; exit
    assert slots(raw_prog) == [(0x18, 0, 0, 0, 0x55667788), (0, 0, 0, 0, 0x11223344), (0x95, 0, 0, 0, 0)]


_S16 = st.integers(-(1 << 15), (1 << 15) - 1)
_S32 = st.integers(-(1 << 31), (1 << 31) - 1)
_REGS = st.integers(0, isa.MAX_REG)


@st.composite
def instructions(draw: st.DrawFn) -> Instruction:
    """A valid instruction of a random row: random operand fields, fixed fields from the row."""
    spec = draw(st.sampled_from(isa.ISA))
    fields = {}
    for name in spec.form.operands:
        if name in ("dst", "src"):
            fields[name] = draw(_REGS)
        elif name == "off":
            fields[name] = draw(_S16)
        else:
            fields[name] = draw(st.integers(0, (1 << 64) - 1)) if spec.is_wide else draw(_S32)
    return Instruction(spec, **fields)


@settings(max_examples=300, deadline=None)
@given(st.lists(instructions(), min_size=1, max_size=30))
def test_round_trip_generated_programs(insns: list[Instruction]) -> None:
    assert_round_trip(Program(tuple(insns)))


@settings(max_examples=100, deadline=None)
@given(st.lists(instructions(), min_size=1, max_size=12), st.data())
def test_round_trip_generated_programs_with_targets_inside(insns: list[Instruction], data: st.DataObject) -> None:
    """Re-aim every jump at a random slot of the program, so that labels are used."""
    prog = Program(tuple(insns))
    fixed = []
    for pc, insn in prog:
        if insn.target(pc) is not None:
            displacement = data.draw(st.integers(0, len(prog))) - (pc + 1)
            field = "off" if "off" in insn.spec.form.operands else "imm"
            insn = Instruction(insn.spec, **{**_fields(insn), field: displacement})
        fixed.append(insn)
    assert_round_trip(Program(tuple(fixed)))


def _fields(insn: Instruction) -> dict[str, int]:
    return {"dst": insn.dst, "src": insn.src, "off": insn.off, "imm": insn.imm}
