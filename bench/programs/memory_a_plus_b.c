/* Two 64-bit loads from the buffer and an add. */
#include "bench.h"

ENTRY uint64_t bench_memory_a_plus_b(uint8_t *mem, uint64_t len)
{
	if (len < 16)
		return 0;
	uint64_t a = *(uint64_t *)mem;
	uint64_t b = *(uint64_t *)(mem + 8);
	return a + b;
}
