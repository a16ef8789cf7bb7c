"""The benchmark suite and ``bpfjit bench``: correct programs on every engine, the
report files, failures reported as failures. No test looks at a speed."""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
from pathlib import Path

import pytest

import jit
from jit.bench import build, measure, native, runner, suite
from jit.bench.timing import QUICK as QUICK_BUDGET
from jit.core.isa import Form
from jit.runtime.interpreter import run as interpreter_run
from jit.tools.engines import engines

ENGINES = engines()
MASK64 = (1 << 64) - 1


def _program(name: str) -> jit.Program:
    return jit.Program.from_bytes(suite.get(name).bytecode.read_bytes(), name=name)


# --- the programs and their references, on hand-worked inputs ---------------------------------------


def _strings(a: bytes, b: bytes) -> bytes:
    assert len(a) == len(b)
    return a + b


HAND_WORKED = [
    # (program, input, expected R0), each worked out by hand.
    ("simple", bytes(16), 42),
    ("memory_a_plus_b", struct.pack("<QQ", MASK64, 2), 1),  # wraps around
    ("memory_a_plus_b", bytes(8), 0),  # too short: 0
    ("log2_int", struct.pack("<6Q", 0, 1, 2, 3, 4, 1 << 63), 0 + 0 + 1 + 1 + 2 + 63),
    ("log2_int", struct.pack("<2Q", 0xFFFF_FFFF, 0x1_0000_0000), 31 + 32),
    ("prime", struct.pack("<I", 1000), 168),  # pi(1000)
    ("prime", struct.pack("<I", 30), 10),  # 2 3 5 7 11 13 17 19 23 29
    ("prime", struct.pack("<I", 2), 0),
    ("crc32", b"123456789", 0xCBF43926),  # the CRC-32 check value
    ("crc32", b"", 0),
    ("inet_checksum", bytes.fromhex("0001f203f4f5f6f7"), 0x220D),  # RFC 1071 section 3: sum ddf2
    ("inet_checksum", b"\xff", 0x00FF),  # odd byte padded: ~0xff00
    ("strcmp_full", _strings(b"abc\0", b"abc\0"), 3 << 32),  # stops at the NUL, index 3
    ("strcmp_fail", _strings(b"abc\0", b"abd\0"), (2 << 32) | 0xFFFFFFFF),  # 'c' - 'd' = -1
    ("strcmp_fail", _strings(b"ab\0x", b"ab\0y"), 2 << 32),  # equal up to the NUL
    ("strcmp_fail", _strings(b"abcd", b"abcd"), 4 << 32),  # no NUL: the whole half
    ("memcpy", b"\x01\x02\x03\x04" + bytes(4), (4 << 32) | (4 << 16) | (3 << 8) | 1),
    # 0 -> case 0: acc += 0 ^ 0 = 0; 1 -> case 1: acc ^= 1 * 3 = 3; 66 -> case 2: acc = rotl(3, 7) + 0 = 384;
    # 7 -> case 7 (k = 4): acc -= 7 >> (1 % 7 + 1) = 1 -> 383.
    ("switch", struct.pack("<4I", 0, 1, 66, 7), 383),
]


def _tcp_frame(dport: int, payload: int, vlan: bool = False, frag: int = 0, proto: int = 6) -> bytes:
    eth = bytes(12) + (bytes.fromhex("8100 0001") if vlan else b"") + bytes.fromhex("0800")
    ip = bytes([0x45, 0]) + struct.pack(">HHHBBH", 20 + 20 + payload, 0, frag, 64, proto, 0) + bytes(8)
    tcp = struct.pack(">HHIIBBHHH", 1234, dport, 0, 0, 5 << 4, 2, 0, 0, 0)
    return eth + ip + tcp + bytes(payload)


def _slots(*frames: bytes) -> bytes:
    return b"".join(struct.pack("<H", len(f)) + f + bytes(126 - len(f)) for f in frames)


# Three matches (payloads 10, 0 and 7 via VLAN); a UDP packet, port 443, a fragment and a truncated frame do not.
HAND_WORKED.append(
    (
        "packet_filter",
        _slots(
            _tcp_frame(80, 10),
            _tcp_frame(80, 0),
            _tcp_frame(80, 7, vlan=True),
            _tcp_frame(80, 5, proto=17),
            _tcp_frame(443, 5),
            _tcp_frame(80, 5, frag=1),
            _tcp_frame(80, 5)[:40],
        ),
        (3 << 32) | 17,
    )
)


@pytest.mark.parametrize(
    ("name", "data", "expected"), [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate(HAND_WORKED)]
)
def test_program_and_reference_agree_with_hand_worked_values(name: str, data: bytes, expected: int) -> None:
    assert suite.get(name).reference(data) == expected
    assert interpreter_run(_program(name), bytearray(data)).r0 == expected


def test_prime_reference_full_size() -> None:
    prime = suite.get("prime")
    assert prime.reference(prime.make_input("full")) == 1229  # pi(10^4)
    assert prime.reference(struct.pack("<I", 1 << 20)) == 1229  # the program caps the limit at 10,000


