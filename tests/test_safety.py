"""Safe execution on every engine: run-time bounds checks and max_steps.

Each bad access gives a jit.MemoryAccessError naming the instruction on every
engine of ``jit.engines()`` (the interpreter checks every access; the
JITs check where ``jit.compile(bounds_check=...)`` put a check, see
jit/safety.py), or a jit.VerifierError at compile time when the verifier sees
the violation statically. Programs safe thanks to a bounds comparison run
without checks at those accesses. Expected values are worked out by hand.
"""

from __future__ import annotations

import ctypes
import dataclasses
from pathlib import Path

import pytest
from conftest import conformance_files

import jit
from jit.core.abi import Check
from jit.frontend.conformance import load
from jit.frontend.program import Program
from jit.runtime.emulated import EmulatedProgram
from jit.tools.engines import Engine, engines

FIXTURES = Path(__file__).parent / "fixtures"
ENGINES = engines()
COMPILED = [engine for engine in ENGINES if engine.arch is not None]
MODES = [{"bounds_check": "auto"}, {"bounds_check": True}]
UNVERIFIED = [{"verify": False, "bounds_check": "auto"}, {"verify": False, "bounds_check": True}]


def ids(engines_: list[Engine]) -> dict:
    return {"argvalues": engines_, "ids": [engine.name for engine in engines_]}


def run(engine: Engine, prog: str | Program, mem: bytearray | None = None, **options) -> int:
    return engine.prepare(prog, **options)(mem)


def expect_memory_error(engine: Engine, prog: str | Program, mem, pc: int, text: str, **options) -> str:
    """Run; the MemoryAccessError must name instruction ``pc`` (``text``); returns its message."""
    with pytest.raises(jit.MemoryAccessError) as err:
        run(engine, prog, mem, **options)
    assert err.value.pc == pc
    assert f"instruction {pc} ({text})" in str(err.value)
    return str(err.value)


def buffer_address(fn: jit.runtime.CompiledProgram, buf: bytearray) -> int:
    """Where ``buf`` lies while ``fn`` runs on it (native: in place; emulated: below MEM_TOP)."""
    if isinstance(fn, EmulatedProgram):
        return fn.regions(len(buf))["mem"][0]
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


# --- the input buffer -------------------------------------------------------------


@pytest.mark.parametrize("options", MODES, ids=["auto", "all"])
@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_buffer_read_past_the_end(engine: Engine, options: dict) -> None:
    # 8-byte buffer: bytes 4..7 are in bounds, 6..9 are not
    mem = bytearray(range(1, 9))
    assert run(engine, "ldxw %r0, [%r1+4]\nexit", mem, **options) == 0x08070605
    message = expect_memory_error(engine, "ldxw %r0, [%r1+6]\nexit", mem, 0, "ldxw %r0, [%r1+6]", **options)
    if engine.arch is not None:
        fn = engine.prepare("ldxw %r0, [%r1+6]\nexit", **options)
        with pytest.raises(jit.MemoryAccessError) as err:
            fn(mem)
        address = buffer_address(fn, mem) + 6
        assert f"load of 4 bytes at 0x{address:x} is outside the input buffer" in str(err.value)
    else:
        assert "load of 4 bytes" in message


@pytest.mark.parametrize("options", MODES, ids=["auto", "all"])
@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_buffer_write_past_the_end_leaves_the_buffer_alone(engine: Engine, options: dict) -> None:
    mem = bytearray(8)
    store = "stw [%r1+5], 0x7fffffff\nmov %r0, 0\nexit"
    expect_memory_error(engine, store, mem, 0, "stw [%r1+5], 0x7fffffff", **options)
    assert mem == bytearray(8)
    assert run(engine, "stw [%r1+4], 0x01020304\nmov %r0, 0\nexit", mem, **options) == 0
    assert mem == bytearray([0, 0, 0, 0, 4, 3, 2, 1])


@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_no_buffer_means_no_buffer_access(engine: Engine) -> None:
    expect_memory_error(engine, "ldxb %r0, [%r1]\nexit", None, 0, "ldxb %r0, [%r1]")


# --- the stack --------------------------------------------------------------------

# R3 = R10 - mem[0]: the store at R3 - 300 lands 300..555 bytes below the frame
# top, inside the 512-byte frame only while mem[0] <= 212 (offset >= -512).
BELOW_FRAME = "ldxb %r2, [%r1]\nmov %r3, %r10\nsub %r3, %r2\nstb [%r3-300], 1\nmov %r0, 0\nexit"


