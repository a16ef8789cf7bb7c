"""The unicorn runner (jit.runtime.emulated) on both architectures.

What is tested here is the runner, not the code generators: the input buffer
(copied in and back, growing, guarded), helpers through the trap page, faults
and budgets turned into errors that name the BPF instruction, batches, reuse
of one emulator across calls, close().
"""

from __future__ import annotations

import struct

import pytest

import jit
from jit.runtime.emulated import EmulatedProgram

ARCHES = ("arm64", "x86_64")


@pytest.fixture(params=ARCHES)
def arch(request) -> str:
    return request.param


def emulated(text: str, arch: str, **options) -> EmulatedProgram:
    """The program as given: unverified and without bounds checks, unless asked
    (these tests exercise the runner; tests/test_safety.py the checks)."""
    options.setdefault("verify", False)
    options.setdefault("bounds_check", False)
    fn = jit.compile(text, arch=arch, emulate=True, **options)
    assert isinstance(fn, EmulatedProgram)
    return fn


def test_basics(arch: str) -> None:
    fn = emulated("mov %r0, 42\nexit", arch)
    assert fn() == 42
    assert fn.emulated is True
    assert fn.arch == arch
    assert fn.code == fn.native.code


def test_returns_r0_as_unsigned_64_bits(arch: str) -> None:
    assert emulated("mov %r0, -2\nexit", arch)() == (1 << 64) - 2


def test_length_in_r2_and_no_buffer(arch: str) -> None:
    fn = emulated("mov %r0, %r2\nlsh %r0, 1\njne %r1, 0, +1\nadd %r0, 1\nexit", arch)
    assert fn(None) == 1  # R1 = 0, R2 = 0
    assert fn(b"") == 1  # an empty buffer is no buffer
    assert fn(b"abcdef") == 12


def test_writes_land_in_the_callers_bytearray_and_memoryview(arch: str) -> None:
    fn = emulated("ldxw %r0, [%r1]\nadd %r0, 1\nstxw [%r1], %r0\nstb [%r1+5], 0x7f\nexit", arch)
    mem = bytearray(8)
    assert fn(mem) == 1
    assert mem == bytearray(b"\x01\x00\x00\x00\x00\x7f\x00\x00")
    backing = bytearray(16)
    view = memoryview(backing)[4:12]
    assert fn(view) == 1
    assert backing[4] == 1 and backing[9] == 0x7F


def test_bytes_and_read_only_views_are_copied(arch: str) -> None:
    fn = emulated("stb [%r1], 9\nldxb %r0, [%r1]\nexit", arch)
    data = b"\x01\x02"
    assert fn(data) == 9
    assert data == b"\x01\x02"
    view = memoryview(b"\x05\x06")
    assert fn(view) == 9
    assert view.tobytes() == b"\x05\x06"


def test_buffer_grows_and_shrinks(arch: str) -> None:
    """R0 = the last byte; sizes below, at and above one page, then small again."""
    fn = emulated("mov %r3, %r1\nadd %r3, %r2\nldxb %r0, [%r3-1]\nexit", arch)
    for size in (10, 4096, 10_000, 200_000, 10, 4097):
        mem = bytes(size - 1) + bytes([size % 251])
        assert fn(mem) == size % 251


def test_overrun_of_the_buffer_faults(arch: str) -> None:
    fn = emulated("ldxb %r0, [%r1+16]\nexit", arch)
    with pytest.raises(jit.MemoryAccessError, match=r"instruction 0 \(ldxb %r0, \[%r1\+16\]\)"):
        fn(bytes(16))
    assert fn(bytes(17)) == 0


def test_underrun_beyond_the_buffer_page_faults_after_a_bigger_buffer(arch: str) -> None:
    fn = emulated("ldxb %r0, [%r1-4104]\nexit", arch)
    with pytest.raises(jit.MemoryAccessError):
        fn(bytes(100_000))  # R1 - 4104 lies before this buffer too
    with pytest.raises(jit.MemoryAccessError):
        fn(bytes(16))  # the pages the big buffer used are closed again


def test_one_emulator_serves_many_calls(arch: str) -> None:
    fn = emulated("ldxdw %r0, [%r1]\nmul %r0, 3\nexit", arch)
    for value in range(200):
        assert fn(struct.pack("<Q", value)) == 3 * value


def test_stack_starts_zeroed_every_run(arch: str) -> None:
    fn = emulated("ldxdw %r0, [%r10-8]\nstdw [%r10-8], 77\nexit", arch)
    assert fn() == 0
    assert fn() == 0


def test_run_many(arch: str) -> None:
    fn = emulated("ldxdw %r0, [%r1]\nadd %r0, 1\nstxdw [%r1], %r0\nexit", arch)
    mem = bytearray(8)
    assert fn.run_many(mem, 1000) == 1000
    assert struct.unpack("<Q", mem)[0] == 1000
    with pytest.raises(ValueError):
        fn.run_many(mem, 0)


def test_python_helper_through_the_trap(arch: str) -> None:
    calls = []

    def helper(a, b, c, d, e):
        calls.append((a, b, c, d, e))
        return a * 1000 + e

    text = "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 9\nexit"
    assert emulated(text, arch, helpers={9: helper})() == 1005
    assert calls == [(1, 2, 3, 4, 5)]


