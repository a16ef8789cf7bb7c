"""Executable memory: pages from the code pool are reused without ever being
writable and executable at once, and hold nothing of the program before."""

from __future__ import annotations

import ctypes
import mmap

import pytest

import jit
from jit.runtime import codemem

RW, RX = mmap.PROT_READ | mmap.PROT_WRITE, mmap.PROT_READ | mmap.PROT_EXEC


class Recording:
    """The C library as map_code uses it, each mmap/mprotect/munmap recorded."""

    def __init__(self) -> None:
        self.libc = codemem._libc()
        self.calls: list[tuple] = []

    def mmap(self, *args):
        address = self.libc.mmap(*args)
        self.calls.append(("mmap", args[1], args[2]))
        return address

    def mprotect(self, address, size, prot):
        self.calls.append(("mprotect", address, size, prot))
        return self.libc.mprotect(address, size, prot)

    def munmap(self, address, size):
        self.calls.append(("munmap", address, size))
        return self.libc.munmap(address, size)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> codemem.CodePool:
    fresh = codemem.CodePool(limit=2 * mmap.PAGESIZE)
    monkeypatch.setattr(codemem, "POOL", fresh)
    yield fresh
    codemem.release_pool()


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> Recording:
    libc = Recording()
    monkeypatch.setattr(codemem, "_libc", lambda: libc)
    return libc


def protection(address: int) -> str:
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            lo, hi = (int(bound, 16) for bound in span.split("-"))
            if lo <= address < hi:
                return perms
    return "unmapped"


def test_released_pages_are_reused_read_write_then_read_execute(pool, recording) -> None:
    first, size = codemem.map_code(b"\xaa" * 3000)
    codemem.unmap(first, size)
    assert protection(first) == "r-xp" and pool.held == size  # kept, not writable
    recording.calls.clear()
    second, size = codemem.map_code(b"\xbb" * 10)
    assert second == first and pool.reused == 1 and pool.held == 0
    assert recording.calls == [("mprotect", second, size, RW), ("mprotect", second, size, RX)]
    assert protection(second) == "r-xp"
    assert ctypes.string_at(second, size) == b"\xbb" * 10 + bytes(size - 10)  # the old code is gone
    codemem.unmap(second, size)


def test_pages_are_reused_only_for_the_same_size(pool) -> None:
    small, size = codemem.map_code(b"\xc3")
    codemem.unmap(small, size)
    large, large_size = codemem.map_code(b"\xc3" * (mmap.PAGESIZE + 1))
    assert large != small and large_size == 2 * mmap.PAGESIZE and pool.reused == 0
    codemem.unmap(large, large_size)


def test_a_full_pool_unmaps(pool, recording) -> None:
    mapped = [codemem.map_code(b"\xc3") for _ in range(3)]
    for address, size in mapped:
        codemem.unmap(address, size)
    assert pool.held == 2 * mmap.PAGESIZE  # its limit
    assert [call[0] for call in recording.calls].count("munmap") == 1
    assert protection(mapped[2][0]) == "unmapped"
    assert codemem.release_pool() == 2 * mmap.PAGESIZE and pool.held == 0
    assert all(protection(address) == "unmapped" for address, _ in mapped)


def test_programs_on_reused_pages_run_their_own_code(pool) -> None:
    for value in range(20):
        fn = jit.compile(f"mov %r0, {value}\nexit", cache=False)
        assert fn() == value
        fn.close()
    assert pool.reused == 19
