"""Cases where engines used to disagree because the engines that run on a copy
(the interpreter, unicorn) placed it differently from the host buffer."""

from __future__ import annotations

import ctypes

import pytest

import jit

ENGINES = jit.engines()


def _options(engine) -> dict:
    return {} if engine.arch is None else {"verify": False}


def _skewed(skew: int, size: int = 16) -> memoryview:
    """``size`` bytes whose host address is ``skew`` past an 8-byte boundary."""
    backing = bytearray(size + 16)
    base = ctypes.addressof((ctypes.c_char * len(backing)).from_buffer(backing))
    start = (-base) % 8 + skew
    return memoryview(backing)[start : start + size]


@pytest.mark.parametrize("engine", ENGINES, ids=lambda engine: engine.name)
@pytest.mark.parametrize("skew", [0, 4, 1])
def test_an_atomic_on_the_buffer_is_aligned_on_every_engine_or_on_none(engine, skew: int) -> None:
    run = engine.prepare("mov %r2, 5\nlock add [%r1], %r2\nldxdw %r0, [%r1]\nexit")
    mem = _skewed(skew)
    if skew == 0:
        assert run(mem) == 5
    else:
        with pytest.raises(jit.MemoryAccessError, match=r"atomic access of 8 bytes .*not 8-byte aligned"):
            run(mem)
        assert bytes(mem) == bytes(16)


@pytest.mark.parametrize("engine", ENGINES, ids=lambda engine: engine.name)
def test_a_pointer_truncated_to_32_bits_points_nowhere_on_every_engine(engine) -> None:
    """Every engine's regions lie above 4 GiB, as host addresses do."""
    run = engine.prepare("mov32 %r1, %r1\nldxb %r0, [%r1]\nexit", **_options(engine))
    with pytest.raises(jit.MemoryAccessError, match=r"instruction 1 \(ldxb %r0, \[%r1\]\)"):
        run(bytearray([17]))


def test_an_emulated_engine_takes_a_buffer_of_more_than_512_mib() -> None:
    """The input buffer has 1 TiB of emulated address space (it used to clash with
    the stack at 512 MiB: UcError UC_ERR_MAP). Slow: unicorn copies it in and out."""
    size = 600 << 20
    mem = bytearray(size)
    mem[-1], mem[0] = 7, 1
    run = jit.compile("mov %r3, %r1\nadd %r3, %r2\nldxb %r0, [%r3-1]\nstb [%r1], 9\nexit", arch="arm64", emulate=True)
    assert run(mem) == 7
    assert mem[0] == 9
