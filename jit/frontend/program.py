"""The program every front end returns: code plus what it needs to run.

A :class:`Program` is :class:`jit.core.bytecode.Bytecode` (the instructions)
with, for programs loaded from an ELF object (:mod:`jit.frontend.elf`), the
maps by name, every host memory block the program may access besides its
input and stack (map values, map descriptors, global data), the section it
came from, the LD_IMM64 relocations the loader resolved, and the log that
``bpf_trace_printk`` appends to. Programs from bytecode or assembly text have
none of those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jit.core.bytecode import Bytecode
from jit.core.usage import check_optional_str

if TYPE_CHECKING:
    from jit.frontend.elf import ElfObject, Relocation
    from jit.frontend.hostmem import HostMemory
    from jit.frontend.maps import Map


@dataclass(eq=False)
class Program(Bytecode):
    """A decoded eBPF program with its maps, global data and relocations.

    ``len(prog)`` counts 8-byte slots; iterating yields ``(pc, instruction)``;
    ``prog.instructions`` holds the :class:`jit.Instruction` objects (one per
    ``lddw``, which takes two slots) and ``prog.to_bytes()`` the bytecode. Two
    programs are equal when their instructions are.
    """

    maps: dict[str, Map] = field(default_factory=dict, repr=False)
    memory: tuple[HostMemory, ...] = field(default=(), repr=False)
    section: str = ""
    relocations: tuple[Relocation, ...] = field(default=(), repr=False)
    trace_log: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def from_elf(cls, path: str | Path, section: str | None = None) -> Program:
        """The program ``section`` (the only one when None) of a clang-built
        eBPF object (``bpf`` target, BTF or legacy maps): its maps and global data are
        created and its relocations resolved to their host addresses. Every call
        creates fresh maps; :func:`elf_object` loads several programs of one
        object that share their maps."""
        return elf_object(path).program(check_optional_str("section", section))


def elf_object(path: str | Path) -> ElfObject[Program]:
    """An ELF object whose programs are :class:`Program` objects sharing its maps."""
    from jit.frontend.elf import ElfObject

    return ElfObject(path, Program)


def load_elf(path: str | Path, section: str | None = None) -> Program:
    """``Program.from_elf(path, section)``."""
    return Program.from_elf(path, section)
