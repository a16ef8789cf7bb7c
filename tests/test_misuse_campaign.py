"""The misuse campaign: every public parameter given values of the wrong type or range.

For each public callable a valid call is written out once; each parameter in turn then
gets each value of WRONG (and the call must either work, because the value happens to
be acceptable there, or raise a ``jit.BpfError`` subclass). Any other exception, or a
crash of the process, fails the test: the README promises ``jit.BpfError`` for misuse.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

import jit
from jit.frontend.maps import create_map

PROGRAM_TEXT = "ldxb %r0, [%r1]\nexit"
LOOP_TEXT = "mov %r0, 0\nl:\nadd %r0, 1\njne %r0, 3, l\nexit"
MEM = b"\x07" + bytes(7)
PACKET = bytes(12) + b"\x08\x00" + b"\x45" + bytes(8) + b"\x06" + bytes(10)


class Unusable:
    """An object no parameter can use: no __index__, __len__, buffer or str form worth having."""

    def __repr__(self) -> str:
        return "Unusable()"


WRONG: tuple[object, ...] = (
    None,
    "x",
    "",
    b"\xff",
    1.5,
    -1,
    2**70,
    True,
    [],
    [1, 2],
    {},
    {1: 2},
    (),
    Unusable(),
    float("nan"),
)


@dataclass
class Case:
    """A public callable and one valid set of keyword arguments for it."""

    name: str
    call: Callable[..., object]
    kwargs: dict[str, object]
    skip: frozenset[str] = field(default_factory=frozenset)


def _program() -> jit.Program:
    return jit.assemble(PROGRAM_TEXT)


def _compiled(**options: object) -> Callable[..., object]:
    fn = jit.compile(PROGRAM_TEXT, **options)
    return fn


def _array_map():
    return create_map("counts", 2, 4, 8, 4)


def _hash_map():
    made = create_map("hash", 1, 4, 8, 4)
    made.update(1, 2)
    return made


def _compile_program(instructions: object, name: object) -> object:
    return jit.compile(jit.Program(instructions, name=name))(MEM)


def _encode_instruction(**fields: object) -> bytes:
    return jit.Instruction(jit.assemble("mov %r0, 1\nexit").instructions[0].spec, **fields).encode()


def _batch(data: object, offsets: object, lengths: object) -> object:
    as_array = (lambda v: array.array("Q", v)) if isinstance(offsets, list) and isinstance(lengths, list) else None
    if as_array is not None and all(type(x) is int and x >= 0 for x in [*offsets, *lengths]):
        offsets, lengths = as_array(offsets), as_array(lengths)
    return jit.Filter("ip").match_many(jit.PacketBatch(data, offsets, lengths))


def _cases() -> list[Case]:
    prog = _program()
    native = jit.compile(prog)
    emulated = jit.compile(prog, arch="arm64", emulate=True)
    loop = jit.compile(LOOP_TEXT)
    counts = _array_map()
    classic = jit.compile_expression("ip")
    filt = jit.Filter("ip")
    return [
        Case("assemble", jit.assemble, {"text": PROGRAM_TEXT, "name": "p", "maps": None}),
        Case("disassemble", jit.disassemble, {"prog": prog, "labels": False}),
        Case("interpret", jit.interpret, {"prog": prog, "mem": MEM, "helpers": None, "max_steps": None}),
        Case(
            "compile",
            jit.compile,
            {
                "prog": prog,
                "arch": None,
                "helpers": None,
                "emulate": False,
                "section": None,
                "max_steps": None,
                "bounds_check": "auto",
                "verify": True,
                "fast_lookup": True,
            },
        ),
        Case(
            "compile(arm64)",
            jit.compile,
            {"prog": prog, "arch": "arm64", "emulate": True, "max_steps": 100, "bounds_check": True},
        ),
        Case("verify", jit.verify, {"prog": prog, "mem_size": 8, "allow_loops": True, "helpers": None}),
        Case(
            "crosscheck",
            jit.crosscheck,
            {"prog": prog, "mem": MEM, "helpers": None, "engine_list": None, "max_steps": 100, "trace": False},
        ),
        Case("native call", native, {"mem": MEM}),
        Case("native run_many", native.run_many, {"mem": MEM, "n": 3}),
        Case("emulated call", emulated, {"mem": MEM}),
        Case("emulated run_many", emulated.run_many, {"mem": MEM, "n": 3}),
        Case("loop run_many", loop.run_many, {"mem": None, "n": 2}),
        Case("map lookup", counts.lookup, {"key": 1}),
        Case("map update", counts.update, {"key": 1, "value": 5, "flags": 0}),
        Case("map key", counts.key, {"key": 1}),
        Case("map contains", counts.__contains__, {"key": 1}),
        Case("map restore", counts.restore, {"snapshot": counts.snapshot()}),
        Case("create_map", create_map, {"name": "m", "map_type": 1, "key_size": 4, "value_size": 8, "max_entries": 2}),
        Case("Program.from_elf", jit.Program.from_elf, {"path": "tests/fixtures/xdp_counter.o", "section": "xdp"}),
        Case(
            "compile_expression",
            jit.compile_expression,
            {"expression": "tcp port 80", "linktype": 1, "snaplen": 65535, "optimize": True, "netmask": 0xFFFFFFFF},
        ),
        Case("classic_to_ebpf", jit.classic_to_ebpf, {"prog": classic, "validate": True}),
        Case("run_classic", jit.run_classic, {"prog": classic, "packet": PACKET, "wirelen": None}),
        Case("ClassicProgram.describe", classic.describe, {"pc": 0}),
        Case(
            "Filter",
            jit.Filter,
            {"source": "ip", "linktype": 1, "snaplen": 65535, "optimize": True, "arch": None, "emulate": False},
        ),
        Case("Filter.match", filt.match, {"packet": PACKET}),
        Case("Filter.match_many", filt.match_many, {"packets": [PACKET, PACKET]}),
        Case("Filter.count", filt.count, {"packets": [PACKET]}),
        Case("run_batch", jit.run_batch, {"fn": filt.match, "packets": [PACKET]}),
        Case("native run_direct", native.run_direct, {"mem": MEM, "n": 2}),
        Case("emulated run_direct", emulated.run_direct, {"mem": MEM, "n": 2}),
        Case("map delete", _hash_map().delete, {"key": 1}),
        Case("map update_raw", counts.update_raw, {"key": bytes(4), "value": bytes(8), "flags": 0}),
        Case("map lookup_address", counts.lookup_address, {"key": bytes(4)}),
        Case("map slot_address", counts.slot_address, {"slot": 1}),
        Case(
            "Map",
            create_map,
            {"name": "m", "map_type": 2, "key_size": 4, "value_size": 8, "max_entries": 1, "flags": 0},
        ),
        Case("ClassicProgram.from_bytes", jit.ClassicProgram.from_bytes, {"raw": classic.to_bytes()}),
        Case("run_classic(bytes)", jit.run_classic, {"prog": classic.to_bytes(), "packet": PACKET, "wirelen": 60}),
        Case("classic_to_ebpf(text)", jit.classic_to_ebpf, {"prog": classic.to_c_array(), "validate": False}),
        Case("compiled program of a Program", _compile_program, {"instructions": prog.instructions, "name": "p"}),
        Case("Helper", jit.Helper, {"id": 1000, "name": "h", "func": lambda *args: 0}),
        Case("Instruction", _encode_instruction, {"dst": 1, "src": 2, "off": 3, "imm": 4}),
        Case("PacketBatch", _batch, {"data": bytearray(PACKET), "offsets": [0], "lengths": [len(PACKET)]}),
        Case("Filter(emulated)", jit.Filter, {"source": classic, "arch": "x86_64", "emulate": True}),
    ]


CASES = _cases()
PARAMS = [(case, name) for case in CASES for name in case.kwargs if name not in case.skip]


def test_every_valid_call_works() -> None:
    for case in CASES:
        case.call(**case.kwargs)


@pytest.mark.parametrize(("case", "param"), PARAMS, ids=[f"{case.name}-{param}" for case, param in PARAMS])
def test_a_wrong_value_is_a_bpf_error(case: Case, param: str) -> None:
    surprises = []
    for value in WRONG:
        kwargs = {**case.kwargs, param: value}
        try:
            case.call(**kwargs)
        except jit.BpfError:
            pass
        except Exception as error:  # every other kind is what this looks for
            surprises.append(f"{param}={value!r}: {type(error).__name__}: {error}")
    assert not surprises, "\n".join(surprises)


def test_the_campaign_covers_every_public_callable() -> None:
    covered = {case.call.__name__ for case in CASES if hasattr(case.call, "__name__")}
    public = {name for name in jit.__all__ if callable(getattr(jit, name)) and not isinstance(getattr(jit, name), type)}
    assert public - covered <= {"engines"}, sorted(public - covered)


@pytest.mark.parametrize(
    ("data", "offsets", "lengths"),
    [
        (b"abc", array.array("Q", [0]), array.array("Q", [3])),
        (bytearray(3), [0], [3]),
        (bytearray(3), array.array("Q", [0]), array.array("Q", [9])),
        (bytearray(3), array.array("Q", [0, 1]), array.array("Q", [1])),
    ],
    ids=["bytes", "lists", "past-the-end", "lengths-short"],
)
def test_a_packet_batch_of_wrong_parts(data: object, offsets: object, lengths: object) -> None:
    with pytest.raises(jit.BpfError):
        jit.Filter("ip").match_many(jit.PacketBatch(data, offsets, lengths))
