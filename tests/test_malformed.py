"""Malformed input never crashes the process or hangs: every outcome is a result or a jit.BpfError."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jit.malformed import campaign, exercise, make_case

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