def test_helper_memory_accessor_reads_and_writes_the_buffer(arch: str) -> None:
    def reverse(addr, size, _c, _d, _e, *, memory):
        memory.write(addr, memory.read(addr, size)[::-1])
        return size

    mem = bytearray(b"abcdef")
    fn = emulated("mov %r2, 4\nadd %r1, 1\ncall 9\nexit", arch, helpers={9: reverse})
    assert fn(mem) == 4
    assert mem == bytearray(b"aedcbf")


def test_helper_accessor_refuses_memory_outside_the_program(arch: str) -> None:
    def peek(addr, *_rest, memory):
        return memory.read(addr, 8)[0]

    fn = emulated("lddw %r1, 0x10000000\ncall 9\nexit", arch, helpers={9: peek})
    with pytest.raises(jit.HelperError, match=r"instruction 2 \(call 9\)") as info:
        fn(bytes(8))
    assert isinstance(info.value.__cause__, jit.MemoryAccessError)


def test_helper_exception_is_chained(arch: str) -> None:
    def broken(*_args):
        raise KeyError("nope")

    fn = emulated("call 9\nmov %r0, 1\nexit", arch, helpers={9: broken})
    with pytest.raises(jit.HelperError, match=r"instruction 0 \(call 9\).*KeyError") as info:
        fn()
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.pc == 0


def test_native_helper_cannot_run_emulated(arch: str) -> None:
    import ctypes

    labs = ctypes.cast(ctypes.CDLL(None).labs, ctypes.c_void_p).value  # a real native function
    fn = emulated("call 9\nexit", arch, helpers={9: labs})
    with pytest.raises(jit.HelperError, match="native"):
        fn()


def test_store_through_a_bogus_pointer_names_the_instruction(arch: str) -> None:
    prog = jit.assemble("mov %r0, 0\nlddw %r3, 0xdead0000\nstxdw [%r3+16], %r0\nexit")
    with pytest.raises(jit.MemoryAccessError) as info:
        emulated(prog, arch)()
    message = str(info.value)
    assert message.startswith("instruction 3 (stxdw [%r3+16], %r0)")
    assert "write" in message and "0xdead0010" in message
    assert info.value.pc == 3


def test_timeout_stops_a_runaway_program(arch: str) -> None:
    fn = emulated("mov %r0, 0\nadd %r0, 1\nja -2\nexit", arch)
    fn.timeout = 0.2
    with pytest.raises(jit.StepLimitError, match="emulation budget") as info:
        fn()
    assert info.value.pc in (1, 2)
    fn.timeout, fn.max_instructions = None, 10_000
    with pytest.raises(jit.StepLimitError, match="10000 emulated instructions"):
        fn()


def test_max_steps_in_generated_code(arch: str) -> None:
    fn = emulated("mov %r0, 0\nadd %r0, 1\njlt %r0, 100, -2\nexit", arch, max_steps=10)
    with pytest.raises(jit.StepLimitError, match=r"instruction 2 \(jlt %r0, 100, -2\)"):
        fn()


def test_fell_off_the_end(arch: str) -> None:
    fn = emulated("mov %r0, 1\njeq %r0, 1, +1\nexit\nmov %r0, 2", arch)
    with pytest.raises(jit.ExecutionError, match="fell off"):
        fn()


def test_close(arch: str) -> None:
    fn = emulated("mov %r0, 1\nexit", arch)
    fn.close()
    with pytest.raises(jit.ExecutionError, match="closed"):
        fn()
    with emulated("mov %r0, 3\nexit", arch) as other:
        assert other() == 3


def test_same_results_on_both_architectures() -> None:
    text = """
        mov %r6, %r1
        ldxdw %r0, [%r1]
        mov %r2, 0x77
        lock fetch add [%r6+8], %r2
        add %r0, %r2
        lsh %r0, 3
        stxdw [%r6+16], %r0
        exit
    """
    results = []
    for arch in ARCHES:
        mem = bytearray(struct.pack("<3Q", 5, 100, 0))
        results.append((emulated(text, arch)(mem), bytes(mem)))
    assert results[0] == results[1] == ((5 + 100) << 3, struct.pack("<3Q", 5, 100 + 0x77, (5 + 100) << 3))


def test_a_helper_cannot_reenter_the_running_program(arch: str) -> None:
    box = {}

    def again(*_args):
        return box["fn"]()

    box["fn"] = fn = emulated("call 9\nexit", arch, helpers={9: again})
    with pytest.raises(jit.HelperError) as info:
        fn()
    assert isinstance(info.value.__cause__, jit.ExecutionError)
    assert "called itself again" in str(info.value.__cause__)


def test_an_emulated_program_frees_its_emulator_when_deleted(arch: str) -> None:
    """Not at the next garbage collection (ctypes callbacks make a cycle): at del."""
    import gc

    gc.disable()
    try:
        fn = emulated("mov %r0, 1\nexit", arch)
        assert fn(bytearray(1 << 20)) == 1
        engine_closed = fn._uc._Uc__finalizer  # unicorn's once-only uc_close
        assert engine_closed.alive
        del fn
        assert not engine_closed.alive
    finally:
        gc.enable()
