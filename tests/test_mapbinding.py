"""jit.assemble(text, maps=...): hand-written lddw.mapfd / lddw.mapval bound to maps."""

from __future__ import annotations

import pytest

import jit
from jit.frontend.elf import symbolic
from jit.frontend.maps import create_map

LOOKUP = """
    stw [r10-4], 0
    lddw.mapfd r1, 1
    mov r2, r10
    add r2, -4
    call 1
    jeq r0, 0, +2
    ldxdw r0, [r0]
    exit
    mov r0, 7
    exit
"""


@pytest.mark.parametrize("engine", jit.engines(), ids=lambda engine: engine.name)
def test_lddw_mapfd_loads_the_map_of_that_index(engine) -> None:
    first, second = create_map("first", 2, 4, 8, 1), create_map("counts", 1, 4, 8, 4)
    second.update(0, (42).to_bytes(8, "little"))
    prog = jit.assemble(LOOKUP, maps=[first, second])
    assert not jit.verify(prog).unproven  # the verifier knows R1 is map 1 and R0 its value or null
    assert engine.prepare(prog)(None) == 42
    second.delete(0)
    assert engine.prepare(prog)(None) == 7
    assert set(prog.maps) == {"first", "counts"}
    assert jit.disassemble(symbolic(prog)).splitlines()[1] == "lddw.mapfd %r1, 0x1"


@pytest.mark.parametrize("engine", jit.engines(), ids=lambda engine: engine.name)
def test_lddw_mapval_loads_an_address_inside_an_array_value(engine) -> None:
    data = create_map("data", 2, 4, 12, 1)
    data.update(0, bytes(4) + (9).to_bytes(4, "little") + bytes(4))
    prog = jit.assemble("lddw.mapval r1, 0x400000000\nldxw r0, [r1]\nstw [r1+4], 5\nexit", maps={"data": data})
    assert engine.prepare(prog)(None) == 9
    assert data.lookup(0)[8:] == (5).to_bytes(4, "little")


@pytest.mark.parametrize(
    ("text", "maps", "message"),
    [
        ("lddw.mapfd r1, 2\nexit", "two", r"instruction 0 \(lddw.mapfd %r1, 0x2\): no map 2 among the maps given"),
        ("lddw.mapval r1, 0\nexit", "hash", "lddw.mapval needs an array map"),
        ("lddw.mapval r1, 0x800000000\nexit", "array", "offset below its value size"),
        ("lddw.mapfd r1, 0\nexit", "junk", "maps must hold jit.Map objects"),
    ],
)
def test_bad_bindings_are_usage_errors(text: str, maps: str, message: str) -> None:
    given = {
        "two": [create_map("a", 2, 4, 8, 1), create_map("b", 2, 4, 8, 1)],
        "hash": [create_map("h", 1, 4, 8, 1)],
        "array": [create_map("a", 2, 4, 8, 1)],
        "junk": [object()],
    }[maps]
    with pytest.raises(jit.UsageError, match=message):
        jit.assemble(text, maps=given)
