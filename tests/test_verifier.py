"""The static verifier (jit.analysis.verifier): one rejection per rule, bounds proofs, and soundness.

Expected messages name the instruction (``prog.describe(pc)``) and the rule's
key words; programs are small enough to check by hand which path is meant.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
from conftest import REPO, conformance_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jit
from jit.analysis.verifier import Region, analyze, verify
from jit.core import isa
from jit.core.errors import MemoryAccessError, VerifierError
from jit.core.helpers import HELPER_PROTOTYPES
from jit.frontend.maps import BPF_F_RDONLY_PROG, create_map
from jit.frontend.program import Program

BENCH_PROGRAMS = sorted((REPO / "bench" / "programs").glob("*.bin"))


def asm(text: str) -> Program:
    return jit.assemble(text)


def reject(text: str | Program, pc: int, *words: str, **options: object) -> str:
    """Assert that the strict verifier rejects the program at ``pc``, with
    ``words`` in the message (a definite violation, or something Linux refuses)."""
    prog = asm(text) if isinstance(text, str) else text
    with pytest.raises(VerifierError) as info:
        verify(prog, **options)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(prog.describe(pc) + ":"), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def path_of(message: str) -> list[int]:
    match = re.search(r"path: ([0-9 >-]+)$", message)
    assert match, message
    return [int(pc) for pc in match.group(1).split(" -> ")]


# --- control flow -------------------------------------------------------------------


def test_jump_outside_the_program() -> None:
    reject("ja +5\nexit", 0, "outside the program")


def test_jump_into_the_middle_of_lddw() -> None:
    reject("ja +1\nlddw %r0, 0x100000000\nexit", 0, "second slot of an LD_IMM64")


def test_falling_off_the_end() -> None:
    reject("mov %r0, 1\njeq %r0, 1, +1\nexit\nmov %r0, 2", 3, "fall off the end")


def test_conditional_jump_as_last_instruction_falls_off() -> None:
    reject("mov %r0, 0\njeq %r0, 0, -2", 1, "fall off the end")


def test_unreachable_instruction() -> None:
    reject("mov %r0, 0\nja +1\nmov %r0, 1\nexit", 2, "unreachable")


def test_back_edge_rejected_without_loops() -> None:
    loop = "mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 10, loop\nexit"
    reject(loop, 2, "jumps back to instruction 1", "allow_loops=False", allow_loops=False)
    assert analyze(asm(loop)).loops


def test_local_call_target_outside_the_program() -> None:
    reject("call local +7\nmov %r0, 0\nexit", 0, "outside the program")


def test_direct_recursion() -> None:
    reject("call local f\nexit\nf:\ncall local f\nexit", 2, "recursion", "already active", "0 -> 0 -> 2 -> 2")


def test_mutual_recursion() -> None:
    text = "call local f\nexit\nf:\ncall local g\nexit\ng:\ncall local f\nexit"
    reject(text, 4, "recursion", "subprogram at instruction 2", "call chain: 0 -> 0 -> 2 -> 2 -> 4 -> 4 -> 2")


def _call_chain(frames: int) -> str:
    """Main plus ``frames - 1`` nested subprograms, each calling the next."""
    lines = ["call local f1", "exit"]
    for depth in range(1, frames):
        lines.append(f"f{depth}:")
        lines += [f"call local f{depth + 1}", "exit"] if depth < frames - 1 else ["mov %r0, 7", "exit"]
    return "\n".join(lines)


def test_call_depth_limit() -> None:
    assert analyze(asm(_call_chain(isa.MAX_CALL_DEPTH))).max_call_depth == 8
    # the ninth frame is created by the eighth call, in the subprogram at slot 14
    reject(_call_chain(isa.MAX_CALL_DEPTH + 1), 14, "nest 9 frames", "limit of 8")


def test_call_by_btf_id_rejected() -> None:
    reject("call runtime 5\nmov %r0, 0\nexit", 0, "BTF id")


def test_jump_out_of_a_subprogram() -> None:
    reject("call local f\nexit\nf:\nja -3", 2, "outside its subprogram")


def test_fall_through_into_the_next_subprogram() -> None:
    reject("call local f\nmov %r0, 0\nf:\nmov %r0, 1\nexit", 1, "fall through into the subprogram at instruction 2")


# --- registers ----------------------------------------------------------------------


def test_uninitialised_register_read_names_the_path() -> None:
    text = "jeq %r1, 0, +1\nmov %r3, 1\nmov %r0, %r3\nexit"  # taken jump skips the write of r3
    message = reject(text, 2, "reads %r3", "not initialised")
    assert path_of(message) == [0, 2]


def test_entry_registers_are_initialised() -> None:
    assert analyze(asm("mov %r0, %r1\nadd %r0, %r2\nmov %r3, %r10\nexit")).unproven == frozenset()


def test_write_to_r10() -> None:
    reject("mov %r0, 0\nadd %r10, 8\nexit", 1, "writes %r10", "read-only")
    reject("ldxdw %r10, [%r1]\nmov %r0, 0\nexit", 0, "writes %r10")
    reject("stdw [%r10-8], 0\nlock fetch add [%r10-8], %r10\nmov %r0, 0\nexit", 1, "writes %r10")


def test_exit_without_r0() -> None:
    reject("mov %r1, 0\nexit", 1, "exits without setting %r0")


def test_subprogram_exit_without_r0() -> None:
    message = reject("mov %r0, 0\ncall local f\nexit\nf:\nmov %r1, 2\nexit", 4, "exits without setting %r0")
    assert path_of(message) == [0, 1, 3, 4]


def test_caller_r0_is_not_the_callee_r0() -> None:
    reject("mov %r0, 0\ncall local f\nexit\nf:\nexit", 3, "without setting %r0")


def test_r1_to_r5_unreadable_after_helper_call() -> None:
    reject("mov %r1, 1\ncall 5\nmov %r0, %r1\nexit", 2, "%r1", "clobbered", "instruction 1 (call 5)")
    assert analyze(asm("call 5\nmov %r1, 3\nmov %r0, %r1\nexit")).unproven == frozenset()


def test_r1_to_r5_unreadable_after_local_call() -> None:
    text = "mov %r6, 1\ncall local f\nadd %r6, %r2\nmov %r0, %r6\nexit\nf:\nmov %r0, 0\nexit"
    reject(text, 2, "%r2", "clobbered", "instruction 1 (call local +3)")


def test_local_call_passes_arguments_as_they_are() -> None:
    callee = "f:\nmov %r0, %r1\nadd %r0, %r3\nexit"
    assert analyze(asm(f"mov %r3, 4\ncall local f\nexit\n{callee}")).max_call_depth == 2
    reject(f"call local f\nexit\n{callee}", 3, "reads %r3", "not initialised")  # r3 never set in main


def test_callee_saved_registers_are_restored_and_not_passed() -> None:
    text = "mov %r6, 1\ncall local f\nmov %r0, %r6\nexit\nf:\nmov %r0, %r6\nexit"
    reject(text, 4, "reads %r6", "not initialised")  # a callee does not see the caller's r6


# --- calls --------------------------------------------------------------------------


def test_unknown_helper_id() -> None:
    reject("call 99\nmov %r0, 0\nexit", 0, "helper 99", "not registered", "4, 5, 6, 7, 8, 12")


def test_helpers_argument_registers_extra_ids_and_removes_defaults() -> None:
    text = "call 99\nexit"
    assert analyze(asm(text), helpers={99: lambda *args: 0}).unproven == frozenset()
    reject("call 5\nexit", 0, "helper 5", "not registered", helpers={5: None})


def test_callx_with_a_known_id() -> None:
    assert analyze(asm("mov %r2, 5\ncall %r2\nexit")).unproven == frozenset()
    reject("mov %r2, 42\ncall %r2\nexit", 1, "helper 42", "not registered")


def test_callx_with_an_unknown_id_is_unproven() -> None:
    prog = asm("ldxb %r2, [%r1]\ncall %r2\nexit")
    result = analyze(prog, mem_size=1)
    assert result.unproven == {1}
    assert "not known before run time" in result.notes[1]
    with pytest.raises(VerifierError, match=re.escape(prog.describe(1))):
        verify(prog, mem_size=1)


# --- the stack ----------------------------------------------------------------------


def test_stack_access_outside_the_frame() -> None:
    reject("stdw [%r10-520], 1\nmov %r0, 0\nexit", 0, "out of bounds", "[-512, 0)")
    reject("stw [%r10-2], 1\nmov %r0, 0\nexit", 0, "out of bounds")  # bytes -2..+1: past the top
    assert analyze(asm("stdw [%r10-512], 1\nldxdw %r0, [%r10-512]\nexit")).unproven == frozenset()


def test_reading_unwritten_stack_bytes() -> None:
    reject("ldxdw %r0, [%r10-8]\nexit", 0, "offset -8", "not initialised")
    # stw writes bytes -8..-5; the 8-byte load at -12 also reads -12..-9
    reject("stw [%r10-8], 1\nldxdw %r0, [%r10-12]\nexit", 1, "offset -12", "not initialised")
    assert analyze(asm("stw [%r10-8], 1\nstw [%r10-4], 2\nldxdw %r0, [%r10-8]\nexit")).unproven == frozenset()


def test_stack_write_on_one_path_only() -> None:
    text = "jeq %r2, 0, +1\nstdw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit"
    message = reject(text, 2, "not initialised")
    assert path_of(message) == [0, 2]


def test_stack_through_a_computed_pointer() -> None:
    # stack.data: r1 = (51 & 1) << 3 = 8, reads [r10 - 16 + 8]
    text = "mov %r1, 51\nstdw [%r10-16], 0xab\nstdw [%r10-8], 0xcd\nand %r1, 1\nlsh %r1, 3\n"
    text += "mov %r2, %r10\nadd %r2, %r1\nldxdw %r0, [%r2-16]\nexit"
    assert analyze(asm(text)).unproven == frozenset()


def test_variable_stack_offset_may_leave_the_frame() -> None:
    text = "stdw [%r10-8], 0\nldxb %r3, [%r1]\nmov %r4, %r10\nsub %r4, %r3\nstb [%r4], 1\nmov %r0, 0\nexit"
    result = analyze(asm(text), mem_size=1)  # r3 in 0..255: r10 - r3 may be r10 itself (past the frame)
    assert result.unproven == {4}
    assert result.regions[4] == {Region.STACK}


def test_misaligned_atomic_on_the_stack() -> None:
    reject("stdw [%r10-8], 0\nmov %r1, 1\nlock add32 [%r10-6], %r1\nmov %r0, 0\nexit", 2, "4-byte aligned", "atomic")


def test_spilled_pointer_comes_back_from_an_8_byte_reload() -> None:
    spill = "stxdw [%r10-8], %r1\nldxdw %r3, [%r10-8]\n"
    assert analyze(asm(spill + "ldxb %r0, [%r3]\nexit"), mem_size=1).unproven == frozenset()
    reject("stxdw [%r10-8], %r1\nldxw %r3, [%r10-8]\nldxb %r0, [%r3]\nexit", 2, "%r3 is a scalar", mem_size=1)
    # a partial overwrite of the spilled pointer leaves bytes, not a pointer
    reject(spill.replace("ldxdw", "stb [%r10-8], 0\nldxdw") + "ldxb %r0, [%r3]\nexit", 3, "scalar", mem_size=1)


def test_helper_of_unknown_prototype_may_overwrite_spilled_pointers() -> None:
    text = "stxdw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -8\ncall 9\nldxdw %r3, [%r10-8]\nldxb %r0, [%r3]\nexit"
    reject(text, 5, "%r3 is a scalar", mem_size=4, helpers={9: lambda *args: 0})


# --- the input buffer ---------------------------------------------------------------


def test_buffer_access_with_known_size() -> None:
    assert analyze(asm("ldxw %r0, [%r1+4]\nexit"), mem_size=8).unproven == frozenset()
    reject("ldxw %r0, [%r1+6]\nexit", 0, "out of bounds", "input buffer of 8 bytes", mem_size=8)
    reject("ldxb %r0, [%r1]\nexit", 0, "out of bounds", mem_size=0)  # no buffer at all


def test_buffer_access_with_unknown_size_is_unproven() -> None:
    prog = asm("ldxb %r0, [%r1+3]\nexit")
    result = analyze(prog)
    assert result.unproven == {0}
    assert result.regions[0] == {Region.BUF}
    assert "compare the offset with %r2" in result.notes[0]
    with pytest.raises(VerifierError, match=re.escape(prog.describe(0))):
        verify(prog)


GUARDED_BY_R2 = """
mov %r0, 0
jlt %r2, 4, out
ldxw %r0, [%r1]
out:
exit
"""

GUARDED_BY_END_POINTER = """
mov %r0, 0
mov %r3, %r1
add %r3, %r2
mov %r4, %r1
add %r4, 14
jgt %r4, %r3, out
ldxh %r0, [%r1+12]
out:
exit
"""

# sum of mem[i] for i < len: the loop variable is compared with R2 each time
LOOP_OVER_R2 = """
mov %r0, 0
mov %r3, 0
jeq %r2, 0, out
loop:
mov %r4, %r1
add %r4, %r3
ldxb %r5, [%r4]
add %r0, %r5
add %r3, 1
jgt %r2, %r3, loop
out:
exit
"""

# a pointer walks towards the end pointer, reading 4 bytes while p + 4 <= end
POINTER_WALK = """
mov %r0, 0
mov %r3, %r1
add %r3, %r2
loop:
mov %r4, %r1
add %r4, 4
jgt %r4, %r3, out
ldxw %r5, [%r1]
add %r0, %r5
mov %r1, %r4
ja loop
out:
exit
"""


# The same programs with the comparison that makes the access safe taken out.
UNGUARDED = {
    "r2": "mov %r0, 0\nldxw %r0, [%r1]\nexit",
    "end-pointer": "mov %r0, 0\nmov %r3, %r1\nadd %r3, %r2\nldxh %r0, [%r1+12]\nexit",
    "loop-r2": LOOP_OVER_R2.replace("jgt %r2, %r3, loop", "jgt %r3, 99, out\nja loop"),
    "pointer-walk": POINTER_WALK.replace("jgt %r4, %r3, out", "jeq %r4, %r3, out"),
}


@pytest.mark.parametrize(
    ("name", "text", "access"),
    [
        ("r2", GUARDED_BY_R2, 2),
        ("end-pointer", GUARDED_BY_END_POINTER, 6),
        ("loop-r2", LOOP_OVER_R2, 5),
        ("pointer-walk", POINTER_WALK, 6),
    ],
)
def test_guarded_access_verifies_and_unguarded_does_not(name: str, text: str, access: int) -> None:
    prog = asm(text)
    assert prog.at(access).spec.op == "ldx"
    verify(prog, mem_size=None)
    unguarded = asm(UNGUARDED[name])
    (load,) = [pc for pc, insn in unguarded if insn.spec.op == "ldx"]
    result = analyze(unguarded, mem_size=None)
    assert result.unproven == {load}
    with pytest.raises(VerifierError, match=re.escape(unguarded.describe(load)) + ".*cannot prove"):
        verify(unguarded, mem_size=None)


def test_only_unsigned_pointer_comparisons_bound_the_buffer() -> None:
    # signed order and jset of two addresses depend on the buffer's address, not just the offsets
    for cond in ("jsgt", "jset"):
        prog = asm(GUARDED_BY_END_POINTER.replace("jgt %r4, %r3", f"{cond} %r4, %r3"))
        assert analyze(prog).unproven == {6}, cond


def test_guard_too_small_for_the_access() -> None:
    prog = asm(GUARDED_BY_R2.replace("jlt %r2, 4", "jlt %r2, 3"))
    assert analyze(prog).unproven == {2}  # len >= 3 does not cover a 4-byte load


def test_wrong_direction_guard() -> None:
    wrong = GUARDED_BY_R2.replace("jlt %r2, 4", "jge %r2, 4")  # the load runs only when len < 4
    reject(wrong, 2, "out of bounds")  # 4 bytes never fit in fewer than 4
    assert analyze(asm(wrong.replace("ldxw", "ldxb"))).unproven == {2}  # 1 byte fits if len is 1..3


def test_guard_is_path_sensitive() -> None:
    prog = asm(
        """
        ldxb %r6, [%r1]
        jeq %r6, 0, skip
        jlt %r2, 8, out
        skip:
        ldxdw %r0, [%r1]
        out:
        mov %r0, 0
        exit
        """.replace("        ", "")
    )
    result = analyze(prog, mem_size=None)
    assert result.unproven == {0, 3}  # the byte read is unguarded; the jeq path skips the length check


# --- pointers -------------------------------------------------------------------------


def test_scalar_used_as_pointer() -> None:
    reject("mov %r3, 4096\nldxb %r0, [%r3]\nexit", 1, "%r3 is the scalar 0x1000, not a pointer")
    reject("mov %r3, 0\nstb [%r3], 1\nmov %r0, 0\nexit", 1, "null pointer")


def test_pointer_arithmetic_that_loses_provenance() -> None:
    reject("mov %r3, %r1\nand %r3, -8\nldxb %r0, [%r3]\nexit", 2, "provenance was lost", "(and %r3, -8)")
    reject("mov %r3, %r1\nadd32 %r3, 1\nldxb %r0, [%r3]\nexit", 2, "provenance was lost", "(add32 %r3, 1)")
    reject("mov32 %r3, %r10\nldxb %r0, [%r3-1]\nexit", 1, "provenance was lost")
    reject("mov %r3, 8\nsub %r3, %r10\nldxb %r0, [%r3]\nexit", 2, "provenance was lost")


def test_pointer_difference_is_a_scalar() -> None:
    text = "mov %r3, %r1\nadd %r3, 6\nsub %r3, %r1\nmov %r0, %r3\nldxb %r4, [%r3]\nexit"
    reject(text, 4, "%r3 is the scalar 0x6, not a pointer")


def test_pointer_stored_in_the_buffer_comes_back_as_data() -> None:
    reject("stxdw [%r1], %r10\nldxdw %r3, [%r1]\nldxb %r0, [%r3-1]\nexit", 2, "not a pointer", mem_size=8)


# --- maps and helper arguments --------------------------------------------------------


def map_lookup_elem(*_args: int) -> int:  # named like the Linux helper: its prototype applies
    return 0


def map_program(body: str, value_size: int = 8, flags: int = 0) -> Program:
    prog = asm("lddw.mapfd %r1, 0\nmov %r2, %r10\nadd %r2, -4\n" + body)
    prog.maps = {"m": create_map("m", 2, 4, value_size, 4, flags)}  # an array map: 4-byte keys
    return prog


LOOKUP = {1: map_lookup_elem}


def test_map_value_needs_a_null_check() -> None:
    reject(map_program("stw [%r2], 0\ncall 1\nldxw %r0, [%r0]\nexit"), 6, "may be null", helpers=LOOKUP)
    checked = map_program("stw [%r2], 0\ncall 1\njeq %r0, 0, +1\nldxw %r0, [%r0+4]\nexit")
    assert analyze(checked, helpers=LOOKUP).unproven == frozenset()
    reject(map_program("stw [%r2], 0\ncall 1\njeq %r0, 0, +1\nldxw %r0, [%r0+6]\nexit"), 7, "out of bounds", "8 bytes",
           helpers=LOOKUP)  # fmt: skip


def test_null_check_applies_to_copies() -> None:
    text = "stw [%r2], 0\ncall 1\nmov %r6, %r0\njne %r0, 0, +1\nexit\nldxdw %r0, [%r6]\nexit"
    assert analyze(map_program(text), helpers=LOOKUP).unproven == frozenset()


def test_arithmetic_on_possibly_null_pointer() -> None:
    reject(map_program("stw [%r2], 0\ncall 1\nadd %r0, 4\nexit"), 6, "may be null", helpers=LOOKUP)


def test_map_pointer_cannot_be_dereferenced() -> None:
    reject(map_program("ldxw %r0, [%r1]\nexit"), 4, "map pointer", helpers=LOOKUP)


def test_helper_argument_kinds() -> None:
    reject(map_program("stw [%r2], 0\nmov %r1, 0\ncall 1\nexit"), 6, "%r1 of map_lookup_elem must be a map pointer",
           helpers=LOOKUP)  # fmt: skip
    reject(map_program("call 1\nexit"), 4, "key", "not initialised", helpers=LOOKUP)  # the key was never written
    reject(map_program("mov %r2, 1\ncall 1\nexit"), 5, "%r2 of map_lookup_elem must be a pointer", helpers=LOOKUP)


def test_prototypes_apply_only_to_helpers_with_that_meaning() -> None:
    # id 1 is uBPF's memfrob in the conformance harness: no Linux prototype for a helper named otherwise
    def memfrob(*_args: int) -> int:
        return 0

    assert analyze(asm("mov %r1, 0\ncall 1\nexit"), helpers={1: memfrob}).unproven == frozenset()
    reject("mov %r1, 0\ncall 1\nexit", 1, "must be a map pointer", helpers={1: map_lookup_elem})
    assert HELPER_PROTOTYPES[1].name == "map_lookup_elem"


def test_read_only_map_value() -> None:
    prog = asm("lddw.mapval %r1, 0\nstw [%r1], 1\nmov %r0, 0\nexit")
    prog.maps = {".rodata": create_map(".rodata", 2, 4, 16, 1, BPF_F_RDONLY_PROG)}
    reject(prog, 2, "read-only")
    prog.maps = {".data": create_map(".data", 2, 4, 16, 1)}
    assert analyze(prog).unproven == frozenset()


def test_map_value_of_unknown_size_is_unproven() -> None:
    result = analyze(asm("lddw.mapval %r1, 0\nldxw %r0, [%r1+8]\nexit"))  # no prog.maps: size unknown
    assert result.unproven == {2}
    assert result.regions[2] == {Region.MAP_VALUE}


def test_subprogram_returning_its_stack() -> None:
    reject("call local f\nexit\nf:\nmov %r0, %r10\nexit", 3, "pointer to its own stack frame")


def test_callee_reads_the_callers_stack_through_a_pointer() -> None:
    text = "stdw [%r10-8], 3\nmov %r1, %r10\nadd %r1, -8\ncall local f\nexit\nf:\nldxdw %r0, [%r1]\nexit"
    assert analyze(asm(text)).unproven == frozenset()
    reject(text.replace("stdw [%r10-8], 3\n", "stdw [%r10-16], 3\n").replace("exit\nf:", "exit\nf:", 1), 5,
           "caller's frame", "not initialised")  # fmt: skip


# --- loops, pruning, statistics -----------------------------------------------------


def test_constant_bound_loop_over_a_known_buffer() -> None:
    text = "mov %r0, 0\nmov %r3, 0\nloop:\nmov %r4, %r1\nadd %r4, %r3\nldxb %r5, [%r4]\nadd %r0, %r5\n"
    text += "add %r3, 1\njlt %r3, 16, loop\nexit"
    result = verify(asm(text), mem_size=16)
    assert result.insns_processed > 7  # the loop body was simulated more than once
    assert analyze(asm(text), mem_size=15).unproven == {4}  # mem[15] is past a 15-byte buffer


def test_infinite_loop_terminates_verification() -> None:
    result = analyze(asm("mov %r0, 0\nloop:\nadd %r0, 1\nja loop"))
    assert result.insns_processed < 100


def test_states_are_pruned_at_joins() -> None:
    # comparing two unknown bytes teaches nothing: both edges of each jne reach the
    # next instruction in the same state, so the second arrival is pruned
    diamond = "mov %r0, 0\nldxb %r3, [%r1]\nldxb %r4, [%r1+1]\n" + "jne %r3, %r4, +0\n" * 20 + "exit"
    result = analyze(asm(diamond), mem_size=2)
    assert result.states_pruned == 20
    assert result.insns_processed == 24  # each instruction once


# --- soundness: proven accesses never fault ------------------------------------------

_REGS = ("%r3", "%r4", "%r5")


@st.composite
def guarded_programs(draw: st.DrawFn) -> str:
    """Code over R1, R2, scalars and stack spills, with forward branches and
    optionally a counted loop around it all (R9 counts)."""
    loop = draw(st.integers(0, 4))  # iterations beyond the first, 0: no loop
    lines = ["mov %r0, 0", "mov %r3, 0", "mov %r4, 0", "mov %r5, 0", "mov %r6, %r1", "mov %r9, 0"]
    lines += ["stxdw [%r10-8], %r6", "stxdw [%r10-16], %r3"] + (["top:"] if loop else [])
    for index in range(draw(st.integers(4, 14))):
        kinds = ["alu", "alu", "ptr", "cmp", "cmp", "load", "load", "store", "endptr", "spill", "atomic"]
        kind = draw(st.sampled_from(kinds))
        reg = draw(st.sampled_from(_REGS))
        if kind == "alu":
            op = draw(st.sampled_from(["add", "sub", "and", "rsh", "mov", "lsh", "add32", "mov32", "and32", "rsh32"]))
            operand = draw(st.one_of(st.integers(-20, 40).map(str), st.sampled_from([*_REGS, "%r2"])))
            lines.append(f"{op} {reg}, {operand}")
        elif kind == "ptr":
            lines += ["mov %r6, %r1", f"add %r6, {reg}"]
        elif kind == "endptr":
            lines += ["mov %r7, %r1", "add %r7, %r2", "mov %r8, %r6", f"add %r8, {draw(st.integers(0, 9))}"]
            lines.append(f"j{draw(st.sampled_from(['gt', 'ge', 'lt', 'le']))} %r8, %r7, L{index}")
        elif kind == "cmp":
            conditions = ["jgt", "jge", "jlt", "jle", "jeq", "jne", "jsgt", "jslt"]
            cond = draw(st.sampled_from([*conditions, *(f"{c}32" for c in conditions)]))
            other = draw(st.one_of(st.integers(-2, 40).map(str), st.sampled_from([*_REGS, "%r2"])))
            left, right = (reg, other) if draw(st.booleans()) or not other.startswith("%") else (other, reg)
            lines.append(f"{cond} {left}, {right}, L{index}")
        elif kind == "load":
            size = draw(st.sampled_from(["b", "h", "w", "dw"]))
            base = draw(st.sampled_from(["%r1", "%r6"]))
            dest = draw(st.sampled_from([*_REGS, "%r0"]))
            lines.append(f"ldx{size} {dest}, [{base}{draw(st.integers(-2, 12)):+d}]")
        elif kind == "store":
            size = draw(st.sampled_from(["b", "h", "w", "dw"]))
            lines.append(f"st{size} [%r6{draw(st.integers(-2, 12)):+d}], 7")
        elif kind == "atomic":
            op = draw(st.sampled_from(["lock add", "lock add32", "lock fetch or32", "lock xchg"]))
            lines.append(f"{op} [%r6{draw(st.integers(-2, 12)):+d}], {reg}")
        else:
            slot, value = draw(st.sampled_from([-8, -16, -12])), draw(st.sampled_from(["%r6", reg]))
            lines.append(draw(st.sampled_from([f"stxdw [%r10{slot}], {value}", f"ldxdw {value}, [%r10{slot}]"])))
        if kind in ("cmp", "endptr"):
            lines.append(f"L{index}:")
    # move each label some way down, so that branches skip code (but never the loop counter)
    out: list[str] = []
    pending: list[str] = []
    for line in lines:
        if line.startswith("L"):
            pending.append(line)
            continue
        out.append(line)
        if pending and draw(st.booleans()):
            out += pending
            pending = []
    out += pending
    if loop:
        out += ["add %r9, 1", f"jlt %r9, {loop + 1}, top"]
    return "\n".join([*out, "exit"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=guarded_programs(), lengths=st.lists(st.integers(0, 40), min_size=1, max_size=4), data=st.data())
def test_proven_accesses_never_fault(text: str, lengths: list[int], data: st.DataObject) -> None:
    prog = asm(text)
    for mem_size in (None, lengths[0]):
        try:
            result = analyze(prog, mem_size=mem_size)
        except VerifierError:
            continue
        for length in lengths if mem_size is None else lengths[:1]:
            mem = bytearray(data.draw(st.binary(min_size=length, max_size=length)))
            try:
                jit.interpret(prog, mem, max_steps=10_000)  # the programs end within a few hundred steps
            except MemoryAccessError as error:
                proven = result.imprecise is None and error.pc not in result.unproven  # imprecise: nothing proven
                assert not proven, f"proven access faulted with len {length}: {error}\n{text}"


# --- the conformance suite and the benchmark programs ------------------------------------

CONFORMANCE = conformance_files()


@pytest.mark.skipif(not CONFORMANCE, reason="conformance suite not found (set BPF_CONFORMANCE_DIR)")
@pytest.mark.parametrize("path", CONFORMANCE, ids=[p.stem for p in CONFORMANCE])
def test_conformance_program_verifies(path: Path) -> None:
    from jit.frontend.conformance import load

    case = load(path)
    mem_size = len(case.mem) if case.mem else 0
    result = analyze(case.program, mem_size=mem_size)
    # every conformance program is provably safe with its buffer's size (see the report)
    assert result.unproven == frozenset(), dict(result.notes)
    assert jit.verify(case.program, mem_size=mem_size).unproven == frozenset()
    # as jit.compile sees it (length unknown): accepted; only unguarded buffer accesses are unproven
    unknown_length = analyze(case.program)
    for pc in unknown_length.unproven:
        assert unknown_length.regions[pc] == {Region.BUF}, unknown_length.notes[pc]
    if not case.mem:
        assert unknown_length.unproven == frozenset()


@pytest.mark.skipif(not BENCH_PROGRAMS, reason="no benchmark programs in bench/programs")
@pytest.mark.parametrize("path", BENCH_PROGRAMS, ids=[p.stem for p in BENCH_PROGRAMS])
def test_benchmark_program_analyzes(path: Path) -> None:
    prog = Program.from_bytes(path.read_bytes(), name=path.stem)
    start = time.perf_counter()
    result = analyze(prog)  # the length is R2, known only at run time
    elapsed = time.perf_counter() - start
    print(f"{path.stem}: {len(prog)} slots, {result.insns_processed} processed, {len(result.unproven)} unproven,"
          f" {elapsed * 1000:.1f} ms")  # fmt: skip
    assert result.insns_processed >= len(prog) - 1
    for pc in result.unproven:
        assert prog.at(pc).spec.form in (isa.Form.LOAD, isa.Form.STORE_X, isa.Form.STORE_K, isa.Form.ATOMIC)


# Benchmarks whose every access is guarded by a comparison with the length (read from the C source).
@pytest.mark.parametrize("name", ["crc32", "inet_checksum", "prime", "simple", "memory_a_plus_b"])
def test_benchmarks_guarded_by_len_verify_strictly(name: str) -> None:
    path = REPO / "bench" / "programs" / f"{name}.bin"
    if not path.exists():
        pytest.skip(f"{path} not built")
    verify(Program.from_bytes(path.read_bytes()), mem_size=None)


# --- precision: path-sensitive second pass, exact and imprecise violations ------------------

STACK_FILL = """
mov %r6, %r10
mov %r3, 0
fill:
add %r6, -8
stxdw [%r6+0], %r3
add %r3, 1
jlt %r3, 64, fill
mov %r0, 0
mov %r6, %r10
mov %r3, 0
sum:
add %r6, -8
ldxdw %r4, [%r6+0]
add %r0, %r4
add %r3, 1
jlt %r3, 64, sum
exit
"""


def test_a_bounded_loop_filling_the_whole_stack_is_accepted() -> None:
    """The 64 iterations are simulated one by one: every byte read was written."""
    result = jit.verify(STACK_FILL)
    assert result.proven and result.imprecise is None
    for arch in ("x86_64", "arm64"):
        assert jit.compile(STACK_FILL, arch=arch)() == sum(range(64))


def test_every_fill_of_a_spilled_pointer_is_the_pointer() -> None:
    text = "stxdw [%r10-8], %r1\nldxdw %r9, [%r10-8]\nldxdw %r6, [%r10-8]\nstb [%r6+0], 255\nmov %r0, 0\nexit"
    assert jit.verify(text, mem_size=1).proven
    mem = bytearray(1)
    assert jit.compile(text)(mem) == 0 and mem == b"\xff"


def _correlated(diamonds: int, read: str = "ldxdw %r0, [%r10-8]") -> str:
    """Sets r6 to a pointer or to 0 and uses it under the same condition, with
    ``diamonds`` unrelated branches in between (each doubling the paths)."""
    text = "ldxb %r3, [%r1]\nmov %r5, 0\nmov %r6, 0\njeq %r3, 0, +1\nmov %r6, %r1\nmov %r0, 0\n"
    for index in range(diamonds):
        text += f"ldxb %r4, [%r1+{index + 1}]\njeq %r4, 0, +1\nadd %r5, {1 << index}\n"
    return text + "jeq %r3, 0, +1\nldxb %r0, [%r6+7]\nexit"


def test_paths_kept_apart_prove_a_correlated_access() -> None:
    assert jit.verify(_correlated(1), mem_size=8).proven


def test_a_violation_found_only_after_joining_is_not_a_rejection() -> None:
    """Too many paths to keep apart: r6 looks like a scalar on the joined
    state. jit.verify refuses (not proven); jit.compile runs the program with
    every access checked and a zeroed stack instead."""
    text = _correlated(5)
    result = analyze(asm(text), mem_size=8)
    assert result.imprecise is not None and "not a pointer" in result.imprecise
    assert not result.proven
    with pytest.raises(VerifierError, match="not proven"):
        jit.verify(text, mem_size=8)
    for arch in ("x86_64", "arm64"):
        fn = jit.compile(text, arch=arch)
        assert fn.native.checked == {pc for pc, insn in fn.native.prog if insn.spec.access is not None}
        assert fn(bytes([1, 0, 0, 0, 0, 0, 0, 9])) == 9
        assert fn(bytes(8)) == 0
        assert fn(bytes([1] * 8)) == jit.interpret(text, mem=bytes([1] * 8)) == 1


def test_what_linux_refuses_but_every_engine_defines_compiles() -> None:
    """Uninitialised reads (a zeroed stack makes them 0) and dead code: the
    strict verifier refuses them, jit.compile runs them alike on every engine."""
    cases = {
        "ldxdw %r0, [%r10-8]\nexit": ("not initialised", 0),
        "mov %r0, 1\nexit\nmov %r0, 2\nexit": ("unreachable", 1),
        "mov %r0, %r7\nexit": ("not initialised", 0),
    }
    for text, (words, expected) in cases.items():
        result = analyze(asm(text))
        assert result.lenient and not result.proven and not result.unproven
        with pytest.raises(VerifierError, match=words):
            jit.verify(text)
        assert jit.interpret(text) == expected
        for arch in ("x86_64", "arm64"):
            assert jit.compile(text, arch=arch)() == expected


def test_a_violation_on_an_exact_path_is_rejected_with_its_path() -> None:
    text = "ldxb %r3, [%r1]\njeq %r3, 0, +1\nstdw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit"
    message = reject(text, 3, "not initialised", mem_size=1)
    assert path_of(message) == [0, 1, 3]


def test_jset32_not_taken_clears_the_tested_low_bits() -> None:
    """As in Linux's jset.c cases: after `if (w3 & ~7) goto out`, w3 is 0..7."""
    text = "ldxdw %r3, [%r1]\njset32 %r3, 0xfffffff8, +5\nmov32 %r3, %r3\nmov %r4, %r1\nadd %r4, %r3\n"
    text += "ldxb %r0, [%r4]\nexit\nmov %r0, 0\nexit"
    assert analyze(asm(text), mem_size=8).unproven == set()
    assert analyze(asm(text.replace("jset32", "jset")), mem_size=8).unproven == set()
    assert analyze(asm(text.replace("0xfffffff8", "0xfffffff0")), mem_size=8).unproven == {5}


