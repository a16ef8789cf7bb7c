/* A hash over up to 8192 u64 values, one call of a local (noinline) function per value:
 * what BPF-to-BPF calls cost. */
#include "bench.h"

#define MAX_VALUES 8192

static NOINLINE uint64_t mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0x9E3779B97F4A7C15ull;
	return h ^ (h >> 29);
}

ENTRY uint64_t bench_local_call(uint8_t *mem, uint64_t len)
{
	uint64_t n = len / 8, h = 0x243F6A8885A308D3ull;
	for (uint64_t i = 0; i < MAX_VALUES && i < n; i++)
		h = mix(h, ((uint64_t *)mem)[i]);
	return h;
}
