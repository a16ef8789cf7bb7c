"""Hypothesis strategies for random *terminating* eBPF programs.

The generator itself is :func:`jit.tools.fuzz.generate` (also behind ``bpfjit fuzz``);
hypothesis drives its random choices, so a failing program shrinks to a short
list of simple operations.

The main body never touches the stack slots [r10-16, r10): the differential
harness keeps the buffer pointer at [r10-8] and uses [r10-16] as scratch.
"""

from __future__ import annotations

from hypothesis import strategies as st

from jit.tools.fuzz import DATA_SIZE, TEST_HELPER_ID, Generated, generate, mixing_helper

__all__ = ["DATA_SIZE", "TEST_HELPER_ID", "Generated", "mixing_helper", "programs"]


def programs(max_ops: int = 24) -> st.SearchStrategy[Generated]:
    """A terminating program for the differential harness."""
    return st.builds(generate, st.randoms(use_true_random=False), st.just(max_ops))
