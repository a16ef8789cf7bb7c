"""tcpdump filter expressions: compiled by libpcap, translated and JIT-compiled,
on realistic packets (Ethernet, IPv4 with and without options, fragments,
IPv6, VLAN, TCP, UDP, ICMP, ARP, truncated copies), checked against what the
packets are (hand-worked expectations) and against libpcap's own bpf_filter
and the classic interpreter on every engine."""

from __future__ import annotations

import socket

import dpkt
import pytest

import jit
from jit.frontend import pcapfilter
from jit.runtime.batch import PacketBatch, batch_path, run_batch

try:
    LIBPCAP = pcapfilter.libpcap()
except pcapfilter.LibpcapMissing as exc:  # pragma: no cover - the dependency carries it
    pytest.skip(f"libpcap is not loadable: {exc}", allow_module_level=True)

MAC_A, MAC_B, BROADCAST = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02", b"\xff" * 6


def ip4(text: str) -> bytes:
    return socket.inet_aton(text)


def ip6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def ether(payload: bytes | dpkt.Packet, kind: int, dst: bytes = MAC_B) -> bytes:
    return dst + MAC_A + kind.to_bytes(2, "big") + bytes(payload)


def ipv4(l4: dpkt.Packet, proto: int, src: str, dst: str, ttl: int = 64, frag: int = 0, opts: bytes = b"") -> bytes:
    """An IPv4 packet; ``frag`` is the fragment offset in 8-byte units."""
    packet = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=proto, ttl=ttl, data=l4, opts=opts)
    packet.hl = 5 + len(opts) // 4
    packet.len = len(packet)
    raw = bytearray(bytes(packet))
    raw[6:8] = frag.to_bytes(2, "big")
    return bytes(raw)


def tcp(sport: int, dport: int, flags: int, payload: bytes = b"") -> dpkt.tcp.TCP:
    return dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, data=payload)


def udp(sport: int, dport: int, payload: bytes = b"") -> dpkt.udp.UDP:
    return dpkt.udp.UDP(sport=sport, dport=dport, data=payload, ulen=8 + len(payload))


def ipv6(l4: dpkt.Packet, nxt: int, src: str, dst: str) -> dpkt.ip6.IP6:
    return dpkt.ip6.IP6(src=ip6(src), dst=ip6(dst), nxt=nxt, hlim=64, data=l4, plen=len(bytes(l4)))


SYN, ACK = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK
ECHO = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"ping"))
VLAN_TAG = b"\x00\x64\x08\x00"  # VLAN 100, then IPv4

PACKETS = {
    "syn": ether(ipv4(tcp(1234, 80, SYN), 6, "10.0.0.1", "10.0.0.2"), 0x0800),
    "ack": ether(ipv4(tcp(80, 1234, ACK, b"HTTP/1.1 200 OK\r\n"), 6, "10.0.0.2", "10.0.0.1"), 0x0800),
    "options": ether(ipv4(tcp(5555, 80, SYN | ACK), 6, "10.1.2.3", "10.0.0.9", opts=b"\x01\x01\x01\x00"), 0x0800),
    "dns": ether(ipv4(udp(5353, 53, b"\x00" * 12), 17, "192.168.1.5", "192.168.1.1"), 0x0800),
    "icmp": ether(ipv4(ECHO, 1, "10.0.0.1", "8.8.8.8", ttl=32), 0x0800),
    "fragment": ether(ipv4(udp(53, 9999, b"x" * 8), 17, "192.168.1.1", "192.168.1.5", frag=185), 0x0800),
    "ssh6": ether(ipv6(tcp(40000, 22, ACK), 6, "2001:db8::1", "2001:db8::2"), 0x86DD),
    "udp6": ether(ipv6(udp(1500, 1600, b"data"), 17, "fe80::1", "2001:db8::2"), 0x86DD),
    "vlan": ether(VLAN_TAG + ipv4(tcp(443, 3000, ACK), 6, "172.16.0.1", "172.16.0.2"), 0x8100),
    "arp": ether(dpkt.arp.ARP(), 0x0806, dst=BROADCAST),
    "big": ether(ipv4(udp(7, 7, bytes(1400)), 17, "10.9.9.9", "10.0.0.1"), 0x0800),
}
# Truncated copies: every load a filter makes must then fail cleanly (return 0 or an earlier verdict).
TRUNCATED = {f"{name}[:{n}]": packet[:n] for name, packet in PACKETS.items() for n in (0, 13, 14, 23, 34, 40, 54)}
ALL = {**PACKETS, **TRUNCATED}

