/* A packet filter over a batch of captured frames, the bread and butter of eBPF.
 *
 * The buffer is a sequence of 128-byte slots: a little-endian u16 capture length
 * (at most 126) followed by the frame. A frame matches when it is Ethernet (optionally
 * with one 802.1Q VLAN tag), IPv4 (version 4, IHL >= 5), not a fragment (fragment offset
 * 0), TCP, destination port 80, TCP data offset >= 5, and its IPv4 total length covers
 * both headers. Every header must lie inside the captured bytes.
 * Returns the number of matches (high 32 bits) and the sum of their TCP payload lengths
 * (IPv4 total length minus both header lengths; low 32 bits).
 */
#include "bench.h"

#define SLOT 128
#define MAX_PACKETS 8192
#define MAX_CAPTURE (SLOT - 2)
#define ETH_P_IP 0x0800
#define ETH_P_8021Q 0x8100
#define IPPROTO_TCP 6
#define MATCH_PORT 80

static inline uint32_t be16(const uint8_t *p)
{
	return ((uint32_t)p[0] << 8) | p[1];
}

/* The TCP payload length of a matching frame, or -1. */
static inline int32_t match(const uint8_t *pkt, uint32_t caplen)
{
	uint32_t off = 14;
	if (caplen < off)
		return -1;
	uint32_t type = be16(pkt + 12);
	if (type == ETH_P_8021Q) {
		off = 18;
		if (caplen < off)
			return -1;
		type = be16(pkt + 16);
	}
	if (type != ETH_P_IP || caplen < off + 20)
		return -1;
	const uint8_t *ip = pkt + off;
	uint32_t ihl = (ip[0] & 15) * 4;
	if ((ip[0] >> 4) != 4 || ihl < 20 || (be16(ip + 6) & 0x1FFF) != 0 || ip[9] != IPPROTO_TCP)
		return -1;
	off += ihl;
	if (caplen < off + 20)
		return -1;
	const uint8_t *tcp = pkt + off;
	uint32_t doff = (tcp[12] >> 4) * 4;
	uint32_t total = be16(ip + 2);
	if (be16(tcp + 2) != MATCH_PORT || doff < 20 || total < ihl + doff)
		return -1;
	return (int32_t)(total - ihl - doff);
}

ENTRY uint64_t bench_packet_filter(uint8_t *mem, uint64_t len)
{
	uint64_t count = 0, bytes = 0, n = len / SLOT;
	for (uint64_t i = 0; i < MAX_PACKETS && i < n; i++) {
		const uint8_t *slot = mem + i * SLOT;
		uint32_t caplen = slot[0] | ((uint32_t)slot[1] << 8);
		if (caplen > MAX_CAPTURE)
			caplen = MAX_CAPTURE;
		int32_t payload = match(slot + 2, caplen);
		if (payload >= 0) {
			count++;
			bytes += (uint32_t)payload;
		}
	}
	return (count << 32) | (bytes & 0xFFFFFFFFu);
}
