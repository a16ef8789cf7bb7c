"""Reruns in one process of the cases that once failed intermittently:
tests/test_safety.py::test_conformance_with_every_access_checked[lock_or32.data-arm64-emulated]
("keystone rejected the generated ARM64 code: Unknown error") and an emulated
conformance run that reported "write of 8 bytes at 0x0 from a PC outside the
code". Neither has recurred here (3 rounds of all 313 files on both emulated
engines, checked everywhere, in one process); these keep looking."""

from __future__ import annotations

import pytest
from conftest import conformance_files

from jit.frontend.conformance import load
from jit.tools.engines import engines

EMULATED = [engine for engine in engines() if engine.emulated]
FILES = conformance_files()
ATOMICS = [path for path in FILES if path.name.startswith("lock_")]


@pytest.mark.skipif(not ATOMICS, reason="the conformance suite is not available (../shared/conformance)")
@pytest.mark.parametrize("engine", EMULATED, ids=lambda engine: engine.name)
def test_atomics_checked_everywhere_many_times(engine) -> None:
    cases = [load(path) for path in ATOMICS]
    for _ in range(20):
        for case in cases:
            fn = engine.prepare(case.program, bounds_check=True)
            assert fn(case.mem) == case.expected, case.name
            assert fn(case.mem) == case.expected, case.name  # and the same instance again


@pytest.mark.skipif(not FILES, reason="the conformance suite is not available (../shared/conformance)")
def test_the_whole_suite_twice_on_one_emulator_each() -> None:
    for engine in EMULATED:
        for _ in range(2):
            for case in (load(path) for path in FILES):
                if case.error is None:  # the error cases are tests/test_conformance.py's
                    fn = engine.prepare(case.program, bounds_check=True)
                    assert fn(case.mem) == case.expected, (engine.name, case.name)
