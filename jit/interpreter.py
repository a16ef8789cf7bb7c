"""Reference interpreter (stub: being written)."""

from __future__ import annotations


def interpret(prog, mem=None, helpers=None, max_steps=None) -> int:
    raise NotImplementedError
