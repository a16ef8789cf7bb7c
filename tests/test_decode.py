"""Malformed bytecode: every rejection of the decoder names the slot and shows its bytes.

Bad slots are written byte by byte (opcode, regs = src<<4 | dst, off LE16, imm LE32)
and the expected byte dump is written out literally.
"""

from __future__ import annotations

import pytest

from jit import BpfError, DecodeError, Program, VerifierError, assemble
from jit.core.bytecode import check_control_flow, decode

MOV_R0_0 = bytes.fromhex("b700000000000000")  # mov %r0, 0
EXIT = bytes.fromhex("9500000000000000")
PREFIX = MOV_R0_0 * 3  # the bad slot is slot 3

BAD_SLOTS = [
    # (bytes of slot 3 onwards, words in the message, the bytes as shown, the slot named)
    ("ff00000000000000", "unknown opcode 0xff", "ff 00 00 00 00 00 00 00", 3),
    ("0e00000000000000", "unknown opcode 0x0e", "0e 00 00 00 00 00 00 00", 3),
    ("b70b000001000000", "r11", "b7 0b 00 00 01 00 00 00", 3),  # mov %r11, 1
    ("bf1f000000000000", "r15", "bf 1f 00 00 00 00 00 00", 3),  # mov %r15, %r1
    ("bfc1000000000000", "r12", "bf c1 00 00 00 00 00 00", 3),  # mov %r1, %r12
    ("61b0040000000000", "r11", "61 b0 04 00 00 00 00 00", 3),  # ldxw %r0, [%r11+4]
    ("0501000000000000", "reserved field dst", "05 01 00 00 00 00 00 00", 3),  # ja with dst=1
    ("0f21000005000000", "reserved field imm", "0f 21 00 00 05 00 00 00", 3),  # add X with imm=5
    ("0710000005000000", "reserved field src", "07 10 00 00 05 00 00 00", 3),  # add K with src=1
    ("9500010000000000", "reserved field off", "95 00 01 00 00 00 00 00", 3),  # exit with off=1
    ("7b21000007000000", "reserved field imm", "7b 21 00 00 07 00 00 00", 3),  # stxdw with imm
    ("3f21050000000000", "off=5", "3f 21 05 00 00 00 00 00", 3),  # div with off=5
    ("bf21180000000000", "off=24", "bf 21 18 00 00 00 00 00", 3),  # movsx from 24 bits
    ("d401000030000000", "imm=48", "d4 01 00 00 30 00 00 00", 3),  # le48
    ("8530000001000000", "src=3", "85 30 00 00 01 00 00 00", 3),  # call with mode 3
    ("db21000002000000", "imm=2", "db 21 00 00 02 00 00 00", 3),  # atomic op 0x02
    ("1870000001000000" + "0000000000000000", "src=7", "18 70 00 00 01 00 00 00", 3),  # lddw src 7
    ("1800000001000000", "truncated LD_IMM64", "18 00 00 00 01 00 00 00", 3),  # last slot
    ("1800000001000000" + "9500000000000000", "second slot", "95 00 00 00 00 00 00 00", 4),
    ("1800000001000000" + "0001000000000000", "second slot", "00 01 00 00 00 00 00 00", 4),
    ("1800000001000000" + "0000010000000000", "second slot", "00 00 01 00 00 00 00 00", 4),
]


@pytest.mark.parametrize(("hexbytes", "words", "shown", "slot"), BAD_SLOTS, ids=[c[1] for c in BAD_SLOTS])
def test_bad_slot_is_named_and_shown(hexbytes: str, words: str, shown: str, slot: int) -> None:
    with pytest.raises(DecodeError) as info:
        Program.from_bytes(PREFIX + bytes.fromhex(hexbytes) + EXIT * (0 if "truncated" in words else 1))
    message = str(info.value)
    assert isinstance(info.value, BpfError)
    assert f"slot {slot}" in message
    assert words in message
    assert shown in message


def test_length_not_a_multiple_of_8() -> None:
    with pytest.raises(DecodeError) as info:
        Program.from_bytes(MOV_R0_0 + EXIT + bytes.fromhex("950000"))
    message = str(info.value)
    assert "19 bytes" in message and "slot 2" in message and "95 00 00" in message


def test_too_many_slots() -> None:
    with pytest.raises(DecodeError) as info:
        Program.from_bytes(EXIT * 1_000_001)
    message = str(info.value)
    assert "1000001 slots" in message and "slot 1000000" in message and "95 00 00 00 00 00 00 00" in message


def test_slot_limit_counts_lddw_as_two_slots() -> None:
    lddw = Program.from_bytes(bytes.fromhex("1800000001000000" + "0000000000000000")).instructions[0]
    assert len(Program((lddw,) * 500_000)) == 1_000_000
    with pytest.raises(DecodeError, match="1000002 slots"):
        Program((lddw,) * 500_001)


@pytest.mark.parametrize("raw", [b"", bytearray(), memoryview(b"")])
def test_empty_program(raw: bytes) -> None:
    with pytest.raises(DecodeError, match="empty"):
        Program.from_bytes(raw)
    with pytest.raises(DecodeError, match="empty"):
        decode(bytes(raw))


def test_empty_instruction_list() -> None:
    with pytest.raises(DecodeError, match="empty"):
        Program(())


def test_valid_program_decodes() -> None:
    raw = PREFIX + bytes.fromhex("18010000ffffffff" + "0000000001000000") + EXIT
    prog = Program.from_bytes(raw)
    assert len(prog) == 6 and len(prog.instructions) == 5
    lddw = prog.at(3)
    assert (lddw.op, lddw.dst, lddw.imm) == ("lddw", 1, 0x1FFFFFFFF)
    assert prog.to_bytes() == raw


# --- control flow ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ja +5\nexit", "instruction 0 (ja +5): jump target 6 is outside"),
        ("ja -2\nexit", "instruction 0 (ja -2): jump target -1 is outside"),
        ("exit\nja +0", "instruction 1 (ja +0): jump target 2 is outside"),
        ("mov %r0, 0\njeq %r0, 0, +9\nexit", "instruction 1 (jeq %r0, 0, +9): jump target 11"),
        ("call local +10\nexit", "instruction 0 (call local +10): jump target 11 is outside"),
        ("ja32 +3\nexit", "outside"),
        ("ja +1\nlddw %r0, 1\nexit", "instruction 0 (ja +1): jump target 2 is the second slot of an LD_IMM64"),
        ("lddw %r0, 1\njne %r0, 0, -2\nexit", "jump target 1 is the second slot"),
    ],
)
def test_check_control_flow_rejects(text: str, words: str) -> None:
    with pytest.raises(VerifierError) as info:
        check_control_flow(assemble(text))
    assert words in str(info.value)


def test_check_control_flow_accepts_valid_jumps() -> None:
    check_control_flow(assemble("ja +0\njeq %r1, 0, -2\nlddw %r0, 1\ncall local +1\nexit\nja32 -6"))