# expression -> the packets (of PACKETS) it matches, worked out from what each packet is.
EXPECTED = {
    "tcp port 80": {"syn", "ack", "options"},
    "host 10.0.0.1 and not icmp": {"syn", "ack", "big"},
    "icmp": {"icmp"},
    "icmp[icmptype] = icmp-echo": {"icmp"},
    "udp": {"dns", "fragment", "udp6", "big"},
    "udp port 53": {"dns"},  # the fragment's ports are not in its first bytes: libpcap tests the offset
    "ip6": {"ssh6", "udp6"},
    "ip6 and tcp port 22": {"ssh6"},
    "vlan 100": {"vlan"},
    "vlan and tcp port 443": {"vlan"},
    "arp": {"arp"},
    "ether broadcast": {"arp"},
    "tcp[tcpflags] & tcp-syn != 0": {"syn", "options"},
    "tcp[tcpflags] & (tcp-syn|tcp-ack) = (tcp-syn|tcp-ack)": {"options"},
    "ip[8] < 64": {"icmp"},
    "len > 1000": {"big"},
    "net 192.168.0.0/16": {"dns", "fragment"},
    "ip[6:2] & 0x1fff != 0": {"fragment"},
    "portrange 1000-2000": {"syn", "ack", "udp6"},  # 1234 and 1500 in range
    "dst port 80 and src net 10.1.0.0/16": {"options"},
    "ip6 net 2001:db8::/32": {"ssh6", "udp6"},
    "not ip and not ip6": {"arp", "vlan"},
}
MORE = [
    "tcp",
    "ip",
    "ip proto 17",
    "ether src 02:00:00:00:00:01",
    "src host 10.0.0.2 or dst host 8.8.8.8",
    "greater 100",
    "less 60",
    "tcp dst portrange 20-25 or udp src port 5353",
    "ip[0] & 0xf > 5",
    "ip and (tcp or icmp) and not port 443",
    "ip6 and ip6[6] = 17",
    "ether[12:2] = 0x8100",
    "udp[8:4] = 0",
    "tcp[13] = 2",
    "icmp or arp or ip6",
]


def verdicts(expression: str) -> dict[str, int]:
    classic = jit.compile_expression(expression)
    loaded = LIBPCAP.load(classic)
    return {name: loaded(packet) for name, packet in ALL.items()}


@pytest.mark.parametrize("expression", sorted(EXPECTED))
def test_expressions_match_what_the_packets_are(expression: str) -> None:
    f = jit.Filter(expression)
    matched = {name for name, packet in PACKETS.items() if f.match(packet)}
    assert matched == EXPECTED[expression]


@pytest.mark.parametrize("expression", sorted(EXPECTED) + MORE)
def test_every_engine_agrees_with_libpcap(expression: str) -> None:
    expected = verdicts(expression)
    classic = jit.compile_expression(expression)
    assert {name: jit.run_classic(classic, packet) for name, packet in ALL.items()} == expected
    ebpf = jit.classic_to_ebpf(classic)
    jit.verify(ebpf)
    batch = PacketBatch.from_packets(ALL.values())
    for engine in jit.engines():
        run = engine.prepare(ebpf)
        assert dict(zip(ALL, run_batch(run, batch))) == expected, engine.name


def test_the_snap_length_is_what_a_match_returns() -> None:
    assert jit.Filter("tcp", snaplen=96)(PACKETS["syn"]) == 96
    assert jit.Filter("tcp")(PACKETS["syn"]) == pcapfilter.DEFAULT_SNAPLEN
    assert jit.Filter("tcp")(PACKETS["dns"]) == 0


def test_other_link_types() -> None:
    raw = PACKETS["syn"][14:]  # an IP packet without its Ethernet header
    f = jit.Filter("tcp port 80", linktype="RAW")
    assert f.match(raw) and not f.match(PACKETS["dns"][14:])
    assert f.classic == jit.compile_expression("tcp port 80", linktype=LIBPCAP.linktype("RAW"))
    with pytest.raises(jit.UsageError, match="unknown link type"):
        jit.compile_expression("tcp", linktype="NO_SUCH_LINK")


