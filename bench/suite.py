"""The benchmark suite: one declarative list of programs.

Each :class:`Benchmark` names a program in ``programs/`` (its C source and the
bytecode built from it by ``python -m jit.bench.build``), a deterministic input
generator and an independent Python reference that computes the expected
result from the input. The references never look at an engine: they implement
the documented behaviour of each program (see the comment at the top of each
C file) in plain Python.

Sizes: every generator takes a ``size`` in the program's own unit (values,
bytes, packets); ``sizes`` gives the size of a full run, of ``--quick`` and of
the tests. The programs derive their work from the buffer length, so a smaller
input is a smaller run with its own expected value.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jit.core.bits import MASK32, MASK64

PROGRAMS = Path(__file__).resolve().parent / "programs"
SIZE_NAMES = ("full", "quick", "test")


@dataclass(frozen=True)
class Sizes:
    """Input sizes (in the program's unit) for a full run, ``--quick`` and the tests."""

    full: int
    quick: int
    test: int


@dataclass(frozen=True)
class Benchmark:
    """One suite program: its input, its expected result and its files."""

    name: str
    description: str
    generate: Callable[[random.Random, int], bytes]  # (rng, size) -> input buffer
    reference: Callable[[bytes], int]  # input -> expected R0
    sizes: Sizes
    unit: str = "bytes"
    expected_memory: Callable[[bytes], bytes] | None = None  # input -> buffer after a run, if it writes

    @property
    def source(self) -> Path:
        return PROGRAMS / f"{self.name}.c"

    @property
    def bytecode(self) -> Path:
        return PROGRAMS / f"{self.name}.bin"

    @property
    def entry(self) -> str:
        """The C function name (programs/bench.h)."""
        return f"bench_{self.name}"

    def size(self, which: str = "full") -> int:
        return getattr(self.sizes, which)

    def make_input(self, size: int | str = "full") -> bytes:
        """The input buffer; the same bytes for the same size on every call."""
        n = self.size(size) if isinstance(size, str) else size
        return self.generate(random.Random(zlib.crc32(self.name.encode())), n)


# --- generators and references, one pair per program --------------------------------


def _u64s(data: bytes) -> tuple[int, ...]:
    return struct.unpack_from(f"<{len(data) // 8}Q", data)


def _none(rng: random.Random, size: int) -> bytes:
    return bytes(size)


def _random_bytes(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _memory_a_plus_b(data: bytes) -> int:
    if len(data) < 16:
        return 0
    a, b = struct.unpack_from("<QQ", data)
    return (a + b) & MASK64


def _log2_values(rng: random.Random, count: int) -> bytes:
    # Values of every bit length 0..64, so that every step of the log2 matters.
    values = [rng.getrandbits(64) >> rng.randrange(65) for _ in range(count)]
    return struct.pack(f"<{count}Q", *values)


def _log2_int(data: bytes) -> int:
    return sum(max(v.bit_length() - 1, 0) for v in _u64s(data)[:1024])


def _switch_values(rng: random.Random, count: int) -> bytes:
    return struct.pack(f"<{count}I", *(rng.getrandbits(32) for _ in range(count)))


def _switch(data: bytes) -> int:
    """Case c = 4k + j of programs/switch.c: j selects the update, k its constant."""
    acc = 0
    for x in struct.unpack_from(f"<{min(len(data) // 4, 4096)}I", data):
        c = x % 64
        k, kind = c - c % 4, c % 4
        if kind == 0:
            acc += x ^ (k * 0x9E37)
        elif kind == 1:
            acc ^= x * (k + 3)
        elif kind == 2:
            acc = (((acc << 7) | (acc >> 57)) & MASK64) + k
        else:
            acc -= x >> ((k // 4) % 7 + 1)
        acc &= MASK64
    return acc


def _prime_limit(rng: random.Random, limit: int) -> bytes:
    return struct.pack("<I", limit)


def _prime(data: bytes) -> int:
    """Primes below the limit, by a sieve (the program uses trial division)."""
    limit = min(struct.unpack_from("<I", data)[0], 10_000) if len(data) >= 4 else 0
    if limit < 3:
        return 0
    sieve = bytearray([1]) * limit
    sieve[0] = sieve[1] = 0
    for p in range(2, int(limit**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytes(len(range(p * p, limit, p)))
    return sum(sieve)


def _memcpy_input(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size) + bytes(size)


def _memcpy_result(data: bytes) -> bytes:
    n = min(len(data) // 2, 1 << 20)
    return data[:n] + data[:n] + data[2 * n :]


def _memcpy(data: bytes) -> int:
    n = min(len(data) // 2, 1 << 20)
    if n == 0:
        return 0
    return (n << 32) | (data[n - 1] << 16) | (data[n // 2] << 8) | data[0]


def _string(rng: random.Random, size: int) -> bytes:
    """``size - 1`` non-NUL bytes and the terminating NUL."""
    return rng.randbytes(size - 1).replace(b"\0", b"\1") + b"\0"


def _strings_equal(rng: random.Random, size: int) -> bytes:
    a = _string(rng, size)
    return a + a


def _strings_differing_late(rng: random.Random, size: int) -> bytes:
    a = _string(rng, size)
    b = bytearray(a)
    at = size - max(size // 16, 2)  # late, but not at the NUL
    b[at] = b[at] % 255 + 1  # another non-NUL byte
    return a + bytes(b)


def _strcmp(data: bytes) -> int:
    """Where C strcmp stops (first difference, else the common NUL) and the byte difference there."""
    n = min(len(data) // 2, 1 << 20)
    a, b = data[:n], data[n : 2 * n]
    nul = a.find(0)
    compared = n if nul < 0 else nul + 1  # bytes compared when no difference comes first
    # The lowest set byte of a XOR b (as little-endian integers) is the first difference.
    xor = int.from_bytes(a[:compared], "little") ^ int.from_bytes(b[:compared], "little")
    if xor == 0:
        return (n if nul < 0 else nul) << 32
    at = ((xor & -xor).bit_length() - 1) // 8
    return (at << 32) | ((a[at] - b[at]) & MASK32)


# Packet filter (programs/packet_filter.c): 128-byte slots, u16 capture length then the frame.
PACKET_SLOT = 128
PACKET_MAX = PACKET_SLOT - 2


def _frame(rng: random.Random) -> bytes:
    """One Ethernet frame, either a matching IPv4/TCP:80 packet or one of many near misses."""
    kind = rng.choice(
        ["match", "match", "match", "vlan", "options", "port", "udp", "ipv6", "arp", "fragment", "short", "bad"]
    )
    ethertype = {"ipv6": 0x86DD, "arp": 0x0806}.get(kind, 0x0800)
    eth = rng.randbytes(12) + (struct.pack(">HH", 0x8100, rng.randrange(4096)) if kind == "vlan" else b"")
    eth += struct.pack(">H", ethertype)
    ihl = rng.randrange(6, 16) if kind == "options" else 5
    doff = rng.randrange(5, 9)
    payload = rng.randrange(0, 40)
    total = ihl * 4 + doff * 4 + payload
    if kind == "bad":
        total = rng.randrange(0, ihl * 4 + doff * 4)  # shorter than its own headers
    frag = rng.randrange(1, 0x2000) if kind == "fragment" else rng.choice([0, 0x4000])  # DF bit is no fragment
    proto = 17 if kind == "udp" else 6
    ip = struct.pack(">BBHHHBBH", 0x40 | ihl, 0, total, rng.randrange(65536), frag, 64, proto, 0)
    ip += rng.randbytes(8 + (ihl - 5) * 4)  # addresses and options
    dport = rng.choice([443, 8080, 22, 53]) if kind == "port" else 80
    tcp = struct.pack(">HHIIBBHHH", rng.randrange(65536), dport, 0, 0, doff << 4, 0x02, 0, 0, 0)
    frame = eth + ip + tcp + rng.randbytes(payload)
    if kind == "short":
        frame = frame[: rng.randrange(0, len(eth) + len(ip) + 20)]
    return frame[:PACKET_MAX]


def _packets(rng: random.Random, count: int) -> bytes:
    out = bytearray()
    for _ in range(count):
        frame = _frame(rng)
        out += struct.pack("<H", len(frame)) + frame + bytes(PACKET_MAX - len(frame))
    return bytes(out)


def _tcp_payload_to_port_80(frame: bytes) -> int | None:
    """TCP payload length of a frame the filter accepts, else None (rules in packet_filter.c)."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from(">H", frame, 12)
    ip_at = 14
    if ethertype == 0x8100:
        if len(frame) < 18:
            return None
        (ethertype,) = struct.unpack_from(">H", frame, 16)
        ip_at = 18
    if ethertype != 0x0800 or len(frame) < ip_at + 20:
        return None
    version_ihl, _tos, total, _id, frag, _ttl, proto = struct.unpack_from(">BBHHHBB", frame, ip_at)
    ihl = (version_ihl & 15) * 4
    if version_ihl >> 4 != 4 or ihl < 20 or frag & 0x1FFF or proto != 6:
        return None
    tcp_at = ip_at + ihl
    if len(frame) < tcp_at + 20:
        return None
    (dport,) = struct.unpack_from(">H", frame, tcp_at + 2)
    doff = (frame[tcp_at + 12] >> 4) * 4
    if dport != 80 or doff < 20 or total < ihl + doff:
        return None
    return total - ihl - doff


def _packet_filter(data: bytes) -> int:
    count = size = 0
    for at in range(0, min(len(data) // PACKET_SLOT, 8192) * PACKET_SLOT, PACKET_SLOT):
        caplen = min(struct.unpack_from("<H", data, at)[0], PACKET_MAX)
        payload = _tcp_payload_to_port_80(data[at + 2 : at + 2 + caplen])
        if payload is not None:
            count += 1
            size += payload
    return (count << 32) | (size & MASK32)


def _crc32(data: bytes) -> int:
    return zlib.crc32(data[: 1 << 16])


def _inet_checksum(data: bytes) -> int:
    data = data[: 1 << 20]
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _local_call(data: bytes) -> int:
    h = 0x243F6A8885A308D3
    for v in _u64s(data)[:8192]:
        h = ((h ^ v) * 0x9E3779B97F4A7C15) & MASK64
        h ^= h >> 29
    return h


SUITE: tuple[Benchmark, ...] = (
    Benchmark("simple", "return a constant", _none, lambda data: 42, Sizes(16, 16, 16)),
    Benchmark("memory_a_plus_b", "two 64-bit loads and an add", _random_bytes, _memory_a_plus_b, Sizes(16, 16, 16)),
    Benchmark(
        "log2_int", "branch-free log2 of 1024 u64 values", _log2_values, _log2_int, Sizes(1024, 1024, 64), "values"
    ),
    Benchmark(
        "switch", "64-case switch over 4096 u32 values", _switch_values, _switch, Sizes(4096, 1024, 128), "values"
    ),
    Benchmark(
        "prime", "count primes below 10,000 by trial division", _prime_limit, _prime, Sizes(10_000, 2000, 200), "limit"
    ),
    Benchmark(
        "memcpy",
        "copy 1 MiB byte by byte within the buffer",
        _memcpy_input,
        _memcpy,
        Sizes(1 << 20, 1 << 16, 1 << 10),
        "bytes copied",
        expected_memory=_memcpy_result,
    ),
    Benchmark(
        "strcmp_fail",
        "strcmp of two 1 MiB strings differing late",
        _strings_differing_late,
        _strcmp,
        Sizes(1 << 20, 1 << 16, 1 << 10),
        "string bytes",
    ),
    Benchmark(
        "strcmp_full",
        "strcmp of two equal 1 MiB strings",
        _strings_equal,
        _strcmp,
        Sizes(1 << 20, 1 << 16, 1 << 10),
        "string bytes",
    ),
    Benchmark(
        "packet_filter",
        "Ethernet/VLAN/IPv4/TCP parser: count port-80 packets in a batch of 4096",
        _packets,
        _packet_filter,
        Sizes(4096, 1024, 64),
        "packets",
    ),
    Benchmark("crc32", "bitwise CRC-32 (zlib's) of 16 KiB", _random_bytes, _crc32, Sizes(1 << 14, 1 << 12, 256)),
    Benchmark(
        "inet_checksum",
        "RFC 1071 Internet checksum of 256 KiB",
        _random_bytes,
        _inet_checksum,
        Sizes(1 << 18, 1 << 15, 1001),
    ),
    Benchmark(
        "local_call",
        "hash of 8192 u64 values, one local (BPF-to-BPF) call each",
        _log2_values,
        _local_call,
        Sizes(8192, 2048, 64),
        "values",
    ),
)

BY_NAME: dict[str, Benchmark] = {bench.name: bench for bench in SUITE}


def get(name: str) -> Benchmark:
    """The suite entry called ``name``; KeyError lists the valid names."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no benchmark {name!r}; the suite has: {', '.join(BY_NAME)}") from None
