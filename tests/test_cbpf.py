"""Classic BPF: the opcode table, decoding, the tcpdump -d disassembler,
validation, and the classic reference interpreter on hand-worked cases."""

from __future__ import annotations

import ctypes
import struct

import pytest

import jit
from jit.frontend.cbpf import CLASSIC, ClassicInsn, ClassicProgram
from jit.runtime.cbpf_interpreter import run_classic

# `tcpdump -d ip` / `-dd ip` / `-ddd ip` on Ethernet, as tcpdump prints them.
IP_D = """\
(000) ldh      [12]
(001) jeq      #0x800           jt 2	jf 3
(002) ret      #262144
(003) ret      #0
"""
IP_DD = """\
{ 0x28, 0, 0, 0x0000000c },
{ 0x15, 0, 1, 0x00000800 },
{ 0x6, 0, 0, 0x00040000 },
{ 0x6, 0, 0, 0x00000000 },
"""
IP_DDD = "4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n"
IP_TUPLES = [(0x28, 0, 0, 12), (0x15, 0, 1, 0x800), (0x06, 0, 0, 262144), (0x06, 0, 0, 0)]


def prog(*rows: tuple[int, int, int, int]) -> ClassicProgram:
    return ClassicProgram.from_tuples(list(rows))


# Opcodes used by the hand-worked programs, spelled out from <linux/filter.h>.
LD_W_ABS, LD_H_ABS, LD_B_ABS = 0x20, 0x28, 0x30
LD_W_IND, LD_H_IND, LD_B_IND = 0x40, 0x48, 0x50
LD_IMM, LDX_IMM, LD_LEN, LDX_LEN, LD_MEM, LDX_MEM = 0x00, 0x01, 0x80, 0x81, 0x60, 0x61
LDX_MSH, ST, STX = 0xB1, 0x02, 0x03
ADD_K, SUB_X, MUL_K, DIV_X, MOD_X, NEG, LSH_X, RSH_X, LSH_K, XOR_K = (
    0x04,
    0x1C,
    0x24,
    0x3C,
    0x9C,
    0x84,
    0x6C,
    0x7C,
    0x64,
    0xA4,
)
JA, JEQ_K, JGT_K, JGE_X, JSET_K = 0x05, 0x15, 0x25, 0x3D, 0x45
RET_K, RET_A, TAX, TXA = 0x06, 0x16, 0x07, 0x87


# --- decoding and output formats ------------------------------------------------------------


def test_the_three_tcpdump_formats_decode_to_the_same_program() -> None:
    expected = prog(*IP_TUPLES)
    assert ClassicProgram.from_text(IP_DD) == expected
    assert ClassicProgram.from_text(IP_DDD) == expected
    assert ClassicProgram.from_text("4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0") == expected
    raw = b"".join(struct.pack("<HBBI", *row) for row in IP_TUPLES)
    assert ClassicProgram.from_bytes(raw) == expected


def test_output_formats_round_trip_and_match_tcpdump() -> None:
    p = prog(*IP_TUPLES)
    assert p.disassemble() == IP_D
    assert p.to_c_array() == IP_DD
    assert p.to_decimal() == IP_DDD
    assert ClassicProgram.from_bytes(p.to_bytes()) == p
    assert ClassicProgram.from_text(p.to_c_array()) == p
    assert ClassicProgram.from_text(p.to_decimal()) == p


def test_every_row_disassembles_as_libpcap_bpf_image_does() -> None:
    """Each opcode of the table, with several k, jt, jf, against libpcap's own
    bpf_image (the function behind tcpdump -d). libpcap 1.10 has no name for
    ldx #pktlen (0x81) and prints it as unimp."""
    if not _has_libpcap():
        pytest.skip("libpcap is not loadable")
    image = _image()
    for spec in CLASSIC:
        for k in (0, 7, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF):
            insn = ClassicInsn(spec.code, 3, 250, k)
            theirs = image(insn.encode(), 9).decode().rstrip()
            if spec.code == LDX_LEN:
                assert theirs == "(009) unimp    0x81" and insn.image(9) == "(009) ldx      #pktlen"
            else:
                assert insn.image(9) == theirs, hex(spec.code)


