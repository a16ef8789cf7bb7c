/* strcmp of two 1 MiB strings that differ late (see strcmp.h). */
#include "strcmp.h"

ENTRY uint64_t bench_strcmp_fail(uint8_t *mem, uint64_t len)
{
	return string_compare(mem, len);
}
