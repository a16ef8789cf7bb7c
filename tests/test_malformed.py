"""Malformed input never crashes the process or hangs: every outcome is a result or a jit.BpfError."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jit import MemoryAccessError
from jit.tools.engines import engines
from jit.tools.malformed import campaign, exercise, make_case

EXAMPLES = int(os.environ.get("BPFJIT_HYPOTHESIS_EXAMPLES", "50"))


def test_cases_are_reproducible_from_seed_and_index():
    assert make_case(4, 17) == make_case(4, 17)
    assert len({make_case(4, i) for i in range(20)}) > 15


def test_campaign_in_a_child_process_has_no_crash_hang_or_stray_exception(tmp_path):
    # Native runs happen here too: a crash would kill the child, which the campaign records.
    result = campaign(300, seed=20261122, out_dir=tmp_path)
    assert result.runs == 300
    assert result.failures == [], "\n".join(f"{f.index} {f.kind} {f.detail} {f.path}" for f in result.failures)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=200))
def test_random_bytes_give_a_result_or_a_bpf_error(raw: bytes) -> None:
    # exercise() lets any exception that is not a BpfError propagate. In-process, so
    # without the native engine (the campaign test above covers it in a child process).
    outcomes = exercise(raw, native=False)
    assert outcomes[0].startswith("decode: ")


# Regression (malformed campaign seed 7, case 18007): with verify=False the run-time
# checks skipped R10-relative accesses as "safe by construction", but the program had
# written R10 first (`sdiv %r10, %r9`): native code segfaulted on [%r10-8].
WRITES_R10 = "mov %r9, 1\nadd %r10, 0x10000000\nlock fetch and [%r10-8], %r9\nmov %r0, 0\nexit"


@pytest.mark.parametrize("engine", [e for e in engines() if e.emulated], ids=lambda e: e.name)
def test_unverified_program_that_writes_r10_gets_its_frame_accesses_checked(engine) -> None:
    fn = engine.prepare(WRITES_R10, verify=False)
    with pytest.raises(MemoryAccessError, match=r"instruction 2 \(lock fetch and \[%r10-8\], %r9\)"):
        fn(bytes(8))


def test_unverified_program_that_writes_r10_does_not_crash_native_code() -> None:
    script = (
        "import jit\n"
        f"fn = jit.compile({WRITES_R10!r}, verify=False)\n"
        "try:\n    fn(bytes(8))\nexcept jit.MemoryAccessError as exc:\n    print('caught', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "caught instruction 2 (lock fetch and [%r10-8], %r9)" in done.stdout