def _has_libpcap() -> bool:
    import jit.frontend.pcapfilter as pcapfilter

    try:
        pcapfilter.libpcap()
    except pcapfilter.LibpcapMissing:
        return False
    return True


def test_table_has_the_opcodes_libpcap_knows() -> None:
    """The 49 opcodes of libpcap's bpf_filter: those its bpf_image names, plus ldx #pktlen."""
    if not _has_libpcap():
        pytest.skip("libpcap is not loadable")
    image = _image()
    known = {code for code in range(256) if b"unimp" not in image(struct.pack("<HBBI", code, 0, 0, 0), 0)}
    assert {spec.code for spec in CLASSIC} == known | {LDX_LEN}
    assert len(CLASSIC) == 49


def _image():  # type: ignore[no-untyped-def]
    image = jit.frontend.pcapfilter.libpcap().lib.bpf_image
    image.restype = ctypes.c_char_p
    image.argtypes = (ctypes.c_char_p, ctypes.c_int)
    return image


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "multiple of 8"),
        (bytes(12), "instruction 1 is incomplete"),
        (struct.pack("<HBBI", 0x06, 0, 0, 0) + struct.pack("<HBBI", 0x99, 0, 0, 0), "instruction 1"),
        (struct.pack("<HBBI", 0x106, 0, 0, 0), "upper byte"),
    ],
)
def test_bad_sock_filter_arrays_are_decode_errors(raw: bytes, words: str) -> None:
    with pytest.raises(jit.DecodeError, match=words):
        ClassicProgram.from_bytes(raw)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{ 0x28, 0, 0, 12 },\n{ 0x15, zero, 1, 0x800 },", "line 2"),
        ("{ 0x28, 0, 0 },", "line 1"),
        ("3\n40 0 0 12\n6 0 0 0", "count line says 3"),
        ("2\n40 0 0\n6 0 0 0", "line 2"),
        ("1\n6 0 300 0", "instruction 0.*jf=300"),
        ("", "empty"),
    ],
)
def test_bad_text_is_a_decode_error_naming_the_line(text: str, words: str) -> None:
    with pytest.raises(jit.DecodeError, match=words):
        ClassicProgram.from_text(text)


def test_unknown_opcode_names_the_instruction() -> None:
    with pytest.raises(jit.DecodeError, match=r"classic instruction 1 .*unknown classic BPF opcode 0x0099"):
        prog((RET_K, 0, 0, 0), (0x99, 0, 0, 0))


# --- validation (Linux's bpf_check_classic) ---------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ([(JEQ_K, 0, 5, 1), (RET_K, 0, 0, 1)], r"instruction 0 \(jeq .*jump target 6 is beyond"),
        ([(JA, 0, 0, 0xFFFFFFFF), (RET_K, 0, 0, 1)], r"instruction 0 \(ja .*jump target"),
        ([(LD_MEM, 0, 0, 16), (RET_A, 0, 0, 0)], r"instruction 0 \(ld M\[16\]\).*does not exist"),
        ([(ST, 0, 0, 99), (RET_A, 0, 0, 0)], r"instruction 0 \(st M\[99\]\)"),
        ([(0x34, 0, 0, 0), (RET_A, 0, 0, 0)], r"instruction 0 \(div #0\): div by the constant 0"),
        ([(0x94, 0, 0, 0), (RET_A, 0, 0, 0)], r"instruction 0 \(mod #0\)"),
        ([(LSH_K, 0, 0, 32), (RET_A, 0, 0, 0)], r"instruction 0 \(lsh #32\): shift"),
        ([(LD_IMM, 0, 0, 1)], r"instruction 0 \(ld #0x1\): the last instruction must be a ret"),
        ([(LD_MEM, 0, 0, 3), (RET_A, 0, 0, 0)], r"instruction 0 \(ld M\[3\]\): M\[3\] may be read before"),
        # written on one path only: jt stores, jf does not
        (
            [(JEQ_K, 0, 1, 0), (ST, 0, 0, 2), (LDX_MEM, 0, 0, 2), (RET_A, 0, 0, 0)],
            r"instruction 2 \(ldx M\[2\]\)",
        ),
    ],
)
def test_validation_rejects_with_the_instruction(rows: list, words: str) -> None:
    with pytest.raises(jit.VerifierError, match=words):
        prog(*rows).validate()


