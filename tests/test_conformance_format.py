"""The `.data` file parser against the rules of FORMAT.md section 2 (hand-written files)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import conformance_dir

from jit import BpfError
from jit.frontend.conformance import ConformanceFileError, load, parse

# mov %r0, 1 ; exit  as raw slots (opcode | dst<<8 | src<<12 | off<<16 | imm<<32)
MOV_R0_2_EXIT_RAW = "0x00000002000000b7 0x0000000000000095"


def words(prog) -> list[int]:
    raw = prog.to_bytes()
    return [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]


def test_minimal_file() -> None:
    case = parse("# licence\n-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n", "t")
    assert case.name == "t"
    assert words(case.program) == [0x00000001000000B7, 0x95]
    assert (case.mem, case.expected, case.error) == (None, 1, None)


def test_raw_replaces_asm() -> None:
    text = f"-- asm\nmov %r0, 1\nexit\n-- raw\n{MOV_R0_2_EXIT_RAW}\n-- result\n2"
    assert words(parse(text).program) == [0x00000002000000B7, 0x95]


def test_raw_decimal_words_and_several_lines() -> None:
    text = "-- raw\n12884902071\n149\n-- result\n3"  # 0x3000000b7 = mov %r0, 3
    assert words(parse(text).program) == [0x3000000B7, 0x95]


def test_empty_raw_does_not_replace_asm() -> None:
    text = "-- raw\n# only a comment\n-- asm\nmov %r0, 4\nexit\n-- result\n4"
    assert words(parse(text).program) == [0x4000000B7, 0x95]


def test_raw_section_with_garbage_asm_uses_raw() -> None:
    text = f"-- asm\nthis is not assembly\n-- raw\n{MOV_R0_2_EXIT_RAW}\n-- result\n2"
    assert parse(text).expected == 2


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("0x10", 16),
        ("16", 16),
        ("0x0000000080000000", 0x80000000),
        ("0xABCdef", 0xABCDEF),
        ("0xfffffffffffffffe", 0xFFFFFFFFFFFFFFFE),
        ("18446744073709551615", 0xFFFFFFFFFFFFFFFF),
        ("  42 trailing junk", 42),
        ("0x2a junk", 42),
        ("010", 10),  # decimal unless it contains 0x
    ],
)
def test_result_hex_iff_it_contains_0x(line: str, value: int) -> None:
    assert parse(f"-- asm\nexit\n-- result\n{line}\n").expected == value


def test_result_last_line_wins_and_sections_repeat() -> None:
    text = "-- result\n1\n-- asm\nmov %r0, 5\n-- result\n7\n0x8\n-- asm\nexit"
    case = parse(text)
    assert case.expected == 8
    assert words(case.program) == [0x5000000B7, 0x95]


def test_bad_result_fails() -> None:
    with pytest.raises(ConformanceFileError, match="bad result"):
        parse("-- asm\nexit\n-- result\nseven\n", "x")
    with pytest.raises(ConformanceFileError, match="64 bits"):
        parse("-- asm\nexit\n-- result\n0x10000000000000000\n", "x")


def test_mem_hex_bytes_over_lines_low_8_bits() -> None:
    text = "-- asm\nexit\n-- mem\n00 2a ff\n  1ff\tAB\n-- result\n0"
    assert parse(text).mem == bytes([0x00, 0x2A, 0xFF, 0xFF, 0xAB])


def test_empty_mem_is_none() -> None:
    assert parse("-- mem\n\n-- asm\nexit\n-- result\n0").mem is None


def test_bad_mem_byte_fails() -> None:
    with pytest.raises(ConformanceFileError, match="bad memory byte 'zz'"):
        parse("-- asm\nexit\n-- mem\n00 zz\n-- result\n0", "x")


def test_comments_crlf_and_blank_lines() -> None:
    text = (
        "# -- this is a comment, not a header\r\n"
        "-- asm # header with a comment\r\n"
        "\r\n"
        "mov %r0, 1 # the value -- not a header either\r\n"
        "   \r\n"
        "exit\r\n"
        "-- result\r\n"
        "0x1 # one\r\n"
    )
    case = parse(text)
    assert words(case.program) == [0x1000000B7, 0x95]
    assert case.expected == 1


def test_lines_before_the_first_header_are_ignored() -> None:
    assert parse("mov %r0, 9\nnot even assembly\n-- asm\nexit\n-- result\n0").program.to_bytes()[0] == 0x95


@pytest.mark.parametrize(
    ("header", "section"),
    [
        ("-- asm", "asm"),
        ("--asm", "asm"),
        ("xx -- the asm section", "asm"),
        ("-- asm result mem raw", "asm"),  # asm is tested first
        ("-- mem result", "result"),  # result before mem
        ("-- raw mem", "mem"),  # mem before raw
        ("-- raw", "raw"),
        ("-- error raw", "raw"),  # raw before error
        ("-- c", "ignored"),
        ("-- c source code", "ignored"),
        ("-- no register offset", "ignored"),
        ("-- error", "error"),
        ("-- error c", "ignored"),  # " c" before error
    ],
)
def test_header_keywords_by_substring_in_order(header: str, section: str) -> None:
    content = {"asm": "mov %r0, 3", "result": "0x3", "mem": "03", "raw": "0x00000003000000b7", "error": "oops"}
    base = {"asm": "-- asm\nmov %r0, 1\nexit\n", "result": "-- result\n1\n"}
    text = base["asm"] + base["result"] + f"{header}\n{content.get(section, 'call instruction 77')}\n"
    if section == "raw":
        text += "0x0000000000000095\n"
    case = parse(text)
    expect_prog = {"asm": [0x1000000B7, 0x95, 0x3000000B7], "raw": [0x3000000B7, 0x95]}
    assert words(case.program) == expect_prog.get(section, [0x1000000B7, 0x95])
    assert case.expected == (3 if section == "result" else 1)
    assert case.mem == (b"\x03" if section == "mem" else None)
    assert case.error == ("oops" if section == "error" else None)


def test_error_section_only() -> None:
    case = parse("-- asm\nexit\n-- error\nfirst\n  Failed to load  \n")
    assert (case.expected, case.error) == (None, "Failed to load")


def test_unknown_directive_fails_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "weird.data"
    path.write_text("-- asm\nexit\n-- result\n0\n-- options\nfoo\n")
    with pytest.raises(ConformanceFileError) as info:
        load(path)
    assert isinstance(info.value, BpfError)
    assert str(path) in str(info.value) and "unknown directive" in str(info.value) and "line 5" in str(info.value)


def test_assembly_error_fails_naming_the_file_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.data"
    path.write_text("# licence\n-- result\n0\n-- asm\nmov %r0, 0\nfrob %r1\nexit\n")
    with pytest.raises(ConformanceFileError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and "line 6" in message and "frob %r1" in message


def test_undecodable_raw_fails() -> None:
    with pytest.raises(ConformanceFileError, match="DecodeError"):
        parse("-- raw\n0xff\n-- result\n0", "x")


@pytest.mark.parametrize(
    ("text", "words_"),
    [
        ("-- asm\nexit\n", "no expectation"),
        ("-- result\n0\n", "no program"),
        ("-- asm\n# nothing\n-- result\n0\n", "no program"),
        ("-- raw\n0x1ffffffffffffffff\n-- result\n0\n", "bad raw"),
        ("-- raw\n-5\n-- result\n0\n", "bad raw"),
    ],
)
def test_invalid_files_fail(text: str, words_: str) -> None:
    with pytest.raises(ConformanceFileError, match=words_):
        parse(text, "x")


def test_suite_files_match_the_index() -> None:
    """Every shipped file parses, and its memory size and result match test-index.tsv."""
    directory = conformance_dir()
    if directory is None:
        pytest.skip("conformance suite not found: set BPF_CONFORMANCE_DIR or put it in ../shared/conformance/tests")
    index = directory.parent / "test-index.tsv"
    if not index.is_file():
        pytest.skip(f"{index} not found")
    with index.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 313
    for row in rows:
        case = load(directory / row["file"])
        assert len(case.mem or b"") == int(row["mem_bytes"]), row["file"]
        assert case.expected == int(row["expected_r0"], 16), row["file"]
        assert case.error is None