def test_local_call_reference_by_hand() -> None:
    h = ((0x243F6A8885A308D3 ^ 5) * 0x9E3779B97F4A7C15) & MASK64
    h ^= h >> 29
    data = struct.pack("<Q", 5)
    assert suite.get("local_call").reference(data) == h
    assert interpreter_run(_program("local_call"), bytearray(data)).r0 == h


def test_memcpy_copies_the_buffer() -> None:
    data = bytearray(b"abcdefgh" + bytes(8))
    interpreter_run(_program("memcpy"), data)
    assert data == b"abcdefghabcdefgh"
    assert suite.get("memcpy").expected_memory(bytes(b"abcdefgh" + bytes(8))) == b"abcdefghabcdefgh"


def test_inputs_are_deterministic_and_sized() -> None:
    bench = suite.get("packet_filter")
    assert bench.make_input("test") == bench.make_input("test")
    assert len(bench.make_input("test")) == bench.sizes.test * 128
    assert len(suite.get("memcpy").make_input(1000)) == 2000


# --- every suite program on every engine ------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: e.name)
@pytest.mark.parametrize("bench", suite.SUITE, ids=lambda b: b.name)
def test_suite_program_on_engine(bench: suite.Benchmark, engine) -> None:
    data = bench.make_input("test")
    buf = bytearray(data)
    run = engine.prepare(_program(bench.name))
    assert run(buf) == bench.reference(data)
    if bench.expected_memory:
        assert bytes(buf) == bench.expected_memory(data)


@pytest.fixture(scope="module")
def native_cache(tmp_path_factory: pytest.TempPathFactory):
    if native.compiler() is None:
        pytest.skip("no C compiler ($CC, gcc or cc): the native baseline cannot be built")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.mark.parametrize("bench", suite.SUITE, ids=lambda b: b.name)
def test_same_c_built_by_gcc_agrees(bench: suite.Benchmark, native_cache) -> None:
    data = bench.make_input("test")
    fn = native.NativeProgram(bench)
    assert fn(bytearray(data)) == bench.reference(data)
    assert fn.run_many(bytearray(data), 3) == bench.reference(data)


@pytest.mark.skipif(
    shutil.which(build.CLANG) is None, reason=f"{build.CLANG} not installed: .bin freshness not checked"
)
def test_committed_bytecode_is_what_the_build_script_makes(tmp_path: Path) -> None:
    for bench in suite.SUITE:
        assert build.bytecode(bench.name, tmp_path) == bench.bytecode.read_bytes(), bench.name


def test_local_call_relocation_resolved() -> None:
    # bench_local_call is 18 slots (0-17); mix() from .text follows it and starts with h ^= v.
    prog = _program("local_call")
    calls = [(pc, insn) for pc, insn in prog if insn.spec.form is Form.CALL_LOCAL]
    assert len(calls) == 1
    pc, insn = calls[0]
    assert insn.target(pc) == 18
    assert prog.at(17).op == "exit"
    assert str(prog.at(18)) == "xor %r2, %r1"


# --- the runner -------------------------------------------------------------------------------------

QUICK = ["--quick", "--program", "simple", "--program", "memory_a_plus_b"]


