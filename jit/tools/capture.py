"""Capture files for ``bpfjit filter``: pcap and pcapng in, pcap out, with
each packet's length on the wire.

A packet cut short by the capture's snap length keeps its wire length
(:attr:`Record.wirelen`): libpcap's ``len``, ``greater`` and ``less`` test it,
and a written file keeps it too. dpkt parses the headers and blocks (its
readers yield only the timestamp and the captured bytes, so the pcap records
are walked here with dpkt's header classes, and a pcapng file's packet
lengths are read from its packet blocks alongside dpkt's reader).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jit.core.errors import BpfError

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_PACKET_BLOCKS = (2, 6)  # obsolete packet block, enhanced packet block: both hold the wire length at byte 24


class CaptureError(BpfError):
    """A capture file that cannot be read."""


@dataclass(frozen=True)
class Record:
    """One packet: its timestamp (seconds), the captured bytes and its length on the wire."""

    ts: float
    data: bytes
    wirelen: int


@dataclass
class Capture:
    linktype: int
    records: list[Record]


def read_capture(path: str | Path) -> Capture:
    """Every packet of a pcap or pcapng file, with its link type."""
    import dpkt

    try:
        with open(path, "rb") as handle:
            if handle.read(4) == PCAPNG_MAGIC:
                handle.seek(0)
                reader = dpkt.pcapng.Reader(handle)
                packets = [(ts, bytes(buf)) for ts, buf in reader]
                handle.seek(0)
                lengths = _pcapng_wire_lengths(handle)
                if len(lengths) != len(packets):
                    raise ValueError(f"{len(packets)} packets but {len(lengths)} packet blocks")
                records = [Record(ts, data, wirelen) for (ts, data), wirelen in zip(packets, lengths)]
                return Capture(reader.datalink(), records)
            handle.seek(0)
            return _read_pcap(handle)
    except (ValueError, dpkt.dpkt.Error, struct.error) as exc:
        raise CaptureError(f"{path}: not a pcap or pcapng file that can be read ({exc})") from None


def _read_pcap(handle: BinaryIO) -> Capture:
    import dpkt

    head = handle.read(dpkt.pcap.FileHdr.__hdr_len__)
    header = dpkt.pcap.FileHdr(head)
    magic = header.magic  # read big-endian: it tells the byte order and the time unit
    if magic in (dpkt.pcap.PMUDPCT_MAGIC, dpkt.pcap.PMUDPCT_MAGIC_NANO):
        header = dpkt.pcap.LEFileHdr(head)
    record_header = dpkt.pcap.MAGIC_TO_PKT_HDR.get(magic)
    if record_header is None:
        raise ValueError(f"unknown magic number 0x{magic:08x}")
    nano = magic in (dpkt.pcap.TCPDUMP_MAGIC_NANO, dpkt.pcap.PMUDPCT_MAGIC_NANO)
    divisor = 1e9 if nano else 1e6
    records = []
    while raw := handle.read(record_header.__hdr_len__):
        hdr = record_header(raw)
        data = handle.read(hdr.caplen)
        if len(data) != hdr.caplen:
            raise ValueError(f"packet {len(records)} is cut off: {len(data)} of its {hdr.caplen} bytes")
        records.append(Record(hdr.tv_sec + hdr.tv_usec / divisor, data, hdr.len))
    return Capture(header.linktype, records)


def _pcapng_wire_lengths(handle: BinaryIO) -> list[int]:
    """The wire length of each packet block, in file order (the blocks dpkt's reader yields)."""
    order, lengths = "<", []
    while len(head := handle.read(8)) == 8:
        if head[:4] == PCAPNG_MAGIC:  # a section header: its byte-order magic sets the order
            magic = handle.read(4)
            order = "<" if struct.unpack("<I", magic)[0] == _BYTE_ORDER_MAGIC else ">"
            body = magic
        else:
            body = b""
        kind, size = struct.unpack(order + "II", head)
        if size < 12 or size % 4:
            raise ValueError(f"a block of {size} bytes")
        body += handle.read(size - 8 - len(body))
        if kind in _PACKET_BLOCKS:
            lengths.append(struct.unpack_from(order + "I", body, 16)[0])  # byte 24 of the block
    return lengths


def write_pcap(path: str | Path, linktype: int, snaplen: int, records: Iterable[Record]) -> None:
    """A little-endian, microsecond pcap file of ``records`` (wire lengths kept)."""
    import dpkt

    with open(path, "wb") as out:
        out.write(bytes(dpkt.pcap.LEFileHdr(snaplen=snaplen, linktype=linktype)))
        for record in records:
            seconds, micros = divmod(round(record.ts * 1e6), 1_000_000)
            size = len(record.data)
            hdr = dpkt.pcap.LEPktHdr(tv_sec=seconds, tv_usec=micros, caplen=size, len=max(record.wirelen, size))
            out.write(bytes(hdr) + record.data)
