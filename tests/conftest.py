"""Shared test fixtures: where the conformance suite lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from jit.frontend.conformance import suite_dir

REPO = Path(__file__).resolve().parents[1]


def conformance_dir() -> Path | None:
    """$BPF_CONFORMANCE_DIR, else ../shared/conformance/tests beside the repository."""
    return suite_dir()


def conformance_files() -> list[Path]:
    path = conformance_dir()
    return sorted(path.glob("*.data")) if path else []


@pytest.fixture
def conformance_path() -> Path:
    path = conformance_dir()
    if path is None:
        pytest.skip("conformance suite not found: set BPF_CONFORMANCE_DIR or put it in ../shared/conformance/tests")
    return path
