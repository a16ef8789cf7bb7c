"""Reader for the conformance suite's ``.data`` files (FORMAT.md section 2).

A file that this module cannot fully understand (unknown directive, bad
assembly, malformed raw/mem/result content, no expectation, no program) raises
:class:`ConformanceFileError` naming the file: a runner must fail it, never
skip it silently.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from jit.core.bits import MASK64
from jit.core.errors import BpfError
from jit.frontend.asm import assemble
from jit.frontend.program import Program

# Header keywords, tested in this order by substring search (FORMAT.md 2.2).
# None marks sections whose content is discarded.
_HEADERS: tuple[tuple[str, str | None], ...] = (
    ("asm", "asm"),
    ("result", "result"),
    ("mem", "mem"),
    ("raw", "raw"),
    ("no register offset", None),
    (" c", None),
    ("error", "error"),
)
_RAW_WORD = re.compile(r"0x[0-9a-fA-F]+|[0-9]+")
_MEM_BYTE = re.compile(r"[0-9a-fA-F]+")
_RESULT_HEX = re.compile(r"\s*(?:0x)?([0-9a-fA-F]+)")
_RESULT_DEC = re.compile(r"\s*([0-9]+)")


class ConformanceFileError(BpfError):
    """A conformance ``.data`` file that is not a valid test; names the file."""

    def __init__(self, file: str, reason: str):
        self.file = file
        self.reason = reason
        super().__init__(f"conformance file {file or '<text>'}: {reason}")


@dataclass
class ConformanceCase:
    """One test: the program, the input buffer, and the expected R0 or error text."""

    name: str
    program: Program
    mem: bytes | None
    expected: int | None
    error: str | None


def _sections(text: str, name: str) -> dict[str, list[tuple[int, str]]]:
    """Content lines per section, as (1-based line number, comment-stripped text)."""
    sections: dict[str, list[tuple[int, str]]] = {"asm": [], "result": [], "mem": [], "raw": [], "error": []}
    current: list[tuple[int, str]] | None = None  # None: before the first header, or an ignored section
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r").split("#", 1)[0]
        if "--" in line:
            section = next((sec for key, sec in _HEADERS if key in line), "unknown")
            if section == "unknown":
                raise ConformanceFileError(name, f"line {lineno}: unknown directive {line.strip()!r}")
            current = sections[section] if section else None
        elif line.strip() and current is not None:
            current.append((lineno, line))
    return sections


def _raw_program(lines: list[tuple[int, str]], name: str) -> bytes:
    out = bytearray()
    for lineno, line in lines:
        for token in line.split():
            value = int(token, 16 if token.startswith("0x") else 10) if _RAW_WORD.fullmatch(token) else -1
            if not 0 <= value <= MASK64:
                raise ConformanceFileError(name, f"line {lineno}: bad raw instruction word {token!r}")
            out += value.to_bytes(8, "little")
    return bytes(out)


def _memory(lines: list[tuple[int, str]], name: str) -> bytes | None:
    out = bytearray()
    for lineno, line in lines:
        for token in line.split():
            if not _MEM_BYTE.fullmatch(token):
                raise ConformanceFileError(name, f"line {lineno}: bad memory byte {token!r} (hex without 0x)")
            out.append(int(token, 16) & 0xFF)
    return bytes(out) or None


def _result(lines: list[tuple[int, str]], name: str) -> int | None:
    """The last result line: hexadecimal iff it contains ``0x``, else unsigned decimal."""
    if not lines:
        return None
    lineno, line = lines[-1]
    match = (_RESULT_HEX if "0x" in line else _RESULT_DEC).match(line)
    if match is None:
        raise ConformanceFileError(name, f"line {lineno}: bad result {line.strip()!r}")
    value = int(match.group(1), 16 if "0x" in line else 10)
    if value > MASK64:
        raise ConformanceFileError(name, f"line {lineno}: result {line.strip()!r} does not fit in 64 bits")
    return value


def _program(sections: dict[str, list[tuple[int, str]]], name: str, total_lines: int) -> Program:
    """The raw section if it has any word, else the assembled asm section."""
    raw = _raw_program(sections["raw"], name)
    try:
        if raw:
            return Program.from_bytes(raw, name=name or "prog")
        if not sections["asm"]:
            raise ConformanceFileError(name, "no program (neither an asm nor a raw section has content)")
        # Keep the file's line numbers in assembly errors: other lines become blank.
        source = [""] * (total_lines + 1)
        for lineno, line in sections["asm"]:
            source[lineno - 1] = line
        return assemble("\n".join(source), name=name or "prog")
    except ConformanceFileError:
        raise
    except BpfError as err:
        raise ConformanceFileError(name, f"{type(err).__name__}: {err}") from err


def parse(text: str, name: str = "") -> ConformanceCase:
    """Parse the text of a ``.data`` file (FORMAT.md section 2)."""
    sections = _sections(text, name)
    expected = _result(sections["result"], name)
    error = sections["error"][-1][1].strip() if sections["error"] else None
    if expected is None and error is None:
        raise ConformanceFileError(name, "no expectation (neither a result nor an error section has content)")
    program = _program(sections, name, text.count("\n") + 1)
    return ConformanceCase(name, program, _memory(sections["mem"], name), expected, error)


def load(path: str | Path) -> ConformanceCase:
    """Read and parse a ``.data`` file; the case is named after the file's stem."""
    path = Path(path)
    try:
        return parse(path.read_text(encoding="utf-8"), name=path.stem)
    except ConformanceFileError as err:
        raise ConformanceFileError(str(path), err.reason) from err.__cause__


def suite_dir() -> Path | None:
    """Where the conformance suite's ``.data`` files are: ``$BPF_CONFORMANCE_DIR``,
    else ``../shared/conformance/tests`` beside this checkout; None if neither exists."""
    env = os.environ.get("BPF_CONFORMANCE_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "conformance" / "tests")
    return next((path for path in candidates if path.is_dir()), None)
