"""The conformance suite (FORMAT.md): every ``.data`` file on every engine.

Run at ISA v4 with every group enabled: nothing is filtered. The file is parsed
inside the test, so a file the parser does not understand fails (it is never
skipped). Helper 5 is the default ``ktime_get_ns``: registered, callable with
R1 = -1, returning normally, as FORMAT.md section 6 requires.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import conformance_dir, conformance_files

import jit
from jit.frontend.conformance import load
from jit.tools.engines import Engine, engines

if conformance_dir() is None:
    reason = "conformance suite not found: set BPF_CONFORMANCE_DIR or put it in ../shared/conformance/tests"
    print(f"SKIP {__name__}: {reason}")
    pytest.skip(reason, allow_module_level=True)

FILES = conformance_files()


def _expected_error_text(exc: BaseException) -> str:
    """An error message as the suite compares it: cut at the first CR, trailing whitespace removed."""
    return str(exc).split("\r", 1)[0].rstrip()


def test_suite_is_complete() -> None:
    assert len(FILES) == 313, f"expected the 313 files of the suite in {conformance_dir()}, found {len(FILES)}"


@pytest.mark.parametrize("engine", engines(), ids=lambda engine: engine.name)
@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_conformance(path: Path, engine: Engine) -> None:
    case = load(path)
    if case.error is not None:
        with pytest.raises(jit.BpfError) as exc:
            engine.prepare(case.program, helpers=None)(case.mem)
        assert _expected_error_text(exc.value) == case.error
        return
    run = engine.prepare(case.program, helpers=None)
    r0 = run(case.mem)
    assert r0 == case.expected, f"{case.name}: R0 = {r0:#x}, expected {case.expected:#x}"
