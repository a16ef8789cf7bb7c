"""The classic-BPF commands of ``bpfjit`` (registered by :mod:`jit.tools.cli`).

    bpfjit filter EXPR FILE [-w OUT.pcap] [--count] [--arch ARCH | --engine NAME]
    bpfjit cbpf EXPR [--linktype DLT] [--snaplen N] [-d | --dd | --ddd] [--arch ARCH]

``filter`` reads a pcap or pcapng file (dpkt's readers), compiles EXPR for
the file's link type with libpcap, runs the JIT-compiled filter over every
packet in one batch and prints how many matched (``--count``: the number
alone); ``-w`` writes the matching packets to a pcap file. ``cbpf`` prints
the classic program (``tcpdump -d`` style), its eBPF translation and the
machine code; ``-d``/``--dd``/``--ddd`` print only the classic program, in
tcpdump's formats.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path
from typing import Any

from jit.core.errors import BpfError, UsageError
from jit.frontend.asm import disassemble
from jit.frontend.cbpf_translate import classic_to_ebpf
from jit.frontend.pcapfilter import DEFAULT_SNAPLEN, DLT_EN10MB, compile_expression
from jit.runtime.batch import PacketBatch, batch_path, run_batch
from jit.tools.engines import Engine, engines

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


class CaptureError(BpfError):
    """A capture file dpkt cannot read."""


def read_capture(path: str | Path) -> tuple[int, list[tuple[float, bytes]], Any]:
    """(link type, [(timestamp, packet)], reader) of a pcap or pcapng file."""
    import dpkt

    handle = open(path, "rb")  # noqa: SIM115 - the reader keeps reading it
    try:
        magic = handle.read(4)
        handle.seek(0)
        reader = dpkt.pcapng.Reader(handle) if magic == PCAPNG_MAGIC else dpkt.pcap.Reader(handle)
        packets = [(ts, bytes(buf)) for ts, buf in reader]
        return reader.datalink(), packets, reader
    except (ValueError, dpkt.dpkt.Error, struct.error) as exc:
        raise CaptureError(f"{path}: not a pcap or pcapng file dpkt can read ({exc})") from None
    finally:
        handle.close()


def write_pcap(path: str | Path, linktype: int, snaplen: int, packets: list[tuple[float, bytes]]) -> None:
    import dpkt

    with open(path, "wb") as out:
        writer = dpkt.pcap.Writer(out, snaplen=snaplen, linktype=linktype)
        for ts, packet in packets:
            writer.writepkt(packet, ts)


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
    linktype, packets, _ = read_capture(args.file)
    classic = compile_expression(args.expression, linktype, args.snaplen)
    engine = _engine(args)
    run = engine.prepare(classic_to_ebpf(classic))
    batch = PacketBatch.from_packets([packet for _, packet in packets])
    started = time.perf_counter()
    verdicts = run_batch(run, batch)
    elapsed = time.perf_counter() - started
    matched = [record for record, verdict in zip(packets, verdicts) if verdict]
    if args.write:
        write_pcap(args.write, linktype, args.snaplen, matched)
    if args.count:
        print(len(matched))
    else:
        print(f"{len(matched)} of {len(packets)} packets match {args.expression!r}")
    if args.stats:
        per = elapsed / max(1, len(packets)) * 1e9
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