def test_jset32_on_known_zero_low_bits_is_never_taken() -> None:
    """The low half of r3 << 32 is zero: the branch to the uninitialised read is dead."""
    text = "ldxdw %r3, [%r1]\nlsh %r3, 32\njset32 %r3, 0xffffffff, +2\nmov %r0, 0\nexit\nldxdw %r0, [%r10-8]\nexit"
    assert analyze(asm(text), mem_size=8).proven
    reject(text.replace("jset32", "jset"), 5, "not initialised", mem_size=8)


# --- generated run-time-safe programs ---------------------------------------------------


def test_generated_run_time_safe_programs_compile_and_agree() -> None:
    """The differential generator's programs run correctly on every engine
    with verify=False; jit.compile's default settings must accept them too."""
    from jit.tools import fuzz

    rng = random.Random(11)
    compiled = 0
    for _ in range(120):
        case = fuzz.generate(rng)
        text, mem = case.program(), bytes(case.mem_size)
        try:
            want = jit.interpret(text, mem=mem, helpers=fuzz.FUZZ_HELPERS, max_steps=100_000)
        except jit.BpfError:
            continue  # not run-time safe: nothing to require
        for arch in ("x86_64", "arm64"):
            assert jit.compile(text, arch=arch, helpers=fuzz.FUZZ_HELPERS)(mem) == want, text
        compiled += 1
    assert compiled >= 100


def test_a_pointer_forgotten_at_an_unknown_helper_is_checked_not_refused() -> None:
    """A helper without a prototype, given a stack pointer, may have overwritten
    the frame: the spilled pointer is forgotten. That is imprecision, not a
    violation: jit.compile checks the access at run time, jit.verify refuses."""
    helpers = {100: lambda a, b, c, d, e: a + 1}
    text = "stxdw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -16\nstdw [%r10-16], 0\ncall 100\n"
    text += "ldxdw %r2, [%r10-8]\nldxb %r0, [%r2]\nexit"
    with pytest.raises(VerifierError, match="not proven"):
        jit.verify(text, mem_size=1, helpers=helpers)
    for arch in ("x86_64", "arm64"):
        fn = jit.compile(text, helpers=helpers, arch=arch)
        assert fn.verification.imprecise is not None and 6 in fn.native.checked
        assert fn(b"\x07") == 7
    untouched = text.replace("mov %r1, %r10\nadd %r1, -16\n", "mov %r1, 5\n")  # no stack pointer given
    assert jit.verify(untouched, mem_size=1, helpers=helpers).proven
