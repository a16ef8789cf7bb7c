"""Classic BPF filters: packets per second of the JIT batch path against libpcap.

    python bench/cbpf_bench.py [--packets 1000000] [--repeat 5] [--json PATH] [--quick]
    bpfjit bench --cbpf [--packets N] [--quick] [--json PATH]      the same

A capture of ``--packets`` packets (a deterministic mix of Ethernet IPv4/IPv6/
VLAN, TCP/UDP/ICMP and ARP) is generated into a temporary pcap file and read
back with dpkt. For each expression, on the same packets:

* **jit batch**: ``jit.run_batch`` of the compiled filter over the whole
  capture (one native call; the batch is built once, its cost reported apart);
* **libpcap C loop**: libpcap's interpreter, ``bpf_filter``, called from a
  C loop compiled here with the system C compiler (no Python per packet);
  skipped without a C compiler;
* **libpcap ctypes**: ``bpf_filter`` called per packet from Python via ctypes
  (what a Python program using libpcap's interpreter pays);
* **tcpdump**: ``tcpdump -r FILE EXPR -w /dev/null``, the whole process
  (reading the file included), if tcpdump is installed.

Every path's number of matches is checked to be the same before any timing.
Figures are medians over ``--repeat`` runs (ctypes and tcpdump: at most 3),
and ratios are taken within the same run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import repeat
from pathlib import Path

import jit
from jit.frontend.cbpf_translate import with_wire_length
from jit.frontend.pcapfilter import libpcap
from jit.runtime.batch import PacketBatch, run_batch
from jit.tools.capture import Record, read_capture, write_pcap

EXPRESSIONS = [
    "tcp port 80",
    "host 10.0.0.1 and not icmp",
    "ip6 and tcp",
    "vlan and udp",
    "tcp[tcpflags] & tcp-syn != 0",
    "portrange 1000-2000",
    "ip[8] < 64 or len > 1000",
]
C_LOOP = r"""
#include <stdint.h>
typedef unsigned (*filter_fn)(const void *, const unsigned char *, unsigned, unsigned);
uint64_t run(filter_fn f, const void *insns, const unsigned char *base,
             const uint64_t *offsets, const uint64_t *lengths, uint64_t n) {
    uint64_t matched = 0;
    for (uint64_t i = 0; i < n; i++)
        matched += f(insns, base + offsets[i], (unsigned)lengths[i], (unsigned)lengths[i]) != 0;
    return matched;
}
"""


def generate(count: int, seed: int = 1) -> list[bytes]:
    """A deterministic mix of packets, built from templates with varied fields."""
    rng = random.Random(seed)
    mac = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"

    def ipv4(proto: int, payload: bytes, ttl: int, src: int) -> bytes:
        total = 20 + len(payload)
        header = bytes([0x45, 0]) + total.to_bytes(2, "big") + b"\x00\x01\x00\x00" + bytes([ttl, proto]) + b"\x00\x00"
        return header + src.to_bytes(4, "big") + bytes([10, 0, 0, rng.randrange(1, 5)]) + payload

    def l4(proto: int) -> bytes:
        sport, dport = rng.choice([80, 443, 22, 53, 1234, 1500, 5000]), rng.randrange(1, 3000)
        ports = sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
        if proto == 6:
            return (
                ports
                + bytes(8)
                + bytes([0x50, rng.choice([0x02, 0x10, 0x12, 0x18])])
                + bytes(6)
                + bytes(rng.randrange(40))
            )
        return ports + b"\x00\x10\x00\x00" + bytes(rng.randrange(40))

    packets = []
    for _ in range(count):
        kind = rng.random()
        proto = rng.choice([6, 6, 6, 17, 17, 1])
        payload = l4(proto) if proto != 1 else b"\x08\x00" + bytes(30)
        src = rng.choice([0x0A000001, 0x0A000002, 0xC0A80105])
        if kind < 0.70:
            packet = mac + b"\x08\x00" + ipv4(proto, payload, rng.choice([32, 64, 128]), src)
        elif kind < 0.85:
            ip6 = b"\x60\x00\x00\x00" + len(payload).to_bytes(2, "big") + bytes([proto if proto != 1 else 58, 64])
            packet = mac + b"\x86\xdd" + ip6 + bytes(15) + b"\x01" + bytes(15) + b"\x02" + payload
        elif kind < 0.95:
            packet = mac + b"\x81\x00\x00\x64\x08\x00" + ipv4(proto, payload, 64, src)
        elif kind < 0.98:
            packet = mac + b"\x08\x06" + bytes(28)
        else:
            packet = mac + b"\x08\x00" + ipv4(17, bytes(1200), 64, src)
        packets.append(packet)
    return packets


def median_time(run: Callable[[], object], times: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(times):
        started = time.perf_counter()
        result = run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def c_loop() -> ctypes.CDLL | None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="cbpf-bench-"))
    (folder / "loop.c").write_text(C_LOOP)
    subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", str(folder / "loop.so"), str(folder / "loop.c")], check=True
    )
    lib = ctypes.CDLL(str(folder / "loop.so"))
    lib.run.restype = ctypes.c_uint64
    lib.run.argtypes = (ctypes.c_void_p,) * 5 + (ctypes.c_uint64,)
    return lib


def measure(expression: str, path: Path, batch: PacketBatch, packets: list[bytes], repeat_: int, loop: object) -> dict:
    n = len(batch)
    f = jit.Filter(expression)
    # A filter reading the wire length takes it before each packet (built once, as the batch is).
    own = PacketBatch.from_packets(map(with_wire_length, packets)) if f.wire_length else batch
    jit_time, verdicts = median_time(lambda: run_batch(f.fn, own), repeat_)
    matched = n - verdicts.count(0)  # type: ignore[attr-defined]
    row: dict[str, object] = {"expression": expression, "packets": n, "matched": matched, "jit_s": jit_time}
    loaded = libpcap().load(f.classic)
    if loop is not None:
        fn_ptr = ctypes.cast(libpcap().lib.bpf_filter, ctypes.c_void_p).value
        data = (ctypes.c_char * len(batch.data)).from_buffer(batch.data)
        args = (fn_ptr, loaded.address, ctypes.addressof(data), batch.offsets.buffer_info()[0])
        c_time, c_matched = median_time(lambda: loop.run(*args, batch.lengths.buffer_info()[0], n), repeat_)  # type: ignore[attr-defined]
        assert c_matched == matched, f"{expression}: libpcap (C loop) matched {c_matched}, the JIT {matched}"
        row["libpcap_c_s"] = c_time
    call, address = loaded.call, loaded.address
    lengths = [len(p) for p in packets]
    ctypes_time, results = median_time(
        lambda: list(map(call, repeat(address), packets, lengths, lengths)), min(repeat_, 3)
    )
    assert n - results.count(0) == matched, f"{expression}: libpcap (ctypes) disagrees with the JIT"  # type: ignore[attr-defined]
    row["libpcap_ctypes_s"] = ctypes_time
    tcpdump = shutil.which("tcpdump")
    if tcpdump is not None:
        command = [tcpdump, "-r", str(path), "-w", "/dev/null", expression]
        tcp_time, _ = median_time(lambda: subprocess.run(command, check=True, capture_output=True), min(repeat_, 3))
        counted = subprocess.run([tcpdump, "-r", str(path), "-q", expression], check=True, capture_output=True)
        assert counted.stdout.count(b"\n") == matched, f"{expression}: tcpdump disagrees with the JIT"
        row["tcpdump_s"] = tcp_time
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, help="packets in the capture (default 1,000,000; --quick 20,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure (the median is reported)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="20,000 packets, 3 runs (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 3
    if args.packets is None:
        args.packets = 20_000 if args.quick else 1_000_000
    if args.packets < 1:
        parser.error("--packets must be at least 1")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"libpcap: {libpcap().version}; tcpdump: {shutil.which('tcpdump') or 'not installed'}")
    with tempfile.TemporaryDirectory(prefix="cbpf-bench-") as tmp:
        path = Path(tmp) / "capture.pcap"
        started = time.perf_counter()
        write_pcap(path, 1, 65535, [Record(i * 1e-6, p, len(p)) for i, p in enumerate(generate(args.packets))])
        made = time.perf_counter() - started
        started = time.perf_counter()
        packets = [record.data for record in read_capture(path).records]
        batch = PacketBatch.from_packets(packets)
        loaded = time.perf_counter() - started
        print(f"capture: {len(batch):,} packets, {path.stat().st_size / 1e6:.0f} MB; generated in {made:.1f} s,")
        print(
            f"read with dpkt and packed into a PacketBatch in {loaded:.2f} s ({loaded / len(batch) * 1e9:.0f} ns per packet)"
        )
        loop = c_loop()
        rows = [measure(expression, path, batch, packets, args.repeat, loop) for expression in EXPRESSIONS]
    report(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def report(rows: list[dict]) -> None:
    def rate(row: dict, key: str) -> str:
        return f"{row['packets'] / row[key] / 1e6:,.1f}" if key in row else "-"

    def ratio(row: dict, key: str) -> str:
        return f"{row[key] / row['jit_s']:,.1f}x" if key in row else "-"

    print("\nmillions of packets per second (median), and how many times faster the JIT batch path is")
    print(
        "| expression | matched | jit batch | libpcap C loop | libpcap ctypes | tcpdump | vs C loop | vs ctypes | vs tcpdump |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| `{row['expression']}` | {row['matched']:,} | {rate(row, 'jit_s')} | {rate(row, 'libpcap_c_s')} |"
            f" {rate(row, 'libpcap_ctypes_s')} | {rate(row, 'tcpdump_s')} | {ratio(row, 'libpcap_c_s')} |"
            f" {ratio(row, 'libpcap_ctypes_s')} | {ratio(row, 'tcpdump_s')} |"
        )
    per_packet = ", ".join(f"{row['jit_s'] / row['packets'] * 1e9:.1f} ns" for row in rows)
    print(f"\nper packet, jit batch: {per_packet}")


if __name__ == "__main__":
    sys.exit(main())
