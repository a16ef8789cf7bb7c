"""jit.run_batch on generic eBPF programs: every engine, the path each takes,
writes into the batch, a failing packet reported by index, bad batches."""

from __future__ import annotations

from array import array

import pytest

import jit
from jit.runtime.batch import PacketBatch, batch_path, run_batch

PACKETS = [b"", b"a", b"hello", bytes(range(40)), b"\xff" * 9]


def prepared(source: str) -> list[tuple[str, object]]:
    return [(engine.name, engine.prepare(jit.assemble(source))) for engine in jit.engines()]


def test_every_engine_runs_a_batch_and_takes_the_expected_path() -> None:
    for name, run in prepared("mov %r0, %r2\nexit"):
        assert run_batch(run, PACKETS).tolist() == [len(p) for p in PACKETS], name
        engine = next(e for e in jit.engines() if e.name == name)
        expected = (
            "loop: not a compiled program" if engine.arch is None else "emulated" if engine.emulated else "native"
        )
        assert batch_path(run) == expected


def test_reads_see_each_packet() -> None:
    source = "mov %r0, 0\njeq %r2, 0, +1\nldxb %r0, [%r1]\nexit"  # first byte, or 0 when empty
    for name, run in prepared(source):
        assert run_batch(run, PACKETS).tolist() == [0, ord("a"), ord("h"), 0, 0xFF], name


def test_a_failing_packet_is_named_by_its_index() -> None:
    """An unchecked 4-byte load at +4: a run-time bounds check fails on the short packet."""
    for name, run in prepared("ldxw %r0, [%r1+4]\nexit"):
        with pytest.raises(jit.MemoryAccessError, match=r"^packet 1: .*instruction 0"):
            run_batch(run, [bytes(8), b"abc", bytes(8)])
        assert run_batch(run, [bytes(8), b"\x00\x00\x00\x00\x01\x00\x00\x00"]).tolist() == [0, 1], name


def test_writes_land_in_the_batch() -> None:
    source = "jeq %r2, 0, +1\nstb [%r1], 7\nmov %r0, 1\nexit"
    for name, run in prepared(source):
        batch = PacketBatch.from_packets([b"ab", b"", b"xyz"])
        assert run_batch(run, batch).tolist() == [1, 1, 1]
        assert bytes(batch.data) == b"7b7yz".replace(b"7", b"\x07"), name


def test_programs_calling_helpers_run_in_a_loop() -> None:
    calls = []

    def helper(*args: int) -> int:
        calls.append(args[1])
        return args[1] * 2

    prog = jit.assemble("call 100\nexit")  # r0 = helper(r1, r2, ...)
    fn = jit.compile(prog, helpers={100: helper})
    assert batch_path(fn) == "loop: the program calls helpers"
    assert run_batch(fn, PACKETS).tolist() == [2 * len(p) for p in PACKETS]
    assert calls == [len(p) for p in PACKETS]


def test_a_batch_from_a_shared_buffer() -> None:
    data = bytearray(b"..abc..de.")
    batch = PacketBatch(data, array("Q", [2, 7]), array("Q", [3, 2]))
    assert [bytes(p) for p in batch] == [b"abc", b"de"]
    fn = jit.compile("mov %r0, %r2\nexit")
    assert run_batch(fn, batch).tolist() == [3, 2]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((b"abc", array("Q", [0]), array("Q", [3])), "bytearray"),
        ((bytearray(4), [0], array("Q", [3])), "array\\('Q'\\)"),
        ((bytearray(4), array("Q", [0, 1]), array("Q", [3])), "2 offsets but 1 lengths"),
        ((bytearray(4), array("Q", [2]), array("Q", [3])), "ends at byte 5"),
    ],
)
def test_bad_batches_are_usage_errors(args: tuple, words: str) -> None:
    with pytest.raises(jit.UsageError, match=words):
        PacketBatch(*args)


def test_non_bytes_packets_are_usage_errors() -> None:
    with pytest.raises(jit.UsageError, match="bytes-like"):
        PacketBatch.from_packets(["text"])  # type: ignore[list-item]


def test_a_closed_program_refuses_a_batch() -> None:
    fn = jit.compile("mov %r0, 1\nexit")
    fn.close()
    with pytest.raises(jit.ExecutionError, match="closed"):
        run_batch(fn, [b"x"])


def test_the_run_batch_method_is_run_batch() -> None:
    for name, run in prepared("mov %r0, 0\njeq %r2, 0, +1\nldxb %r0, [%r1]\nadd %r0, %r2\nexit"):
        if hasattr(run, "run_batch"):  # compiled programs (not the interpreter's callable)
            assert run.run_batch(PACKETS).tolist() == run_batch(run, PACKETS).tolist() == [0, 98, 109, 40, 264], name
