"""``bpfjit sections`` and ``bpfjit run`` on the clang-built fixtures (tests/fixtures).

Expected values are worked out by hand from the C sources (see
tests/test_elf.py): keys and values are printed as little-endian hex.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jit.core.host import host_arch
from jit.tools.cli import main
from jit.tools.engines import engines

FIXTURES = Path(__file__).parent / "fixtures"
ENGINE_NAMES = [engine.name for engine in engines()]


def fixture(name: str) -> str:
    return str(FIXTURES / f"{name}.o")


def ipv4_packet(proto: int) -> bytes:
    return bytes(12) + b"\x08\x00" + bytes([0x45]) + bytes(8) + bytes([proto]) + bytes(10)


@pytest.fixture
def mem_file(tmp_path):
    def write(data: bytes) -> str:
        path = tmp_path / "mem.bin"
        path.write_bytes(data)
        return str(path)

    return write


def rows(text: str) -> list[list[str]]:
    """The cells of every rich table row in ``text``."""
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in text.splitlines() if "│" in line]


def test_sections_lists_programs_and_maps(capsys):
    assert main(["sections", fixture("sockfilter")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 program(s):"
    assert out[1].split() == ["socket/1", "function", "check_length,", "19", "slots"]
    assert out[2].split() == ["socket", "function", "filter,", "33", "slots"]
    assert out[3] == "2 map(s):"
    assert out[4].split()[:2] == ["jump_table", "prog_array,"] and out[5].split()[:2] == ["stats", "array,"]


def test_sections_of_a_file_that_is_not_elf(capsys):
    assert main(["sections", str(FIXTURES / "xdp_counter.c")]) == 1
    assert "not an ELF file" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_run_socket_filter_with_a_tail_call(engine, mem_file, capsys):
    args = ["run", fixture("sockfilter"), "--section", "socket", "--mem", mem_file(b"\x45abc"), "--engine", engine]
    assert main([*args, "--dump-maps"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "65535"  # check_length accepted the 4-byte packet
    assert "map jump_table: ProgArrayMap, 1 entries" in out and "map stats: ArrayMap, 2 entries" in out
    assert ["01000000", "program 'socket/1'"] in rows(out)
    # stats[0] counts packets (1), stats[1] bytes (4)
    assert ["00000000", "0100000000000000"] in rows(out) and ["01000000", "0400000000000000"] in rows(out)


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_run_with_arch_repeat_and_dump_maps(arch, mem_file, capsys):
    args = ["run", fixture("xdp_counter"), "--arch", arch, "--repeat", "3", "--mem", mem_file(ipv4_packet(17))]
    assert main([*args, "--dump-maps"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "2"  # XDP_PASS
    assert rows(captured.out) == [["11000000", "0300000000000000"]]  # proto 17 seen 3 times
    native = arch == host_arch()
    assert f"3 runs on {arch if native else arch + '-emulated'}" in captured.err


def test_run_prints_trace_printk_and_global_data(mem_file, capsys):
    assert main(["run", fixture("globals"), "--mem", mem_file(b"abcd"), "--dump-maps"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "6"  # calls 5 -> 6
    assert captured.err.splitlines() == ["trace: call 6 total 12", "trace: hello from globals"]
    table = rows(captured.out)
    assert ["00000000", "06000000"] in table  # .data: calls
    assert ["00000000", "0c00000000000000"] in table  # .bss: total = 4 * 3


def test_run_without_maps_says_so(tmp_path, capsys):
    program = tmp_path / "answer.s"
    program.write_text("mov %r0, 42\nexit\n")
    assert main(["run", str(program), "--engine", "interpreter", "--dump-maps"]) == 0
    assert capsys.readouterr().out.splitlines() == ["42", "no maps"]


def test_run_needs_a_section_when_the_object_has_several(capsys):
    assert main(["run", fixture("sockfilter")]) == 1
    assert "2 programs, choose one with section= (bpfjit: --section NAME): socket/1, socket" in capsys.readouterr().err


def test_run_unknown_section(capsys):
    assert main(["run", fixture("xdp_counter"), "--section", "tc"]) == 1
    assert "no program section 'tc' (programs: xdp)" in capsys.readouterr().err


def test_arch_and_a_different_engine_conflict():
    with pytest.raises(SystemExit, match="--arch arm64 runs on arm64-emulated, not --engine interpreter"):
        main(["run", fixture("xdp_counter"), "--arch", "arm64", "--engine", "interpreter"])


def test_disasm_and_check_take_a_section(capsys):
    assert main(["disasm", fixture("sockfilter"), "--section", "socket/1"]) == 0
    listing = capsys.readouterr().out
    assert main(["disasm", fixture("sockfilter"), "--section", "socket"]) == 0
    assert listing and listing != capsys.readouterr().out  # two different programs
    # The filter counts into a map and tail-calls: every engine starts from the
    # same map contents, and the tail call's trace is not a divergence.
    assert main(["check", fixture("sockfilter"), "--section", "socket"]) == 0
    assert "all engines agree" in capsys.readouterr().out


def test_crosscheck_gives_every_engine_the_same_maps_and_leaves_them_alone():
    from jit.frontend.program import load_elf
    from jit.tools.crosscheck import crosscheck

    prog = load_elf(fixture("xdp_counter"))
    before = {name: list(m.items()) for name, m in prog.maps.items()}
    report = crosscheck(prog, ipv4_packet(6))
    assert report.ok, report
    assert len({outcome.maps for outcome in report.outcomes}) == 1 and report.outcomes[0].maps
    assert {name: list(m.items()) for name, m in prog.maps.items()} == before