@pytest.mark.parametrize("options", MODES, ids=["auto", "all"])
@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_stack_store_below_the_frame(engine: Engine, options: dict) -> None:
    assert run(engine, BELOW_FRAME, bytearray([212]), **options) == 0  # offset -512: the frame's first byte
    expect_memory_error(engine, BELOW_FRAME, bytearray([213]), 3, "stb [%r3-300], 1", **options)
    expect_memory_error(engine, BELOW_FRAME, bytearray([255]), 3, "stb [%r3-300], 1", **options)


def test_stack_store_below_the_frame_is_checked_only_there() -> None:
    fn = jit.compile(BELOW_FRAME)
    # slot 0 reads a buffer of unknown size; slot 3 is the variable stack offset
    assert fn.native.checks == {0: Check.MEM, 3: Check.FRAME}
    assert fn.verification is not None and fn.verification.unproven == {0, 3}


# The callee stores at its R10 - 8 + mem[0]: mem[0] = 16 lands 8 bytes above
# its frame, in the caller's frame (the caller's [R10-504]), which the caller
# then reads back as the low byte of [R10-504] (its stack starts zeroed).
INTO_CALLER = """
    stdw [%r10-504], 0
    ldxb %r1, [%r1]
    call local +2
    ldxdw %r0, [%r10-504]
    exit
    mov %r3, %r10
    add %r3, %r1
    stb [%r3-8], 9
    mov %r0, 0
    exit
"""


@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_unproven_store_above_a_callee_frame(engine: Engine) -> None:
    """bounds_check=True allows every active frame (as the interpreter does);
    "auto" confines an access the verifier could not prove to the current
    frame, so a stray store cannot overwrite a pointer spilled by a caller."""
    assert run(engine, INTO_CALLER, bytearray([0]), bounds_check=True) == 0  # the callee's own [R10-8]
    assert run(engine, INTO_CALLER, bytearray([16]), bounds_check=True) == 9
    if engine.arch is None:
        return
    assert run(engine, INTO_CALLER, bytearray([0])) == 0
    message = expect_memory_error(engine, INTO_CALLER, bytearray([16]), 7, "stb [%r3-8], 9")
    assert "is outside the current stack frame" in message


@pytest.mark.parametrize("options", UNVERIFIED, ids=["auto", "all"])
@pytest.mark.parametrize("engine", **ids(COMPILED))
def test_unverified_stack_accesses_outside_the_frame(engine: Engine, options: dict) -> None:
    """R10-relative accesses the verifier would reject, checked at run time."""
    assert run(engine, "stdw [%r10-512], 7\nldxdw %r0, [%r10-512]\nexit", **options) == 7
    expect_memory_error(engine, "ldxdw %r0, [%r10+0]\nexit", None, 0, "ldxdw %r0, [%r10]", **options)
    expect_memory_error(engine, "stdw [%r10-520], 1\nexit", None, 0, "stdw [%r10-520], 1", **options)
    expect_memory_error(engine, "ldxw %r0, [%r10-2]\nexit", None, 0, "ldxw %r0, [%r10-2]", **options)


# --- bogus pointers -------------------------------------------------------------------

BOGUS = "lddw %r2, 0x1234\nstxdw [%r2+8], %r1\nmov %r0, 0\nexit"
WRAPPING = "lddw %r2, 0xfffffffffffffffe\nldxdw %r0, [%r2+0]\nexit"  # [addr, addr + 8) wraps around


@pytest.mark.parametrize("engine", **ids(COMPILED))
def test_bogus_pointer_is_rejected_by_the_verifier(engine: Engine) -> None:
    with pytest.raises(jit.VerifierError, match=r"instruction 2 \(stxdw \[%r2\+8\], %r1\).*not a pointer"):
        engine.prepare(BOGUS)


@pytest.mark.parametrize("options", UNVERIFIED, ids=["auto", "all"])
@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_bogus_pointer_unverified(engine: Engine, options: dict) -> None:
    message = expect_memory_error(engine, BOGUS, bytearray(16), 2, "stxdw [%r2+8], %r1", **options)
    assert "0x123c" in message
    message = expect_memory_error(engine, WRAPPING, None, 2, "ldxdw %r0, [%r2]", **options)
    assert "0xfffffffffffffffe" in message
    if engine.arch is not None:
        assert "is outside the input buffer, the active stack frames and the program's memory blocks" in message


# --- program memory: read-only globals, map values ------------------------------------


def _globals() -> Program:
    return jit.Program.from_elf(FIXTURES / "globals.o")


