"""The interpreter's run-time model: memory regions, input buffers, local calls,
helpers, the step limit, running off the end and the legacy packet loads."""

from __future__ import annotations

import gc

import pytest

import jit
import jit.runtime.interpreter
from jit.runtime.interpreter import run
from jit.runtime.memory import MEM_BASE, STACK_TOP


def execute(text: str, mem=None, **kwargs) -> jit.runtime.interpreter.RunResult:
    return run(jit.assemble(text), mem, **kwargs)


def names(exc: pytest.ExceptionInfo, pc: int, text: str) -> bool:
    """The error message names the instruction at ``pc`` as ``prog.describe`` does."""
    return f"instruction {pc} ({text})" in str(exc.value) and exc.value.pc == pc


# --- memory model ---------------------------------------------------------------------------

MEM8 = bytes(range(1, 9))


@pytest.mark.parametrize(
    ("text", "pc", "insn", "addr"),
    [
        ("ldxw %r0, [%r1+6]", 0, "ldxw %r0, [%r1+6]", MEM_BASE + 6),  # bytes 6..9 of 8
        ("ldxb %r0, [%r1-1]", 0, "ldxb %r0, [%r1-1]", MEM_BASE - 1),
        ("stxb [%r1+8], %r0", 0, "stxb [%r1+8], %r0", MEM_BASE + 8),
        ("stdw [%r1+1], 7", 0, "stdw [%r1+1], 7", MEM_BASE + 1),
        ("mov %r2, 1\nlock add [%r1+8], %r2", 1, "lock add [%r1+8], %r2", MEM_BASE + 8),
        ("ldxdw %r0, [%r10]", 0, "ldxdw %r0, [%r10]", STACK_TOP),  # just above the stack
        ("stxb [%r10-513], %r0", 0, "stxb [%r10-513], %r0", STACK_TOP - 513),  # just below the frame
        ("mov %r2, 1\nlock xchg32 [%r10+0], %r2", 1, "lock xchg32 [%r10], %r2", STACK_TOP),
    ],
)
def test_out_of_bounds_access_names_instruction_and_address(text: str, pc: int, insn: str, addr: int) -> None:
    with pytest.raises(jit.MemoryAccessError) as exc:
        execute(text + "\nexit", MEM8)
    assert names(exc, pc, insn)
    assert f"0x{addr:x}" in str(exc.value)


def test_null_pointer_without_memory() -> None:
    with pytest.raises(jit.MemoryAccessError) as exc:
        execute("ldxb %r0, [%r1]\nexit")
    assert names(exc, 0, "ldxb %r0, [%r1]") and "at 0x0 " in str(exc.value)


def test_whole_stack_frame_and_buffer_are_accessible() -> None:
    text = "stb [%r10-512], 1\nstdw [%r10-8], 2\nldxb %r0, [%r10-512]\nldxdw %r3, [%r1]\nadd %r0, %r3\nexit"
    assert execute(text, bytes([40, 0, 0, 0, 0, 0, 0, 0])).r0 == 41


def test_unaligned_plain_access_is_fine_but_unaligned_atomic_is_not() -> None:
    assert execute("ldxdw %r0, [%r1+1]\nexit", bytes(range(9))).r0 == 0x0807060504030201
    with pytest.raises(jit.MemoryAccessError, match="aligned") as exc:
        execute("mov %r2, 1\nlock add32 [%r10-6], %r2\nexit")
    assert names(exc, 1, "lock add32 [%r10-6], %r2")


def test_callee_reads_caller_frame_through_pointer() -> None:
    text = """
        stdw [%r10-8], 42
        mov %r1, %r10
        call local f
        exit
    f:
        ldxdw %r0, [%r1-8]
        exit
    """
    assert execute(text).r0 == 42


def test_callee_frame_is_gone_after_return() -> None:
    text = """
        call local f
        ldxdw %r1, [%r0-8]
        exit
    f:
        stdw [%r10-8], 7
        mov %r0, %r10
        exit
    """
    with pytest.raises(jit.MemoryAccessError) as exc:
        execute(text)
    assert names(exc, 1, "ldxdw %r1, [%r0-8]")
    assert f"0x{STACK_TOP - 512 - 8:x}" in str(exc.value)


def test_each_local_call_gets_a_frame_512_bytes_below() -> None:
    # f returns its r10; the caller subtracts it from its own.
    text = "call local f\nmov %r6, %r10\nsub %r6, %r0\nmov %r0, %r6\nexit\nf:\nmov %r0, %r10\nexit"
    result = execute(text)
    assert result.r0 == 512
    assert result.regs[10] == STACK_TOP


# --- the input buffer -------------------------------------------------------------------------


