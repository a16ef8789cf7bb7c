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
