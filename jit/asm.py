"""Assembler and disassembler for the conformance-suite dialect (stub: being written)."""

from __future__ import annotations

from .program import Program


def assemble(text: str) -> Program:
    raise NotImplementedError


def disassemble(prog: Program) -> str:
    raise NotImplementedError