def _rodata_program(tail: str) -> Program:
    """``lddw %r1, <.rodata of globals.o>`` (factor = 3 at offset 0) followed by ``tail``."""
    source = _globals()
    rodata = next(r for r in source.relocations if r.map == ".rodata" and r.offset == 0)
    body = jit.assemble(tail).instructions
    return Program(
        (source.at(rodata.pc), *body),
        name="rodata",
        maps=source.maps,
        memory=source.memory,
        relocations=(dataclasses.replace(rodata, pc=0),),
    )


@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_read_only_global(engine: Engine) -> None:
    reads = _rodata_program("ldxw %r0, [%r1]\nexit")
    writes = _rodata_program("ldxw %r0, [%r1]\nstw [%r1], 7\nexit")
    assert run(engine, reads) == 3
    assert run(engine, reads, bounds_check=True) == 3
    if engine.arch is not None:
        with pytest.raises(jit.VerifierError, match=r"instruction 3 \(stw \[%r1\], 7\).*read-only"):
            engine.prepare(writes)
    for options in UNVERIFIED:
        message = expect_memory_error(engine, writes, None, 3, "stw [%r1], 7", **options)
        assert "read-only" in message
    assert run(engine, reads) == 3  # the value is unchanged


@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_globals_fixture_runs_with_every_access_checked(engine: Engine) -> None:
    """globals.o loads and stores .data, .bss and .rodata (tests/test_elf.py works
    out the values): calls 5 -> 6, total += len * 3, R0 = calls."""
    prog = _globals()
    assert run(engine, prog, bytearray(10), bounds_check=True) == 6
    assert run(engine, prog, bytearray(10), bounds_check=True) == 7  # globals persist across runs


# A hash-map lookup of a missing key returns NULL; the program dereferences it.
def _null_deref() -> Program:
    source = jit.Program.from_elf(FIXTURES / "xdp_counter.o", section="xdp")
    lookup = next(r for r in source.relocations if r.kind == "map")
    head = jit.assemble("stw [%r10-4], 7\nmov %r2, %r10\nadd %r2, -4").instructions
    tail = jit.assemble("call 1\nldxdw %r0, [%r0]\nexit").instructions
    return Program(
        (*head, source.at(lookup.pc), *tail),
        name="null_deref",
        maps=source.maps,
        memory=source.memory,
        relocations=(dataclasses.replace(lookup, pc=3),),
    )


@pytest.mark.parametrize("engine", **ids(COMPILED))
@pytest.mark.parametrize("options", MODES, ids=["auto", "all"])
def test_null_map_value_is_rejected_at_compile_time(engine: Engine, options: dict) -> None:
    with pytest.raises(jit.VerifierError) as err:
        engine.prepare(_null_deref(), **options)
    assert "instruction 6 (ldxdw %r0, [%r0])" in str(err.value)
    assert "may be null (a map lookup result): compare it with 0 first" in str(err.value)


@pytest.mark.parametrize("options", UNVERIFIED, ids=["auto", "all"])
@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_null_map_value_unverified(engine: Engine, options: dict) -> None:
    message = expect_memory_error(engine, _null_deref(), None, 6, "ldxdw %r0, [%r0]", **options)
    assert "at 0x0 " in message


@pytest.mark.parametrize("engine", **ids([e for e in ENGINES if e.arch is None or e.emulated]))
def test_null_map_value_unchecked_is_still_caught_by_the_emulator(engine: Engine) -> None:
    """bounds_check=False with verify=False trusts the program: native code
    would dereference NULL (it is not run here); unicorn faults instead."""
    expect_memory_error(engine, _null_deref(), None, 6, "ldxdw %r0, [%r0]", verify=False, bounds_check=False)


# --- atomics ----------------------------------------------------------------------------

# R3 = R10 - 16 + (mem[0] & 4): the atomic add is 8-byte aligned only for mem[0] & 4 == 0.
MISALIGNED = """
    stdw [%r10-16], 40
    stdw [%r10-8], 0
    ldxb %r2, [%r1]
    and %r2, 4
    mov %r3, %r10
    add %r3, -16
    add %r3, %r2
    mov %r4, 2
    lock add [%r3], %r4
    ldxdw %r0, [%r10-16]
    exit
"""


@pytest.mark.parametrize("options", MODES, ids=["auto", "all"])
@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_misaligned_atomic(engine: Engine, options: dict) -> None:
    assert run(engine, MISALIGNED, bytearray([0]), **options) == 42
    message = expect_memory_error(engine, MISALIGNED, bytearray([4]), 8, "lock add [%r3], %r4", **options)
    assert "aligned" in message