def test_writes_land_in_callers_bytearray() -> None:
    buf = bytearray(4)
    execute("stw [%r1], 0x11223344\nstb [%r1+1], 0x7f\nexit", buf)
    assert buf == bytearray([0x44, 0x7F, 0x22, 0x11])


def test_bytes_are_copied_and_never_modified() -> None:
    data = bytes(4)
    # The write is visible to the program (read back), not to the caller.
    assert execute("stb [%r1], 9\nldxb %r0, [%r1]\nexit", data).r0 == 9
    assert data == bytes(4)


def test_writes_land_in_writable_memoryview() -> None:
    backing = bytearray(8)
    execute("stb [%r1], 0x5a\nmov %r0, %r2\nexit", memoryview(backing)[2:6])
    assert backing == bytearray([0, 0, 0x5A, 0, 0, 0, 0, 0])


def test_readonly_memoryview_is_copied() -> None:
    data = bytes([1, 2, 3])
    assert execute("stb [%r1], 9\nldxb %r0, [%r1]\nexit", memoryview(data)).r0 == 9
    assert data == bytes([1, 2, 3])


@pytest.mark.parametrize(("mem", "r1", "r2"), [(None, 0, 0), (b"", 0, 0), (bytes(5), MEM_BASE, 5)])
def test_r1_and_r2_at_entry(mem, r1: int, r2: int) -> None:
    assert execute("mov %r0, %r2\nexit", mem).regs[:3] == (r2, r1, r2)
    assert execute("mov %r0, %r1\nexit", mem).r0 == r1


def test_r10_and_other_registers_at_entry() -> None:
    regs = execute("exit").regs
    assert regs[10] == STACK_TOP
    assert regs[0] == regs[3] == regs[9] == 0


# --- program input forms and reuse -----------------------------------------------------------


def test_program_inputs() -> None:
    prog = jit.assemble("mov %r0, 42\nexit")
    assert jit.interpret(prog) == 42
    assert jit.interpret(prog.to_bytes()) == 42
    assert jit.interpret("mov %r0, 42\nexit") == 42


def test_repeated_runs_start_fresh() -> None:
    # A stale stack or r6 from the previous run would show up in r0.
    prog = jit.assemble("ldxdw %r0, [%r10-8]\nadd %r0, %r6\nstdw [%r10-8], 5\nmov %r6, 1\nexit")
    assert [jit.interpret(prog) for _ in range(3)] == [0, 0, 0]


def test_program_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decodes = []
    original = jit.runtime.interpreter._Decoder.handlers
    monkeypatch.setattr(jit.runtime.interpreter._Decoder, "handlers", lambda self: decodes.append(1) or original(self))
    prog = jit.assemble("mov %r0, 42\nexit")
    assert [jit.interpret(prog) for _ in range(5)] == [42] * 5
    assert len(decodes) == 1
    assert gc.isenabled()  # paused during decoding only


def test_helper_may_run_the_same_program_recursively() -> None:
    # f(n) = n + f(n - 1), f(0) = 0, where the helper runs the program again on [n - 1].
    prog = jit.assemble("ldxb %r6, [%r1]\nmov %r0, 0\njeq %r6, 0, exit\nmov %r1, %r6\ncall 100\nadd %r0, %r6\nexit")
    helpers = {100: lambda n, *_: jit.interpret(prog, bytes([n - 1]), helpers=helpers)}
    assert jit.interpret(prog, bytes([4]), helpers=helpers) == 10  # 4 + 3 + 2 + 1
    assert jit.interpret(prog, bytes([2]), helpers=helpers) == 3


# --- local calls ---------------------------------------------------------------------------


def test_local_call_passes_r1_to_r5_and_preserves_r6_to_r9() -> None:
    text = """
        mov %r1, 1
        mov %r2, 2
        mov %r3, 3
        mov %r4, 4
        mov %r5, 5
        mov %r6, 6
        mov %r7, 7
        mov %r8, 8
        mov %r9, 9
        call local f
        exit
    f:
        mov %r0, %r1
        add %r0, %r2
        add %r0, %r3
        add %r0, %r4
        add %r0, %r5
        mov %r6, 60
        mov %r7, 70
        mov %r8, 80
        mov %r9, 90
        exit
    """
    result = execute(text)
    assert result.r0 == 15
    assert result.regs[6:10] == (6, 7, 8, 9)


# The main program calls f with r1 = n; f calls itself while r1 > 0: n + 1 calls, n + 2
# frames in all; every f adds 1 to r0 on its way out.
NESTED = """
    mov %r1, {n}
    call local f
    exit
f:
    jeq %r1, 0, done
    sub %r1, 1
    call local f
done:
    add %r0, 1
    exit
"""