def test_a_bad_expression_is_a_filter_error_with_libpcap_message() -> None:
    with pytest.raises(jit.FilterError, match=r"cannot compile 'tcp port'.*syntax error"):
        jit.compile_expression("tcp port")
    with pytest.raises(jit.FilterError):
        jit.Filter("host no.such.host.invalid")
    with pytest.raises(jit.UsageError):
        jit.compile_expression(b"tcp")  # type: ignore[arg-type]


def test_protochain_backward_jumps_are_refused_clearly() -> None:
    """libpcap implements 'ip protochain' with a backward jump, which Linux (and we) refuse."""
    classic = jit.compile_expression("ip protochain 6")
    with pytest.raises(jit.VerifierError, match=r"instruction \d+ \(ja "):
        jit.Filter(classic)


def test_missing_libpcap_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pcapfilter, "_candidates", lambda: ["/nonexistent/libpcap.so"])
    pcapfilter.libpcap.cache_clear()
    try:
        with pytest.raises(pcapfilter.LibpcapMissing, match=r"pip install libpcap.*apt-get install libpcap0.8"):
            jit.compile_expression("tcp")
    finally:
        pcapfilter.libpcap.cache_clear()


def test_match_many_and_count() -> None:
    f = jit.Filter("tcp port 80")
    packets = list(PACKETS.values()) * 50
    verdicts = f.match_many(packets)
    assert len(verdicts) == len(packets)
    assert f.count(packets) == 3 * 50
    assert f.count(PacketBatch.from_packets(packets)) == 150
    assert batch_path(f.fn) == ("native" if jit.engines()[1].name == "x86_64" else batch_path(f.fn))
    assert f.match_many([]).tolist() == []


def test_listing_shows_all_three_levels() -> None:
    text = jit.Filter("ip").listing()
    assert "(000) ldh      [12]" in text
    assert "ldxh %r0, [%r8+12]" in text
    assert f"; {jit.Filter('ip').fn.arch}" in text


# Packets cut short by a snap length: libpcap's len is the wire length.
WIRE_EXPRESSIONS = [
    "greater 100",
    "less 64",
    "len > 1000",
    "len == 1514",
    "ip[8] < 64 or len > 1000",
    "tcp and len < 90",
]


@pytest.mark.parametrize("expression", WIRE_EXPRESSIONS)
def test_length_tests_see_the_wire_length_like_libpcap(expression: str) -> None:
    classic = jit.compile_expression(expression)
    assert classic.reads_wire_length
    loaded = LIBPCAP.load(classic)
    cases = [(p[:cut], wirelen) for p in ALL.values() for cut, wirelen in ((len(p), len(p)), (54, 1514), (20, 70))]
    expected = [loaded(data, wirelen) for data, wirelen in cases]
    assert [jit.run_classic(classic, data, wirelen) for data, wirelen in cases] == expected
    assert len(set(expected)) == 2, "the cases should give both verdicts"
    for engine in jit.engines():
        f = jit.Filter(expression, arch=engine.arch, emulate=engine.emulated) if engine.arch else None
        if f is None:
            continue
        assert [f(data, wirelen) for data, wirelen in cases] == expected, engine.name
        datas, lengths = zip(*cases)
        assert f.match_many(list(datas), list(lengths)).tolist() == expected, engine.name
        assert f.match_many(PacketBatch.from_packets(datas), lengths).tolist() == expected, engine.name
        assert f.count(list(datas), lengths) == sum(1 for v in expected if v)


def test_without_a_wire_length_a_packet_is_as_long_as_it_is() -> None:
    f = jit.Filter("greater 100")
    assert f.wire_length and not jit.Filter("tcp").wire_length
    assert f(bytes(60)) == 0 and f(bytes(60), 101) == pcapfilter.DEFAULT_SNAPLEN
    assert f.match_many([bytes(60), bytes(120)]).tolist() == [0, pcapfilter.DEFAULT_SNAPLEN]
    assert jit.Filter("tcp")(PACKETS["syn"], 5) == jit.Filter("tcp")(PACKETS["syn"])  # ignored: no length test
    with pytest.raises(jit.UsageError, match="2 wire lengths for 1 packets"):
        f.match_many([bytes(60)], [1, 2])
    with pytest.raises(jit.UsageError, match="wire length"):
        f(bytes(60), -1)
