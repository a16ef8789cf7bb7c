"""bench/cbpf_bench.py on a small capture: every path it times agrees on the
number of matches (it asserts so before timing), and it prints its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jit.bench import cbpf_bench


def test_small_benchmark_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures.json"
    assert cbpf_bench.main(["--packets", "3000", "--repeat", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| `tcp port 80` |" in text
    rows = json.loads(out.read_text())
    assert [row["expression"] for row in rows] == cbpf_bench.EXPRESSIONS
    assert all(row["packets"] == 3000 and 0 < row["matched"] < 3000 for row in rows)


def test_generated_packets_are_deterministic() -> None:
    assert cbpf_bench.generate(50) == cbpf_bench.generate(50)
    assert len({len(p) for p in cbpf_bench.generate(200)}) > 10


def test_bpfjit_bench_cbpf_runs_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jit.tools.cli import main

    out = tmp_path / "cbpf.json"
    assert main(["bench", "--cbpf", "--quick", "--packets", "2000", "--json", str(out)]) == 0
    assert "| `portrange 1000-2000` |" in capsys.readouterr().out
    assert {row["packets"] for row in json.loads(out.read_text())} == {2000}


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--cbpf", "--bounds"], "--cbpf takes only --quick, --packets and --json, not --bounds"),
        (["--cbpf", "--program", "simple"], "not --program"),
        (["--packets", "10"], "--packets only applies to --cbpf"),
    ],
)
def test_bpfjit_bench_cbpf_refuses_other_options(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from jit.tools.cli import main

    assert main(["bench", *argv]) == 2
    assert words in capsys.readouterr().out
