/* CRC-32 (IEEE 802.3, the one zlib and Ethernet use) over the buffer (at most 64 KiB),
 * bit by bit without a table, as an eBPF program without maps would compute it. */
#include "bench.h"

#define MAX_BYTES (1u << 16)

ENTRY uint64_t bench_crc32(uint8_t *mem, uint64_t len)
{
	uint32_t crc = 0xFFFFFFFFu;
	for (uint64_t i = 0; i < MAX_BYTES && i < len; i++) {
		crc ^= mem[i];
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1));
	}
	return ~crc;
}
