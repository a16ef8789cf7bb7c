"""Binding maps to a hand-written program's ``lddw.mapfd`` / ``lddw.mapval``.

What the ELF loader does from relocations, for assembly text: map ``I`` of
the list given (a file descriptor in Linux terms) is what ``lddw.mapfd %rN, I``
loads; ``lddw.mapval %rN, I + (OFF << 32)`` loads the address ``OFF`` bytes
into the value of an array map (``.mapidx`` and ``.mapvalidx`` index the
same list). The program gets the maps, their memory and the relocations, so
the verifier knows each loaded pointer and :func:`jit.frontend.elf.symbolic`
can show them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from jit.core import isa
from jit.core.bytecode import Instruction
from jit.core.errors import UsageError
from jit.frontend.elf import OP_LDDW, Relocation
from jit.frontend.maps import ArrayMap, Map
from jit.frontend.program import Program

_BY_INDEX = {1: "map", 5: "map", 2: "map_value", 6: "map_value"}  # LD_IMM64 src -> relocation kind

Maps = Mapping[str, Map] | Sequence[Map]


def bind_maps(prog: Program, maps: Maps) -> Program:
    """``prog`` with every map reference resolved against ``maps`` (in order)."""
    if isinstance(maps, Mapping):
        table = list(maps.values())
    elif isinstance(maps, Sequence | set | frozenset) and not isinstance(maps, str | bytes):
        table = list(maps)
    else:
        raise UsageError(f"maps must be a list or dict of jit.Map objects, not {type(maps).__name__}")
    for m in table:
        if not isinstance(m, Map):
            raise UsageError(f"maps must hold jit.Map objects (see jit.create_map), not {m!r}")
    out, relocations = [], []
    for pc, insn in prog:
        kind = _BY_INDEX.get(insn.src) if insn.spec.opcode == OP_LDDW else None
        if kind is None:
            out.append(insn)
            continue
        index, offset = insn.imm & 0xFFFFFFFF, insn.imm >> 32
        where = prog.describe(pc)
        if index >= len(table):
            names = ", ".join(f"{i}: {m.name}" for i, m in enumerate(table)) or "none"
            raise UsageError(f"{where}: no map {index} among the maps given ({names})")
        m = table[index]
        if kind == "map":
            address = m.address
        elif not isinstance(m, ArrayMap) or offset >= m.value_size:
            raise UsageError(f"{where}: lddw.mapval needs an array map and an offset below its value size")
        else:
            address = m.values_address + offset
        relocations.append(Relocation(pc, kind, m.name, index, offset if kind == "map_value" else 0, m.name))
        out.append(Instruction(isa.lookup(OP_LDDW, insn.dst, 0, 0, 0), insn.dst, 0, 0, address))  # type: ignore[arg-type]
    return replace(
        prog,
        instructions=tuple(out),
        maps={**prog.maps, **{m.name: m for m in table}},
        memory=(*prog.memory, *(block for m in table for block in m.memory)),
        relocations=(*prog.relocations, *relocations),
    )
