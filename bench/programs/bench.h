/* Shared by every benchmark program.
 *
 * Each program is one entry function  uint64_t bench_NAME(uint8_t *mem, uint64_t len)
 * (in BPF: R1 = mem, R2 = len) that compiles both with clang -target bpf and with gcc.
 * No libc headers: clang -target bpf has none, so the fixed-width types come from the
 * compiler's predefined macros. The "bench_" prefix keeps entry names clear of C keywords
 * and libc functions (switch, memcpy).
 */
#ifndef BENCH_H
#define BENCH_H

typedef __UINT8_TYPE__ uint8_t;
typedef __UINT16_TYPE__ uint16_t;
typedef __UINT32_TYPE__ uint32_t;
typedef __UINT64_TYPE__ uint64_t;
typedef __INT32_TYPE__ int32_t;

/* In BPF the entry function gets a section of its own so that it starts the program
 * and local functions (in .text) follow it, as with libbpf. */
#ifdef __bpf__
#define ENTRY __attribute__((section("bench"), used))
#else
#define ENTRY
#endif

#define NOINLINE __attribute__((noinline))

#endif