@pytest.mark.parametrize("engine", **ids(COMPILED))
def test_statically_misaligned_atomic_is_a_verifier_error(engine: Engine) -> None:
    text = "stdw [%r10-16], 0\nstdw [%r10-8], 0\nmov %r1, 1\nlock add [%r10-12], %r1\nmov %r0, 0\nexit"
    with pytest.raises(jit.VerifierError, match=r"instruction 3 \(lock add \[%r10-12\], %r1\).*aligned"):
        engine.prepare(text)


# --- checks only where needed ------------------------------------------------------------

# Safe thanks to a comparison with R2 (slots 2, 3), or with an end pointer
# R1 + R2 (slot 9).
GUARDED = """
    mov %r0, 0
    jlt %r2, 8, +8
    ldxdw %r0, [%r1]
    ldxw %r3, [%r1+4]
    mov %r4, %r1
    add %r4, %r2
    mov %r5, %r1
    add %r5, 12
    jgt %r5, %r4, +1
    ldxw %r0, [%r1+8]
    exit
"""


@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_accesses_proven_by_comparisons_run_everywhere(engine: Engine) -> None:
    assert run(engine, GUARDED, bytearray(7)) == 0  # shorter than 8: nothing is read, R0 stays 0
    assert run(engine, GUARDED, bytearray(range(1, 11))) == 0x0807060504030201  # 8 <= len < 12
    assert run(engine, GUARDED, bytearray(range(1, 13))) == 0x0C0B0A09  # len >= 12: bytes 8..11


def test_accesses_proven_by_comparisons_get_no_check() -> None:
    # Slot numbers: mov 0, jlt 1, ldxdw 2, ldxw 3, ..., ldxw [%r1+8] 9.
    assert jit.compile(GUARDED).native.checked == frozenset()
    assert jit.compile(GUARDED, bounds_check=True).native.checked == {2, 3, 9}
    assert jit.compile(GUARDED, bounds_check=False).native.checked == frozenset()
    unguarded = GUARDED.replace("ldxw %r0, [%r1+8]", "ldxw %r0, [%r1+9]")  # 13 bytes needed, 12 proven
    fn = jit.compile(unguarded)
    assert fn.native.checked == {9}
    assert fn.native.checks[9] == Check.MEM


def test_constant_stack_accesses_are_never_checked() -> None:
    prog = "stdw [%r10-8], 5\nldxdw %r0, [%r10-8]\nmov %r1, 1\nlock add [%r10-8], %r1\nexit"
    assert jit.compile(prog, bounds_check=True).native.checked == frozenset()
    assert jit.compile(prog, bounds_check=True, verify=False).native.checked == frozenset()


def test_bounds_check_argument_is_validated() -> None:
    for bad in ("yes", 1, None):
        with pytest.raises(jit.CompileError, match="bounds_check must be 'auto', True or False"):
            jit.compile("mov %r0, 0\nexit", bounds_check=bad)


# --- max_steps ----------------------------------------------------------------------------

# Adds 1 to R0 until it wraps around to 0: 2**64 iterations, a runaway loop.
RUNAWAY = "mov %r0, 0\nadd %r0, 1\njne %r0, 0, -2\nexit"


@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_max_steps_stops_a_runaway_loop(engine: Engine) -> None:
    with pytest.raises(jit.StepLimitError) as err:
        run(engine, RUNAWAY, max_steps=1000)
    # The interpreter counts instructions (mov, then add/jne pairs: the 1001st is
    # a jne); the JITs count back-edges (the 1001st execution of the jne).
    assert err.value.pc == 2
    assert "instruction 2 (jne %r0, 0, -2)" in str(err.value)


# Three local calls in a row, no loop: the JITs count the 3 calls, the interpreter
# the 11 instructions executed (slots 0 5 6 1 5 6 2 5 6 3 4).
CALLS = "call local +4\ncall local +3\ncall local +2\nmov %r0, 7\nexit\nmov %r0, 1\nexit"


@pytest.mark.parametrize("engine", **ids(ENGINES))
def test_max_steps_counts_calls_natively_and_instructions_in_the_interpreter(engine: Engine) -> None:
    assert run(engine, CALLS, max_steps=11 if engine.arch is None else 3) == 7
    with pytest.raises(jit.StepLimitError) as err:
        run(engine, CALLS, max_steps=10 if engine.arch is None else 2)
    assert err.value.pc == (4 if engine.arch is None else 2)  # the 11th instruction; the 3rd call


# --- the conformance suite with every access checked ------------------------------------

FILES = conformance_files()


@pytest.mark.parametrize("engine", **ids(COMPILED))
@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_conformance_with_every_access_checked(path: Path, engine: Engine) -> None:
    case = load(path)
    fn = engine.prepare(case.program, bounds_check=True)
    assert fn(case.mem) == case.expected
