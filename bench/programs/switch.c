/* A 64-case switch on (x % 64) over up to 4096 u32 values; each case updates the
 * accumulator differently (four kinds of update, each with its own constant), so that
 * the compilers cannot turn the switch into a table of constants. */
#include "bench.h"

#define MAX_VALUES 4096

/* Cases k .. k+3. */
#define CASES(k)                                        \
	case k:                                         \
		acc += x ^ (k * 0x9E37u);               \
		break;                                  \
	case k + 1:                                     \
		acc ^= (uint64_t)x * (k + 3);           \
		break;                                  \
	case k + 2:                                     \
		acc = ((acc << 7) | (acc >> 57)) + k;   \
		break;                                  \
	case k + 3:                                     \
		acc -= x >> ((k / 4) % 7 + 1);          \
		break;

ENTRY uint64_t bench_switch(uint8_t *mem, uint64_t len)
{
	uint64_t n = len / 4, acc = 0;
	for (uint64_t i = 0; i < MAX_VALUES && i < n; i++) {
		uint32_t x = ((uint32_t *)mem)[i];
		switch (x % 64) {
			CASES(0)
			CASES(4)
			CASES(8)
			CASES(12)
			CASES(16)
			CASES(20)
			CASES(24)
			CASES(28)
			CASES(32)
			CASES(36)
			CASES(40)
			CASES(44)
			CASES(48)
			CASES(52)
			CASES(56)
			CASES(60)
		}
	}
	return acc;
}
