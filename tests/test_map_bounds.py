"""An access through a map value pointer stays inside that value, for every
map type: proven by the verifier (which refuses, as Linux does, an offset it
cannot bound), and checked at run time without the verifier, on every engine
alike: an access that crosses the end of a value (into the padding or the next
value) is a MemoryAccessError, and the map is left untouched."""

from __future__ import annotations

import pytest

import jit
from jit.frontend.elf import Relocation
from jit.frontend.maps import MapType, create_map

TYPES = [
    MapType.ARRAY,
    MapType.PERCPU_ARRAY,
    MapType.HASH,
    MapType.PERCPU_HASH,
    MapType.LRU_HASH,
    MapType.LRU_PERCPU_HASH,
]


def _program(map_type: MapType, value_size: int, store: str, bound: str = "") -> tuple[jit.Program, object]:
    """Look up key 0, add the input's first byte to the value pointer, store there."""
    m = create_map("m", int(map_type), 4, value_size, 4)
    for key in range(4):
        m.update(key, bytes(value_size))
    source = f"""
        stw [%r10-4], 0
        mov %r6, %r1
        lddw %r1, {m.address:#x}
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        ldxb %r3, [%r6]
        {bound}
        add %r0, %r3
        {store}
        out:
        mov %r0, 0
        exit
    """
    prog = jit.assemble(source)
    prog.maps, prog.memory = {"m": m}, m.memory
    prog.relocations = (Relocation(2, "map", "m", 0, 0, "m"),)
    return prog, m


def _run(engine, prog: jit.Program, offset: int):
    options = {} if engine.arch is None else {"verify": False}
    return engine.prepare(prog, **options)(bytearray([offset]))


@pytest.mark.parametrize("map_type", TYPES, ids=lambda t: t.name.lower())
def test_an_unbounded_offset_into_a_map_value_is_refused(map_type: MapType) -> None:
    prog, _ = _program(map_type, 8, "stdw [%r0], -1")
    with pytest.raises(jit.VerifierError, match=r"stays within the map value of 8 bytes: bound the offset"):
        jit.compile(prog)


@pytest.mark.parametrize("map_type", TYPES, ids=lambda t: t.name.lower())
def test_a_bounded_offset_is_proven_and_runs(map_type: MapType) -> None:
    prog, m = _program(map_type, 16, "stdw [%r0], -1", bound="and %r3, 7")
    fn = jit.compile(prog)
    store = max(pc for pc, insn in prog if insn.spec.mnemonic == "stdw")
    assert store not in fn.native.checked  # proven: nothing left to check at run time
    fn(bytearray([5]))
    assert m.lookup(0) == bytes(5) + b"\xff" * 8 + bytes(3)


@pytest.mark.parametrize("engine", jit.engines(), ids=lambda engine: engine.name)
@pytest.mark.parametrize("map_type", TYPES, ids=lambda t: t.name.lower())
def test_run_time_checks_keep_an_access_inside_one_value(engine, map_type: MapType) -> None:
    # 12-byte values lie 16 bytes apart: 4 bytes of padding after each.
    prog, m = _program(map_type, 12, "stdw [%r0], -1")
    for offset in (5, 8, 12, 16 + 8, 4 * 16):  # past the value's end: into the padding, the next value, the end
        with pytest.raises(jit.MemoryAccessError, match="store of 8 bytes at 0x"):
            _run(engine, prog, offset)
        assert all(value == bytes(12) for value in m.values()), offset
    _run(engine, prog, 4)  # the last 8 bytes of value 0
    assert m.lookup(0) == bytes(4) + b"\xff" * 8


@pytest.mark.parametrize("engine", jit.engines(), ids=lambda engine: engine.name)
def test_a_crossing_access_is_named_as_such(engine) -> None:
    prog, _ = _program(MapType.ARRAY, 12, "stw [%r0], -1")
    with pytest.raises(jit.MemoryAccessError, match=r"crosses the end of a 12-byte value of m values"):
        _run(engine, prog, 10)
