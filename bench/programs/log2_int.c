/* Sum of floor(log2(v)) (0 for v = 0) over up to 1024 u64 values, branch-free in C. */
#include "bench.h"

#define MAX_VALUES 1024

static inline uint64_t log2_u64(uint64_t v)
{
	uint64_t r, s;
	r = (uint64_t)(v > 0xFFFFFFFFull) << 5;
	v >>= r;
	s = (uint64_t)(v > 0xFFFF) << 4;
	v >>= s;
	r |= s;
	s = (uint64_t)(v > 0xFF) << 3;
	v >>= s;
	r |= s;
	s = (uint64_t)(v > 0xF) << 2;
	v >>= s;
	r |= s;
	s = (uint64_t)(v > 0x3) << 1;
	v >>= s;
	r |= s;
	return r | (v >> 1);
}

ENTRY uint64_t bench_log2_int(uint8_t *mem, uint64_t len)
{
	uint64_t n = len / 8, sum = 0;
	for (uint64_t i = 0; i < MAX_VALUES && i < n; i++)
		sum += log2_u64(((uint64_t *)mem)[i]);
	return sum;
}
