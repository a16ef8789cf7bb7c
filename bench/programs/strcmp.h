/* strcmp over two NUL-terminated strings: the buffer's two halves (at most 1 MiB each).
 * Returns the index where the comparison stopped (high 32 bits) and the difference of
 * the two bytes there (low 32 bits, two's complement; 0 when the strings are equal). */
#ifndef STRCMP_H
#define STRCMP_H
#include "bench.h"

#define MAX_STRING (1u << 20)

static inline uint64_t string_compare(uint8_t *mem, uint64_t len)
{
	uint64_t n = len / 2;
	if (n > MAX_STRING)
		n = MAX_STRING;
	uint8_t *a = mem, *b = mem + n;
	uint64_t i;
	for (i = 0; i < n; i++) {
		uint32_t ca = a[i], cb = b[i];
		if (ca != cb)
			return (i << 32) | (uint32_t)(ca - cb);
		if (ca == 0)
			break;
	}
	return i << 32;
}
#endif
