"""The classic-BPF commands of ``bpfjit`` (registered by :mod:`jit.tools.cli`).

    bpfjit filter EXPR FILE [-w OUT.pcap] [--count] [--arch ARCH | --engine NAME]
    bpfjit cbpf EXPR [--linktype DLT] [--snaplen N] [-d | --dd | --ddd] [--arch ARCH]

``filter`` reads a pcap or pcapng file (:mod:`jit.tools.capture`), compiles EXPR for
the file's link type with libpcap, runs the JIT-compiled filter over every
packet in one batch and prints how many matched (``--count``: the number
alone); ``-w`` writes the matching packets to a pcap file. Packets cut short
by the capture's snap length keep their wire length, which ``len``,
``greater`` and ``less`` test, as tcpdump does. ``cbpf`` prints
the classic program (``tcpdump -d`` style), its eBPF translation and the
machine code; ``-d``/``--dd``/``--ddd`` print only the classic program, in
tcpdump's formats.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from jit.core.errors import UsageError
from jit.frontend.asm import disassemble
from jit.frontend.cbpf_translate import classic_to_ebpf, with_wire_length
from jit.frontend.pcapfilter import DEFAULT_SNAPLEN, DLT_EN10MB, compile_expression
from jit.runtime.batch import PacketBatch, batch_path, run_batch
from jit.tools.capture import read_capture, write_pcap
from jit.tools.engines import Engine, engines


def _engine(args: argparse.Namespace) -> Engine:
    available = engines()
    if args.engine:
        for engine in available:
            if engine.name == args.engine:
                return engine
        raise UsageError(f"unknown engine {args.engine!r}; available here: {', '.join(e.name for e in available)}")
    if args.arch:
        return next(e for e in available if e.arch == args.arch and (e.name == args.arch or e.emulated))
    return available[1] if len(available) > 1 else available[0]


def cmd_filter(args: argparse.Namespace) -> int:
    capture = read_capture(args.file)
    records = capture.records
    classic = compile_expression(args.expression, capture.linktype, args.snaplen)
    engine = _engine(args)
    wire = classic.reads_wire_length  # len/greater/less: each packet's wire length goes before it
    run = engine.prepare(classic_to_ebpf(classic, wire_length=wire))
    packets = [with_wire_length(r.data, r.wirelen) if wire else r.data for r in records]
    batch = PacketBatch.from_packets(packets)
    started = time.perf_counter()
    verdicts = run_batch(run, batch)
    elapsed = time.perf_counter() - started
    matched = [record for record, verdict in zip(records, verdicts) if verdict]
    if args.write:
        write_pcap(args.write, capture.linktype, args.snaplen, matched)
    if args.count:
        print(len(matched))
    else:
        print(f"{len(matched)} of {len(records)} packets match {args.expression!r}")
    if args.stats:
        per = elapsed / max(1, len(records)) * 1e9
        print(f"{engine.name} ({batch_path(run)}): {elapsed * 1e3:.3f} ms, {per:.1f} ns per packet", file=sys.stderr)
    return 0


def cmd_cbpf(args: argparse.Namespace) -> int:
    classic = compile_expression(args.expression, args.linktype, args.snaplen)
    if args.format:
        text = {"d": classic.disassemble, "dd": classic.to_c_array, "ddd": classic.to_decimal}[args.format]()
        print(text, end="")
        return 0
    program = classic_to_ebpf(classic)
    engine = _engine(args)
    print(f"; classic BPF, {len(classic)} instructions (tcpdump -d)\n{classic.disassemble()}")
    print(f"; eBPF, {len(program)} instructions\n{disassemble(program)}")
    if engine.arch is not None:
        fn = engine.prepare(program)
        print(f"; {fn.arch} machine code, {len(fn.code)} bytes\n{fn.disasm()}")  # type: ignore[attr-defined]
    return 0


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=["x86_64", "arm64"], help="native on this host, else emulated")
    parser.add_argument("--engine", help="engine name (default: native code for this host)")


def add_commands(sub: Any) -> None:
    """Add ``filter`` and ``cbpf`` to the ``bpfjit`` subcommands ``sub``."""
    filt = sub.add_parser("filter", help="filter a pcap/pcapng file with a tcpdump expression, JIT-compiled")
    filt.add_argument("expression", help='a tcpdump filter, e.g. "tcp port 80"')
    filt.add_argument("file", help="pcap or pcapng capture")
    filt.add_argument("-w", "--write", metavar="OUT.pcap", help="write the matching packets (pcap format)")
    filt.add_argument("--count", action="store_true", help="print only the number of matching packets")
    filt.add_argument("--snaplen", type=int, default=DEFAULT_SNAPLEN, help="snap length for pcap_compile")
    filt.add_argument("--stats", action="store_true", help="print the filtering time to stderr")
    _add_target(filt)
    filt.set_defaults(func=cmd_filter)

    cbpf = sub.add_parser("cbpf", help="show a tcpdump expression as classic BPF, eBPF and machine code")
    cbpf.add_argument("expression")
    cbpf.add_argument("--linktype", default=DLT_EN10MB, help="DLT number or name (default 1, EN10MB)")
    cbpf.add_argument("--snaplen", type=int, default=DEFAULT_SNAPLEN)
    group = cbpf.add_mutually_exclusive_group()
    for flag, name in (("-d", "d"), ("--dd", "dd"), ("--ddd", "ddd")):
        group.add_argument(flag, dest="format", action="store_const", const=name, help=f"only tcpdump -{name} output")
    _add_target(cbpf)
    cbpf.set_defaults(func=cmd_cbpf, format=None)
