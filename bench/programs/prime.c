/* Count the primes below a limit (u32 at mem[0], at most 10,000) by trial division. */
#include "bench.h"

#define MAX_LIMIT 10000

ENTRY uint64_t bench_prime(uint8_t *mem, uint64_t len)
{
	if (len < 4)
		return 0;
	uint32_t limit = *(uint32_t *)mem;
	if (limit > MAX_LIMIT)
		limit = MAX_LIMIT;
	uint64_t count = 0;
	for (uint32_t n = 2; n < limit; n++) {
		uint64_t is_prime = 1;
		for (uint32_t d = 2; d * d <= n; d++) {
			if (n % d == 0) {
				is_prime = 0;
				break;
			}
		}
		count += is_prime;
	}
	return count;
}