def test_quick_json_markdown_and_plot(tmp_path: Path, native_cache, capsys: pytest.CaptureFixture) -> None:
    out, md, png = tmp_path / "bench.json", tmp_path / "table.md", tmp_path / "chart.png"
    assert runner.main([*QUICK, "--json", str(out), "--markdown", str(md), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(out.read_text())
    table = md.read_text().splitlines()
    assert table[0].startswith("| program | BPF insns executed | interpreter |")
    assert [line.split(" | ")[0] for line in table[2:]] == ["| simple", "| memory_a_plus_b", "| **geometric mean**"]
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert report["schema"] == "bpfjit-bench/1"
    assert {"date", "machine", "settings", "engines", "programs", "geomean", "failures", "ok"} <= report.keys()
    assert {"cpu", "cores", "python", "packages", "c_compiler"} <= report["machine"].keys()
    assert report["ok"] is True and report["failures"] == []
    names = [e["name"] for e in report["engines"]]
    assert names[0] == "interpreter" and "native" in names
    assert [p["name"] for p in report["programs"]] == ["simple", "memory_a_plus_b"]
    simple = report["programs"][0]
    assert simple["expected"] == 42 and simple["executed_instructions"] == 2 and simple["bpf_instructions"] == 2
    for name, figures in simple["engines"].items():
        assert figures["status"] == "ok", name
        assert figures["result"] == 42
        assert figures["run_seconds"] > 0 and figures["run"]["batches"] >= 1
        if figures["kind"] == "jit":
            assert figures["compile_seconds"] > 0 and figures["code_bytes_per_instruction"] > 0
            assert simple["speedup"][name] > 0 and simple["ratio"][name] > 0
    for engine in (e for e in report["engines"] if e["kind"] == "jit"):
        assert report["geomean"]["speedup"][engine["name"]] > 0
    assert "geometric mean" in capsys.readouterr().out


def test_bounds_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--bounds: every mode checked and timed on the main JIT, the verifier's cost."""
    jit_engine = next(e for e in ENGINES if e.arch is not None)
    out, md = tmp_path / "bench.json", tmp_path / "table.md"
    argv = ["--quick", "--bounds", "--program", "simple", "--program", "memory_a_plus_b", "--engine", jit_engine.name]
    assert runner.main([*argv, "--json", str(out), "--markdown", str(md)]) == 0
    report = json.loads(out.read_text())
    assert report["ok"] is True
    bounds = report["bounds"]
    assert bounds["engine"] == jit_engine.name
    simple, a_plus_b = bounds["programs"]
    # simple: R0 = 42, no memory access: every mode is the same machine code.
    assert simple["accesses"] == 0 and simple["checked"] == {"off": 0, "auto": 0, "all": 0}
    assert simple["same_code_as_off"] == ["auto", "all"] and simple["overhead"] == {"auto": 1.0, "all": 1.0}
    # memory_a_plus_b: two 8-byte loads after "if (len < 16) return 0": proven, so
    # only True checks them.
    assert a_plus_b["accesses"] == 2 and a_plus_b["checked"] == {"off": 0, "auto": 0, "all": 2}
    assert a_plus_b["same_code_as_off"] == ["auto"]
    assert a_plus_b["overhead"]["all"] > 0 and a_plus_b["run_seconds"]["all"] > 0
    for prog in (simple, a_plus_b):
        assert prog["status"] == "ok"
        assert prog["verifier_seconds"] > 0 and prog["verifier_insns_processed"] >= prog["accesses"]
    assert set(bounds["overhead_geomean"]) == {"auto", "all"}
    assert f"Bounds checks on {jit_engine.name}:" in md.read_text()
    assert "Bounds checks on the" in capsys.readouterr().out


def _wrong(name: str) -> suite.Benchmark:
    return dataclasses.replace(suite.get(name), reference=lambda data: 41)


def test_wrong_result_is_a_failure_never_timed(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(suite.BY_NAME, "simple", _wrong("simple"))
    out = tmp_path / "bench.json"
    assert runner.main(["--quick", "--program", "simple", "--engine", "interpreter", "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["ok"] is False
    assert report["failures"] == [
        {"program": "simple", "engine": "interpreter", "detail": "returned 0x2a, expected 0x29"}
    ]
    figures = report["programs"][0]["engines"]["interpreter"]
    assert figures["status"] == "failure" and figures["run"] is None and figures["run_seconds"] is None
    assert "FAILURE" in capsys.readouterr().out


def test_engine_that_raises_is_a_failure(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise jit.CompileError("instruction 0 (mov %r0, 42): broken on purpose")

    monkeypatch.setattr(measure.jit, "compile", broken)
    jit_engine = next(e for e in measure.available_engines() if e.kind == measure.JIT)
    case = measure.Case.from_benchmark(suite.get("simple"), "test")
    result = measure.measure_jit(case, jit_engine, QUICK_BUDGET, 1)
    assert result.status == "failure" and "broken on purpose" in result.detail and result.run is None


def test_user_program_is_compared_with_the_interpreter(tmp_path: Path) -> None:
    source = tmp_path / "sum.s"
    source.write_text("ldxb %r0, [%r1]\nldxb %r2, [%r1+1]\nadd %r0, %r2\nexit\n")
    mem = tmp_path / "mem.bin"
    mem.write_bytes(bytes([40, 2]))
    out = tmp_path / "bench.json"
    assert runner.main([str(source), "--mem", str(mem), "--quick", "--json", str(out)]) == 0
    program = json.loads(out.read_text())["programs"][0]
    assert program["checked"] is False and program["expected"] == 42
    assert all(e["result"] == 42 for e in program["engines"].values())
    assert "native" not in program["engines"]


def test_user_program_the_interpreter_rejects_fails_everywhere(tmp_path: Path, capsys) -> None:
    source = tmp_path / "oob.s"
    source.write_text("ldxdw %r0, [%r1+8]\nexit\n")  # reads past an empty buffer
    assert runner.main([str(source), "--quick", "--engine", "interpreter", "--engine", "x86_64-emulated"]) == 1
    out = capsys.readouterr().out
    assert out.count("nothing to compare with, the interpreter failed") == 2


def test_elf_without_loader_is_a_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delattr(jit.Program, "from_elf", raising=False)
    obj = tmp_path / "prog.o"
    obj.write_bytes(b"\x7fELF")
    assert runner.main([str(obj)]) == 2
    assert "ELF loading is not available yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--program", "nosuch"], "no benchmark 'nosuch'"),
        (["--engine", "nosuch"], "unknown engine nosuch"),
        (["--mem", "x.bin"], "--mem only applies to your own program"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys) -> None:
    assert runner.main(argv) == 2
    assert message in capsys.readouterr().out
