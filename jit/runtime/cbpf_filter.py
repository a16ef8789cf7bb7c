"""A packet filter: a tcpdump expression or classic program, JIT-compiled.

    f = jit.Filter("tcp port 80")          # libpcap compiles, we translate and JIT
    f(packet)                              # libpcap's verdict: bytes to keep, 0 = drop
    f.match_many(batch)                    # array('Q') of verdicts, one native call
    f.count(batch)                         # how many packets match
    f(packet, wirelen=1500)                # a packet cut short by a snap length

Filters that read the packet's length (``len``, ``greater``, ``less``) see
its length on the wire: ``wirelen`` (one packet) or ``wire_lengths`` (a
batch) when the packet was captured short, else its own length. Such a
filter's eBPF program (``f.program``, ``f.fn``) takes the wire-length form of
:func:`jit.frontend.cbpf_translate.classic_to_ebpf`: a 4-byte wire length
before each packet, which these methods add (a copy of each packet).

The classic program (``f.classic``), its eBPF translation (``f.program``)
and the compiled code (``f.fn``) are kept; ``f.listing()`` shows all three.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from jit.core.errors import UsageError
from jit.frontend.cbpf import ClassicProgram, load_classic
from jit.frontend.cbpf_translate import classic_to_ebpf, with_wire_length
from jit.frontend.pcapfilter import DEFAULT_SNAPLEN, DLT_EN10MB, compile_expression
from jit.runtime.batch import Packet, PacketBatch, run_batch
from jit.runtime.compiler import compile as jit_compile


class Filter:
    """A classic BPF filter compiled to machine code (see the module docstring).

    ``source`` is a filter expression (compiled by libpcap for ``linktype``
    and ``snaplen``), a :class:`jit.ClassicProgram` or a ``sock_filter``
    array. ``arch`` and ``emulate`` are those of :func:`jit.compile`.
    """

    def __init__(
        self,
        source: str | ClassicProgram | bytes,
        *,
        linktype: int | str = DLT_EN10MB,
        snaplen: int = DEFAULT_SNAPLEN,
        optimize: bool = True,
        arch: str | None = None,
        emulate: bool = False,
    ):
        if isinstance(source, str):
            self.classic = compile_expression(source, linktype, snaplen, optimize)
        else:
            self.classic = load_classic(source)
        self.expression = source if isinstance(source, str) else None
        self.wire_length = self.classic.reads_wire_length
        self.program = classic_to_ebpf(self.classic, wire_length=self.wire_length)
        self.fn = jit_compile(self.program, arch=arch, emulate=emulate)

    def __call__(self, packet: Packet, wirelen: int | None = None) -> int:
        """The filter's return value for one packet (0: rejected); ``wirelen``
        is its length on the wire (default: ``len(packet)``)."""
        return self.fn(with_wire_length(packet, wirelen) if self.wire_length else packet)

    def match(self, packet: Packet, wirelen: int | None = None) -> bool:
        """Whether the filter accepts ``packet`` (a non-zero return value)."""
        return self(packet, wirelen) != 0

    def match_many(self, packets: PacketBatch | Sequence[Packet], wire_lengths: Sequence[int] | None = None) -> array:
        """The return value for each packet, as an ``array('Q')`` (see :func:`jit.run_batch`);
        ``wire_lengths``, one per packet, are their lengths on the wire."""
        if wire_lengths is not None and len(wire_lengths) != len(packets):
            raise UsageError(f"{len(wire_lengths)} wire lengths for {len(packets)} packets")
        if not self.wire_length:
            return run_batch(self.fn, packets)
        lengths = wire_lengths if wire_lengths is not None else [None] * len(packets)
        return run_batch(self.fn, PacketBatch.from_packets(map(with_wire_length, packets, lengths)))

    def count(self, packets: PacketBatch | Sequence[Packet], wire_lengths: Sequence[int] | None = None) -> int:
        """How many of ``packets`` the filter accepts."""
        verdicts = self.match_many(packets, wire_lengths)
        return len(verdicts) - verdicts.count(0)

    def listing(self) -> str:
        """The classic program (tcpdump -d), its eBPF translation and the machine code."""
        from jit.frontend.asm import disassemble

        return (
            f"; classic BPF ({len(self.classic)} instructions)\n{self.classic.disassemble()}\n"
            f"; eBPF ({len(self.program)} instructions)\n{disassemble(self.program)}\n"
            f"; {self.fn.arch} ({len(self.fn.code)} bytes)\n{self.fn.disasm()}"
        )