def test_call_depth_8_frames_is_allowed() -> None:
    assert execute(NESTED.format(n=6)).r0 == 7  # 7 calls, 8 frames


def test_call_depth_9_frames_fails() -> None:
    with pytest.raises(jit.CallDepthError) as exc:
        execute(NESTED.format(n=7))  # the 8th call would make a 9th frame
    assert names(exc, 5, "call local -3")
    assert "8" in str(exc.value)


def test_exit_in_subprogram_returns_to_caller() -> None:
    text = "call local f\nadd %r0, 1\ncall local f\nadd %r0, 1\nexit\nf:\nadd %r0, 10\nexit"
    assert execute(text).r0 == 22


# --- helpers ----------------------------------------------------------------------------------


def test_default_helpers() -> None:
    result = execute("call 5\nmov %r6, %r0\ncall 5\nexit")
    assert result.r0 >= result.regs[6] > 0  # ktime_get_ns is monotonic
    assert execute("call 7\nexit").r0 < 2**32  # get_prandom_u32
    assert execute("call 8\nexit").r0 < 4096  # get_smp_processor_id


def test_user_helpers_override_and_add() -> None:
    prog = jit.assemble("mov %r1, 2\ncall 5\nmov %r6, %r0\ncall 200\nadd %r0, %r6\nexit")
    helpers = {5: lambda *_: 1000, 200: lambda a, b, c, d, e: a * 10}
    assert jit.interpret(prog, helpers=helpers) == 1020


def test_helper_gets_r1_to_r5_and_they_are_unchanged_after() -> None:
    seen = []
    text = "mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 100\nexit"
    result = execute(text, helpers={100: lambda *args: seen.append(args) or 99})
    assert seen == [(1, 2, 3, 4, 5)]
    assert result.r0 == 99 and result.regs[1:6] == (1, 2, 3, 4, 5)


def test_helper_result_is_truncated_to_64_bits() -> None:
    assert execute("call 100\nexit", helpers={100: lambda *_: -1}).r0 == 2**64 - 1


def test_helper_memory_accessor_on_input_and_stack() -> None:
    def memfrob(addr, size, _c, _d, _e, *, memory):
        memory.write(addr, bytes(b ^ 42 for b in memory.read(addr, size)))
        return 0

    buf = bytearray(b"\x00\x01\x02")
    text = (
        "mov %r2, 3\ncall 1\nstdw [%r10-8], 5\nmov %r1, %r10\nsub %r1, 8\nmov %r2, 1\ncall 1\nldxb %r0, [%r10-8]\nexit"
    )
    assert execute(text, buf, helpers={1: memfrob}).r0 == 5 ^ 42
    assert buf == bytearray([42, 43, 40])


def test_helper_exposes_memory() -> None:
    exposed = bytearray(b"\x10\x20\x30\x40")

    def give(*_args, memory):
        return memory.expose(exposed, "table")

    def give_readonly(*_args, memory):
        return memory.expose(b"\x01\x02", "constants", writable=False)

    text = "call 100\nldxw %r6, [%r0]\nstb [%r0+3], 0x7f\nmov %r0, %r6\nexit"
    assert execute(text, helpers={100: give}).r0 == 0x40302010
    assert exposed == bytearray(b"\x10\x20\x30\x7f")
    with pytest.raises(jit.MemoryAccessError) as exc:
        execute("call 100\nldxb %r0, [%r0+4]\nexit", helpers={100: give})  # one past its end
    assert names(exc, 1, "ldxb %r0, [%r0+4]")
    assert execute("call 100\nldxh %r0, [%r0]\nexit", helpers={100: give_readonly}).r0 == 0x0201
    with pytest.raises(jit.MemoryAccessError, match="read-only") as exc:
        execute("call 100\nstb [%r0], 1\nexit", helpers={100: give_readonly})
    assert names(exc, 1, "stb [%r0], 1")


def test_helper_memory_access_outside_regions_is_a_helper_error() -> None:
    def bad(*_args, memory):
        return memory.read(0x1234, 4)[0]

    with pytest.raises(jit.HelperError) as exc:
        execute("call 100\nexit", helpers={100: bad})
    assert names(exc, 0, "call 100")
    assert isinstance(exc.value.__cause__, jit.MemoryAccessError)


def test_unknown_helper() -> None:
    with pytest.raises(jit.HelperError, match="unknown helper id 999") as exc:
        execute("mov %r0, 0\ncall 999\nexit")
    assert names(exc, 1, "call 999")
    with pytest.raises(jit.HelperError, match="unknown helper id 5"):
        execute("call 5\nexit", helpers={5: None})  # None removes a default


