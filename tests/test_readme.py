"""README.md's Python examples run as written, and give what their comments say
(``expr  # ... -> value``)."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
CLAIM = re.compile(r"^(?P<expr>\S.*?)\s+#.*?->\s*(?P<value>.+?)\s*$")


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_readme_example_runs_and_gives_what_it_says(block: str) -> None:
    """Statement by statement; an expression whose comment says ``-> value`` must give it then."""
    namespace: dict[str, object] = {}
    lines = block.splitlines()
    claims = 0
    here = os.getcwd()
    os.chdir(README.parent)  # paths in the examples are relative to the repository
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for statement in ast.parse(block).body:
                claim = CLAIM.match(lines[statement.lineno - 1])
                if isinstance(statement, ast.Expr) and claim and statement.lineno == statement.end_lineno:
                    value = eval(compile(ast.Expression(statement.value), "README.md", "eval"), namespace)
                    assert value == ast.literal_eval(claim["value"]), claim[0]
                    claims += 1
                else:
                    exec(compile(ast.Module([statement], []), "README.md", "exec"), namespace)
    finally:
        os.chdir(here)
    assert claims, "every example says what it gives"
