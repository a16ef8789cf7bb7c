"""bpfjit filter / bpfjit cbpf on small pcap and pcapng files made here."""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
from test_cbpf_filter import PACKETS

from jit.tools.cli import main

TIMES = {name: 1_700_000_000 + i for i, name in enumerate(PACKETS)}


def write(path: Path, kind: str, linktype: int = 1, packets: dict[str, bytes] = PACKETS) -> Path:
    with open(path, "wb") as out:
        writer = (dpkt.pcapng.Writer if kind == "pcapng" else dpkt.pcap.Writer)(out, snaplen=65535, linktype=linktype)
        for name, packet in packets.items():
            writer.writepkt(packet, TIMES.get(name, 0))
    return path


def read(path: Path) -> list[tuple[float, bytes]]:
    with open(path, "rb") as handle:
        return [(ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(handle)]


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_filter_writes_the_matching_packets(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / f"in.{kind}", kind)
    out = tmp_path / "out.pcap"
    assert main(["filter", "tcp port 80", str(source), "-w", str(out)]) == 0
    assert capsys.readouterr().out == f"3 of {len(PACKETS)} packets match 'tcp port 80'\n"
    assert read(out) == [(TIMES[name], PACKETS[name]) for name in ("syn", "ack", "options")]


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_filter_count_on_each_arch(tmp_path: Path, arch: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "in.pcap", "pcap")
    assert main(["filter", "ip6 or arp", str(source), "--count", "--arch", arch, "--stats"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "3\n"
    assert "ns per packet" in captured.err


def test_filter_uses_the_files_link_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = {name: PACKETS[name][14:] for name in ("syn", "dns", "icmp")}  # IP packets, DLT_RAW
    source = write(tmp_path / "raw.pcap", "pcap", linktype=dpkt.pcap.DLT_RAW, packets=raw)
    assert main(["filter", "udp or icmp", str(source), "--count"]) == 0
    assert capsys.readouterr().out == "2\n"


def test_filter_on_the_interpreter_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "in.pcap", "pcap")
    assert main(["filter", "icmp", str(source), "--count", "--engine", "interpreter"]) == 0
    assert capsys.readouterr().out == "1\n"


def test_filter_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    assert main(["filter", "tcp", str(junk)]) == 1
    assert "CaptureError" in capsys.readouterr().err
    source = write(tmp_path / "in.pcap", "pcap")
    assert main(["filter", "tcp port", str(source)]) == 1
    assert "FilterError: libpcap cannot compile 'tcp port'" in capsys.readouterr().err
    assert main(["filter", "tcp", str(tmp_path / "missing.pcap")]) == 1


def test_cbpf_prints_all_three_levels(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cbpf", "ip"]) == 0
    out = capsys.readouterr().out
    assert "(001) jeq      #0x800           jt 2\tjf 3" in out
    assert "jne32 %r0, 2048, +2" in out
    assert "machine code" in out and "<prologue>" in out


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (
            "-d",
            "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 3\n(002) ret      #262144\n(003) ret      #0\n",
        ),
        ("--dd", "{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n"),
        ("--ddd", "4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n"),
    ],
)
def test_cbpf_tcpdump_formats(flag: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cbpf", flag, "ip"]) == 0
    assert capsys.readouterr().out.startswith(expected)
