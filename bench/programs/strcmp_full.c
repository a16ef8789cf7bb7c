/* strcmp of two equal 1 MiB strings (see strcmp.h). */
#include "strcmp.h"

ENTRY uint64_t bench_strcmp_full(uint8_t *mem, uint64_t len)
{
	return string_compare(mem, len);
}
