/* Copy the first half of the buffer (at most 1 MiB) into the second half, byte by byte.
 * Returns the length copied (high 32 bits) and three bytes read back from the copy. */
#include "bench.h"

#define MAX_COPY (1u << 20)

ENTRY uint64_t bench_memcpy(uint8_t *mem, uint64_t len)
{
	uint64_t n = len / 2;
	if (n > MAX_COPY)
		n = MAX_COPY;
	if (n == 0)
		return 0;
	uint8_t *src = mem, *dst = mem + n;
	for (uint64_t i = 0; i < n; i++)
		dst[i] = src[i];
	return (n << 32) | ((uint64_t)dst[n - 1] << 16) | ((uint64_t)dst[n / 2] << 8) | dst[0];
}
