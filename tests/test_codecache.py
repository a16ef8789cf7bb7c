"""The in-process code cache: a second compile of the same program with the same
settings reuses the first one's verification and machine code, and nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import jit
from jit.runtime.codecache import CACHE, CodeCache

FIXTURES = Path(__file__).parent / "fixtures"
LOOP = "ldxb %r3, [%r1]\nmov %r0, 0\nl:\nadd %r0, 1\njne %r0, %r3, l\nexit"


@pytest.fixture(autouse=True)
def empty_cache():
    CACHE.clear()
    yield
    CACHE.clear()


def test_the_same_program_compiles_once() -> None:
    first = jit.compile(LOOP)
    second = jit.compile(LOOP)
    assert (CACHE.misses, CACHE.hits) == (1, 1)
    assert second is not first and second.code == first.code
    assert second.verification is first.verification
    assert first(b"\x05") == second(b"\x05") == 5


def test_bytes_are_decoded_once_and_give_their_own_program() -> None:
    raw = jit.assemble(LOOP).to_bytes()
    first, second = jit.compile(raw), jit.compile(bytearray(raw))
    assert (CACHE.misses, CACHE.hits) == (1, 1)
    assert first.prog is not second.prog and first.prog == second.prog
    assert second(b"\x03") == 3


def test_cache_false_compiles_afresh() -> None:
    jit.compile(LOOP)
    jit.compile(LOOP, cache=False)
    assert (CACHE.misses, CACHE.hits) == (1, 0)


@pytest.mark.parametrize(
    "options",
    [
        {"max_steps": 100},
        {"bounds_check": True},
        {"verify": False},
        {"arch": "arm64", "emulate": True},
        {"fast_lookup": False, "bounds_check": False},
    ],
    ids=repr,
)
def test_any_setting_that_changes_the_code_misses(options: dict) -> None:
    base = jit.compile(LOOP)
    other = jit.compile(LOOP, **options)
    assert (CACHE.misses, CACHE.hits) == (2, 0)
    assert other(b"\x04") == base(b"\x04") == 4


def test_emulating_the_host_architecture_shares_the_code() -> None:
    native = jit.compile(LOOP, arch="x86_64")
    emulated = jit.compile(LOOP, arch="x86_64", emulate=True)
    assert CACHE.hits == 1 and emulated.code == native.code and emulated(b"\x02") == 2


def test_programs_with_their_own_maps_miss_and_keep_their_maps() -> None:
    packet = bytes(12) + b"\x08\x00" + b"\x45" + bytes(8) + b"\x06" + bytes(10)
    one = jit.Program.from_elf(FIXTURES / "xdp_counter.o", section="xdp")
    two = jit.Program.from_elf(FIXTURES / "xdp_counter.o", section="xdp")
    fn_one, fn_two = jit.compile(one), jit.compile(two)
    assert CACHE.hits == 0  # their maps live at different addresses
    fn_one(packet)
    fn_one(packet)
    fn_two(packet)
    assert one.maps["proto_count"].lookup(6) == (2).to_bytes(8, "little")
    assert two.maps["proto_count"].lookup(6) == (1).to_bytes(8, "little")
    again = jit.compile(one)
    assert CACHE.hits == 1 and again.prog is one
    again(packet)
    assert one.maps["proto_count"].lookup(6) == (3).to_bytes(8, "little")


def test_a_hit_reports_errors_and_traces_against_its_own_program() -> None:
    prog = jit.Program.from_elf(FIXTURES / "globals.o")
    again = jit.Program.from_elf(FIXTURES / "globals.o")
    jit.compile(prog)(b"abcd")
    fn = jit.compile(again)
    assert fn.prog is again and fn.native.prog is again
    fn(b"abcd")
    assert again.trace_log == ["call 6 total 12\n", "hello from globals\n"]


def test_a_refused_program_is_refused_again() -> None:
    bad = "ldxdw %r0, [%r2]\nexit"  # R2 holds the length, a scalar: not a pointer
    for _ in range(2):
        with pytest.raises(jit.VerifierError):
            jit.compile(bad)
    assert len(CACHE) == 0


def test_helpers_with_other_prototypes_miss() -> None:
    text = "mov %r1, 1\ncall 300\nexit"
    one = jit.compile(text, helpers={300: lambda a, b, c, d, e: a + 1})
    two = jit.compile(text, helpers={300: lambda a, b, c, d, e: a + 2})
    assert CACHE.hits == 1  # same id, name and prototype: same code, each its own helper
    assert (one(), two()) == (2, 3)


def test_the_cache_keeps_the_most_recent_programs() -> None:
    cache = CodeCache(size=2)
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") is None and cache.get("b") == "B"
    cache.put("d", "D")  # "c" is now the least recently used
    assert cache.get("c") is None and cache.get("b") == "B" and len(cache) == 2


def test_a_program_no_bytecode_can_hold_is_compiled_afresh() -> None:
    # a branch offset beyond 16 bits exists only in memory (tests of far branches build such programs)
    load, jump, one, seven, leave = jit.assemble(
        "ldxb %r2, [%r1]\njeq %r2, 0, +1\nmov %r0, 1\nmov %r0, 7\nexit"
    ).instructions
    far = jit.Program([load, dataclasses.replace(jump, off=33000), *[one] * 33000, seven, leave])
    for _ in range(2):
        assert jit.compile(far, verify=False)(b"\x00") == 7
    assert (CACHE.misses, CACHE.hits) == (0, 0)


def test_a_hit_reuses_the_code_facts_instead_of_walking_the_program_again() -> None:
    from jit.backends.base import CodeFacts

    text = "mov %r3, %r1\nstb [%r3+0], 1\ncall 5\nja -4\nexit"
    first = jit.compile(text, verify=False, helpers={5: lambda *a: 0})
    again = jit.compile(text, verify=False, helpers={5: lambda *a: 0})
    assert again.native.facts is first.native.facts
    assert first.native.facts == CodeFacts(helper_ids=frozenset({5}), loops=True, stores=True)
    assert CodeFacts.of(jit.assemble("stb [%r10-1], 1\ncall %r2\nexit")) == CodeFacts(None, False, False)
