"""Capture files (jit.tools.capture): pcap in every byte order and time unit,
pcapng, and the wire length of packets cut short by a snap length, through
reading, writing and ``bpfjit filter``."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import dpkt
import pytest

import jit
from jit.frontend import pcapfilter
from jit.tools.capture import CaptureError, Record, read_capture, write_pcap
from jit.tools.cli import main

FRAME = bytes(12) + b"\x08\x00" + bytes([0x45]) + bytes(8) + b"\x06" + bytes(50)  # IPv4, TCP, 74 bytes
RECORDS = [Record(1_700_000_000.25, FRAME, len(FRAME)), Record(1_700_000_001.5, FRAME[:54], 1514)]


def _pcap(little: bool, nano: bool, records: list[Record]) -> bytes:
    """A pcap file built from dpkt's header classes in the given byte order and unit."""
    file_header, record_header = (
        (dpkt.pcap.LEFileHdr, dpkt.pcap.LEPktHdr) if little else (dpkt.pcap.FileHdr, dpkt.pcap.PktHdr)
    )
    magic = dpkt.pcap.TCPDUMP_MAGIC_NANO if nano else dpkt.pcap.TCPDUMP_MAGIC
    out = bytes(file_header(magic=magic, snaplen=65535, linktype=1))
    for r in records:
        fraction = round(r.ts % 1 * (1e9 if nano else 1e6))
        out += bytes(record_header(tv_sec=int(r.ts), tv_usec=fraction, caplen=len(r.data), len=r.wirelen)) + r.data
    return out


@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize("nano", [True, False])
def test_pcap_in_each_byte_order_and_unit_keeps_wire_lengths(tmp_path: Path, little: bool, nano: bool) -> None:
    path = tmp_path / "in.pcap"
    path.write_bytes(_pcap(little, nano, RECORDS))
    capture = read_capture(path)
    assert capture.linktype == 1
    assert capture.records == RECORDS


def _pcapng(little: bool, records: list[Record]) -> bytes:
    section, interface, packet = (
        (dpkt.pcapng.SectionHeaderBlockLE, dpkt.pcapng.InterfaceDescriptionBlockLE, dpkt.pcapng.EnhancedPacketBlockLE)
        if little
        else (dpkt.pcapng.SectionHeaderBlock, dpkt.pcapng.InterfaceDescriptionBlock, dpkt.pcapng.EnhancedPacketBlock)
    )
    out = bytes(section()) + bytes(interface(linktype=1, snaplen=65535))
    for r in records:
        micros = round(r.ts * 1e6)
        block = bytearray(bytes(packet(ts_high=micros >> 32, ts_low=micros & 0xFFFFFFFF, pkt_data=r.data)))
        struct.pack_into("<I" if little else ">I", block, 24, r.wirelen)  # dpkt writes the captured length there
        out += block
    return out


@pytest.mark.parametrize("little", [True, False])
def test_pcapng_keeps_wire_lengths(tmp_path: Path, little: bool) -> None:
    path = tmp_path / "in.pcapng"
    path.write_bytes(_pcapng(little, RECORDS))
    records = read_capture(path).records
    assert [(r.data, r.wirelen) for r in records] == [(r.data, r.wirelen) for r in RECORDS]
    assert [r.ts for r in records] == pytest.approx([r.ts for r in RECORDS])


def test_written_pcap_keeps_wire_lengths_and_dpkt_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    write_pcap(path, 1, 96, RECORDS)
    assert read_capture(path).records == RECORDS
    with open(path, "rb") as handle:
        reader = dpkt.pcap.Reader(handle)
        assert reader.snaplen == 96
        assert [(ts, bytes(buf)) for ts, buf in reader] == [(r.ts, r.data) for r in RECORDS]


@pytest.mark.parametrize(
    "raw",
    [b"not a capture at all", _pcap(True, False, RECORDS)[:-10], _pcapng(True, RECORDS)[:-6] + b"\x00\x00"],
    ids=["junk", "cut-off-pcap", "cut-off-pcapng"],
)
def test_unreadable_captures_are_capture_errors(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(raw)
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        read_capture(path)


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_filter_tests_the_wire_length_of_cut_packets(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture) -> None:
    """A capture made with a snap length of 54: ``greater 1000`` must see 1514,
    as tcpdump does, and the written file must keep it."""
    records = [Record(1.0 + i, FRAME[:54], wirelen) for i, wirelen in enumerate((60, 1514, 1000, 1001))]
    path = tmp_path / f"in.{kind}"
    path.write_bytes(_pcap(True, False, records) if kind == "pcap" else _pcapng(True, records))
    loaded = pcapfilter.libpcap().load(jit.compile_expression("greater 1001"))
    expected = [r for r in records if loaded(r.data, r.wirelen)]
    assert [r.wirelen for r in expected] == [1514, 1001]
    out = tmp_path / "out.pcap"
    assert main(["filter", "greater 1001", str(path), "-w", str(out)]) == 0
    assert capsys.readouterr().out == "2 of 4 packets match 'greater 1001'\n"
    assert [(r.data, r.wirelen) for r in read_capture(out).records] == [(r.data, r.wirelen) for r in expected]


TCPDUMP = shutil.which("tcpdump")
END_TO_END = ["tcp port 80", "host 10.0.0.1 and not icmp", "ip6 and tcp", "vlan and udp", "greater 100", "len > 1000"]
END_TO_END += ["portrange 1000-2000", "tcp[tcpflags] & tcp-syn != 0", "ip[8] < 64 or len > 1000", "arp or icmp"]


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed: its own verdicts are not compared")
@pytest.mark.parametrize("expression", END_TO_END)
def test_bpfjit_filter_writes_what_tcpdump_writes(
    tmp_path: Path, expression: str, capsys: pytest.CaptureFixture
) -> None:
    """The same capture (some packets cut to 60 bytes, as a snap length cuts
    them) through tcpdump -w and bpfjit filter -w: the same packets out."""
    from jit.bench.cbpf_bench import generate

    packets = generate(400, seed=3)
    records = [Record(1.0 + i, p[:60] if i % 3 == 0 else p, len(p)) for i, p in enumerate(packets)]
    source = tmp_path / "in.pcap"
    write_pcap(source, 1, 65535, records)
    theirs, ours = tmp_path / "tcpdump.pcap", tmp_path / "bpfjit.pcap"
    subprocess.run([TCPDUMP, "-r", str(source), "-w", str(theirs), expression], check=True, capture_output=True)
    assert main(["filter", expression, str(source), "-w", str(ours)]) == 0
    capsys.readouterr()
    expected = [(r.data, r.wirelen) for r in read_capture(theirs).records]
    assert [(r.data, r.wirelen) for r in read_capture(ours).records] == expected
    assert 0 < len(expected) < len(records)
