"""Load eBPF programs from clang-built ELF objects (``clang -target bpf -c``).

    prog = jit.Program.from_elf("counter.o", section="xdp")
    programs, maps = list_sections("counter.o")

What the loader does, the way libbpf does it:

* Program sections are the executable sections other than ``.text`` (``xdp``,
  ``socket``, ``kprobe/...``, anything in ``SEC(...)``). A section holding
  several functions is one program per function, selected by function name.
* ``.text`` functions a program calls (local calls with or without an
  ``R_BPF_64_32`` relocation) are appended after it, in the order they are
  first reached, and the call immediates are fixed for the new layout.
* Maps come from the BTF-defined ``.maps`` section (type, key/value sizes and
  max_entries read from BTF) and from the legacy ``maps`` section
  (``struct bpf_map_def``). A program array initialised statically
  (``.values = {[1] = &prog}``) is filled with those programs.
* Global data (``.data*``, ``.rodata*`` incl. string literals, ``.bss*``) is
  one internal array map per section, named after the section, with one entry
  holding the section bytes (``.rodata*`` read-only for the program).
* LD_IMM64 relocations (``R_BPF_64_64``) become ``lddw.mapfd`` (src=1, imm =
  map index) or ``lddw.mapval`` (src=2, low imm = map index, high imm = byte
  offset), and are then **resolved by the loader**: the returned program only
  has plain LD_IMM64 (src=0) loading host addresses (the map's descriptor, or
  its value plus the offset), which every engine shares. The symbolic form is
  kept in ``prog.relocations``; :func:`symbolic` rebuilds it for disassembly.

All programs loaded from one :class:`ElfObject` share its maps and its
``trace_log``. Errors are :class:`jit.ElfError` naming the section and symbol.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, TypeVar

from elftools.common.exceptions import ELFError as PyElfError
from elftools.elf.elffile import ELFFile

from jit.core import isa
from jit.core.bytecode import Bytecode, Instruction, decode
from jit.core.errors import BpfError, ElfError
from jit.core.usage import check_path
from jit.frontend.btf import Btf, Kind
from jit.frontend.maps import BPF_F_RDONLY_PROG, Map, MapError, MapType, ProgArrayMap, create_map

P = TypeVar("P")  # the program type an ElfObject makes (jit.Program)
B = TypeVar("B", bound=Bytecode)
EM_BPF = 247
R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_32 = 1, 2, 10
SLOT = 8
OP_CALL, OP_LDDW = 0x85, 0x18
SRC_MAP_FD, SRC_MAP_VALUE = 1, 2
_BPF_MAP_DEF = struct.Struct("<IIIII")  # type, key_size, value_size, max_entries, map_flags
DATA_PREFIXES = (".data", ".rodata", ".bss")
MAPS_SECTION, LEGACY_MAPS_SECTION = ".maps", "maps"


@dataclass(frozen=True)
class MapSpec:
    """A map definition read from the object (``data`` initialises global data)."""

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    section: str = ""
    data: bytes = field(default=b"", repr=False)

    @property
    def type_name(self) -> str:
        try:
            return MapType(self.type).name.lower()
        except ValueError:
            return f"type {self.type}"


@dataclass(frozen=True)
class ProgramInfo:
    """A program in the object: its section, function and size in slots."""

    name: str  # the section name, or the function name when a section holds several
    section: str
    function: str
    offset: int  # byte offset of the function in its section
    size: int  # bytes

    @property
    def slots(self) -> int:
        return self.size // SLOT


@dataclass(frozen=True)
class Relocation:
    """A resolved LD_IMM64: ``kind`` is "map" (lddw.mapfd) or "map_value"
    (lddw.mapval, ``offset`` bytes into the value); ``symbol`` is what the ELF
    relocation named."""

    pc: int
    kind: str
    map: str
    map_index: int
    offset: int
    symbol: str

    @property
    def src(self) -> int:
        return SRC_MAP_FD if self.kind == "map" else SRC_MAP_VALUE

    @property
    def imm(self) -> int:
        """The symbolic LD_IMM64 constant (map index, offset in the high half)."""
        return self.map_index | (self.offset << 32 if self.kind == "map_value" else 0)


@dataclass(frozen=True)
class _Symbol:
    name: str
    section: int | str  # section index, or "SHN_UNDEF"/"SHN_ABS"/...
    value: int
    size: int
    type: str


class _Parser:
    """The parts of an ELF object the loader needs, read and checked once."""

    def __init__(self, path: str | Path):
        self.path = Path(check_path("path", path))
        try:
            raw = self.path.read_bytes()
        except OSError as error:
            raise ElfError(f"{self.path}: cannot read it ({error.strerror or error})") from None
        if raw[:4] != b"\x7fELF":
            raise ElfError(f"{self.path}: not an ELF file (magic {raw[:4]!r})")
        try:
            self._read(raw)
        except (PyElfError, struct.error, ValueError, KeyError, IndexError) as error:
            raise ElfError(f"{self.path}: truncated or corrupt ELF file ({error})") from None

    def _read(self, raw: bytes) -> None:
        import io

        elf = ELFFile(io.BytesIO(raw))
        machine = elf.header["e_machine"]
        if machine not in ("EM_BPF", EM_BPF):
            raise ElfError(f"{self.path}: machine is {machine}, not EM_BPF ({EM_BPF}): not an eBPF object")
        if elf.elfclass != 64 or not elf.little_endian:
            raise ElfError(f"{self.path}: only 64-bit little-endian eBPF objects are supported")
        end = elf.header["e_shoff"] + elf.header["e_shnum"] * elf.header["e_shentsize"]
        if end > len(raw):
            raise ElfError(f"{self.path}: truncated: section headers end at byte {end}, the file has {len(raw)}")
        self.sections = list(elf.iter_sections())
        for section in self.sections:
            if section["sh_type"] != "SHT_NOBITS" and section["sh_offset"] + section["sh_size"] > len(raw):
                raise ElfError(f"{self.path}: truncated: section {section.name!r} runs past the end of the file")
        self.names = [s.name for s in self.sections]
        self.data = [b"" if s["sh_type"] == "SHT_NOBITS" else s.data() for s in self.sections]
        self.symbols: list[_Symbol] = []
        self.relocations: dict[int, dict[int, tuple[int, int]]] = {}  # section -> offset -> (type, symbol)
        for section in self.sections:
            if section["sh_type"] == "SHT_SYMTAB":
                self.symbols = [self._symbol(s) for s in section.iter_symbols()]
            elif section["sh_type"] == "SHT_RELA":
                raise ElfError(f"{self.path}: section {section.name!r}: RELA relocations are not used by eBPF")
        for section in self.sections:
            if section["sh_type"] == "SHT_REL":
                self.relocations[section["sh_info"]] = {
                    r["r_offset"]: (r["r_info_type"], r["r_info_sym"]) for r in section.iter_relocations()
                }
        self.btf = Btf(self.data[self.names.index(".BTF")]) if ".BTF" in self.names else None
        self.programs = self._programs()
        self.map_symbols: dict[tuple[int, int], str] = {}  # (section, value) -> map name
        self.maps = self._btf_maps() + self._legacy_maps() + self._data_maps()

    def _symbol(self, sym) -> _Symbol:
        section = sym["st_shndx"]
        name = sym.name or (self.names[section] if isinstance(section, int) else "")
        return _Symbol(name, section, sym["st_value"], sym["st_size"], sym["st_info"]["type"])

    def index(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None

    def is_code(self, index: int) -> bool:
        section = self.sections[index]
        return section["sh_type"] == "SHT_PROGBITS" and bool(section["sh_flags"] & 0x4)  # SHF_EXECINSTR

    def functions(self, index: int) -> list[_Symbol]:
        """The function symbols of a code section, by address."""
        funcs = [s for s in self.symbols if s.section == index and s.type == "STT_FUNC"]
        return sorted(funcs, key=lambda s: s.value)

    def _programs(self) -> list[ProgramInfo]:
        found = []
        for index, name in enumerate(self.names):
            if name == ".text" or not self.is_code(index) or not self.data[index]:
                continue
            funcs = self.functions(index) or [_Symbol(name, index, 0, len(self.data[index]), "STT_FUNC")]
            for func in funcs:
                label = name if len(funcs) == 1 else func.name
                found.append(ProgramInfo(label, name, func.name, func.value, func.size or len(self.data[index])))
        return found

    # --- maps ----------------------------------------------------------------

    def _section_symbols(self, index: int) -> list[_Symbol]:
        return sorted((s for s in self.symbols if s.section == index and s.type == "STT_OBJECT"), key=lambda s: s.value)

    def _btf_maps(self) -> list[MapSpec]:
        index = self.index(MAPS_SECTION)
        if index is None:
            return []
        if self.btf is None:
            raise ElfError(f"{self.path}: section '.maps' needs BTF to describe its maps, and there is no .BTF section")
        variables = self.btf.datasec(MAPS_SECTION)
        specs = []
        for sym in self._section_symbols(index):
            if sym.name not in variables:
                raise ElfError(f"{self.path}: section '.maps': map {sym.name!r} has no BTF description")
            specs.append(self._btf_map(sym.name, variables[sym.name]))
            self.map_symbols[(index, sym.value)] = sym.name
        return specs

    def btf_map_fields(self, name: str, type_id: int) -> dict[str, tuple[int, int]]:
        """Member name -> (value, byte offset) of a BTF map definition."""
        assert self.btf is not None
        btf = self.btf
        struct_type = btf.resolve(type_id)
        if struct_type.kind is not Kind.STRUCT:
            raise ElfError(f"{self.path}: section '.maps': map {name!r} is a {struct_type.kind.name}, not a struct")
        fields = {}
        for member in struct_type.members:
            member_type = btf.resolve(member.type)
            value = 0
            if member.name in ("key", "value"):  # __type(key, T): a pointer to T
                value = btf.size_of(member_type.ref)
            elif member_type.kind is Kind.PTR:  # __uint(name, N): a pointer to an array of N
                target = btf.resolve(member_type.ref)
                if target.kind is not Kind.ARRAY:
                    raise ElfError(f"{self.path}: section '.maps': map {name!r}: field {member.name!r} is not __uint()")
                value = target.nelems
            fields[member.name] = (value, member.offset // 8)
        return fields

    def _btf_map(self, name: str, type_id: int) -> MapSpec:
        fields = self.btf_map_fields(name, type_id)

        def get(field_name: str, fallback: str = "") -> int:
            return fields.get(field_name, fields.get(fallback, (0, 0)))[0]

        return MapSpec(
            name,
            get("type"),
            get("key_size", "key") or (4 if get("type") == MapType.PROG_ARRAY else 0),
            get("value_size", "value") or (4 if get("type") == MapType.PROG_ARRAY else 0),
            get("max_entries"),
            get("map_flags"),
            MAPS_SECTION,
        )

    def _legacy_maps(self) -> list[MapSpec]:
        index = self.index(LEGACY_MAPS_SECTION)
        if index is None:
            return []
        data, symbols = self.data[index], self._section_symbols(index)
        if not symbols:
            return []
        size = len(data) // len(symbols)
        specs = []
        for sym in symbols:
            raw = data[sym.value : sym.value + size].ljust(_BPF_MAP_DEF.size, b"\0")[: _BPF_MAP_DEF.size]
            map_type, key_size, value_size, max_entries, flags = _BPF_MAP_DEF.unpack(raw)
            specs.append(MapSpec(sym.name, map_type, key_size, value_size, max_entries, flags, LEGACY_MAPS_SECTION))
            self.map_symbols[(index, sym.value)] = sym.name
        return specs

    def is_data(self, index: int) -> bool:
        section = self.sections[index]
        return (
            section["sh_flags"] & 0x2  # SHF_ALLOC
            and not self.is_code(index)
            and self.names[index].startswith(DATA_PREFIXES)
        )

    def _data_maps(self) -> list[MapSpec]:
        specs = []
        for index, name in enumerate(self.names):
            size = self.sections[index]["sh_size"]
            if self.is_data(index) and index in self.relocations:
                raise ElfError(f"{self.path}: section {name!r}: relocations inside global data are not supported")
            if self.is_data(index) and size:
                flags = BPF_F_RDONLY_PROG if name.startswith(".rodata") else 0
                specs.append(MapSpec(name, int(MapType.ARRAY), 4, size, 1, flags, name, self.data[index]))
        return specs

    def prog_array_inits(self) -> list[tuple[str, int, _Symbol]]:
        """(map name, slot, function symbol) of every statically initialised program array slot."""
        index = self.index(MAPS_SECTION)
        if index is None or index not in self.relocations:
            return []
        variables = self.btf.datasec(MAPS_SECTION) if self.btf else {}
        inits = []
        for offset, (rel_type, sym_index) in sorted(self.relocations[index].items()):
            target = self.symbols[sym_index]
            owner = next(
                (s for s in self._section_symbols(index) if s.value <= offset < s.value + s.size),
                None,
            )
            if rel_type != R_BPF_64_ABS64 or owner is None or owner.name not in variables:
                raise ElfError(
                    f"{self.path}: section '.maps': relocation type {rel_type} at offset {offset} "
                    f"against symbol {target.name!r} is not a program array initialiser"
                )
            values_offset = self.btf_map_fields(owner.name, variables[owner.name]).get("values", (0, None))[1]
            if values_offset is None:
                raise ElfError(
                    f"{self.path}: section '.maps': map {owner.name!r} initialises a field other than values"
                )
            inits.append((owner.name, (offset - owner.value - values_offset) // 8, target))
        return inits


class ElfObject(Generic[P]):
    """A loaded object: its maps (created once) and its programs (linked on demand).

    Programs are made as ``program_type(instructions, name=, maps=, memory=,
    section=, relocations=, trace_log=)``: :class:`jit.Program`, which this
    module does not import (``Program.from_elf`` is built on it).
    """

    def __init__(self, path: str | Path, program_type: Callable[..., P]):
        self.program_type = program_type
        self._parser = parser = _Parser(path)
        self.path = parser.path
        self.programs = {info.name: info for info in parser.programs}
        self.maps: dict[str, Map] = {}
        for spec in parser.maps:
            try:
                made = create_map(spec.name, spec.type, spec.key_size, spec.value_size, spec.max_entries, spec.flags)
            except MapError as error:
                raise ElfError(f"{self.path}: section {spec.section!r}: {error}") from None
            made.storage.write(0, spec.data)
            self.maps[spec.name] = made
        self.map_index = {name: i for i, name in enumerate(self.maps)}
        self.memory = tuple(block for m in self.maps.values() for block in m.memory)
        self.trace_log: list[str] = []
        self._linked: dict[str, P] = {}

    def choose(self, section: str | None) -> ProgramInfo:
        """The program named ``section`` (a section or function name), or the only one."""
        names = ", ".join(self.programs) or "none"
        if not self.programs:
            raise ElfError(f"{self.path}: no program section (executable sections other than .text)")
        if section is None:
            if len(self.programs) == 1:
                return next(iter(self.programs.values()))
            raise ElfError(
                f"{self.path}: {len(self.programs)} programs, choose one with section= (bpfjit: --section NAME): {names}"
            )
        if section in self.programs:
            return self.programs[section]
        by_function = [p for p in self.programs.values() if p.function == section]
        if len(by_function) == 1:
            return by_function[0]
        raise ElfError(f"{self.path}: no program section {section!r} (programs: {names})")

    def program(self, section: str | None = None) -> P:
        """The linked, resolved program ``section`` (cached: one Program per section)."""
        info = self.choose(section)
        if info.name not in self._linked:
            prog = _Linker(self, info).link()
            self._linked[info.name] = prog
            self._fill_prog_arrays()
        return self._linked[info.name]

    def _fill_prog_arrays(self) -> None:
        for map_name, slot, target in self._parser.prog_array_inits():
            prog_array = self.maps[map_name]
            if not isinstance(prog_array, ProgArrayMap):
                raise ElfError(f"{self.path}: section '.maps': map {map_name!r} is initialised but is no program array")
            if prog_array.target(slot) is not None:
                continue
            info = next((p for p in self.programs.values() if self._is_function_of(p, target)), None)
            if info is None:
                raise ElfError(
                    f"{self.path}: section '.maps': program array {map_name!r} slot {slot} names symbol "
                    f"{target.name!r}, which is not a program"
                )
            try:
                prog_array.update(slot, self.program(info.name))
            except MapError as error:
                raise ElfError(f"{self.path}: section '.maps': symbol {target.name!r}: {error}") from None

    def _is_function_of(self, info: ProgramInfo, sym: _Symbol) -> bool:
        return self._parser.names[sym.section] == info.section and sym.value == info.offset  # type: ignore[index]


class _Linker(Generic[P]):
    """Builds one program: its function, the .text functions it reaches, and
    the LD_IMM64 relocations resolved to host addresses."""

    def __init__(self, obj: ElfObject[P], info: ProgramInfo):
        self.obj, self.info, self.parser = obj, info, obj._parser
        section = self.parser.names.index(info.section)
        self.text = self.parser.index(".text")
        # Pieces of code in the output, in order: (section index, start byte, size).
        self.pieces: list[tuple[int, int, int]] = [(section, info.offset, info.size)]
        self.relocations: list[Relocation] = []

    def where(self, section: int, offset: int) -> str:
        return f"{self.parser.path}: section {self.parser.names[section]!r} (offset {offset})"

    def link(self) -> P:
        slots: list[bytearray] = []
        starts: dict[tuple[int, int], int] = {}  # (section, start byte) -> output slot
        calls: list[tuple[int, int, int]] = []  # (output slot, section, target byte)
        done = 0
        while done < len(self.pieces):
            section, start, size = self.pieces[done]
            starts[(section, start)] = len(slots)
            code = self.parser.data[section][start : start + size]
            if len(code) % SLOT:
                raise ElfError(f"{self.where(section, start)}: code size {len(code)} is not a multiple of 8")
            for at in range(0, len(code), SLOT):
                slot = bytearray(code[at : at + SLOT])
                target = self._relocate(section, start + at, slot, len(slots))
                if target is not None:
                    calls.append((len(slots), section if target[0] is None else target[0], target[1]))
                slots.append(slot)
            done += 1
        for out, section, target in calls:
            piece = next((start for s, start, size in self.pieces if s == section and start <= target < start + size))
            new_target = starts[(section, piece)] + (target - piece) // SLOT
            struct.pack_into("<i", slots[out], 4, new_target - out - 1)
        return self._finish(slots)

    def _relocate(self, section: int, offset: int, slot: bytearray, out: int) -> tuple[int | None, int] | None:
        """Apply the relocation at ``offset``; for a local call, return its
        target as (section or None for this one, byte offset)."""
        opcode, regs, imm = slot[0], slot[1], struct.unpack_from("<i", slot, 4)[0]
        reloc = self.parser.relocations.get(section, {}).get(offset)
        is_call = opcode == OP_CALL
        if is_call and regs >> 4 == 2:
            raise ElfError(f"{self.where(section, offset)}: call by BTF id {imm} (kfunc) is not supported")
        if reloc is None:
            if is_call and regs >> 4 == 1:
                target = offset + (imm + 1) * SLOT
                self._reach(section, target, offset)
                return None, target
            return None
        rel_type, sym_index = reloc
        sym = self.parser.symbols[sym_index]
        if rel_type == R_BPF_64_32 and is_call:
            return self._call(section, offset, sym, imm)
        if rel_type == R_BPF_64_64 and opcode == OP_LDDW:
            self._lddw(section, offset, sym, slot, out)
            return None
        raise ElfError(
            f"{self.where(section, offset)}: relocation type {rel_type} against symbol {sym.name!r} "
            f"is not supported here (only R_BPF_64_64 on lddw and R_BPF_64_32 on calls)"
        )

    def _call(self, section: int, offset: int, sym: _Symbol, imm: int) -> tuple[int, int]:
        if not isinstance(sym.section, int):
            raise ElfError(
                f"{self.where(section, offset)}: call to extern symbol {sym.name!r} "
                f"(a kfunc or BTF-id call) is not supported"
            )
        if sym.section != self.text:
            raise ElfError(
                f"{self.where(section, offset)}: call to symbol {sym.name!r} in section "
                f"{self.parser.names[sym.section]!r}: only .text functions can be called"
            )
        target = sym.value + (imm + 1) * SLOT
        self._reach(sym.section, target, offset, section)
        return sym.section, target

    def _reach(self, section: int, target: int, offset: int, caller: int | None = None) -> None:
        """Make sure the function starting at ``target`` in ``section`` is linked."""
        caller = section if caller is None else caller
        if any(s == section and start <= target < start + size for s, start, size in self.pieces):
            return
        func = next((f for f in self.parser.functions(section) if f.value == target), None)
        if func is None or section != self.text:
            raise ElfError(
                f"{self.where(caller, offset)}: local call to byte {target} of section "
                f"{self.parser.names[section]!r}, which is not the start of a .text function"
            )
        self.pieces.append((section, func.value, func.size))

    def _lddw(self, section: int, offset: int, sym: _Symbol, slot: bytearray, out: int) -> None:
        addend = struct.unpack_from("<i", slot, 4)[0]
        where = self.where(section, offset)
        if not isinstance(sym.section, int):
            raise ElfError(f"{where}: lddw of extern symbol {sym.name!r} (kconfig/ksym) is not supported")
        target_name = self.parser.names[sym.section]
        map_name = self.parser.map_symbols.get((sym.section, sym.value))
        if map_name is not None:
            if addend:
                raise ElfError(f"{where}: lddw of map {sym.name!r} with offset {addend}")
            reloc = Relocation(out, "map", map_name, self.obj.map_index[map_name], 0, sym.name)
        elif self.parser.is_data(sym.section) and target_name in self.obj.maps:
            value = sym.value + addend
            if not 0 <= value <= self.obj.maps[target_name].value_size:
                raise ElfError(f"{where}: symbol {sym.name!r} + {addend} lies outside section {target_name!r}")
            reloc = Relocation(out, "map_value", target_name, self.obj.map_index[target_name], value, sym.name)
        elif self.parser.is_code(sym.section):
            raise ElfError(f"{where}: lddw of function {sym.name!r} (a callback) is not supported")
        else:
            raise ElfError(
                f"{where}: relocation against symbol {sym.name!r} in section {target_name!r}, "
                f"which is neither a map nor global data"
            )
        self.relocations.append(reloc)

    def _finish(self, slots: list[bytearray]) -> P:
        for reloc in self.relocations:
            map_ = self.obj.maps[reloc.map]
            address = map_.address if reloc.kind == "map" else map_.values_address + reloc.offset
            first, second = slots[reloc.pc], slots[reloc.pc + 1]
            first[1] &= 0x0F  # src = 0: a plain 64-bit constant
            struct.pack_into("<I", first, 4, address & 0xFFFFFFFF)
            struct.pack_into("<I", second, 4, address >> 32)
        obj = self.obj
        try:
            instructions = decode(b"".join(slots))
            return obj.program_type(
                instructions,
                name=self.info.name,
                maps=obj.maps,
                memory=obj.memory,
                section=self.info.section,
                relocations=tuple(self.relocations),
                trace_log=obj.trace_log,
            )
        except BpfError as error:
            raise ElfError(f"{self.parser.path}: section {self.info.section!r}: {error}") from None


def list_sections(path: str | Path) -> tuple[list[ProgramInfo], list[MapSpec]]:
    """The programs and maps an object defines, without loading anything."""
    parser = _Parser(path)
    return parser.programs, parser.maps


def format_sections(path: str | Path) -> str:
    """A listing of the programs and maps of an object (``bpfjit sections``)."""
    programs, maps = list_sections(path)
    lines = [f"{len(programs)} program(s):"]
    lines += [f"  {p.name:<32} function {p.function}, {p.slots} slots" for p in programs]
    lines.append(f"{len(maps)} map(s):")
    lines += [
        f"  {m.name:<32} {m.type_name}, key {m.key_size} B, value {m.value_size} B, max_entries {m.max_entries}"
        + (", read-only for programs" if m.flags & BPF_F_RDONLY_PROG else "")
        for m in maps
    ]
    return "\n".join(lines)


def symbolic(prog: B) -> B:
    """``prog`` with its resolved LD_IMM64 turned back into ``lddw.mapfd`` /
    ``lddw.mapval`` (map index, offset), for disassembly and debugging."""
    by_pc = {reloc.pc: reloc for reloc in prog.relocations}
    out = []
    for pc, insn in prog:
        reloc = by_pc.get(pc)
        if reloc is not None:
            spec = isa.lookup(OP_LDDW, insn.dst, reloc.src, 0, 0)
            insn = Instruction(spec, insn.dst, reloc.src, 0, reloc.imm)  # type: ignore[arg-type]
        out.append(insn)
    return replace(prog, instructions=tuple(out))
