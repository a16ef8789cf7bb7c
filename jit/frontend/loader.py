"""Turn whatever a user hands us into a :class:`Program`.

Accepted: a Program, raw bytecode (bytes/bytearray/memoryview), assembly text,
or a path (str or Path) to a file: ``.s``/``.asm`` (assembly), ``.data``
(a conformance-suite test), an ELF object (by its magic, see :mod:`jit.frontend.elf`),
anything else is read as raw bytecode.
"""

from __future__ import annotations

from pathlib import Path

from jit.core.bytecode import Bytecode
from jit.core.errors import UsageError
from jit.frontend.program import Program

ProgramLike = Program | bytes | bytearray | memoryview | str | Path


def load_program(source: ProgramLike, section: str | None = None) -> Program:
    """A :class:`Program` from a Program, bytecode, assembly text or a file path
    (``section`` selects the program of an ELF object)."""
    if isinstance(source, Program):
        return source
    if isinstance(source, Bytecode):  # code only: a program without maps
        return Program(source.instructions, name=source.name)
    if isinstance(source, bytes | bytearray | memoryview):
        return Program.from_bytes(source)
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and _is_file(source)):
        return load_file(Path(source), section)
    if isinstance(source, str):
        from jit.frontend.asm import assemble

        return assemble(source)
    raise UsageError(
        f"cannot make a program from {type(source).__name__}: give a jit.Program, bytecode"
        " (bytes, bytearray, memoryview), assembly text or a file path"
    )


def _is_file(text: str) -> bool:
    """Whether ``text`` names an existing file (a name the OS refuses is not one)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def load_file(path: Path, section: str | None = None) -> Program:
    """A program from a file, chosen by its suffix (an ELF object by its magic;
    ``section`` picks one of its programs)."""
    suffix = path.suffix.lower()
    if suffix in (".s", ".asm"):
        from jit.frontend.asm import assemble

        return assemble(path.read_text(), name=path.stem)
    if suffix == ".data":
        from jit.frontend.conformance import load

        return load(path).program  # named after the file
    if is_elf(path):
        return Program.from_elf(path, section)  # named after its section
    return Program.from_bytes(path.read_bytes(), name=path.stem)


def is_elf(path: Path) -> bool:
    """True when the file starts with the ELF magic (a clang-built object)."""
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"
