"""Rebuild every benchmark program: bench/programs/NAME.c -> bench/programs/NAME.bin.

    python -m jit.bench.build            # all programs
    python -m jit.bench.build crc32 ...  # some

Each program is compiled with ``clang-14 -O2 -target bpf -c`` (Debian:
``apt-get install -y clang-14``). The bytecode is taken from the ELF object with
pyelftools: the entry function ``bench_NAME`` (in a section of its own, see
programs/bench.h) first, then ``.text`` with the local functions it calls. Local
calls (``R_BPF_64_32`` relocations of ``call`` instructions) are resolved here;
any other relocation (globals, maps, .rodata) is rejected, since the benchmarks
take all their data from the input buffer. The result must decode with
:meth:`jit.Program.from_bytes`. The .bin files are committed, so neither the
tests nor ``bpfjit bench`` need clang.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import Section, SymbolTableSection

import jit

PROGRAMS = Path(__file__).resolve().parent / "programs"
CLANG = "clang-14"
CLANG_FLAGS = ("-O2", "-target", "bpf", "-c")
ENTRY_PREFIX = "bench_"

R_BPF_64_32 = 10  # the relocation clang emits for a call to another function
CALL = 0x85
PSEUDO_CALL = 1  # src register of a local (BPF-to-BPF) call
SLOT = 8


class BuildError(Exception):
    """A program that cannot be turned into bytecode; names the file and why."""


def compile_object(source: Path, out_dir: Path) -> Path:
    """``clang-14 -O2 -target bpf -c source`` into ``out_dir``."""
    if shutil.which(CLANG) is None:
        raise BuildError(f"{CLANG} not found: install it (Debian: apt-get update && apt-get install -y {CLANG})")
    obj = out_dir / f"{source.stem}.o"
    done = subprocess.run([CLANG, *CLANG_FLAGS, str(source), "-o", str(obj)], capture_output=True, text=True)
    if done.returncode:
        raise BuildError(f"{source.name}: {CLANG} failed:\n{done.stderr}")
    return obj


def _entry_symbol(elf: ELFFile, name: str):
    symtab = elf.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        raise BuildError(f"{name}: no symbol table")
    for sym in symtab.iter_symbols():
        if sym.name == name and sym["st_info"]["type"] == "STT_FUNC":
            return sym
    raise BuildError(f"entry function {name} not found")


def extract_bytecode(obj: Path, entry: str) -> bytes:
    """The bytecode of function ``entry`` followed by ``.text``, local calls resolved."""
    with obj.open("rb") as f:
        elf = ELFFile(f)
        sym = _entry_symbol(elf, entry)
        main = elf.get_section(sym["st_shndx"])
        if sym["st_value"] != 0 or sym["st_size"] != main.data_size:
            raise BuildError(f"{obj.name}: {entry} must be alone in section {main.name} (see programs/bench.h)")
        sections = [main]
        text = elf.get_section_by_name(".text")
        if text is not None and text.data_size and text is not main:
            sections.append(text)
        base = {}  # section index -> first slot in the final program
        code = bytearray()
        for section in sections:
            base[elf.get_section_index(section.name)] = len(code) // SLOT
            code += section.data()
        for section in sections:
            _apply_relocations(elf, section, base, code)
        return bytes(code)


def _apply_relocations(elf: ELFFile, section: Section, base: dict[int, int], code: bytearray) -> None:
    """Patch every local call in ``section`` to a pc-relative slot offset."""
    rel = elf.get_section_by_name(f".rel{section.name}")
    if not isinstance(rel, RelocationSection):
        return
    symtab = elf.get_section(rel["sh_link"])
    start = base[elf.get_section_index(section.name)]
    for reloc in rel.iter_relocations():
        sym = symtab.get_symbol(reloc["r_info_sym"])
        pc = start + reloc["r_offset"] // SLOT
        where = f"{section.name}+0x{reloc['r_offset']:x} (relocation against {sym.name or 'a section'})"
        opcode, regs, off, imm = struct.unpack_from("<BBhi", code, pc * SLOT)
        if reloc["r_info_type"] != R_BPF_64_32 or opcode != CALL or regs >> 4 != PSEUDO_CALL:
            raise BuildError(f"{where}: only local calls are supported, the benchmarks must not use globals or maps")
        if sym["st_shndx"] not in base:
            raise BuildError(f"{where}: call target is not in the program's code")
        # As libbpf does: the callee is at symbol value / 8 + imm + 1 within its section.
        target = base[sym["st_shndx"]] + sym["st_value"] // SLOT + imm + 1
        struct.pack_into("<BBhi", code, pc * SLOT, opcode, regs, off, target - (pc + 1))


def bytecode(name: str, work: Path) -> bytes:
    """Compile ``programs/NAME.c`` in ``work`` and return its checked bytecode."""
    obj = compile_object(PROGRAMS / f"{name}.c", work)
    raw = extract_bytecode(obj, ENTRY_PREFIX + name)
    try:
        jit.Program.from_bytes(raw, name=name)
    except jit.BpfError as exc:
        raise BuildError(f"{name}: the extracted bytecode does not decode: {exc}") from exc
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jit.bench.build", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="programs to rebuild (default: every programs/*.c)")
    args = parser.parse_args(argv)
    names = args.names or sorted(path.stem for path in PROGRAMS.glob("*.c"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                raw = bytecode(name, Path(tmp))
            except BuildError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            out = PROGRAMS / f"{name}.bin"
            out.write_bytes(raw)
            print(f"{out.relative_to(PROGRAMS.parent.parent)}: {len(raw) // SLOT} slots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
