"""Listing of generated machine code: each BPF instruction above the native
instructions it became, and the prologue, epilogue and stubs under their names.

Uses the backend's capstone disassembler.
"""

from __future__ import annotations

from jit.backends import get_backend
from jit.backends.base import NativeCode


def _headings(native: NativeCode) -> list[tuple[int, str]]:
    """(native offset, heading) for every instruction and named stub, in code order."""
    marks = [
        (offset, 1, index, f"{pc:6d}: {insn}")
        for index, ((pc, insn), offset) in enumerate(zip(native.prog, native.offsets))
    ]
    marks += [
        (offset, 0 if offset < (native.offsets or (0,))[0] else 2, 0, f"<{name}>")
        for name, offset in native.labels.items()
    ]
    if not any(offset == 0 for offset, *_ in marks):
        marks.append((0, 0, 0, "<prologue>"))
    return [(offset, heading) for offset, _, _, heading in sorted(marks)]


def listing(native: NativeCode) -> str:
    """The whole program, one BPF heading per instruction with its native code below."""
    cs = get_backend(native.arch).disassembler()
    headings = _headings(native)
    lines = [f"; {native.prog.name}: {len(native.prog)} BPF slots -> {len(native.code)} bytes of {native.arch}"]
    for i, (start, heading) in enumerate(headings):
        end = headings[i + 1][0] if i + 1 < len(headings) else len(native.code)
        lines.append(heading)
        lines += _native_lines(cs, native.code, start, end)
    return "\n".join(lines) + "\n"


def _native_lines(cs, code: bytes, start: int, end: int) -> list[str]:
    out, offset = [], start
    for insn in cs.disasm(code[start:end], start):
        out.append(f"    {insn.address:6x}:  {insn.bytes.hex(' '):<30} {insn.mnemonic} {insn.op_str}".rstrip())
        offset = insn.address + insn.size
    if offset < end:  # bytes capstone could not decode
        out.append(f"    {offset:6x}:  .byte {code[offset:end].hex(' ')}")
    return out
