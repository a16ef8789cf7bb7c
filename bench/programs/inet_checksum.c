/* The Internet checksum (RFC 1071) of the buffer (at most 1 MiB, an odd last byte padded
 * with zero): the ones' complement of the ones' complement sum of big-endian 16-bit words. */
#include "bench.h"

#define MAX_BYTES (1u << 20)

ENTRY uint64_t bench_inet_checksum(uint8_t *mem, uint64_t len)
{
	uint64_t sum = 0, n = len < MAX_BYTES ? len : MAX_BYTES;
	uint64_t i;
	for (i = 0; i + 1 < n; i += 2)
		sum += ((uint32_t)mem[i] << 8) | mem[i + 1];
	if (i < n)
		sum += (uint32_t)mem[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xFFFF) + (sum >> 16);
	return ~sum & 0xFFFF;
}
