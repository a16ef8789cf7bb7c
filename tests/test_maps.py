"""Maps (jit.frontend.maps), host memory blocks (jit.frontend.hostmem) and the Linux helpers
(jit.runtime.helpers), exercised from Python; expected values worked out by hand
from the Linux semantics (man 2 bpf, man 7 bpf-helpers)."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from pathlib import Path

import pytest

import jit
from jit.core.abi import DESCRIPTOR_SIZE, Desc
from jit.core.errors import MemoryAccessError
from jit.frontend.hostmem import PAGE_SIZE, HostMemory
from jit.frontend.maps import (
    BPF_EXIST,
    BPF_NOEXIST,
    ArrayMap,
    HashMap,
    LruHashMap,
    MapError,
    MapType,
    PercpuArrayMap,
    PercpuHashMap,
    ProgArrayMap,
    create_map,
)
from jit.runtime.helpers import format_trace, helpers_for
from jit.runtime.tailcalls import MAX_TAIL_CALLS, TailCallChain, TailCallRequest, run_with_tail_calls

MASK64 = (1 << 64) - 1


def neg(code: int) -> int:
    """-code as the unsigned 64-bit value a helper returns."""
    return -code & MASK64


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def errno_of(call) -> int:
    with pytest.raises(MapError) as info:
        call()
    return info.value.errno


# --- host memory ---------------------------------------------------------------------


def _permissions(address: int) -> str:
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in span.split("-"))
        if lo <= address < hi:
            return perms
    raise AssertionError(f"0x{address:x} is not mapped")


def test_host_memory_is_page_aligned_read_write_never_executable():
    block = HostMemory(100, "test", data=b"abc")
    assert block.address % PAGE_SIZE == 0
    assert block.mapped_size == PAGE_SIZE and block.size == 100 and len(block.view) == 100
    assert _permissions(block.address)[:3] == "rw-"
    assert ctypes.string_at(block.address, 4) == b"abc\0"  # the view and the address are the same bytes
    ctypes.memmove(block.address + 10, b"xy", 2)
    assert block.read(10, 2) == b"xy"
    assert block.contains(block.address + 99) and not block.contains(block.address + 99, 2)


def test_host_memory_writable_flag_is_the_programs_view():
    rodata = HostMemory(8, ".rodata", writable=False)
    rodata.write(0, b"ok")  # Python may still write it
    assert rodata.read(0, 2) == b"ok" and not rodata.writable


# --- descriptors ------------------------------------------------------------------------


def test_descriptor_layout_is_readable_at_its_host_address():
    m = ArrayMap("a", 4, 12, 3)
    raw = ctypes.string_at(m.address, DESCRIPTOR_SIZE)

    def field(offset: int) -> int:
        return int.from_bytes(raw[offset : offset + 8], "little")

    assert field(Desc.TYPE) == 2  # BPF_MAP_TYPE_ARRAY
    assert (field(Desc.KEY_SIZE), field(Desc.VALUE_SIZE), field(Desc.MAX_ENTRIES)) == (4, 12, 3)
    assert field(Desc.VALUE_STRIDE) == 16  # 12 rounded up to 8
    assert field(Desc.VALUES) == m.values_address
    m.update(2, b"\x07" * 12)
    assert ctypes.string_at(m.values_address + 2 * 16, 12) == b"\x07" * 12  # value i at values + i * stride
    assert not m.descriptor.writable and m.memory == (m.descriptor, m.storage)


# --- arrays -------------------------------------------------------------------------------


def test_array_starts_zeroed_and_updates_in_place():
    m = ArrayMap("a", 4, 8, 4)
    assert m.lookup(3) == bytes(8)
    m.update(1, 0x1122)
    assert m.lookup(1) == bytes([0x22, 0x11, 0, 0, 0, 0, 0, 0])
    m.update(b"\x01\0\0\0", u64(5), BPF_EXIST)  # bytes keys; BPF_EXIST: array entries always exist
    assert m.lookup(1) == u64(5)
    assert len(m) == m.len() == 4
    assert [k for k, _ in m.items()] == [i.to_bytes(4, "little") for i in range(4)]


def test_array_errors():
    m = ArrayMap("a", 4, 8, 4)
    assert m.lookup(4) is None  # out of range
    assert errno_of(lambda: m.update(4, 1)) == errno.E2BIG
    assert errno_of(lambda: m.update(0, 1, BPF_NOEXIST)) == errno.EEXIST
    assert errno_of(lambda: m.delete(0)) == errno.EINVAL
    assert errno_of(lambda: m.update(0, 1, 7)) == errno.EINVAL
    assert errno_of(lambda: ArrayMap("k", 8, 8, 1)) == errno.EINVAL  # array keys are u32


def test_keys_and_values_are_bytes_of_the_exact_size_or_fitting_ints():
    m = HashMap("h", 2, 4, 4)
    m.update(-1, 0xFFFFFFFF)
    assert m.lookup(b"\xff\xff") == b"\xff\xff\xff\xff"
    assert errno_of(lambda: m.update(0x10000, 0)) == errno.EINVAL  # does not fit in 2 bytes
    assert errno_of(lambda: m.update(b"\0", 0)) == errno.EINVAL  # 1 byte key for a 2-byte map
    assert errno_of(lambda: m.update(0, b"\0" * 8)) == errno.EINVAL
    with pytest.raises(TypeError):
        m.update(1.5, 0)  # type: ignore[arg-type]
    assert isinstance(errno_of(lambda: m.update(0, b"")), int) and issubclass(MapError, jit.BpfError)


# --- hash maps ------------------------------------------------------------------------------


def test_hash_update_flags():
    m = HashMap("h", 4, 8, 2)
    assert m.lookup(1) is None and len(m) == 0
    assert errno_of(lambda: m.update(1, 10, BPF_EXIST)) == errno.ENOENT
    m.update(1, 10, BPF_NOEXIST)
    assert errno_of(lambda: m.update(1, 11, BPF_NOEXIST)) == errno.EEXIST
    m.update(1, 12, BPF_EXIST)
    m.update(2, 20)
    assert errno_of(lambda: m.update(3, 30)) == errno.E2BIG  # full
    m.update(2, 21)  # replacing an existing key needs no room
    assert dict(m.items()) == {u64(1)[:4]: u64(12), u64(2)[:4]: u64(21)}
    assert 1 in m and 3 not in m


def test_hash_delete_frees_the_slot():
    m = HashMap("h", 4, 8, 2)
    m.update(1, 10)
    m.update(2, 20)
    m.delete(1)
    assert errno_of(lambda: m.delete(1)) == errno.ENOENT
    m.update(3, 30)  # fits again
    assert sorted(int.from_bytes(k, "little") for k in m) == [2, 3]
    assert sorted(int.from_bytes(v, "little") for v in m.values()) == [20, 30]


def test_hash_values_do_not_move_while_their_key_exists():
    m = HashMap("h", 4, 8, 8)
    m.update(7, 70)
    address = m.lookup_address(u64(7)[:4])
    assert m.storage.contains(address, 8)
    for key in range(20, 26):
        m.update(key, key)
    m.delete(20)
    m.update(7, 71)
    assert m.lookup_address(u64(7)[:4]) == address
    assert ctypes.string_at(address, 8) == u64(71)
    ctypes.memmove(address, u64(72), 8)  # what a program's store through the pointer does
    assert m.lookup(7) == u64(72)
    assert m.lookup_address(u64(99)[:4]) == 0


def test_new_hash_entries_start_zeroed_in_a_reused_slot():
    m = HashMap("h", 4, 16, 1)
    m.update(1, b"\xaa" * 16)
    m.delete(1)
    m.update_raw(u64(2)[:4], b"\x01" * 16)
    assert m.lookup(2) == b"\x01" * 16


def test_lru_evicts_the_least_recently_used():
    m = LruHashMap("lru", 4, 8, 3)
    for key in (1, 2, 3):
        m.update(key, key * 10)
    m.lookup_address(u64(1)[:4])  # a program lookup marks 1 as used: 2 is now the oldest
    m.update(4, 40)
    assert sorted(int.from_bytes(k, "little") for k in m) == [1, 3, 4]
    m.update(3, 31)  # an update is a use: 1 is now the oldest
    m.lookup(1)  # a Python lookup is not
    m.update(5, 50)
    assert sorted(int.from_bytes(k, "little") for k in m) == [3, 4, 5]
    assert m.lookup(3) == u64(31) and len(m) == 3


def test_lru_noexist_on_a_full_map_evicts_too():
    m = LruHashMap("lru", 4, 8, 1)
    m.update(1, 1)
    m.update(2, 2, BPF_NOEXIST)
    assert list(m.keys()) == [u64(2)[:4]]


def test_per_cpu_maps_behave_as_on_one_cpu():
    array, table = PercpuArrayMap("pa", 4, 8, 2), PercpuHashMap("ph", 4, 8, 2)
    array.update(1, 5)
    table.update(1, 6)
    assert array.lookup(1) == u64(5) and table.lookup(1) == u64(6)
    assert (array.map_type, table.map_type) == (MapType.PERCPU_ARRAY, MapType.PERCPU_HASH)
    assert errno_of(lambda: array.delete(0)) == errno.EINVAL


def test_create_map_by_linux_type_id():
    assert type(create_map("m", 9, 4, 8, 2)) is LruHashMap
    assert errno_of(lambda: create_map("m", 27, 4, 8, 2)) == errno.EINVAL  # ringbuf: not supported
    assert errno_of(lambda: create_map("m", 1, 4, 0, 2)) == errno.EINVAL


# --- program arrays -------------------------------------------------------------------------


def test_prog_array_holds_programs():
    target = jit.assemble("mov %r0, 7\nexit")
    m = ProgArrayMap("jmp", max_entries=2)
    assert m.lookup(0) is None and len(m) == 0
    m.update(1, target)
    assert m.lookup(1) is target and m.target(1) is target and m.target(2) is None
    assert [k for k, _ in m.items()] == [b"\x01\0\0\0"] and len(m) == 1
    with pytest.raises(TypeError):
        m.update(0, b"\0\0\0\0")  # type: ignore[arg-type]
    assert errno_of(lambda: m.update(2, target)) == errno.E2BIG
    m.delete(1)
    assert m.lookup(1) is None
    assert errno_of(lambda: m.delete(1)) == errno.ENOENT


# --- helpers ---------------------------------------------------------------------------------


class FakeMemory:
    """A MemoryAccessor over a few bytearrays at made-up addresses."""

    def __init__(self, **regions: tuple[int, bytearray]):
        self.regions = regions

    def _find(self, addr: int, size: int) -> tuple[bytearray, int]:
        for base, buf in self.regions.values():
            if base <= addr and addr + size <= base + len(buf):
                return buf, addr - base
        raise MemoryAccessError(f"{size} bytes at 0x{addr:x}")

    def read(self, addr: int, size: int) -> bytes:
        buf, at = self._find(addr, size)
        return bytes(buf[at : at + size])

    def write(self, addr: int, data: bytes) -> None:
        buf, at = self._find(addr, len(data))
        buf[at : at + len(data)] = data


STACK = 0x1000


def program_with(**maps: jit.Map) -> jit.Program:
    prog = jit.assemble("mov %r0, 0\nexit")
    prog.maps = dict(maps)
    return prog


def test_map_helpers_go_through_the_descriptor_address():
    table = HashMap("h", 4, 8, 1)
    helpers = helpers_for(program_with(h=table))
    stack = bytearray(32)
    stack[0:4] = (5).to_bytes(4, "little")
    stack[8:16] = u64(99)
    memory = FakeMemory(stack=(STACK, stack))
    lookup, update, delete = helpers[1], helpers[2], helpers[3]
    assert lookup(table.address, STACK, 0, 0, 0, memory=memory) == 0
    assert update(table.address, STACK, STACK + 8, BPF_EXIST, 0, memory=memory) == neg(errno.ENOENT)
    assert update(table.address, STACK, STACK + 8, 0, 0, memory=memory) == 0
    address = lookup(table.address, STACK, 0, 0, 0, memory=memory)
    assert ctypes.string_at(address, 8) == u64(99)
    stack[0:4] = (6).to_bytes(4, "little")
    assert update(table.address, STACK, STACK + 8, 0, 0, memory=memory) == neg(errno.E2BIG)
    assert delete(table.address, STACK, 0, 0, 0, memory=memory) == neg(errno.ENOENT)
    stack[0:4] = (5).to_bytes(4, "little")
    assert delete(table.address, STACK, 0, 0, 0, memory=memory) == 0
    assert len(table) == 0
    with pytest.raises(jit.HelperError, match="not the address of a map"):
        lookup(table.address + 8, STACK, 0, 0, 0, memory=memory)


def test_programs_cannot_update_read_only_maps():
    rodata = ArrayMap(".rodata", 4, 8, 1, flags=1 << 7)
    helpers = helpers_for(program_with(rodata=rodata))
    memory = FakeMemory(stack=(STACK, bytearray(16)))
    assert helpers[2](rodata.address, STACK, STACK + 8, 0, 0, memory=memory) == neg(errno.EPERM)
    assert not rodata.storage.writable and rodata.readonly


@pytest.mark.parametrize(
    ("fmt", "args", "expected"),
    [
        (b"%d %i %u", (MASK64, 0xFFFFFFFE, MASK64), "-1 -2 4294967295"),
        (b"%x|%lx|%llx", (0x1_FFFF_FFFF, 0x1_FFFF_FFFF, 0xAB), "ffffffff|1ffffffff|ab"),
        (b"%ld %lld %lu", (MASK64, 1 << 63, MASK64), f"-1 {-(1 << 63)} {MASK64}"),
        (b"%llu %li", (1 << 40, 0x8000_0000, 0), f"{1 << 40} {0x8000_0000}"),
        (b"%c%c 100%%", (0x41, 0x142, 0), "AB 100%"),
        (b"[%5d|%-5d|%05u]", (42, 42, 42), "[   42|42   |00042]"),
        (b"%p", (0xFFFF_8000_1234_0000, 0, 0), "0xffff800012340000"),
        (b"no conversions\n", (0, 0, 0), "no conversions\n"),
        (b"%d %d %d %d", (1, 2, 3), None),  # more than three arguments
        (b"%q", (1, 0, 0), None),  # unknown conversion
        (b"100%", (0, 0, 0), None),  # lone %
        (b"%ls", (STACK, 0, 0), None),
    ],
)
def test_trace_printk_formatting(fmt, args, expected):
    assert format_trace(fmt, args, FakeMemory()) == expected


def test_trace_printk_reads_strings_and_logs_into_the_program():
    prog = program_with()
    stack = bytearray(64)
    stack[0:13] = b"%s and %s!\n\0"[:13].ljust(13, b"\0")
    stack[16:22] = b"hello\0"
    stack[32:36] = b"bye\0"
    memory = FakeMemory(stack=(STACK, stack))
    printk = helpers_for(prog)[6]
    assert printk(STACK, 13, STACK + 16, STACK + 32, 0, memory=memory) == len("hello and bye!\n")
    assert printk(STACK, 13, STACK + 16, 0xDEAD, 0, memory=memory) == len("hello and !\n")  # unreadable: ""
    assert printk(STACK, 5, 0, 0, 0, memory=memory) == neg(errno.EINVAL)  # fmt not NUL-terminated
    stack[0:4] = b"%z\n\0"
    assert printk(STACK, 4, 0, 0, 0, memory=memory) == neg(errno.EINVAL)
    assert prog.trace_log == ["hello and bye!\n", "hello and !\n"]


def test_probe_read_copies_or_faults_with_a_zeroed_destination():
    probe = helpers_for(program_with())
    source, dst = bytearray(b"secret!!"), bytearray(b"\xff" * 8)
    memory = FakeMemory(src=(0x5000, source), dst=(STACK, dst))
    for helper_id in (4, 112, 113):
        dst[:] = b"\xff" * 8
        assert probe[helper_id](STACK, 8, 0x5000, 0, 0, memory=memory) == 0
        assert dst == source
        assert probe[helper_id](STACK, 8, 0x5004, 0, 0, memory=memory) == neg(errno.EFAULT)  # runs past the end
        assert dst == bytes(8)


def test_current_pid_tgid_and_comm():
    helpers = helpers_for(program_with())
    value = helpers[14](0, 0, 0, 0, 0)
    assert value >> 32 == os.getpid() and value & 0xFFFFFFFF == threading.get_native_id()
    comm = Path("/proc/self/comm").read_bytes().rstrip(b"\n")
    buf = bytearray(b"\xff" * 16)
    memory = FakeMemory(buf=(STACK, buf))
    assert helpers[16](STACK, 16, 0, 0, 0, memory=memory) == 0
    assert buf == comm[:15].ljust(16, b"\0")
    buf[:] = b"\xff" * 16
    assert helpers[16](STACK, 4, 0, 0, 0, memory=memory) == 0
    assert buf[:4] == comm[:3] + b"\0" and buf[4:] == b"\xff" * 12


# --- tail calls -------------------------------------------------------------------------------


def test_tail_call_helper_raises_a_request_or_fails():
    target = jit.assemble("mov %r0, 1\nexit")
    jump = ProgArrayMap("jump", max_entries=2)
    jump.update(0, target)
    chain = TailCallChain()
    tail_call = helpers_for(program_with(jump=jump), chain)[12]
    with pytest.raises(TailCallRequest) as info:
        tail_call(0, jump.address, 0, 0, 0)
    assert info.value.target is target and chain.count == 1
    assert tail_call(0, jump.address, 1, 0, 0) == neg(errno.ENOENT)  # empty slot
    assert tail_call(0, jump.address, 9, 0, 0) == neg(errno.ENOENT)  # out of range
    chain.count = MAX_TAIL_CALLS
    assert tail_call(0, jump.address, 0, 0, 0) == neg(errno.E2BIG)


def test_run_with_tail_calls_follows_at_most_33_calls():
    """A program that tail-calls itself: 1 run + 33 tail calls, then the call
    fails and the program returns the helper's result."""
    prog = jit.assemble("mov %r0, 0\nexit")
    jump = ProgArrayMap("jump", max_entries=1)
    jump.update(0, prog)
    prog.maps = {"jump": jump}
    runs = []

    def run_one(current, buffer, chain):
        runs.append(current)
        buffer[0] += 1
        try:
            return helpers_for(current, chain)[12](0, jump.address, 0, 0, 0)
        except TailCallRequest as request:  # an engine reporting a helper exception its own way
            raise jit.HelperError("helper 12 raised") from request

    mem = bytearray(1)
    assert run_with_tail_calls(run_one, prog, mem) == neg(errno.E2BIG)
    assert len(runs) == 1 + MAX_TAIL_CALLS and mem[0] == 34  # the same buffer all along


def test_run_with_tail_calls_lets_other_errors_through():
    def run_one(current, buffer, chain):
        raise jit.MemoryAccessError("boom")

    with pytest.raises(jit.MemoryAccessError, match="boom"):
        run_with_tail_calls(run_one, jit.assemble("exit"), b"")
