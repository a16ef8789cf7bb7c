"""Clang-built ELF programs (tests/fixtures) and hand-built map programs on
every engine of ``jit.engines()``.

The expected values are those of tests/test_elf.py, worked out by hand from
the C sources (quoted again where they matter). Every engine must give the
same R0, leave the same map contents (read from Python afterwards), print the
same trace_printk lines and follow tail calls up to the 33-call limit; maps are
shared by engines and keep their contents across runs.

The array-map lookup fast path (backends.base) is checked on the compiled
engines: same results with and without it, and no Python call for the
lookups it serves.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

import jit
from jit.frontend.elf import Relocation
from jit.frontend.maps import BPF_F_RDONLY_PROG, ArrayMap, HashMap, Map, PercpuArrayMap, ProgArrayMap
from jit.frontend.program import Program, load_elf
from jit.tools.crosscheck import crosscheck, deterministic_helpers
from jit.tools.engines import Engine, engines

FIXTURES = Path(__file__).parent / "fixtures"
XDP_PASS, XDP_DROP = 2, 1
MASK64 = (1 << 64) - 1
ENGINES = engines()
COMPILED = [engine for engine in ENGINES if engine.arch is not None]


def by_name(engines_: list[Engine]) -> dict:
    return {"argvalues": engines_, "ids": [engine.name for engine in engines_]}


def fixture(name: str) -> Path:
    return FIXTURES / f"{name}.o"


def u64(value: int) -> bytes:
    return (value & MASK64).to_bytes(8, "little")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def packet(proto: int, ethertype: int = 0x0800, version: int = 4) -> bytes:
    """Ethernet header + a 20-byte IPv4 header carrying ``proto``."""
    ip = bytes([version << 4 | 5]) + bytes(8) + bytes([proto]) + bytes(10)
    return bytes(12) + ethertype.to_bytes(2, "big") + ip


def counts(table: Map) -> dict[int, int]:
    return {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in table.items()}


def with_maps(prog: Program, **maps: Map) -> Program:
    """Give a hand-built program maps the way the ELF loader does: ``prog.maps``,
    ``prog.memory`` and a relocation for every lddw of a descriptor address
    ("map") or of an address inside a value arena ("map_value", with its offset),
    which the verifier uses to type the pointer."""
    prog.maps = dict(maps)
    prog.memory = tuple(block for table in maps.values() for block in table.memory)
    relocations = []
    for pc, insn in prog:
        for index, (name, table) in enumerate(maps.items()):
            if insn.op == "lddw" and insn.imm == table.address:
                relocations.append(Relocation(pc, "map", name, index, 0, name))
            elif insn.op == "lddw" and table.storage.contains(insn.imm):
                offset = insn.imm - table.values_address
                relocations.append(Relocation(pc, "map_value", name, index, offset, name))
    prog.relocations = tuple(relocations)
    return prog


def prepare(engine: Engine, prog: Program, **compile_options: object) -> Callable:
    """``engine.prepare(prog)``, passing ``compile_options`` (e.g. verify=False) to compiled engines only."""
    return engine.prepare(prog, **(compile_options if engine.arch is not None else {}))


# --- the fixtures, one engine at a time ----------------------------------------------------------


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_xdp_counter(engine):
    prog = load_elf(fixture("xdp_counter"))
    run = engine.prepare(prog)
    assert [run(packet(p)) for p in (6, 6, 17, 1)] == [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP]  # ICMP dropped
    assert run(packet(6, ethertype=0x86DD)) == XDP_PASS  # not IPv4: not counted
    assert run(packet(6, version=6)) == XDP_DROP
    assert run(b"short") == XDP_DROP
    assert counts(prog.maps["proto_count"]) == {6: 2, 17: 1, 1: 1}
    prog.maps["proto_count"].update(17, 100)  # the program sees what Python wrote
    run(packet(17))
    assert prog.maps["proto_count"].lookup(17) == u64(101)


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_globals_and_trace_printk(engine):
    prog = load_elf(fixture("globals"))
    run = engine.prepare(prog)
    assert run(b"abcd") == 6  # calls: 5 -> 6; total += 4 * factor 3
    assert run(b"ab") == 7  # total 12 + 2 * 3
    assert prog.maps[".bss"].lookup(0) == u64(18)  # the program's writes, seen from Python
    assert prog.maps[".data"].lookup(0) == u32(7)
    assert prog.trace_log == ["call 6 total 12\n", "hello from globals\n", "call 7 total 18\n", "hello from globals\n"]
    prog.maps[".rodata"].update(0, u32(10) + b"HELLO\0")  # Python's writes, seen by the program
    prog.maps[".data"].update(0, u32(40))
    assert run(b"a") == 41
    assert prog.maps[".bss"].lookup(0) == u64(28)
    assert prog.trace_log[-2:] == ["call 41 total 28\n", "HELLO from globals\n"]


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_socket_filter_with_tail_call(engine):
    prog = load_elf(fixture("sockfilter"), section="socket")
    run = engine.prepare(prog)
    assert run(bytearray(b"\x45abc")) == 0xFFFF  # slot 1: check_length accepts
    assert run(bytearray(b"\x44abc")) == 0
    assert run(bytearray(b"\x45" + bytes(200))) == 0  # slot 2 is empty: falls through
    assert dict(prog.maps["stats"].items()) == {u32(0): u64(3), u32(1): u64(4 + 4 + 201)}
    prog.maps["jump_table"].delete(1)
    assert run(bytearray(b"\x45abc")) == 0  # no tail call any more
    assert dict(prog.maps["stats"].items()) == {u32(0): u64(4), u32(1): u64(213)}


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_subprograms(engine):
    prog = load_elf(fixture("subprograms"))
    run = engine.prepare(prog)
    # weigh: square(sum of the first 16 bytes = 136) + len 20; classify adds square(3)
    assert run(bytes(range(1, 21))) == 136 * 136 + 20 + 9
    assert run(b"\x02") == 4 + 1 + 9
    assert prog.maps["seen"].lookup(0) == u64(2)


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_legacy_maps(engine):
    prog = load_elf(fixture("legacy_maps"))
    run = engine.prepare(prog)
    assert run(b"\x07abcde") == 2  # key = len 6 & 3
    assert run(b"\x09") == 1
    assert run(b"\x0a\0\0\0\0") == 1
    assert counts(prog.maps["counters"]) == {0: 0, 1: 2, 2: 1, 3: 0}
    assert dict(prog.maps["last_seen"].items()) == {u32(2): u32(7), u32(1): u32(0x0A)}


def test_compile_an_elf_path_with_a_section():
    fn = jit.compile(str(fixture("sockfilter")), section="socket/1")
    assert fn.prog.section == "socket/1"
    fn.prog.maps["stats"].update(1, 4)
    assert fn(bytearray(b"\x45")) == 0xFFFF and fn(bytearray(b"\x46")) == 0


# --- maps are shared: every engine on one program object ---------------------------------------------


def test_engines_share_maps_and_global_data():
    prog = load_elf(fixture("globals"))
    runs = [engine.prepare(prog) for engine in ENGINES]
    for n, run in enumerate(runs, start=1):
        assert run(b"xy") == 5 + n  # each engine sees the previous engine's calls++
    assert prog.maps[".data"].lookup(0) == u32(5 + len(runs))
    assert prog.maps[".bss"].lookup(0) == u64(6 * len(runs))
    assert prog.trace_log[-2:] == [f"call {5 + len(runs)} total {6 * len(runs)}\n", "hello from globals\n"]


def test_engines_share_a_hash_map():
    prog = load_elf(fixture("xdp_counter"))
    for engine in ENGINES:
        assert engine.prepare(prog)(packet(6)) == XDP_PASS
    assert counts(prog.maps["proto_count"]) == {6: len(ENGINES)}


@pytest.mark.parametrize("engine", **by_name(COMPILED))
def test_repeated_runs_keep_map_contents(engine):
    prog = load_elf(fixture("subprograms"))
    fn = engine.prepare(prog)
    assert fn.run_many(b"\x01", 50) == 1 + 1 + 9
    assert prog.maps["seen"].lookup(0) == u64(50)


# --- crosscheck: same R0, buffer and registers step by step ----------------------------------------


def fresh_maps(prog: Program) -> Callable[[], dict]:
    """A crosscheck helper factory that also puts every map back to its
    contents now, so each engine starts from the same state."""
    saved = {name: list(m.items()) for name, m in prog.maps.items() if not isinstance(m, ProgArrayMap)}

    def factory() -> dict:
        for name, entries in saved.items():
            table = prog.maps[name]
            if isinstance(table, HashMap):
                for key in list(table.keys()):
                    table.delete(key)
            for key, value in entries:
                table.update(key, value)
        return deterministic_helpers()

    return factory


@pytest.mark.parametrize(
    ("name", "section", "mem"),
    [
        ("xdp_counter", None, packet(17)),
        ("xdp_counter", None, packet(6, version=6)),
        ("globals", None, b"abc"),
        ("subprograms", None, bytes(range(30))),
        ("legacy_maps", None, b"\x05ab"),
        ("sockfilter", "socket/1", b"\x45"),
    ],
)
def test_crosscheck_fixture(name, section, mem):
    prog = load_elf(fixture(name), section)
    report = crosscheck(prog, mem, helpers=fresh_maps(prog))
    assert report.ok, str(report)


def test_crosscheck_tail_call_without_traces():
    # Traces stop at the first program on the emulators, so compare R0 and the buffer only.
    prog = load_elf(fixture("sockfilter"), section="socket")
    report = crosscheck(prog, bytearray(b"\x45abcdef"), helpers=fresh_maps(prog), trace=False)
    assert report.ok, str(report)
    assert {outcome.r0 for outcome in report.outcomes} == {0xFFFF}


# --- tail calls: the 33-call limit ---------------------------------------------------------------------


def self_tail_caller() -> Program:
    """Counts its runs in buffer[0:8] and tail calls itself through slot 0;
    when tail_call returns, stores its result in buffer[8:16] and returns the count."""
    table = ProgArrayMap("again", max_entries=1)
    prog = jit.assemble(
        f"""
        mov %r6, %r1
        ldxdw %r0, [%r6]
        add %r0, 1
        stxdw [%r6], %r0
        mov %r1, %r6
        lddw %r2, {table.address:#x}
        mov %r3, 0
        call 12
        stxdw [%r6+8], %r0
        ldxdw %r0, [%r6]
        exit
        """
    )
    with_maps(prog, again=table)
    table.update(0, prog)
    return prog


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_tail_call_limit(engine):
    # One run plus 33 tail calls; the 34th tail_call returns -E2BIG and execution continues.
    run = engine.prepare(self_tail_caller())
    buffer = bytearray(16)
    assert run(buffer) == 34
    assert buffer == u64(34) + u64(-errno.E2BIG)
    assert run(buffer) == 68  # the limit counts per run: 33 more
    buffer[:] = bytes(16)
    assert run(bytes(16)) == 34  # a bytes buffer is copied, tail calls see the copy


@pytest.mark.parametrize("engine", **by_name(COMPILED))
def test_tail_calls_in_a_batch(engine):
    fn = engine.prepare(self_tail_caller())
    buffer = bytearray(16)
    assert fn.run_many(buffer, 3) == 3 * 34
    assert buffer[8:] == u64(-errno.E2BIG)


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_tail_call_to_an_empty_slot_continues(engine):
    prog = self_tail_caller()
    prog.maps["again"].delete(0)
    buffer = bytearray(16)
    assert engine.prepare(prog)(buffer) == 1
    assert buffer[8:] == u64(-errno.ENOENT)


# --- the array-map lookup fast path ------------------------------------------------------------------------


class LookupMaps:
    """Maps of the lookup program, filled by hand: arr (12-byte values, so a
    16-byte stride) 0x1111/0x2222/0x3333, pcpu[1] = 0x44, h[7] = 0x55."""

    def __init__(self) -> None:
        self.arr = ArrayMap("arr", 4, 12, 3)
        self.pcpu = PercpuArrayMap("pcpu", 4, 8, 2)
        self.h = HashMap("h", 4, 8, 4)
        for i, value in enumerate((0x1111, 0x2222, 0x3333)):
            self.arr.update(i, u64(value) + u32(0xAAAA0000 + i))
        self.pcpu.update(1, 0x44)
        self.h.update(7, 0x55)


def lookup(table: Map, key: str) -> str:
    """BPF text: R0 = map_lookup_elem(table, key) with ``key`` a store to [%r10-4] or a register."""
    load_key = f"stw [%r10-4], {key}\nmov %r2, %r10\nadd %r2, -4" if key.lstrip("-").isdigit() else f"mov %r2, {key}"
    return f"{load_key}\nlddw %r1, {table.address:#x}\ncall 1\n"


def value_to(offset: int) -> str:
    """BPF text: buffer[offset] = *R0 (u64) unless R0 is NULL."""
    return f"jeq %r0, 0, +2\nldxdw %r7, [%r0]\nstxdw [%r6+{offset}], %r7\n"


def null_flag(offset: int) -> str:
    """BPF text: buffer[offset] = 1 when R0 is NULL, else 2."""
    return f"mov %r7, 1\njeq %r0, 0, +1\nmov %r7, 2\nstxdw [%r6+{offset}], %r7\n"


def lookup_program(maps: LookupMaps) -> Program:
    """Stores its results in the buffer, whose first 4 bytes hold a key (1);
    returns the u32 at offset 8 of arr[2] (past its u64: the 16-byte stride)."""
    text = (
        "mov %r6, %r1\n"
        + lookup(maps.arr, "2")
        + value_to(8)  # 0x3333
        + lookup(maps.arr, "3")
        + null_flag(16)  # key == max_entries: NULL
        + lookup(maps.arr, "-1")
        + null_flag(24)  # key 0xffffffff: NULL
        + lookup(maps.pcpu, "1")
        + "jeq %r0, 0, +4\nldxdw %r7, [%r0]\nadd %r7, 1\nstxdw [%r0], %r7\nstxdw [%r6+32], %r7\n"  # 0x45, stored back
        + lookup(maps.h, "7")
        + value_to(40)  # a hash map: the Python helper
        + lookup(maps.arr, "%r6")
        + value_to(48)  # key in the input buffer: the Python helper
        + lookup(maps.arr, "2")
        + "mov %r7, 0\njeq %r0, 0, +1\nldxw %r7, [%r0+8]\nmov %r0, %r7\nexit\n"
    )
    return with_maps(jit.assemble(text), arr=maps.arr, pcpu=maps.pcpu, h=maps.h)


EXPECTED_R0 = 0xAAAA0002
EXPECTED_BUFFER = u32(1) + bytes(4) + u64(0x3333) + u64(1) + u64(1) + u64(0x45) + u64(0x55) + u64(0x2222)


@pytest.fixture
def array_lookups(monkeypatch) -> list[bytes]:
    """Keys of every array-map lookup that reached Python."""
    seen: list[bytes] = []
    original = ArrayMap.lookup_address

    def counted(self: ArrayMap, key: bytes) -> int:
        seen.append(key)
        return original(self, key)

    monkeypatch.setattr(ArrayMap, "lookup_address", counted)
    return seen


def test_lookup_program_on_the_interpreter(array_lookups):
    maps = LookupMaps()
    buffer = bytearray(u32(1) + bytes(52))
    assert jit.interpret(lookup_program(maps), buffer) == EXPECTED_R0
    assert buffer == EXPECTED_BUFFER
    assert len(array_lookups) == 6  # every array lookup is a helper call here
    assert maps.pcpu.lookup(1) == u64(0x45)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "callback"])
@pytest.mark.parametrize("engine", **by_name(COMPILED))
def test_lookup_fast_path_gives_the_same_results(engine, fast, array_lookups):
    maps = LookupMaps()
    fn = jit.compile(lookup_program(maps), arch=engine.arch, emulate=engine.emulated, fast_lookup=fast)
    assert ("map_lookup" in fn.native.labels) is fast
    buffer = bytearray(u32(1) + bytes(52))
    assert fn(buffer) == EXPECTED_R0
    assert buffer == EXPECTED_BUFFER
    assert maps.pcpu.lookup(1) == u64(0x45)
    # The stub serves the 5 array lookups keyed on the stack; the one keyed in the
    # input buffer goes to Python, like every lookup without the fast path.
    assert array_lookups == ([u32(1)] if fast else [u32(2), u32(3), u32(0xFFFFFFFF), u32(1), u32(1), u32(2)])


@pytest.mark.parametrize("engine", **by_name(COMPILED))
def test_lookup_fast_path_makes_no_python_call(engine, array_lookups):
    maps = LookupMaps()
    prog = with_maps(jit.assemble(lookup(maps.arr, "1") + "jeq %r0, 0, +1\nldxdw %r0, [%r0]\nexit"), arr=maps.arr)
    fn = jit.compile(prog, arch=engine.arch, emulate=engine.emulated)
    assert fn.run_many(None, 100) == 0x2222
    assert array_lookups == []


@pytest.mark.parametrize("engine", **by_name(COMPILED))
def test_user_helper_1_replaces_the_fast_path(engine):
    maps = LookupMaps()
    calls = []

    def my_lookup(map_addr: int, key_addr: int, *_: int) -> int:
        calls.append(map_addr)
        return 77

    prog = with_maps(jit.assemble(lookup(maps.arr, "1") + "exit"), arr=maps.arr)
    fn = jit.compile(prog, arch=engine.arch, emulate=engine.emulated, helpers={1: my_lookup})
    assert "map_lookup" not in fn.native.labels
    assert fn() == 77 and calls == [maps.arr.address]


# The verifier rejects the next programs before they run; with verify=False the
# run-time paths (stub fallback, helper accessor) must still refuse them cleanly.


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_lookup_with_a_pointer_that_is_not_a_map(engine):
    maps = LookupMaps()
    prog = with_maps(
        jit.assemble("stw [%r10-4], 0\nmov %r1, %r10\nmov %r2, %r10\nadd %r2, -4\ncall 1\nexit"), arr=maps.arr
    )
    with pytest.raises(jit.HelperError, match=r"instruction 4 \(call 1\).*is not the address of a map"):
        prepare(engine, prog, verify=False)()
    if engine.arch is not None:
        with pytest.raises(jit.VerifierError, match=r"instruction 4 \(call 1\).*must be a map pointer"):
            engine.prepare(prog)


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_lookup_key_straddling_the_stack_end(engine):
    # The stub only reads keys wholly inside the stack; this one goes to the
    # helper, whose accessor refuses the read like the interpreter's.
    maps = LookupMaps()
    text = f"mov %r2, %r10\nadd %r2, -2\nlddw %r1, {maps.arr.address:#x}\ncall 1\nexit"
    with pytest.raises(jit.HelperError, match=r"instruction 4 \(call 1\).*raised MemoryAccessError"):
        prepare(engine, with_maps(jit.assemble(text), arr=maps.arr), verify=False)()


@pytest.mark.parametrize("engine", **by_name(ENGINES))
def test_helpers_see_map_memory(engine):
    # probe_read_kernel (113) copies arr[2] to the stack; writing into a
    # read-only value (a .rodata-like map) through a helper is refused.
    maps = LookupMaps()
    src = maps.arr.slot_address(2)
    prog = jit.assemble(
        f"mov %r1, %r10\nadd %r1, -16\nmov %r2, 12\nlddw %r3, {src:#x}\ncall 113\nldxdw %r0, [%r10-16]\nexit"
    )
    assert engine.prepare(with_maps(prog, arr=maps.arr))() == 0x3333
    readonly = ArrayMap("ro", 4, 8, 1, flags=BPF_F_RDONLY_PROG)
    prog = jit.assemble(f"lddw %r1, {readonly.values_address:#x}\nmov %r2, 8\nlddw %r3, {src:#x}\ncall 113\nexit")
    with_maps(prog, arr=maps.arr, ro=readonly)
    with pytest.raises(jit.ExecutionError, match=r"instruction 5 \(call 113\).*read-only (region )?ro values"):
        prepare(engine, prog, verify=False)()
    assert readonly.lookup(0) == bytes(8)


# --- the benchmark's program -----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", **by_name(COMPILED))
def test_benchmark_program(engine):
    from jit.bench.map_lookup import lookup_program as bench_program

    prog, expected = bench_program(16)
    assert expected == 2 * sum(3 * key + 1 for key in range(8)) == 184  # keys 0..7 twice, value 3k + 1
    for fast in (True, False):
        assert jit.compile(prog, arch=engine.arch, emulate=engine.emulated, fast_lookup=fast).run_many(None, 3) == 184


def test_benchmark_script_prints_its_table(capsys):
    from jit.bench.map_lookup import main

    assert main(["--lookups", "8", "--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| engine | lookups/run | fast path")
    assert [line.split("|")[1].strip() for line in lines[4:]] == [e.name for e in COMPILED if not e.emulated]


@pytest.mark.parametrize("engine", **by_name(COMPILED))
def test_closing_a_program_closes_its_tail_call_targets(engine):
    fn = engine.prepare(load_elf(fixture("sockfilter"), section="socket"))
    assert fn(bytearray(b"\x45abc")) == 0xFFFF  # compiles socket/1 on first use
    (target,) = [compiled for _, compiled in fn.tail_calls._targets.values()]
    assert target.prog.section == "socket/1"
    fn.close()
    with pytest.raises(jit.BpfError, match="closed"):
        target(bytearray(b"\x45abc"))
