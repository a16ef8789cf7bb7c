"""jit.compile (stub: being written)."""

from __future__ import annotations


def compile(prog, arch=None, helpers=None, emulate=False):
    raise NotImplementedError