def test_helper_exception_is_chained() -> None:
    def boom(*_args):
        raise ValueError("kaboom")

    with pytest.raises(jit.HelperError, match="kaboom") as exc:
        execute("mov %r0, 0\ncall 100\nexit", helpers={100: boom})
    assert names(exc, 1, "call 100")
    assert isinstance(exc.value.__cause__, ValueError)


def test_native_helper_cannot_run_in_the_interpreter() -> None:
    import ctypes

    labs = ctypes.cast(ctypes.CDLL(None).labs, ctypes.c_void_p).value  # a real native function
    with pytest.raises(jit.HelperError, match="native") as exc:
        execute("call 100\nexit", helpers={100: labs})
    assert names(exc, 0, "call 100")


def test_callx() -> None:
    assert execute("mov %r4, 100\ncall %r4\nexit", helpers={100: lambda *_: 17}).r0 == 17
    with pytest.raises(jit.HelperError, match="unknown helper id 300") as exc:
        execute("mov %r4, 300\ncall %r4\nexit")
    assert names(exc, 1, "call %r4")


# --- step limit and the end of the program ------------------------------------------------


def test_max_steps_stops_a_runaway_loop() -> None:
    with pytest.raises(jit.StepLimitError, match="1000") as exc:
        execute("mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit", max_steps=1000)
    # Step 1 is the mov, then add (even steps) and ja (odd steps): step 1001 would be the ja.
    assert names(exc, 2, "ja -2")


def test_max_steps_counts_executed_instructions() -> None:
    text = "mov %r0, 1\nmov %r0, 2\nexit"
    assert execute(text, max_steps=3).steps == 3
    with pytest.raises(jit.StepLimitError) as exc:
        execute(text, max_steps=2)
    assert names(exc, 2, "exit")
    # A loop of 3 instructions run 4 times plus 2 set-up instructions and exit: 15.
    loop = "mov %r1, 4\nmov %r0, 0\nloop:\nadd %r0, 1\nsub %r1, 1\njne %r1, 0, loop\nexit"
    assert execute(loop).steps == 15


def test_falling_off_the_end() -> None:
    with pytest.raises(jit.ExecutionError, match="fell off the end") as exc:
        execute("mov %r0, 1\nmov %r0, 2")
    assert names(exc, 1, "mov %r0, 2")


def test_jump_outside_the_program() -> None:
    with pytest.raises(jit.ExecutionError, match="outside the program") as exc:
        execute("mov %r0, 0\nja +5\nexit")
    assert names(exc, 1, "ja +5")


def test_unreached_bad_jump_is_harmless() -> None:
    assert execute("mov %r0, 3\nexit\nja -10").r0 == 3


# --- legacy packet loads -------------------------------------------------------------------

PACKET = bytes(range(16))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ldabsh 2", 0x0203),  # big-endian: bytes 02 03
        ("ldabsw 4", 0x0405_0607),
        ("ldabsb 15", 0x0F),
        ("mov %r3, 6\nldindb %r3, 2", 0x08),  # 6 + 2
        ("mov %r3, 8\nldindh %r3, -2", 0x0607),  # the imm is signed
        ("mov %r3, 12\nldindw %r3, 0", 0x0C0D_0E0F),
    ],
)
def test_packet_loads_in_bounds(text: str, expected: int) -> None:
    prog = f"mov %r6, %r1\nmov %r1, 11\nmov %r2, 12\n{text}\nexit"
    result = execute(prog, PACKET)
    assert result.r0 == expected
    assert result.regs[1:3] == (11, 12)  # R1-R5 are left unchanged


@pytest.mark.parametrize(
    "text",
    ["ldabsh 15", "ldabsw 13", "ldabsb 16", "ldabsb -1", "mov %r3, 0\nldindb %r3, -1", "mov %r3, 14\nldindw %r3, 0"],
)
def test_packet_loads_out_of_bounds_end_the_program_with_zero(text: str) -> None:
    prog = f"mov %r6, %r1\nmov %r0, 77\n{text}\nmov %r0, 99\nexit"
    assert execute(prog, PACKET).r0 == 0


def test_packet_load_out_of_bounds_in_a_subprogram_ends_everything() -> None:
    text = "mov %r6, %r1\ncall local f\nmov %r0, 99\nexit\nf:\nmov %r0, 5\nldabsb 100\nexit"
    result = execute(text, PACKET)
    assert (result.r0, result.steps) == (0, 4)  # mov, call, mov, ldabsb


def test_packet_load_reads_only_the_input_buffer() -> None:
    assert execute("mov %r6, %r10\nmov %r0, 1\nldabsb -8\nexit").r0 == 0  # the stack is not the packet
    assert execute("ldabsb 0\nexit").r0 == 0  # no input buffer at all
