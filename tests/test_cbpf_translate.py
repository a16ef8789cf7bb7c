"""Classic -> eBPF translation, differential: random valid classic programs on
random packets, the classic interpreter and libpcap's bpf_filter against the
translation on every engine (single runs and batches), and the translation
always passing the strict verifier."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jit
from jit.frontend import pcapfilter
from jit.frontend.cbpf import CLASSIC, ClassicProgram, COp, Mode
from jit.frontend.cbpf_translate import classic_to_ebpf, with_wire_length
from jit.runtime.batch import run_batch
from jit.runtime.cbpf_interpreter import run_classic

EXAMPLES = int(os.environ.get("BPFJIT_HYPOTHESIS_EXAMPLES", "50"))
ENGINES = jit.engines()
BODY = [spec for spec in CLASSIC if spec.op is not COp.RET]
INTERESTING = [0, 1, 2, 3, 4, 12, 14, 15, 20, 23, 31, 32, 33, 63, 64, 0x7FFF, 0x8000, 0x7FFFFFFB, 0x7FFFFFFF]
INTERESTING += [0x80000000, 0xFFFFFFFC, 0xFFFFFFFF]
WORDS = st.one_of(st.sampled_from(INTERESTING), st.integers(0, 0xFFFFFFFF))
OFFSETS = st.one_of(st.integers(0, 70), st.sampled_from(INTERESTING))


def _libpcap() -> pcapfilter.Libpcap | None:
    try:
        return pcapfilter.libpcap()
    except pcapfilter.LibpcapMissing as exc:
        print(f"libpcap comparisons skipped: {exc}")
        return None


LIBPCAP = _libpcap()


@st.composite
def classic_programs(draw: st.DrawFn) -> ClassicProgram:
    """A valid classic program: M[0] and M[1] written first (so loads of them are
    allowed), then random instructions with forward jumps, then a ret."""
    rows = [(0x00, 0, 0, draw(WORDS)), (0x02, 0, 0, 0), (0x01, 0, 0, draw(WORDS)), (0x03, 0, 0, 1)]
    count = draw(st.integers(0, 14))
    last = len(rows) + count  # index of the final ret
    for i in range(count):
        pc = len(rows)
        spec = draw(st.sampled_from(BODY))
        reach = last - pc - 1  # the largest forward offset that stays inside
        jt = jf = 0
        if spec.mode is Mode.MEM:
            k = draw(st.integers(0, 15)) if spec.op in (COp.ST, COp.STX) else draw(st.integers(0, 1))
        elif spec.op in (COp.DIV, COp.MOD) and spec.mode is not Mode.X:
            k = draw(WORDS.filter(bool))
        elif spec.op in (COp.LSH, COp.RSH) and spec.mode is not Mode.X:
            k = draw(st.integers(0, 31))
        elif spec.op is COp.JA:
            k = draw(st.integers(0, reach))
        elif spec.mode in (Mode.ABS, Mode.IND, Mode.MSH):
            k = draw(OFFSETS)
        else:
            k = draw(WORDS)
        if spec.is_conditional:
            jt, jf = draw(st.integers(0, min(reach, 255))), draw(st.integers(0, min(reach, 255)))
        rows.append((spec.code, jt, jf, k))
        del i
    rows.append(
        draw(st.sampled_from([(0x16, 0, 0, 0), (0x06, 0, 0, 0)])) if draw(st.booleans()) else (0x06, 0, 0, draw(WORDS))
    )
    return ClassicProgram.from_tuples(rows).validate()


PACKETS = st.lists(st.binary(max_size=72), min_size=1, max_size=8)


def check_everywhere(prog: ClassicProgram, packets: list[bytes]) -> None:
    expected = [run_classic(prog, packet) for packet in packets]
    if LIBPCAP is not None:
        loaded = LIBPCAP.load(prog)
        assert [loaded(packet) for packet in packets] == expected, "the classic interpreter disagrees with libpcap"
    ebpf = classic_to_ebpf(prog)
    jit.verify(ebpf)  # strict: no run-time check is needed
    for engine in ENGINES:
        run = engine.prepare(ebpf)
        assert list(run_batch(run, packets)) == expected, f"{engine.name} (batch)\n{prog.disassemble()}"
        assert run(packets[0]) == expected[0], f"{engine.name}\n{prog.disassemble()}"
        if engine.arch is not None:
            assert not run.native.checked, "a translated program needs no run-time bounds check"
    check_wire_lengths(prog, packets)


def check_wire_lengths(prog: ClassicProgram, packets: list[bytes]) -> None:
    """The wire-length form (packets cut short by a snap length: ``ld #len`` is
    the length on the wire, not the buffer's) against the interpreter and libpcap."""
    cases = [(packet, wirelen) for packet in packets for wirelen in (len(packet), len(packet) + 1500, 0xFFFFFFFF)]
    expected = [run_classic(prog, packet, wirelen) for packet, wirelen in cases]
    if LIBPCAP is not None:
        loaded = LIBPCAP.load(prog)
        assert [loaded(packet, wirelen) for packet, wirelen in cases] == expected, "libpcap disagrees (wire length)"
    ebpf = classic_to_ebpf(prog, wire_length=True)
    jit.verify(ebpf)
    buffers = [with_wire_length(packet, wirelen) for packet, wirelen in cases]
    for engine in ENGINES:
        run = engine.prepare(ebpf)
        assert list(run_batch(run, buffers)) == expected, f"{engine.name} (wire length)\n{prog.disassemble()}"
        if engine.arch is not None:
            assert not run.native.checked, "a translated program needs no run-time bounds check"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(classic_programs(), PACKETS)
def test_random_classic_programs_agree_everywhere(prog: ClassicProgram, packets: list[bytes]) -> None:
    check_everywhere(prog, packets)


# Programs that exercise each lowering at its edges, on packets around each bound.
EDGE_PACKETS = [bytes(range(n)) for n in (0, 1, 2, 3, 4, 5, 13, 14, 15, 16, 18, 20, 40)]
EDGE_PACKETS += [bytes([0x4F] * 40), bytes([0xFF] * 64)]


@pytest.mark.parametrize(
    "rows",
    [
        [(0x20, 0, 0, 0), (0x16, 0, 0, 0)],  # ld [0]
        [(0x28, 0, 0, 13), (0x16, 0, 0, 0)],  # ldh [13]
        [(0x30, 0, 0, 14), (0x16, 0, 0, 0)],  # ldb [14]
        [(0x30, 0, 0, 0x8000), (0x16, 0, 0, 0)],  # a large offset (no 16-bit displacement)
        [(0x20, 0, 0, 0xFFFFFFFC), (0x06, 0, 0, 1)],  # offsets too big for an imm32
        [(0x20, 0, 0, 0x7FFFFFFE), (0x06, 0, 0, 1)],
        [(0xB1, 0, 0, 0), (0x50, 0, 0, 0), (0x16, 0, 0, 0)],  # ldxb 4*([0]&0xf); ldb [x+0]
        [(0xB1, 0, 0, 1), (0x48, 0, 0, 1), (0x16, 0, 0, 0)],
        [(0x01, 0, 0, 0xFFFFFFFF), (0x50, 0, 0, 1), (0x06, 0, 0, 1)],  # X + k must not wrap
        [(0x01, 0, 0, 3), (0x40, 0, 0, 0xFFFFFFFE), (0x06, 0, 0, 1)],
        [(0x01, 0, 0, 2), (0x40, 0, 0, 0x7FFFFFFC), (0x06, 0, 0, 1)],
        [(0x80, 0, 0, 0), (0x01, 0, 0, 3), (0x3C, 0, 0, 0), (0x16, 0, 0, 0)],  # len / 3
        [(0x81, 0, 0, 0), (0x00, 0, 0, 100), (0x9C, 0, 0, 0), (0x16, 0, 0, 0)],  # 100 % len (len 0 -> 0)
        [(0x80, 0, 0, 0), (0x25, 0, 1, 1000), (0x06, 0, 0, 1), (0x06, 0, 0, 0)],  # len > 1000 (the wire's)
        [(0x30, 0, 0, 0), (0x07, 0, 0, 0), (0x00, 0, 0, 1), (0x6C, 0, 0, 0), (0x16, 0, 0, 0)],  # 1 << pkt[0]
        [(0x30, 0, 0, 0), (0x07, 0, 0, 0), (0x00, 0, 0, 0xFFFFFFFF), (0x7C, 0, 0, 0), (0x16, 0, 0, 0)],
        # jt == jf, jt = 0 with jset (no inverse), a reachable ret #0 reused as the out path
        [(0x30, 0, 0, 1), (0x45, 0, 1, 1), (0x06, 0, 0, 7), (0x06, 0, 0, 0)],
        [(0x30, 0, 0, 1), (0x45, 1, 0, 1), (0x06, 0, 0, 7), (0x06, 0, 0, 9)],
        [(0x30, 0, 0, 2), (0x15, 1, 1, 1), (0x06, 0, 0, 7), (0x06, 0, 0, 9)],
        [(0x30, 0, 0, 2), (0x25, 0, 0, 1), (0x06, 0, 0, 7), (0x06, 0, 0, 9)],
        # dead code after a ret and a ja over it
        [(0x05, 0, 0, 1), (0x06, 0, 0, 1), (0x28, 0, 0, 2), (0x16, 0, 0, 0)],
    ],
)
def test_edge_programs_agree_everywhere(rows: list) -> None:
    check_everywhere(ClassicProgram.from_tuples(rows).validate(), EDGE_PACKETS)


def test_repeated_loads_check_the_length_once() -> None:
    """ldh [12] then ldb [13]: the second load is covered by the first check."""
    ebpf = classic_to_ebpf(ClassicProgram.from_tuples([(0x28, 0, 0, 12), (0x30, 0, 0, 13), (0x16, 0, 0, 0)]))
    checks = [insn for _, insn in ebpf if insn.spec.mnemonic == "jlt"]
    assert len(checks) == 1 and checks[0].imm == 14


def test_translation_refuses_an_invalid_program() -> None:
    with pytest.raises(jit.VerifierError, match="instruction 0"):
        classic_to_ebpf(ClassicProgram.from_tuples([(0x34, 0, 0, 0), (0x16, 0, 0, 0)]))