def test_validation_accepts_a_store_on_every_path() -> None:
    p = prog((JEQ_K, 0, 2, 0), (ST, 0, 0, 2), (JA, 0, 0, 1), (ST, 0, 0, 2), (LD_MEM, 0, 0, 2), (RET_A, 0, 0, 0))
    assert p.validate() is p


def test_too_long_a_program_is_rejected() -> None:
    with pytest.raises(jit.VerifierError, match="4097 instructions"):
        prog(*[(RET_K, 0, 0, 0)] * 4097).validate()


# --- the classic interpreter, hand-worked -----------------------------------------------------

ETH_IP_TCP = bytes(12) + b"\x08\x00" + b"\x45" + bytes(8) + b"\x06" + bytes(10) + b"\x00\x50\x1f\x90"


@pytest.mark.parametrize(
    ("rows", "packet", "expected"),
    [
        # ldh [12] = 0x0800 (big-endian)
        ([(LD_H_ABS, 0, 0, 12), (RET_A, 0, 0, 0)], ETH_IP_TCP, 0x0800),
        ([(LD_W_ABS, 0, 0, 0), (RET_A, 0, 0, 0)], b"\x01\x02\x03\x04\x05", 0x01020304),
        # a load past the end returns 0 even when A would have been returned
        ([(LD_IMM, 0, 0, 7), (LD_W_ABS, 0, 0, 2), (RET_A, 0, 0, 0)], b"\x01\x02\x03\x04\x05", 0),
        ([(LD_B_ABS, 0, 0, 4), (RET_A, 0, 0, 0)], b"\x01\x02\x03\x04\x05", 5),
        ([(LD_B_ABS, 0, 0, 5), (RET_K, 0, 0, 9)], b"\x01\x02\x03\x04\x05", 0),
        # ldxb 4*([14]&0xf) of 0x45 = 20; then ldh [x+14] = the TCP source port 80
        ([(LDX_MSH, 0, 0, 14), (LD_H_IND, 0, 0, 14), (RET_A, 0, 0, 0)], ETH_IP_TCP, 80),
        ([(LDX_MSH, 0, 0, 14), (TXA, 0, 0, 0), (RET_A, 0, 0, 0)], ETH_IP_TCP, 20),
        # X + k must not wrap around: X = 0xffffffff, k = 2 is out of bounds, not offset 1
        ([(LDX_IMM, 0, 0, 0xFFFFFFFF), (LD_B_IND, 0, 0, 2), (RET_K, 0, 0, 1)], b"abcdef", 0),
        ([(LDX_IMM, 0, 0, 3), (LD_W_IND, 0, 0, 1), (RET_A, 0, 0, 0)], b"\x00\x01\x02\x03\x04\x05\x06\x07", 0x04050607),
        ([(LDX_IMM, 0, 0, 3), (LD_W_IND, 0, 0, 2), (RET_A, 0, 0, 0)], b"\x00\x01\x02\x03\x04\x05\x06\x07", 0),
        # len
        ([(LD_LEN, 0, 0, 0), (RET_A, 0, 0, 0)], bytes(77), 77),
        ([(LDX_LEN, 0, 0, 0), (TXA, 0, 0, 0), (ADD_K, 0, 0, 1), (RET_A, 0, 0, 0)], bytes(5), 6),
        # u32 arithmetic: wrap, neg, mul
        ([(LD_IMM, 0, 0, 0xFFFFFFFF), (ADD_K, 0, 0, 2), (RET_A, 0, 0, 0)], b"", 1),
        ([(LD_IMM, 0, 0, 1), (NEG, 0, 0, 0), (RET_A, 0, 0, 0)], b"", 0xFFFFFFFF),
        ([(LD_IMM, 0, 0, 0x10000), (MUL_K, 0, 0, 0x10001), (RET_A, 0, 0, 0)], b"", 0x10000),
        ([(LD_IMM, 0, 0, 3), (LDX_IMM, 0, 0, 5), (SUB_X, 0, 0, 0), (RET_A, 0, 0, 0)], b"", 0xFFFFFFFE),
        ([(LD_IMM, 0, 0, 0xF0), (XOR_K, 0, 0, 0xFF), (RET_A, 0, 0, 0)], b"", 0x0F),
        # division and modulo by X = 0 end the filter with 0
        ([(LD_IMM, 0, 0, 9), (LDX_IMM, 0, 0, 0), (DIV_X, 0, 0, 0), (RET_K, 0, 0, 5)], b"", 0),
        ([(LD_IMM, 0, 0, 9), (LDX_IMM, 0, 0, 0), (MOD_X, 0, 0, 0), (RET_K, 0, 0, 5)], b"", 0),
        ([(LD_IMM, 0, 0, 9), (LDX_IMM, 0, 0, 4), (DIV_X, 0, 0, 0), (RET_A, 0, 0, 0)], b"", 2),
        ([(LD_IMM, 0, 0, 9), (LDX_IMM, 0, 0, 4), (MOD_X, 0, 0, 0), (RET_A, 0, 0, 0)], b"", 1),
        # shifts by X of 32 or more give 0; 31 is the last that shifts
        ([(LD_IMM, 0, 0, 1), (LDX_IMM, 0, 0, 31), (LSH_X, 0, 0, 0), (RET_A, 0, 0, 0)], b"", 0x80000000),
        ([(LD_IMM, 0, 0, 1), (LDX_IMM, 0, 0, 32), (LSH_X, 0, 0, 0), (RET_A, 0, 0, 0)], b"", 0),
        ([(LD_IMM, 0, 0, 0x80000000), (LDX_IMM, 0, 0, 33), (RSH_X, 0, 0, 0), (RET_A, 0, 0, 0)], b"", 0),
        ([(LD_IMM, 0, 0, 0x80000000), (LDX_IMM, 0, 0, 31), (RSH_X, 0, 0, 0), (RET_A, 0, 0, 0)], b"", 1),
        # scratch memory, tax/txa
        (
            [
                (LD_IMM, 0, 0, 42),
                (ST, 0, 0, 15),
                (LD_IMM, 0, 0, 0),
                (LDX_MEM, 0, 0, 15),
                (TXA, 0, 0, 0),
                (RET_A, 0, 0, 0),
            ],
            b"",
            42,
        ),
        (
            [(LDX_IMM, 0, 0, 6), (STX, 0, 0, 0), (LD_MEM, 0, 0, 0), (TAX, 0, 0, 0), (TXA, 0, 0, 0), (RET_A, 0, 0, 0)],
            b"",
            6,
        ),
        # jumps: unsigned comparisons, jset, ja
        ([(LD_IMM, 0, 0, 0x80000000), (JGT_K, 0, 1, 1), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)], b"", 1),
        ([(LD_IMM, 0, 0, 4), (LDX_IMM, 0, 0, 5), (JGE_X, 0, 1, 0), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)], b"", 2),
        ([(LD_IMM, 0, 0, 0b1010), (JSET_K, 1, 0, 0b0100), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)], b"", 1),
        ([(LD_IMM, 0, 0, 0b1010), (JSET_K, 1, 0, 0b0010), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)], b"", 2),
        ([(JA, 0, 0, 1), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)], b"", 2),
        ([(LD_IMM, 0, 0, 0x800), (JEQ_K, 0, 1, 0x800), (RET_K, 0, 0, 0xFFFFFFFF), (RET_K, 0, 0, 0)], b"", 0xFFFFFFFF),
    ],
)
def test_interpreter_hand_worked(rows: list, packet: bytes, expected: int) -> None:
    p = prog(*rows)
    assert run_classic(p, packet) == expected


def test_ld_len_is_the_wire_length_when_given() -> None:
    p = prog((LD_LEN, 0, 0, 0), (RET_A, 0, 0, 0))
    assert run_classic(p, bytes(60), wirelen=1514) == 1514


def test_interpreter_returns_0_where_libpcap_does_for_unvalidated_programs() -> None:
    assert run_classic(prog((LD_IMM, 0, 0, 1)), b"") == 0  # falls off the end
    assert run_classic(prog((JA, 0, 0, 5), (RET_K, 0, 0, 1)), b"") == 0  # jumps past the end
    assert run_classic(prog((LD_MEM, 0, 0, 16), (RET_K, 0, 0, 1)), b"") == 0  # no such scratch word


def test_interpreter_rejects_a_non_buffer_packet() -> None:
    with pytest.raises(jit.UsageError):
        run_classic(prog((RET_K, 0, 0, 1)), "text")  # type: ignore[arg-type]
