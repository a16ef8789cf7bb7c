"""The ELF loader (jit.frontend.elf) on the clang-built fixtures in tests/fixtures.

Expected values come from reading ``llvm-objdump -d -r`` and ``llvm-readelf
-s`` of each object by hand (the listings are quoted where they matter) and
from working the C sources through by hand. The objects are committed;
tests/fixtures/build.py rebuilds them.

The "runs" tests execute the fixtures on ``jit.interpret``: they need the
interpreter to map ``prog.memory``, use ``jit.runtime.helpers.helpers_for`` and
follow tail calls (engine integration).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

import jit
from jit.core.bytecode import check_control_flow
from jit.frontend.elf import MapSpec, format_sections, list_sections, symbolic
from jit.frontend.loader import load_program
from jit.frontend.maps import ArrayMap, HashMap, MapType, ProgArrayMap
from jit.frontend.program import elf_object, load_elf

FIXTURES = Path(__file__).parent / "fixtures"
XDP_PASS, XDP_DROP = 2, 1


def fixture(name: str) -> Path:
    return FIXTURES / f"{name}.o"


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def lddw_value(prog: jit.Program, pc: int) -> int:
    insn = prog.at(pc)
    assert insn.op == "lddw" and insn.src == 0, f"slot {pc} is {insn}"
    return insn.imm


# --- listing -------------------------------------------------------------------------------


def test_list_sections_names_programs_and_maps():
    programs, maps = list_sections(fixture("sockfilter"))
    assert [(p.name, p.function, p.slots) for p in programs] == [
        ("socket/1", "check_length", 19),
        ("socket", "filter", 33),
    ]
    assert maps == [
        MapSpec("jump_table", MapType.PROG_ARRAY, 4, 4, 4, 0, ".maps"),
        MapSpec("stats", MapType.ARRAY, 4, 8, 2, 0, ".maps"),
    ]


def test_format_sections_for_the_cli():
    text = format_sections(fixture("globals"))
    assert "tracepoint/syscalls/sys_enter_write" in text and "function use_globals, 28 slots" in text
    assert ".rodata.str1.1" in text and "value 40 B, max_entries 1, read-only for programs" in text


def test_btf_map_definitions():
    # struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); }
    _, maps = list_sections(fixture("xdp_counter"))
    assert maps == [MapSpec("proto_count", MapType.HASH, 4, 8, 16, 0, ".maps")]
    _, maps = list_sections(fixture("subprograms"))
    assert maps == [MapSpec("seen", MapType.ARRAY, 4, 8, 1, 0, ".maps")]


def test_legacy_map_definitions():
    programs, maps = list_sections(fixture("legacy_maps"))
    assert [p.name for p in programs] == ["kprobe/do_sys_open"]
    assert maps == [
        MapSpec("counters", MapType.ARRAY, 4, 8, 4, 0, "maps"),
        MapSpec("last_seen", MapType.HASH, 4, 4, 8, 0, "maps"),
    ]


def test_global_data_sections_become_array_maps():
    _, maps = list_sections(fixture("globals"))
    strings = b"call %d total %llu\n\0%s from %s\n\0globals\0"
    assert [(m.name, m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.data) for m in maps] == [
        (".data", MapType.ARRAY, 4, 4, 1, 0, (5).to_bytes(4, "little")),  # int calls = 5
        (".rodata", MapType.ARRAY, 4, 10, 1, 1 << 7, (3).to_bytes(4, "little") + b"hello\0"),  # factor, greeting
        (".bss", MapType.ARRAY, 4, 8, 1, 0, b""),  # __u64 total
        (".rodata.str1.1", MapType.ARRAY, 4, len(strings), 1, 1 << 7, strings),
    ]


# --- relocations ----------------------------------------------------------------------------


def test_map_relocations_resolve_to_the_descriptor_address():
    # 17: r1 = 0 ll  R_BPF_64_64 proto_count ... 30: r1 = 0 ll  R_BPF_64_64 proto_count
    prog = load_elf(fixture("xdp_counter"))
    assert (prog.name, prog.section, len(prog)) == ("xdp", "xdp", 39)
    table = prog.maps["proto_count"]
    assert isinstance(table, HashMap)
    assert lddw_value(prog, 17) == lddw_value(prog, 30) == table.address
    assert [(r.pc, r.kind, r.map, r.offset, r.symbol) for r in prog.relocations] == [
        (17, "map", "proto_count", 0, "proto_count"),
        (30, "map", "proto_count", 0, "proto_count"),
    ]
    assert str(prog.at(19)) == "call 1" and str(prog.at(22)) == "lock add [%r0], %r1"
    assert all(insn.src == 0 for insn in prog.instructions if insn.op == "lddw")


def test_global_data_relocations_resolve_to_value_addresses():
    # 0: factor; 4: total; 9: calls; 14: .rodata.str1.1 (imm 0); 18: .rodata.str1.1 (imm 20);
    # 21: .rodata (imm 4, greeting); 23: .rodata.str1.1 (imm 32)
    prog = load_elf(fixture("globals"))
    expected = [
        (0, ".rodata", 0, "factor"),
        (4, ".bss", 0, "total"),
        (9, ".data", 0, "calls"),
        (14, ".rodata.str1.1", 0, ".rodata.str1.1"),
        (18, ".rodata.str1.1", 20, ".rodata.str1.1"),
        (21, ".rodata", 4, ".rodata"),
        (23, ".rodata.str1.1", 32, ".rodata.str1.1"),
    ]
    assert [(r.pc, r.map, r.offset, r.symbol) for r in prog.relocations] == expected
    for pc, name, offset, _ in expected:
        assert lddw_value(prog, pc) == prog.maps[name].values_address + offset
    assert prog.maps[".rodata"].lookup(0)[4:] == b"hello\0"
    assert not prog.maps[".rodata.str1.1"].storage.writable and prog.maps[".data"].storage.writable


def test_symbolic_form_for_disassembly():
    prog = load_elf(fixture("globals"))
    sym = symbolic(prog)
    # map indexes: .data 0, .rodata 1, .bss 2, .rodata.str1.1 3
    assert (sym.at(18).src, sym.at(18).imm) == (2, 3 | 20 << 32)
    assert str(sym.at(21)) == "lddw.mapval %r3, 0x400000001"
    assert str(symbolic(load_elf(fixture("xdp_counter"))).at(17)) == "lddw.mapfd %r1, 0x0"
    assert sym.at(2) == prog.at(2)


def test_text_subprograms_are_appended_and_calls_fixed():
    # tc:    0: call -1  R_BPF_64_32 weigh      3: call 19  R_BPF_64_32 .text  (-> .text slot 20, square)
    # .text: weigh 0..19 (lddw seen at 6, call 7 -> sum_bytes at 23, call 2 -> square at 20),
    #        square 20..22, sum_bytes 23..34
    # Linked in the order reached: classify 0..5, weigh 6..25, square 26..28, sum_bytes 29..40.
    prog = load_elf(fixture("subprograms"))
    assert len(prog) == 6 + 20 + 3 + 12
    calls = {pc: insn.imm for pc, insn in prog if insn.op == "call_local"}
    assert calls == {0: 5, 3: 22, 6 + 15: 7, 6 + 17: 2}  # targets 6, 26, 29, 26
    assert str(prog.at(6)) == "mov %r6, %r2"  # weigh
    assert str(prog.at(26)) == "mov %r0, %r1" and str(prog.at(27)) == "mul %r0, %r0"  # square
    assert str(prog.at(29)) == "mov %r0, 0" and str(prog.at(40)) == "exit"  # sum_bytes
    assert lddw_value(prog, 12) == prog.maps["seen"].address  # the relocation inside .text
    assert prog.subprograms == (0, 6, 26, 29)
    check_control_flow(prog)


def test_prog_array_is_filled_from_the_static_initialiser():
    # .rel.maps: offset 0x20 R_BPF_64_ABS64 check_length -> jump_table values[1]
    obj = elf_object(fixture("sockfilter"))
    main = obj.program("socket")
    jump = main.maps["jump_table"]
    assert isinstance(jump, ProgArrayMap)
    assert jump.lookup(1) is obj.program("socket/1") and jump.lookup(0) is None and len(jump) == 1
    assert obj.program("check_length") is jump.lookup(1)  # by function name too
    assert jump.lookup(1).maps is main.maps  # programs of one object share their maps


def test_loading_by_path_and_section():
    prog = load_program(str(fixture("sockfilter")), section="socket")
    assert prog.section == "socket" and isinstance(prog.maps["stats"], ArrayMap)
    assert jit.Program.from_elf(fixture("legacy_maps")).section == "kprobe/do_sys_open"


# --- errors ----------------------------------------------------------------------------------


def _patched(tmp_path: Path, name: str, patch) -> Path:
    raw = bytearray(fixture(name).read_bytes())
    patch(raw)
    out = tmp_path / f"{name}-patched.o"
    out.write_bytes(raw)
    return out


def _section_offset(name: str, section: str) -> int:
    with fixture(name).open("rb") as f:
        return ELFFile(f).get_section_by_name(section)["sh_offset"]


def test_not_an_elf_file():
    with pytest.raises(jit.ElfError, match="not an ELF file"):
        load_elf(FIXTURES / "xdp_counter.c")


@pytest.mark.parametrize("size", [10, 64, 2000])
def test_truncated_file(tmp_path, size):
    path = tmp_path / "cut.o"
    path.write_bytes(fixture("xdp_counter").read_bytes()[:size])
    with pytest.raises(jit.ElfError, match="truncated"):
        load_elf(path)


def test_wrong_machine(tmp_path):
    path = _patched(tmp_path, "xdp_counter", lambda raw: struct.pack_into("<H", raw, 18, 62))  # EM_X86_64
    with pytest.raises(jit.ElfError, match=r"machine is EM_X86_64, not EM_BPF \(247\)"):
        load_elf(path)


def test_missing_section_lists_the_programs():
    with pytest.raises(jit.ElfError, match=r"no program section 'xdp' \(programs: socket/1, socket\)"):
        load_elf(fixture("sockfilter"), section="xdp")


def test_several_programs_need_a_choice():
    with pytest.raises(
        jit.ElfError, match=r"2 programs, choose one with section= \(bpfjit: --section NAME\): socket/1, socket"
    ):
        load_elf(fixture("sockfilter"))


def test_no_program_section():
    programs, maps = list_sections(fixture("no_program"))
    assert programs == [] and [m.name for m in maps] == ["lonely", ".data"]
    with pytest.raises(jit.ElfError, match="no program section"):
        load_elf(fixture("no_program"))


def test_kfunc_call_is_rejected():
    # 0: call -1  R_BPF_64_32 bpf_rcu_read_lock (an undefined .ksyms extern)
    with pytest.raises(jit.ElfError, match=r"section 'xdp'.*extern symbol 'bpf_rcu_read_lock'"):
        load_elf(fixture("kfunc"))


def test_btf_id_call_is_rejected(tmp_path):
    at = _section_offset("xdp_counter", "xdp") + 19 * 8 + 1  # the registers byte of "call 1" at slot 19

    def patch(raw: bytearray) -> None:
        raw[at] = 0x20  # src = 2: call by BTF id

    with pytest.raises(jit.ElfError, match=r"section 'xdp' \(offset 152\): call by BTF id 1"):
        load_elf(_patched(tmp_path, "xdp_counter", patch))


def test_unknown_relocation_type(tmp_path):
    at = _section_offset("xdp_counter", ".relxdp") + 8  # r_info of the first entry: type in the low 32 bits

    def patch(raw: bytearray) -> None:
        struct.pack_into("<I", raw, at, 7)

    with pytest.raises(jit.ElfError, match=r"section 'xdp'.*relocation type 7 against symbol 'proto_count'"):
        load_elf(_patched(tmp_path, "xdp_counter", patch))


def test_unsupported_map_type(tmp_path):
    at = _section_offset("legacy_maps", "maps")  # struct bpf_map_def counters: type is the first u32

    def patch(raw: bytearray) -> None:
        struct.pack_into("<I", raw, at, 27)  # BPF_MAP_TYPE_RINGBUF

    with pytest.raises(jit.ElfError, match=r"section 'maps': map 'counters': unsupported map type 27"):
        load_elf(_patched(tmp_path, "legacy_maps", patch))


def test_relocation_to_an_unknown_section():
    with pytest.raises(jit.ElfError, match=r"symbol 'odd_place' in section '\.mystuff'"):
        load_elf(fixture("unknown_section"))


# --- runs on the interpreter (need engine integration: prog.memory, helpers_for, tail calls) ---------------


def packet(proto: int, ethertype: int = 0x0800, version: int = 4) -> bytes:
    """Ethernet header + a 20-byte IPv4 header carrying ``proto``."""
    ip = bytes([version << 4 | 5]) + bytes(8) + bytes([proto]) + bytes(10)
    return bytes(12) + ethertype.to_bytes(2, "big") + ip


def test_run_xdp_counter():
    prog = load_elf(fixture("xdp_counter"))
    verdicts = [jit.interpret(prog, packet(p)) for p in (6, 6, 17, 1)]
    assert verdicts == [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP]  # ICMP is dropped
    assert jit.interpret(prog, packet(6, ethertype=0x86DD)) == XDP_PASS  # not IPv4: not counted
    assert jit.interpret(prog, packet(6, version=6)) == XDP_DROP
    assert jit.interpret(prog, b"short") == XDP_DROP
    counts = {int.from_bytes(k, "little"): int.from_bytes(v, "little") for k, v in prog.maps["proto_count"].items()}
    assert counts == {6: 2, 17: 1, 1: 1}
    prog.maps["proto_count"].update(17, 100)  # the program sees what Python wrote
    jit.interpret(prog, packet(17))
    assert prog.maps["proto_count"].lookup(17) == u64(101)


def test_run_globals_and_trace_printk():
    prog = load_elf(fixture("globals"))
    assert jit.interpret(prog, b"abcd") == 6  # calls: 5 -> 6; total += 4 * factor 3
    assert jit.interpret(prog, b"ab") == 7  # total 12 + 2 * 3
    assert prog.maps[".bss"].lookup(0) == u64(18)
    assert prog.maps[".data"].lookup(0) == (7).to_bytes(4, "little")
    assert prog.trace_log == ["call 6 total 12\n", "hello from globals\n", "call 7 total 18\n", "hello from globals\n"]
    prog.maps[".rodata"].update(0, (10).to_bytes(4, "little") + b"HELLO\0")  # Python may rewrite .rodata
    assert jit.interpret(prog, b"a") == 8
    assert prog.maps[".bss"].lookup(0) == u64(28)
    assert prog.trace_log[-1] == "HELLO from globals\n"


def test_run_socket_filter_with_tail_call():
    prog = load_elf(fixture("sockfilter"), section="socket")
    assert jit.interpret(prog, bytearray(b"\x45abc")) == 0xFFFF  # slot 1: check_length accepts
    assert jit.interpret(prog, bytearray(b"\x44abc")) == 0
    assert jit.interpret(prog, bytearray(b"\x45" + bytes(200))) == 0  # slot 2 is empty: falls through
    stats = dict(prog.maps["stats"].items())
    assert stats == {b"\0\0\0\0": u64(3), b"\1\0\0\0": u64(4 + 4 + 201)}
    prog.maps["jump_table"].delete(1)
    assert jit.interpret(prog, bytearray(b"\x45abc")) == 0  # no tail call any more


def test_run_subprograms():
    prog = load_elf(fixture("subprograms"))
    data = bytes(range(1, 21))
    # weigh: square(sum of the first 16 bytes = 136) + len 20; classify adds square(3)
    assert jit.interpret(prog, data) == 136 * 136 + 20 + 9
    assert jit.interpret(prog, b"\x02") == 4 + 1 + 9
    assert prog.maps["seen"].lookup(0) == u64(2)


def test_run_legacy_maps():
    prog = load_elf(fixture("legacy_maps"))
    assert jit.interpret(prog, b"\x07abcde") == 2  # key = len 6 & 3
    assert jit.interpret(prog, b"\x09") == 1
    assert jit.interpret(prog, b"\x0a\0\0\0\0") == 1
    counters = [int.from_bytes(v, "little") for v in prog.maps["counters"].values()]
    assert counters == [0, 2, 1, 0]
    assert dict(prog.maps["last_seen"].items()) == {b"\2\0\0\0": b"\7\0\0\0", b"\1\0\0\0": b"\x0a\0\0\0"}
