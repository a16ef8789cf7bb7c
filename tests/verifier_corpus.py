"""A corpus of small verifier cases, each with Linux's verdict and, when accepted, its result.

Each :class:`Case` is a program in the conformance-suite assembly dialect
(FORMAT.md section 4), the verdict Linux's verifier gives the equivalent
program (R1 is an input buffer and R2 its length; see the module docstring
of :mod:`jit.analysis.verifier`), a lower-case fragment the rejection message
must contain, and for accepted programs the input buffer and the R0 worked
out by hand from the program's meaning.

The expected verdicts follow the kinds of case in Linux's verifier selftests
(``tools/testing/selftests/bpf/verifier/*.c`` and ``progs/verifier_*.c``):
bounded loops are simulated until they exit, ``jset``/JMP32 compares refine
ranges and known bits (a branch they prove dead is never explored, so the
poison ``ldxb %r0, [%r9]`` with an uninitialised R9 in it does not matter),
spilled pointers survive any number of fills and any call that is not given
a pointer to their slot, stack pointers may be passed down to callees, and
every stack byte read must have been written (the rule of the unprivileged
verifier, which this project's verifier applies to every program).
Programs with maps (``maps``) refer to map ``i`` with ``lddw.mapfd %rN, i``;
:meth:`Case.program` creates fresh maps and resolves those loads.

``known_gap`` marks the cases on which the current verifier disagrees with
the expected verdict (the work list of the verifier); the test expects them
to fail until the verifier is fixed, and the field is then removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jit
from jit.frontend.program import Program

ACCEPT = "accept"
REJECT = "reject"

KINDS = (
    "uninitialised_register",
    "r10_write",
    "stack_bounds",
    "atomic_alignment",
    "atomic_uninitialised_source",
    "cmpxchg_pointer",
    "helper_id",
    "helper_argument_size",
    "division_by_zero",
    "ld_imm64_jump",
    "unreachable",
    "infinite_loop",
    "call_depth",
    "bounded_loop",
    "widening_loop",
    "stack_filling_loop",
    "spill_fill",
    "partial_fill",
    "spill_around_helper",
    "spill_around_local_call",
    "callee_stack_pointer",
    "variable_offset_stack",
    "bounds_32bit",
    "jmp32_deduction",
    "jset",
    "packet_pointer",
    "map_value_null_check",
)

# (name, Linux map type, key size, value size, max entries)
MapSpec = tuple[str, int, int, int, int]
HASH = 1

_MAPFD = re.compile(r"lddw\.mapfd (%r\d+), (\d+)")


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    verdict: str
    fragment: str | None = None
    mem: bytes | None = None
    result: int | None = None
    kind: str = ""
    known_gap: str | None = None
    sized: bool = True  # verify with mem_size=len(mem); False: the length is unknown (only R2 bounds it)
    maps: tuple[MapSpec, ...] = ()
    allow_loops: bool = True  # jit.verify(allow_loops=...)

    @property
    def mem_size(self) -> int | None:
        return len(self.mem) if self.mem is not None and self.sized else None

    def program(self) -> Program:
        """The program, with fresh maps and its ``lddw.mapfd`` loads resolved."""
        if not self.maps:
            return jit.assemble(self.source)
        from jit.frontend.elf import Relocation
        from jit.frontend.maps import create_map

        maps = [create_map(*spec) for spec in self.maps]
        text = _MAPFD.sub(lambda m: f"lddw {m.group(1)}, {maps[int(m.group(2))].address:#x}", self.source)
        prog = jit.assemble(text)
        prog.maps = {m.name: m for m in maps}
        prog.memory = tuple(region for m in maps for region in m.memory)
        by_address = {m.address: (i, m) for i, m in enumerate(maps)}
        prog.relocations = tuple(
            Relocation(
                pc, "map", by_address[insn.imm][1].name, by_address[insn.imm][0], 0, by_address[insn.imm][1].name
            )
            for pc, insn in prog
            if insn.spec.mnemonic == "lddw" and insn.imm in by_address
        )
        return prog


CASES: list[Case] = []


def _src(text: str) -> str:
    """Instructions separated by ';' (or newlines) -> one per line, a label
    (``l: insn``) on a line of its own."""
    lines = []
    for part in (part.strip() for part in re.split(r"[;\n]", text)):
        label = re.match(r"(\w+):\s*(.*)$", part)
        lines.extend([f"{label.group(1)}:", label.group(2)] if label else [part])
    return "\n".join(line for line in lines if line)


def accept(kind: str, name: str, text: str, result: int, mem: bytes | None = None, **extra: object) -> None:
    CASES.append(Case(f"{kind}.{name}", _src(text), ACCEPT, None, mem, result & (2**64 - 1), kind, **extra))


def reject(kind: str, name: str, text: str, fragment: str, mem: bytes | None = None, **extra: object) -> None:
    CASES.append(Case(f"{kind}.{name}", _src(text), REJECT, fragment, mem, None, kind, **extra))


POISON = "ldxb %r0, [%r9]"  # R9 is never written: a branch holding this must be proven dead
NOT_INIT = "not initialised"
STACK = "stack frame"
BUF = "input buffer"
OOB = "out of bounds"

# --- uninitialised registers (Linux: "R3 !read_ok") ---------------------------------

K = "uninitialised_register"
reject(K, "mov_from_r3", "mov %r0, %r3; exit", NOT_INIT)
reject(K, "add_to_r0", "add %r0, 1; exit", NOT_INIT)
reject(K, "add_r5", "mov %r0, 0; add %r0, %r5; exit", NOT_INIT)
reject(K, "exit_without_r0", "exit", "%r0")
reject(K, "exit_without_r0_one_path", "ldxb %r3, [%r1]; jeq %r3, 0, +1; mov %r0, 1; exit", "%r0", mem=b"\x00")
reject(K, "compare_uninit", "mov %r0, 0; jeq %r4, 0, +1; mov %r0, 1; exit", NOT_INIT)
reject(K, "one_path_writes", "mov %r0, 0; ldxb %r4, [%r1]; jeq %r4, 0, +1; mov %r3, 1; mov %r0, %r3; exit",
       NOT_INIT, mem=b"\x01")  # fmt: skip
reject(K, "store_uninit", "stxdw [%r10-8], %r5; mov %r0, 0; exit", NOT_INIT)
reject(K, "base_uninit", "ldxb %r0, [%r7]; exit", NOT_INIT)
reject(K, "r1_after_helper", "mov %r1, 1; call 5; mov %r0, %r1; exit", "%r1")
reject(K, "r5_after_helper", "mov %r5, 1; call 5; add %r0, %r5; exit", "%r5")
reject(K, "alu32_uninit", "mov32 %r0, 0; add32 %r0, %r8; exit", NOT_INIT)
accept(K, "r2_is_length", "mov %r0, %r2; exit", 3, mem=b"abc")
accept(K, "r6_survives_helper", "mov %r6, 7; call 5; mov %r0, %r6; exit", 7)
accept(K, "both_paths_write", "ldxb %r4, [%r1]; jeq %r4, 0, +2; mov %r3, 5; ja +1; mov %r3, 9; mov %r0, %r3; exit",
       9, mem=b"\x00")  # fmt: skip
accept(K, "written_before_read", "mov %r3, 2; mov %r0, %r3; add %r0, %r3; exit", 4)
accept(K, "r0_after_helper", "call 5; mov %r0, 1; exit", 1)

# --- writes to R10 (Linux: "frame pointer is read only") -----------------------------

K = "r10_write"
reject(K, "add", "add %r10, 8; mov %r0, 0; exit", "read-only")
reject(K, "mov_imm", "mov %r10, 0; mov %r0, 0; exit", "read-only")
reject(K, "load", "ldxdw %r10, [%r1]; mov %r0, 0; exit", "read-only", mem=bytes(8))
reject(K, "mov32_self", "mov32 %r10, %r10; mov %r0, 0; exit", "read-only")
reject(K, "neg", "neg %r10; mov %r0, 0; exit", "read-only")
reject(K, "lddw", "lddw %r10, 0x1000; mov %r0, 0; exit", "read-only")
reject(K, "fetch_into_r10", "stdw [%r10-8], 0; lock fetch add [%r10-8], %r10; mov %r0, 0; exit", "read-only")
reject(K, "byteswap", "be64 %r10; mov %r0, 0; exit", "read-only")
accept(K, "copy_is_writable", "mov %r3, %r10; add %r3, -8; stdw [%r3], 5; ldxdw %r0, [%r10-8]; exit", 5)
accept(K, "store_r10", "stxdw [%r10-8], %r10; mov %r0, 1; exit", 1)
accept(K, "r10_as_base", "stw [%r10-4], 6; ldxw %r0, [%r10-4]; exit", 6)

# --- stack bounds (Linux: "invalid stack off") ----------------------------------------

K = "stack_bounds"
reject(K, "below_512", "stdw [%r10-520], 1; mov %r0, 0; exit", OOB)
reject(K, "byte_513", "stb [%r10-513], 1; mov %r0, 0; exit", OOB)
reject(K, "at_top", "stb [%r10+0], 1; mov %r0, 0; exit", OOB)
reject(K, "above_top", "stdw [%r10-8], 0; ldxb %r0, [%r10+8]; exit", OOB)
reject(K, "crosses_top", "sth [%r10-1], 1; mov %r0, 0; exit", OOB)
reject(K, "copy_below", "mov %r3, %r10; add %r3, -512; stdw [%r3-8], 0; mov %r0, 0; exit", OOB)
reject(K, "copy_above", "mov %r3, %r10; add %r3, 8; stb [%r3-1], 0; mov %r0, 0; exit", OOB)
reject(K, "load_below", "ldxw %r0, [%r10-516]; exit", OOB)
accept(K, "lowest_byte", "stb [%r10-512], 7; ldxb %r0, [%r10-512]; exit", 7)
accept(K, "lowest_dword", "stdw [%r10-512], 8; ldxdw %r0, [%r10-512]; exit", 8)
accept(K, "top_dword", "stdw [%r10-8], 9; ldxdw %r0, [%r10-8]; exit", 9)
accept(K, "copy_middle", "mov %r3, %r10; add %r3, -256; stw [%r3-4], 3; ldxw %r0, [%r10-260]; exit", 3)
accept(K, "top_byte", "stb [%r10-1], 0x7f; ldxb %r0, [%r10-1]; exit", 0x7F)
accept(K, "half", "sth [%r10-2], -1; ldxh %r0, [%r10-2]; exit", 0xFFFF)

# --- atomic alignment (Linux: "misaligned stack access") -----------------------------

K = "atomic_alignment"
reject(K, "add32_off_by_2", "stdw [%r10-8], 0; mov %r1, 1; lock add32 [%r10-6], %r1; mov %r0, 0; exit", "aligned")
reject(K, "add64_at_4", "stdw [%r10-16], 0; stdw [%r10-8], 0; mov %r1, 1; lock add [%r10-12], %r1; mov %r0, 0; exit",
       "aligned")  # fmt: skip
reject(K, "xchg64_at_20", "stdw [%r10-24], 0; stdw [%r10-16], 0; mov %r1, 1; lock xchg [%r10-20], %r1; mov %r0, 0; exit",
       "aligned")  # fmt: skip
reject(K, "cmpxchg32_at_7", "stdw [%r10-8], 0; mov %r0, 0; mov %r1, 1; lock cmpxchg32 [%r10-7], %r1; exit", "aligned")
reject(K, "fetch_or32_at_3", "stdw [%r10-8], 0; mov %r1, 1; lock fetch or32 [%r10-7], %r1; mov %r0, 0; exit",
       "aligned")  # fmt: skip
reject(K, "xor64_at_9", "stdw [%r10-16], 0; stdw [%r10-8], 0; mov %r1, 1; lock xor [%r10-9], %r1; mov %r0, 0; exit",
       "aligned")  # fmt: skip
reject(K, "and64_via_copy", "stdw [%r10-16], 0; stdw [%r10-8], 0; mov %r3, %r10; add %r3, -2; mov %r1, 1; "
       "lock and [%r3-10], %r1; mov %r0, 0; exit", "aligned")  # fmt: skip
accept(K, "add64", "stdw [%r10-8], 5; mov %r1, 3; lock add [%r10-8], %r1; ldxdw %r0, [%r10-8]; exit", 8)
accept(K, "add32_high_word", "stdw [%r10-8], 5; mov %r1, 3; lock add32 [%r10-4], %r1; ldxdw %r0, [%r10-8]; exit",
       0x300000005)  # fmt: skip
accept(K, "fetch_or", "stdw [%r10-16], 0x0f; mov %r1, 0xf0; lock fetch or [%r10-16], %r1; mov %r0, %r1; exit", 0x0F)
accept(K, "xchg", "stdw [%r10-8], 11; mov %r1, 22; lock xchg [%r10-8], %r1; ldxdw %r0, [%r10-8]; add %r0, %r1; exit",
       33)  # fmt: skip
accept(K, "and32", "stw [%r10-4], 6; mov %r1, 3; lock and32 [%r10-4], %r1; ldxw %r0, [%r10-4]; exit", 2)
accept(K, "xor64", "stdw [%r10-8], -1; mov %r1, 0xff; lock xor [%r10-8], %r1; ldxdw %r0, [%r10-8]; exit",
       0xFFFFFFFFFFFFFF00)  # fmt: skip
accept(K, "aligned_via_copy", "stdw [%r10-16], 1; mov %r3, %r10; add %r3, -4; mov %r1, 2; lock add [%r3-12], %r1; "
       "ldxdw %r0, [%r10-16]; exit", 3)  # fmt: skip

# --- atomics whose source (or R0 for cmpxchg) was never written -----------------------

K = "atomic_uninitialised_source"
reject(K, "fetch_add", "stdw [%r10-8], 0; lock fetch add [%r10-8], %r3; mov %r0, 0; exit", NOT_INIT)
reject(K, "cmpxchg_src", "stdw [%r10-8], 0; mov %r0, 0; lock cmpxchg [%r10-8], %r3; exit", NOT_INIT)
reject(K, "cmpxchg_r0", "stdw [%r10-8], 0; mov %r1, 1; lock cmpxchg [%r10-8], %r1; mov %r0, 0; exit", NOT_INIT)
reject(K, "add", "stdw [%r10-8], 0; lock add [%r10-8], %r4; mov %r0, 0; exit", NOT_INIT)
reject(K, "xchg32", "stw [%r10-4], 0; lock xchg32 [%r10-4], %r6; mov %r0, 0; exit", NOT_INIT)
reject(K, "fetch_xor32", "stw [%r10-4], 0; lock fetch xor32 [%r10-4], %r7; mov %r0, 0; exit", NOT_INIT)
reject(K, "memory_uninit", "mov %r1, 1; lock add [%r10-8], %r1; mov %r0, 0; exit", NOT_INIT)
reject(K, "memory_uninit_fetch", "mov %r1, 1; lock fetch and32 [%r10-4], %r1; mov %r0, 0; exit", NOT_INIT)
accept(K, "fetch_add_initialised", "stdw [%r10-8], 0; mov %r5, 7; lock fetch add [%r10-8], %r5; ldxdw %r0, [%r10-8]; "
       "add %r0, %r5; exit", 7)  # fmt: skip
accept(K, "cmpxchg_equal", "stdw [%r10-8], 4; mov %r0, 4; mov %r1, 9; lock cmpxchg [%r10-8], %r1; "
       "ldxdw %r1, [%r10-8]; add %r0, %r1; exit", 13)  # fmt: skip
accept(K, "cmpxchg_differ", "stdw [%r10-8], 4; mov %r0, 5; mov %r1, 9; lock cmpxchg [%r10-8], %r1; "
       "ldxdw %r1, [%r10-8]; add %r0, %r1; exit", 8)  # fmt: skip
accept(K, "cmpxchg32", "stdw [%r10-8], -1; mov %r0, -1; mov %r1, 0; lock cmpxchg32 [%r10-8], %r1; "
       "ldxdw %r1, [%r10-8]; add %r0, %r1; exit", 0xFFFFFFFF + 0xFFFFFFFF00000000)  # fmt: skip
accept(K, "source_from_buffer", "stdw [%r10-8], 1; ldxb %r3, [%r1]; lock add [%r10-8], %r3; ldxdw %r0, [%r10-8]; exit",
       0x2B, mem=b"\x2a")  # fmt: skip

# --- cmpxchg with a pointer in R0 (verifier/atomic_cmpxchg.c "Dest pointer in r0") -----

K = "cmpxchg_pointer"
accept(K, "succeed", "mov %r0, %r10; stxdw [%r10-8], %r0; mov %r5, %r10; lock cmpxchg [%r10-8], %r5; "
       "ldxdw %r1, [%r0-8]; mov %r0, 0; exit", 0)  # fmt: skip
accept(K, "succeed_deref", "stdw [%r10-16], 42; mov %r0, %r10; stxdw [%r10-8], %r0; mov %r5, %r10; "
       "lock cmpxchg [%r10-8], %r5; ldxdw %r0, [%r0-16]; exit", 42)  # fmt: skip
accept(K, "fail_scalar_in_memory", "stdw [%r10-8], 0; mov %r0, %r10; mov %r1, 1; lock cmpxchg [%r10-8], %r1; "
       "jeq %r0, 0, +2; mov %r0, 1; exit; mov %r0, 0; exit", 0)  # fmt: skip
accept(K, "buffer_pointer", "stxdw [%r10-8], %r1; mov %r0, %r1; mov %r5, %r1; lock cmpxchg [%r10-8], %r5; "
       "ldxb %r0, [%r0]; exit", 0x2A, mem=b"\x2a" + bytes(7))  # fmt: skip
accept(K, "other_pointer_returned", "stxdw [%r10-8], %r1; mov %r0, %r10; mov %r5, %r10; lock cmpxchg [%r10-8], %r5; "
       "ldxb %r0, [%r0+1]; exit", 0x17, mem=b"\x05\x17")  # fmt: skip
accept(K, "pointer_compared_then_scalar_stored", "stdw [%r10-16], 3; mov %r0, %r10; add %r0, -16; "
       "stxdw [%r10-8], %r0; mov %r5, 6; lock cmpxchg [%r10-8], %r5; ldxdw %r0, [%r0]; ldxdw %r1, [%r10-8]; "
       "add %r0, %r1; exit", 9)  # fmt: skip
reject(K, "scalar_returned_deref", "stdw [%r10-8], 0; mov %r0, %r10; mov %r1, %r10; lock cmpxchg [%r10-8], %r1; "
       "ldxdw %r0, [%r0-8]; exit", "null pointer")  # fmt: skip
reject(K, "cmpxchg32_pointer_truncated", "mov %r0, %r10; stxdw [%r10-8], %r0; mov %r5, 0; "
       "lock cmpxchg32 [%r10-8], %r5; ldxdw %r1, [%r0-8]; mov %r0, 0; exit", "scalar")  # fmt: skip
reject(K, "stored_scalar_deref", "mov %r0, %r10; stxdw [%r10-8], %r0; mov %r5, 1; lock cmpxchg [%r10-8], %r5; "
       "ldxdw %r3, [%r10-8]; ldxb %r0, [%r3]; exit", "scalar")  # fmt: skip
reject(K, "uninit_slot", "mov %r0, %r10; mov %r5, 1; lock cmpxchg [%r10-8], %r5; mov %r0, 0; exit", NOT_INIT)

# --- helper ids and argument kinds (Linux: "invalid func unknown#99", "R1 type=... expected=...") ----

K = "helper_id"
reject(K, "id_99", "call 99; mov %r0, 0; exit", "not registered")
reject(K, "id_0", "call 0; mov %r0, 0; exit", "not registered")
reject(K, "id_9", "call 9; mov %r0, 0; exit", "not registered")
reject(K, "id_200", "call 200; mov %r0, 0; exit", "not registered")
reject(K, "id_max", "call 0x7fffffff; mov %r0, 0; exit", "not registered")
reject(K, "lookup_scalar_map", "mov %r1, 0; mov %r2, %r10; add %r2, -8; stdw [%r10-8], 0; call 1; mov %r0, 0; exit",
       "map")  # fmt: skip
reject(K, "update_scalar_map", "stdw [%r10-8], 0; mov %r1, 0; mov %r2, %r10; add %r2, -8; mov %r3, %r2; mov %r4, 0; "
       "call 2; mov %r0, 0; exit", "map")  # fmt: skip
reject(K, "delete_scalar_map", "stdw [%r10-8], 0; mov %r1, 0; mov %r2, %r10; add %r2, -8; call 3; mov %r0, 0; exit",
       "map")  # fmt: skip
reject(K, "tail_call_scalar_map", "mov %r2, 0; mov %r3, 0; call 12; mov %r0, 0; exit", "map")
reject(K, "comm_scalar_buffer", "mov %r1, 0; mov %r2, 8; call 16; mov %r0, 0; exit", "pointer")
reject(K, "printk_scalar_format", "mov %r1, 64; mov %r2, 8; call 6; mov %r0, 0; exit", "pointer")
reject(K, "comm_uninit_size", "mov %r1, %r10; add %r1, -8; call 16; mov %r0, 0; exit", NOT_INIT,
       known_gap="the rejection names the unproven size, not the uninitialised %r2 it comes from")  # fmt: skip
accept(K, "ktime", "call 5; mov %r0, 1; exit", 1)
accept(K, "prandom_is_u32", "call 7; rsh %r0, 32; exit", 0)
accept(K, "cpu_id_is_u32", "call 8; rsh %r0, 32; exit", 0)
accept(K, "pid_tgid", "call 14; mov %r0, 2; exit", 2)
accept(K, "comm", "mov %r1, %r10; add %r1, -16; mov %r2, 16; call 16; exit", 0)
accept(K, "printk", "stdw [%r10-8], 0x6968; mov %r1, %r10; add %r1, -8; mov %r2, 8; call 6; exit", 2)

# --- helper argument sizes -------------------------------------------------------------

K = "helper_argument_size"
reject(K, "comm_too_big", "mov %r1, %r10; add %r1, -8; mov %r2, 16; call 16; mov %r0, 0; exit", OOB)
reject(K, "comm_off_by_one", "mov %r1, %r10; add %r1, -8; mov %r2, 9; call 16; mov %r0, 0; exit", OOB)
reject(K, "comm_negative", "mov %r1, %r10; add %r1, -8; mov %r2, -1; call 16; mov %r0, 0; exit", OOB)
reject(K, "printk_reads_uninit", "stdw [%r10-8], 0x6968; mov %r1, %r10; add %r1, -8; mov %r2, 16; call 6; exit",
       OOB)  # fmt: skip
reject(K, "printk_reads_uninit_below", "stdw [%r10-8], 0x6968; mov %r1, %r10; add %r1, -16; mov %r2, 16; call 6; exit",
       NOT_INIT)  # fmt: skip
reject(K, "comm_unbounded_size", "ldxb %r3, [%r1]; jeq %r3, 0, +4; mov %r1, %r10; add %r1, -8; mov %r2, %r3; call 16; "
       "mov %r0, 0; exit", "cannot prove", mem=b"\x08")  # fmt: skip
reject(K, "comm_size_bound_too_big", "ldxb %r3, [%r1]; jeq %r3, 0, +5; jgt %r3, 16, +4; mov %r1, %r10; add %r1, -8; "
       "mov %r2, %r3; call 16; mov %r0, 0; exit", "cannot prove", mem=b"\x08")  # fmt: skip
reject(K, "probe_read_kernel_too_big", "mov %r3, %r1; mov %r1, %r10; add %r1, -8; mov %r2, 12; call 113; mov %r0, 0; "
       "exit", OOB, mem=bytes(16))  # fmt: skip
reject(K, "printk_zero_size", "stdw [%r10-8], 0; mov %r1, %r10; add %r1, -8; mov %r2, 0; call 6; exit", "zero")
reject(K, "comm_maybe_zero_size", "ldxb %r2, [%r1]; and %r2, 8; mov %r1, %r10; add %r1, -8; call 16; mov %r0, 0; "
       "exit", "may be zero", mem=b"\x08")  # fmt: skip
accept(
    K,
    "probe_read_kernel_zero_size",
    "mov %r3, %r1; mov %r1, %r10; add %r1, -8; mov %r2, 0; call 113; mov %r0, 3; exit",
    3,
    mem=bytes(8),
)  # fmt: skip  (ARG_CONST_SIZE_OR_ZERO)
accept(K, "comm_exact", "mov %r1, %r10; add %r1, -8; mov %r2, 8; call 16; exit", 0)
accept(K, "comm_then_read", "mov %r1, %r10; add %r1, -8; mov %r2, 8; call 16; ldxb %r0, [%r10-1]; exit", 0)
accept(K, "printk_exact", "stdw [%r10-16], 0x6968; stdw [%r10-8], 0; mov %r1, %r10; add %r1, -16; mov %r2, 16; "
       "call 6; exit", 2)  # fmt: skip
accept(K, "comm_bounded_size", "ldxb %r3, [%r1]; jeq %r3, 0, +5; jgt %r3, 16, +4; mov %r1, %r10; add %r1, -16; "
       "mov %r2, %r3; call 16; mov %r0, 0; exit", 0, mem=b"\x08")  # fmt: skip
accept(K, "printk_bounded_size", "stdw [%r10-16], 0x6968; stdw [%r10-8], 0; ldxb %r2, [%r1]; and %r2, 15; add %r2, 1; "
       "mov %r1, %r10; add %r1, -16; call 6; exit", 2, mem=b"\x0f")  # fmt: skip
reject(K, "printk_bounded_size_uninit", "stdw [%r10-16], 0x6968; ldxb %r2, [%r1]; and %r2, 15; add %r2, 1; "
       "mov %r1, %r10; add %r1, -16; call 6; exit", NOT_INIT, mem=b"\x01")  # fmt: skip
reject(K, "comm_bounded_past_frame", "ldxb %r3, [%r1]; jeq %r3, 0, +5; jgt %r3, 16, +4; mov %r1, %r10; add %r1, -8; "
       "mov %r2, %r3; call 16; mov %r0, 0; exit", "cannot prove", mem=b"\x04")  # fmt: skip
accept(K, "comm_bounded_in_larger_buffer", "mov %r6, 1; ldxb %r3, [%r1]; jeq %r3, 0, +5; jgt %r3, 8, +4; "
       "mov %r1, %r10; add %r1, -16; mov %r2, %r3; call 16; mov %r0, %r6; exit", 1, mem=b"\x08")  # fmt: skip
accept(K, "probe_read_kernel", "mov %r3, %r1; mov %r1, %r10; add %r1, -8; mov %r2, 8; call 113; ldxdw %r0, [%r10-8]; "
       "exit", 0x0807060504030201, mem=bytes(range(1, 9)))  # fmt: skip
accept(K, "probe_read_user", "mov %r3, %r1; mov %r1, %r10; add %r1, -16; mov %r2, 4; call 112; ldxw %r0, [%r10-16]; "
       "exit", 0x04030201, mem=bytes(range(1, 9)))  # fmt: skip
accept(K, "comm_in_the_middle", "stdw [%r10-8], 5; mov %r1, %r10; add %r1, -24; mov %r2, 16; call 16; "
       "ldxdw %r0, [%r10-8]; exit", 5)  # fmt: skip

# --- division by zero is defined in BPF (RFC 9669: x / 0 = 0, x % 0 = x) ---------------

K = "division_by_zero"
accept(K, "div64_reg", "mov %r0, 5; mov %r1, 0; div %r0, %r1; exit", 0)
accept(K, "mod64_reg", "mov %r0, 5; mov %r1, 0; mod %r0, %r1; exit", 5)
accept(K, "div32_reg", "lddw %r0, 0x100000005; mov %r1, 0; div32 %r0, %r1; exit", 0)
accept(K, "mod32_reg", "lddw %r0, 0x100000005; mov32 %r1, 0; mod32 %r0, %r1; exit", 5)
accept(K, "div_by_buffer_zero", "ldxb %r1, [%r1]; mov %r0, 9; div %r0, %r1; exit", 0, mem=b"\x00")
accept(K, "mod_by_buffer_three", "ldxb %r1, [%r1]; mov %r0, 10; mod %r0, %r1; exit", 1, mem=b"\x03")
accept(K, "sdiv64_reg", "mov %r0, -7; mov %r1, 0; sdiv %r0, %r1; exit", 0)
accept(K, "smod64_reg", "mov %r0, -7; mov %r1, 0; smod %r0, %r1; exit", -7)
accept(K, "smod32_reg", "mov32 %r0, -7; mov32 %r1, 0; smod32 %r0, %r1; exit", 0xFFFFFFF9)
accept(K, "mod_by_upper_half_zero", "lddw %r1, 0x100000000; mov %r0, 9; mod32 %r0, %r1; exit", 9)

# --- jumps into the second slot of LD_IMM64 (Linux: "jump into the middle of ldimm64 insn") -----

K = "ld_imm64_jump"
IMM64 = "imm64"
reject(K, "ja", "ja +1; lddw %r0, 0x100000000; exit", IMM64)
reject(K, "jeq", "mov %r0, 0; jeq %r0, 0, +1; lddw %r0, 1; exit", IMM64)
reject(K, "jeq32", "mov %r0, 0; jeq32 %r0, 0, +1; lddw %r0, 1; exit", IMM64)
reject(K, "backwards", "mov %r0, 0; lddw %r1, 5; jeq %r0, 1, -2; exit", IMM64)
reject(K, "local_call", "mov %r0, 0; call local +1; lddw %r1, 1; exit", IMM64)
reject(K, "ja32", "ja32 +1; lddw %r0, 0x100000000; exit", IMM64)
accept(K, "jump_over", "mov %r0, 0; jeq %r0, 0, +2; lddw %r0, 1; exit", 0)
accept(K, "jump_to_first_slot", "mov %r1, 1; jeq %r1, 1, +1; mov %r1, 2; lddw %r0, 0x100000002; add %r0, %r1; exit",
       0x100000003)  # fmt: skip
accept(K, "all_ones", "lddw %r0, 0xffffffffffffffff; exit", 2**64 - 1)
accept(K, "loop_around", "mov %r0, 0; mov %r3, 0; l: lddw %r4, 0x100000000; add %r0, %r4; add %r3, 1; jlt %r3, 3, l; "
       "exit", 0x300000000)  # fmt: skip

# --- unreachable code (Linux: "unreachable insn") -------------------------------------

K = "unreachable"
reject(K, "after_ja", "mov %r0, 0; ja +1; mov %r0, 1; exit", "unreachable")
reject(K, "after_exit", "mov %r0, 0; exit; mov %r0, 1; exit", "unreachable")
reject(K, "uncalled_function", "mov %r0, 0; exit; f: mov %r0, 1; exit", "unreachable")
reject(K, "between_jumps", "mov %r0, 0; jeq %r0, 0, +2; ja +2; mov %r0, 1; exit; exit", "unreachable")
reject(K, "skipped_lddw", "mov %r0, 0; ja +2; lddw %r0, 1; exit", "unreachable")
reject(K, "dead_loop", "mov %r0, 0; exit; l: ja l", "unreachable")
accept(K, "value_dead_code_is_fine", "mov %r0, 0; jeq %r0, 1, +1; exit; mov %r0, 5; exit", 0)
accept(K, "ja_zero", "ja +0; mov %r0, 1; exit", 1)
accept(K, "two_exits", "ldxb %r0, [%r1]; jeq %r0, 1, +1; exit; mov %r0, 2; exit", 2, mem=b"\x01")
accept(K, "called_function", "call local f; exit; f: mov %r0, 4; exit", 4)
accept(K, "shared_exit", "mov %r0, 1; ldxb %r3, [%r1]; jeq %r3, 0, +1; mov %r0, 2; exit", 2, mem=b"\x07")

# --- infinite loops (Linux: "infinite loop detected") ----------------------------------

K = "infinite_loop"
LOOP = "loop"
reject(K, "self_jump", "mov %r0, 0; l: ja l", LOOP)
reject(K, "counting_forever", "mov %r0, 0; l: add %r0, 1; ja l", LOOP)
reject(K, "constant_condition", "mov %r0, 0; l: jeq %r0, 0, l; exit", LOOP)
reject(K, "counter_unchanged", "mov %r0, 0; mov %r3, 0; l: add %r0, 0; jlt %r3, 10, l; exit", LOOP)
reject(K, "two_blocks", "mov %r0, 0; a: ja b; b: ja a", LOOP)
reject(K, "in_subprogram", "call local f; exit; f: mov %r0, 0; l: ja l", LOOP)
reject(K, "nested_inner_forever", "mov %r0, 0; mov %r3, 0; o: add %r3, 1; i: ja i; jlt %r3, 3, o; exit", LOOP)
accept(K, "counter_changes_each_time", "mov %r0, 0; mov %r3, 0; l: add %r3, 1; mov %r4, 0; jlt %r3, 2, l; "
       "mov %r0, %r3; exit", 2)  # fmt: skip
reject(K, "data_dependent", "ldxb %r3, [%r1]; mov %r0, 0; l: jeq %r3, 0, l; exit", LOOP, mem=b"\x01")
accept(
    K,
    "shrinking_range_terminates",
    "ldxb %r3, [%r1]; and %r3, 7; mov %r0, 0; l: jeq %r3, 0, +3; sub %r3, 1; add %r0, 1; ja l; exit",
    5,
    mem=b"\x05",
)  # fmt: skip  (comes back within its entry state, never the same)
reject(K, "loops_disallowed", "mov %r0, 0; mov %r3, 0; l: add %r3, 1; jlt %r3, 4, l; exit", LOOP, allow_loops=False)
accept(K, "terminates", "mov %r0, 0; mov %r3, 0; l: add %r3, 1; add %r0, 3; jlt %r3, 4, l; exit", 12)
accept(K, "data_dependent_terminates", "ldxb %r3, [%r1]; mov %r0, 0; l: jeq %r3, 0, +3; sub %r3, 1; add %r0, 1; ja l; "
       "exit", 5, mem=b"\x05")  # fmt: skip
accept(K, "countdown_from_buffer", "ldxb %r3, [%r1]; mov %r0, 0; l: add %r0, 2; sub %r3, 1; jsgt %r3, 0, l; exit",
       6, mem=b"\x03")  # fmt: skip
# loops_disallowed is verified with allow_loops=False (see tests/test_verifier_corpus.py)
NO_LOOPS = frozenset({"infinite_loop.loops_disallowed"})

# --- call depth (Linux: "the call stack of 9 frames is too deep") ----------------------

K = "call_depth"


def _chain(frames: int, conditional: bool = False) -> str:
    """main calls f1, f1 calls f2, ...: ``frames`` frames in all; returns frames - 1."""
    lines = ["call local f1", "exit"]
    for i in range(1, frames):
        lines.append(f"f{i}:")
        if i < frames - 1:
            if conditional and i == frames - 2:
                lines += ["mov %r0, 1", "ldxb %r3, [%r1]", "jeq %r3, 0, +2"]
            lines += [f"call local f{i + 1}", "add %r0, 1", "exit"]
        else:
            lines += ["mov %r0, 1", "exit"]
    return "; ".join(lines)


for _frames in range(2, 9):
    accept(K, f"frames_{_frames}", _chain(_frames), _frames - 1)
for _frames in (9, 10, 12):
    reject(K, f"frames_{_frames}", _chain(_frames), "frames")
reject(K, "frames_9_on_a_dead_path", _chain(9, conditional=True), "frames", mem=b"\x00")
reject(K, "recursion", "call local f; exit; f: call local f; exit", "recursi")
reject(K, "mutual_recursion", "call local f; exit; f: call local g; exit; g: call local f; exit", "recursi")
accept(K, "two_calls_same_depth", "call local f; mov %r6, %r0; call local f; add %r0, %r6; exit; f: mov %r0, 5; exit",
       10)  # fmt: skip

# --- bounded loops: explored until they exit --------------------------------------------

K = "bounded_loop"
for _n in (1, 5, 10, 32, 100):
    accept(K, f"sum_1_to_{_n}", f"mov %r0, 0; mov %r3, 1; l: add %r0, %r3; add %r3, 1; jle %r3, {_n}, l; exit",
           _n * (_n + 1) // 2)  # fmt: skip
for _n in (3, 17, 64):
    accept(K, f"countdown_{_n}", f"mov %r0, 0; mov %r3, {_n}; l: add %r0, 2; sub %r3, 1; jne %r3, 0, l; exit", 2 * _n)
accept(K, "sum_buffer", "mov %r0, 0; mov %r3, 0; l: mov %r4, %r1; add %r4, %r3; ldxb %r5, [%r4]; add %r0, %r5; "
       "add %r3, 1; jlt %r3, 16, l; exit", sum(range(1, 17)), mem=bytes(range(1, 17)))  # fmt: skip
accept(K, "sum_buffer_to_end_pointer", "mov %r6, %r1; add %r6, %r2; mov %r0, 0; mov %r3, 0; l: mov %r4, %r1; "
       "add %r4, %r3; mov %r5, %r4; add %r5, 1; jgt %r5, %r6, done; ldxb %r5, [%r4]; add %r0, %r5; add %r3, 1; "
       "jlt %r3, 64, l; done: exit", 10 * 11 // 2, mem=bytes(range(1, 11)), sized=False)  # fmt: skip
accept(K, "nested_4x4", "mov %r0, 0; mov %r3, 0; o: mov %r4, 0; i: add %r0, 1; add %r4, 1; jlt %r4, 4, i; add %r3, 1; "
       "jlt %r3, 4, o; exit", 16)  # fmt: skip
accept(K, "strlen", "mov %r0, 0; l: mov %r4, %r1; add %r4, %r0; ldxb %r5, [%r4]; jeq %r5, 0, done; add %r0, 1; "
       "jlt %r0, 15, l; done: exit", 5, mem=b"hello\x00world\x00\x00\x00\x00\x00")  # fmt: skip
accept(K, "jlt32_counter", "mov %r0, 0; mov32 %r3, 0; l: add %r0, %r3; add32 %r3, 1; jlt32 %r3, 8, l; exit", 28)
accept(K, "stack_indexed_by_counter", "mov %r3, 0; l: mov %r4, %r10; add %r4, -8; sub %r4, %r3; stxb [%r4], %r3; "
       "add %r3, 1; jlt %r3, 8, l; ldxdw %r0, [%r10-15]; exit", 0x0001020304050607, )  # fmt: skip
accept(K, "signed_counter", "mov %r0, 0; mov %r3, -5; l: add %r0, 1; add %r3, 1; jslt %r3, 5, l; exit", 10)
accept(K, "step_3", "mov %r0, 0; mov %r3, 0; l: add %r0, 1; add %r3, 3; jlt %r3, 30, l; exit", 10)
reject(K, "reads_uninit_on_last_iteration", "stdw [%r10-8], 1; stdw [%r10-16], 2; stdw [%r10-24], 3; "
       "stdw [%r10-32], 4; mov %r0, 0; mov %r3, %r10; mov %r4, 0; l: add %r3, -8; ldxdw %r5, [%r3]; add %r0, %r5; "
       "add %r4, 1; jlt %r4, 5, l; exit", NOT_INIT)  # fmt: skip
reject(K, "writes_below_the_stack", "mov %r3, %r10; mov %r4, 0; l: add %r3, -8; stxdw [%r3], %r4; add %r4, 1; "
       "jlt %r4, 65, l; mov %r0, 0; exit", STACK)  # fmt: skip
reject(K, "reads_past_the_buffer", "mov %r0, 0; mov %r3, 0; l: mov %r4, %r1; add %r4, %r3; ldxb %r5, [%r4]; "
       "add %r0, %r5; add %r3, 1; jlt %r3, 9, l; exit", BUF, mem=bytes(8))  # fmt: skip
reject(K, "zero_iterations_leave_r5_unset", "ldxb %r3, [%r1]; l: jeq %r3, 0, done; mov %r5, 1; sub %r3, 1; ja l; "
       "done: mov %r0, %r5; exit", NOT_INIT, mem=b"\x03")  # fmt: skip

# --- loops that only widening (or a long simulation) can handle -------------------------

K = "widening_loop"
for _n in (1000, 4096, 10000, 30000):
    accept(K, f"sum_below_{_n}", f"mov %r0, 0; mov %r3, 0; l: add %r0, %r3; add %r3, 1; jlt %r3, {_n}, l; exit",
           _n * (_n - 1) // 2)  # fmt: skip
accept(K, "constant_slot_in_long_loop", "stdw [%r10-8], 0; mov %r3, 0; l: ldxdw %r4, [%r10-8]; add %r4, 2; "
       "stxdw [%r10-8], %r4; add %r3, 1; jlt %r3, 5000, l; ldxdw %r0, [%r10-8]; exit", 10000)  # fmt: skip
accept(K, "masked_index_in_long_loop", "lddw %r6, 0x0807060504030201; stxdw [%r10-8], %r6; mov %r0, 0; mov %r3, 0; "
       "l: mov %r4, %r3; and %r4, 7; mov %r5, %r10; add %r5, -8; add %r5, %r4; ldxb %r4, [%r5]; add %r0, %r4; "
       "add %r3, 1; jlt %r3, 2000, l; exit", 250 * 36, )  # fmt: skip
accept(K, "unknown_trip_count", "ldxh %r3, [%r1]; and %r3, 0x3ff; mov %r0, 0; l: jeq %r3, 0, done; add %r0, 3; "
       "sub %r3, 1; ja l; done: exit", 3 * 0x234, mem=b"\x34\x02")  # fmt: skip
accept(K, "unknown_trip_count_with_stack", "ldxh %r3, [%r1]; and %r3, 0x3ff; stdw [%r10-8], 0; l: jeq %r3, 0, done; "
       "ldxdw %r4, [%r10-8]; add %r4, 1; stxdw [%r10-8], %r4; sub %r3, 1; ja l; done: ldxdw %r0, [%r10-8]; exit",
       0x3FF, mem=b"\xff\xff")  # fmt: skip
accept(K, "index_bounded_by_loop_condition", "mov %r3, %r10; mov %r4, 0; f: add %r3, -8; stxdw [%r3], %r4; "
       "add %r4, 1; jlt %r4, 32, f; mov %r0, 0; mov %r3, 0; l: mov %r5, %r10; add %r5, -256; add %r5, %r3; "
       "ldxb %r4, [%r5]; add %r0, %r4; add %r3, 1; jlt %r3, 256, l; exit", sum(range(32)))  # fmt: skip
accept(K, "buffer_index_bounded_by_loop", "mov %r0, 0; mov %r3, 0; l: mov %r5, %r1; add %r5, %r3; ldxb %r4, [%r5]; "
       "add %r0, %r4; add %r3, 1; jlt %r3, 200, l; exit", 200, mem=b"\x01" * 200)  # fmt: skip
accept(K, "two_counters", "mov %r0, 0; mov %r3, 0; mov %r4, 3000; l: add %r3, 1; sub %r4, 1; add %r0, 1; "
       "jgt %r4, %r3, l; exit", 1500)  # fmt: skip
reject(K, "index_past_the_stack", "mov %r3, %r10; mov %r4, 0; f: add %r3, -8; stxdw [%r3], %r4; add %r4, 1; "
       "jlt %r4, 32, f; mov %r0, 0; mov %r3, 0; l: mov %r5, %r10; add %r5, -256; add %r5, %r3; ldxb %r4, [%r5]; "
       "add %r0, %r4; add %r3, 1; jlt %r3, 300, l; exit", STACK)  # fmt: skip
reject(K, "index_past_the_buffer", "mov %r0, 0; mov %r3, 0; l: mov %r5, %r1; add %r5, %r3; ldxb %r4, [%r5]; "
       "add %r0, %r4; add %r3, 1; jlt %r3, 201, l; exit", BUF, mem=b"\x01" * 200)  # fmt: skip

# --- stack-filling loops (a verifier that once refused them) -----------------------------------------------

K = "stack_filling_loop"
_FILL_SUM = ("mov %r3, %r10; mov %r4, 0; fill: add %r3, -8; stxdw [%r3], {value}; add %r4, 1; jlt %r4, {n}, fill; "
             "mov %r0, 0; mov %r3, %r10; mov %r4, 0; sum: add %r3, -8; ldxdw %r5, [%r3]; add %r0, %r5; add %r4, 1; "
             "jlt %r4, {m}, sum; exit")  # fmt: skip
accept(K, "fill_64_sum_64", _FILL_SUM.format(value="%r4", n=64, m=64), sum(range(64)))
accept(K, "fill_64_ones", _FILL_SUM.format(value="%r6", n=64, m=64).replace("mov %r3, %r10;", "mov %r6, 1; "
       "mov %r3, %r10;", 1), 64)  # fmt: skip
accept(K, "fill_32_sum_32", _FILL_SUM.format(value="%r4", n=32, m=32), sum(range(32)))
accept(K, "fill_64_sum_16", _FILL_SUM.format(value="%r4", n=64, m=16), sum(range(16)))
accept(K, "bytes_512", "mov %r3, %r10; mov %r4, 0; fill: add %r3, -1; stxb [%r3], %r4; add %r4, 1; jlt %r4, 512, fill; "
       "mov %r0, 0; mov %r3, %r10; mov %r4, 0; sum: add %r3, -1; ldxb %r5, [%r3]; add %r0, %r5; add %r4, 1; "
       "jlt %r4, 512, sum; exit", 2 * sum(range(256)))  # fmt: skip
accept(K, "indexed_from_top", "mov %r4, 0; fill: mov %r5, %r4; add %r5, 1; lsh %r5, 3; mov %r3, %r10; sub %r3, %r5; "
       "stxdw [%r3], %r4; add %r4, 1; jlt %r4, 64, fill; ldxdw %r0, [%r10-512]; ldxdw %r1, [%r10-8]; add %r0, %r1; "
       "exit", 63)  # fmt: skip
accept(K, "fill_then_read_fixed", _FILL_SUM.format(value="%r4", n=64, m=1).replace("exit", "ldxdw %r1, [%r10-256]; "
       "add %r0, %r1; exit"), 0 + 31)  # fmt: skip
reject(K, "sum_65", _FILL_SUM.format(value="%r4", n=64, m=65), STACK)
reject(K, "fill_63_sum_64", _FILL_SUM.format(value="%r4", n=63, m=64), NOT_INIT)
reject(K, "fill_upwards", "mov %r3, %r10; mov %r4, 0; fill: stxdw [%r3], %r4; add %r3, 8; add %r4, 1; "
       "jlt %r4, 4, fill; mov %r0, 0; exit", OOB)  # fmt: skip
reject(K, "fill_65", _FILL_SUM.format(value="%r4", n=65, m=1), STACK)

# --- spill and fill --------------------------------------------------------------------

K = "spill_fill"
accept(K, "second_fill_of_a_pointer", "stxdw [%r10-8], %r1; ldxdw %r9, [%r10-8]; ldxdw %r6, [%r10-8]; "
       "stb [%r6+0], 255; mov %r0, 0; exit", 0, mem=b"\x00")  # fmt: skip
accept(K, "fill_buffer_pointer", "stxdw [%r10-8], %r1; ldxdw %r3, [%r10-8]; ldxb %r0, [%r3]; exit", 5, mem=b"\x05")
accept(K, "fill_stack_pointer", "mov %r3, %r10; add %r3, -16; stdw [%r10-16], 77; stxdw [%r10-8], %r3; "
       "ldxdw %r4, [%r10-8]; ldxdw %r0, [%r4]; exit", 77)  # fmt: skip
accept(K, "fill_scalar", "mov %r3, 123; stxdw [%r10-8], %r3; ldxdw %r0, [%r10-8]; exit", 123)
accept(K, "three_fills", "stxdw [%r10-8], %r1; mov %r1, 0; ldxdw %r3, [%r10-8]; ldxdw %r4, [%r10-8]; "
       "ldxdw %r5, [%r10-8]; ldxb %r0, [%r3]; ldxb %r6, [%r4+1]; add %r0, %r6; ldxb %r6, [%r5+2]; add %r0, %r6; exit",
       6, mem=b"\x01\x02\x03")  # fmt: skip
accept(K, "bounded_scalar_spill", "ldxb %r3, [%r1]; and %r3, 7; stxdw [%r10-16], %r3; lddw %r6, 0x0807060504030201; "
       "stxdw [%r10-8], %r6; ldxdw %r4, [%r10-16]; mov %r5, %r10; add %r5, -8; add %r5, %r4; ldxb %r0, [%r5]; exit",
       4, mem=b"\x03")  # fmt: skip
accept(K, "spill_of_offset_pointer", "mov %r3, %r1; add %r3, 2; stxdw [%r10-8], %r3; ldxdw %r4, [%r10-8]; "
       "ldxb %r0, [%r4]; exit", 0x33, mem=b"\x11\x22\x33")  # fmt: skip
accept(K, "respill", "stxdw [%r10-8], %r1; ldxdw %r3, [%r10-8]; stxdw [%r10-16], %r3; ldxdw %r4, [%r10-16]; "
       "ldxb %r0, [%r4]; exit", 9, mem=b"\x09")  # fmt: skip
accept(K, "spill_overwritten_by_pointer", "stdw [%r10-8], 0; stxdw [%r10-8], %r1; ldxdw %r3, [%r10-8]; "
       "ldxb %r0, [%r3]; exit", 4, mem=b"\x04")  # fmt: skip
reject(K, "fill_4_bytes_of_pointer", "stxdw [%r10-8], %r1; ldxw %r3, [%r10-8]; ldxb %r0, [%r3]; exit", "scalar",
       mem=b"\x01")  # fmt: skip
reject(K, "byte_overwritten", "stxdw [%r10-8], %r1; stb [%r10-8], 0; ldxdw %r3, [%r10-8]; ldxb %r0, [%r3]; exit",
       "scalar", mem=b"\x01")  # fmt: skip
reject(K, "other_slot", "stxdw [%r10-8], %r1; ldxdw %r3, [%r10-16]; ldxb %r0, [%r3]; exit", NOT_INIT, mem=b"\x01",
       known_gap="the rejection names the dereference, not the uninitialised read it follows from")  # fmt: skip
reject(K, "scalar_spill_deref", "mov %r3, 4096; stxdw [%r10-8], %r3; ldxdw %r4, [%r10-8]; ldxb %r0, [%r4]; exit",
       "scalar")  # fmt: skip
reject(K, "spill_overwritten_by_scalar", "stxdw [%r10-8], %r1; stdw [%r10-8], 0; ldxdw %r3, [%r10-8]; "
       "ldxb %r0, [%r3]; exit", "null", mem=b"\x01")  # fmt: skip

# --- 8-byte fills of 4-byte spills ------------------------------------------------------

K = "partial_fill"
reject(K, "stw_then_ldxdw", "stw [%r10-8], 1; ldxdw %r0, [%r10-8]; exit", NOT_INIT)
reject(K, "stxw_then_ldxdw", "mov %r3, 5; stxw [%r10-8], %r3; ldxdw %r0, [%r10-8]; exit", NOT_INIT)
reject(K, "high_word_only", "stw [%r10-4], 1; ldxdw %r0, [%r10-8]; exit", NOT_INIT)
reject(K, "ldxw_over_a_gap", "sth [%r10-8], 1; stb [%r10-6], 0; ldxw %r0, [%r10-8]; exit", NOT_INIT)
reject(K, "pointer_half_spill", "stxw [%r10-8], %r1; stw [%r10-4], 0; ldxdw %r3, [%r10-8]; ldxb %r0, [%r3]; exit",
       "scalar", mem=b"\x01")  # fmt: skip
reject(K, "pointer_spill_4_at_high", "stxw [%r10-4], %r1; ldxdw %r3, [%r10-8]; mov %r0, 0; exit", NOT_INIT,
       mem=b"\x01")  # fmt: skip
accept(K, "two_halves", "stw [%r10-8], 1; stw [%r10-4], 2; ldxdw %r0, [%r10-8]; exit", 0x200000001)
accept(K, "same_width", "stw [%r10-8], 7; ldxw %r0, [%r10-8]; exit", 7)
accept(K, "narrow_over_wide", "stdw [%r10-8], -1; stw [%r10-8], 0; ldxdw %r0, [%r10-8]; exit", 0xFFFFFFFF00000000)
accept(K, "pieces", "sth [%r10-8], 0x102; sth [%r10-6], 0x304; stw [%r10-4], 0x5060708; ldxdw %r0, [%r10-8]; exit",
       0x0506070803040102)  # fmt: skip
accept(K, "narrow_fill_of_wide_scalar", "mov %r3, -1; stxdw [%r10-8], %r3; ldxw %r0, [%r10-8]; exit", 0xFFFFFFFF)
accept(K, "byte_fill_of_wide_scalar", "lddw %r3, 0x1122334455667788; stxdw [%r10-8], %r3; ldxb %r0, [%r10-2]; exit",
       0x22)  # fmt: skip

# --- pointer spills around helper calls ---------------------------------------------------

K = "spill_around_helper"
accept(K, "ktime", "stxdw [%r10-8], %r1; call 5; ldxdw %r1, [%r10-8]; ldxb %r0, [%r1]; exit", 9, mem=b"\x09")
accept(K, "stack_pointer_prandom", "stdw [%r10-16], 12; mov %r3, %r10; add %r3, -16; stxdw [%r10-8], %r3; call 7; "
       "ldxdw %r3, [%r10-8]; ldxdw %r0, [%r3]; exit", 12)  # fmt: skip
accept(K, "comm_elsewhere", "stxdw [%r10-8], %r1; mov %r1, %r10; add %r1, -32; mov %r2, 16; call 16; "
       "ldxdw %r1, [%r10-8]; ldxb %r0, [%r1]; exit", 0x41, mem=b"\x41")  # fmt: skip
accept(K, "callee_saved_register", "mov %r6, %r1; call 5; ldxb %r0, [%r6]; exit", 3, mem=b"\x03")
accept(K, "two_slots_two_calls", "stxdw [%r10-8], %r1; mov %r3, %r1; add %r3, 1; stxdw [%r10-16], %r3; call 5; "
       "call 8; ldxdw %r4, [%r10-8]; ldxdw %r5, [%r10-16]; ldxb %r0, [%r4]; ldxb %r5, [%r5]; add %r0, %r5; exit",
       0x30, mem=b"\x10\x20")  # fmt: skip
accept(K, "printk_elsewhere", "stxdw [%r10-8], %r1; stdw [%r10-16], 0x6968; mov %r1, %r10; add %r1, -16; mov %r2, 8; "
       "call 6; ldxdw %r1, [%r10-8]; ldxb %r1, [%r1]; add %r0, %r1; exit", 2 + 7, mem=b"\x07")  # fmt: skip
accept(K, "probe_read_elsewhere", "stxdw [%r10-8], %r1; mov %r3, %r1; mov %r1, %r10; add %r1, -16; mov %r2, 8; "
       "call 113; ldxdw %r1, [%r10-8]; ldxb %r0, [%r1+1]; ldxb %r1, [%r10-16]; add %r0, %r1; exit", 3,
       mem=b"\x01\x02" + bytes(6))  # fmt: skip
accept(K, "spill_fill_twice_after_call", "stxdw [%r10-8], %r1; call 14; ldxdw %r6, [%r10-8]; ldxdw %r7, [%r10-8]; "
       "stb [%r6], 1; ldxb %r0, [%r7]; exit", 1, mem=b"\x00")  # fmt: skip
reject(K, "comm_over_the_spill", "stxdw [%r10-8], %r1; mov %r1, %r10; add %r1, -16; mov %r2, 16; call 16; "
       "ldxdw %r1, [%r10-8]; ldxb %r0, [%r1]; exit", "scalar", mem=b"\x01")  # fmt: skip
reject(K, "probe_read_over_the_spill", "stxdw [%r10-8], %r1; mov %r3, %r1; mov %r1, %r10; add %r1, -8; mov %r2, 8; "
       "call 113; ldxdw %r1, [%r10-8]; ldxb %r0, [%r1]; exit", "scalar", mem=bytes(8))  # fmt: skip
reject(K, "argument_register_after_call", "mov %r3, %r1; call 5; ldxb %r0, [%r3]; exit", "%r3", mem=b"\x01")
reject(K, "r1_after_call", "call 5; ldxb %r0, [%r1]; exit", "%r1", mem=b"\x01")
reject(K, "fill_of_scalar_after_call", "stdw [%r10-8], 64; call 5; ldxdw %r1, [%r10-8]; ldxb %r0, [%r1]; exit",
       "scalar")  # fmt: skip

# --- pointer spills around local calls ------------------------------------------------------

K = "spill_around_local_call"
accept(K, "caller_slot_survives", "stxdw [%r10-8], %r1; call local f; ldxdw %r1, [%r10-8]; ldxb %r1, [%r1]; "
       "add %r0, %r1; exit; f: stdw [%r10-8], 0; mov %r0, 1; exit", 0x21, mem=b"\x20")  # fmt: skip
accept(K, "callee_saved_register", "mov %r6, %r1; call local f; ldxb %r0, [%r6]; exit; f: mov %r6, 0; mov %r0, 0; "
       "exit", 0x0C, mem=b"\x0c")  # fmt: skip
accept(K, "callee_spills_around_helper", "call local f; exit; f: stxdw [%r10-8], %r1; call 5; ldxdw %r1, [%r10-8]; "
       "ldxb %r0, [%r1]; exit", 0x66, mem=b"\x66")  # fmt: skip
accept(K, "callee_fills_caller_spill", "stxdw [%r10-8], %r1; mov %r1, %r10; add %r1, -8; call local f; exit; "
       "f: ldxdw %r2, [%r1]; ldxb %r0, [%r2]; exit", 0x5A, mem=b"\x5a")  # fmt: skip
accept(K, "spill_before_and_after", "stxdw [%r10-8], %r1; call local f; ldxdw %r3, [%r10-8]; stxdw [%r10-16], %r3; "
       "call local f; ldxdw %r4, [%r10-16]; ldxb %r0, [%r4]; exit; f: mov %r0, 0; exit", 0x13, mem=b"\x13")  # fmt: skip
accept(K, "pointer_returned_in_r0", "call local f; ldxb %r0, [%r0]; exit; f: mov %r0, %r1; exit", 0x44, mem=b"\x44")
reject(K, "callee_overwrites_caller_spill", "stxdw [%r10-8], %r1; mov %r1, %r10; add %r1, -8; call local f; "
       "ldxdw %r1, [%r10-8]; ldxb %r0, [%r1]; exit; f: stdw [%r1], 4096; mov %r0, 0; exit", "scalar",
       mem=b"\x01")  # fmt: skip
reject(K, "argument_register_after_call", "mov %r3, %r1; call local f; ldxb %r0, [%r3]; exit; f: mov %r0, 0; exit",
       "%r3", mem=b"\x01")  # fmt: skip
reject(K, "callee_does_not_see_r6", "mov %r6, %r1; call local f; exit; f: ldxb %r0, [%r6]; exit", NOT_INIT,
       mem=b"\x01")  # fmt: skip
reject(K, "callee_slot_is_fresh", "stxdw [%r10-8], %r1; call local f; exit; f: ldxdw %r1, [%r10-8]; ldxb %r0, [%r1]; "
       "exit", NOT_INIT, mem=b"\x01", known_gap="the rejection names the dereference, not the uninitialised read it follows from")  # fmt: skip
reject(K, "partial_overwrite_in_callee", "stxdw [%r10-8], %r1; mov %r1, %r10; add %r1, -8; call local f; "
       "ldxdw %r1, [%r10-8]; ldxb %r0, [%r1]; exit; f: stb [%r1+3], 0; mov %r0, 0; exit", "scalar",
       mem=b"\x01")  # fmt: skip

# --- stack pointers passed to callees ---------------------------------------------------------

K = "callee_stack_pointer"
accept(K, "callee_reads", "stdw [%r10-8], 3; mov %r1, %r10; add %r1, -8; call local f; exit; f: ldxdw %r0, [%r1]; exit",
       3)  # fmt: skip
accept(K, "callee_writes", "mov %r1, %r10; add %r1, -8; call local f; ldxdw %r0, [%r10-8]; exit; f: stdw [%r1], 11; "
       "mov %r0, 0; exit", 11)  # fmt: skip
accept(K, "two_pointers", "stdw [%r10-8], 3; stdw [%r10-16], 4; mov %r1, %r10; add %r1, -8; mov %r2, %r10; "
       "add %r2, -16; call local f; exit; f: ldxdw %r0, [%r1]; ldxdw %r2, [%r2]; add %r0, %r2; exit", 7)  # fmt: skip
accept(K, "passed_down_twice", "stdw [%r10-8], 21; mov %r1, %r10; add %r1, -8; call local f; exit; f: call local g; "
       "exit; g: ldxdw %r0, [%r1]; add %r0, %r0; exit", 42)  # fmt: skip
accept(K, "own_and_callers_stack", "stdw [%r10-8], 1; mov %r1, %r10; add %r1, -8; call local f; exit; "
       "f: stdw [%r10-8], 5; ldxdw %r0, [%r10-8]; ldxdw %r2, [%r1]; add %r0, %r2; exit", 6)  # fmt: skip
accept(K, "callee_passes_its_stack_down", "call local f; exit; f: stdw [%r10-8], 8; mov %r1, %r10; add %r1, -8; "
       "call local g; exit; g: ldxdw %r0, [%r1]; exit", 8)  # fmt: skip
accept(K, "callee_spills_callers_pointer", "stdw [%r10-8], 9; mov %r1, %r10; add %r1, -8; call local f; exit; "
       "f: stxdw [%r10-8], %r1; ldxdw %r3, [%r10-8]; ldxdw %r0, [%r3]; exit", 9)  # fmt: skip
accept(K, "grandchild_writes", "mov %r1, %r10; add %r1, -16; call local f; ldxdw %r0, [%r10-16]; exit; "
       "f: call local g; exit; g: stdw [%r1], 6; mov %r0, 0; exit", 6)  # fmt: skip
accept(K, "callee_fills_array", "mov %r1, %r10; add %r1, -32; call local f; ldxdw %r0, [%r10-32]; ldxdw %r1, [%r10-8]; "
       "add %r0, %r1; exit; f: mov %r3, 0; l: stxdw [%r1], %r3; add %r1, 8; add %r3, 1; jlt %r3, 4, l; mov %r0, 0; "
       "exit", 3)  # fmt: skip
reject(K, "callee_reads_uninit", "stdw [%r10-16], 3; mov %r1, %r10; add %r1, -8; call local f; exit; "
       "f: ldxdw %r0, [%r1]; exit", NOT_INIT)  # fmt: skip
reject(K, "returns_own_stack", "call local f; exit; f: mov %r0, %r10; exit", "stack")
reject(K, "callee_writes_past_the_top", "stdw [%r10-8], 0; mov %r1, %r10; add %r1, -8; call local f; mov %r0, 0; exit; "
       "f: stdw [%r1+8], 0; mov %r0, 0; exit", OOB)  # fmt: skip
reject(K, "callee_reads_below_callers_frame", "mov %r1, %r10; add %r1, -512; call local f; exit; "
       "f: ldxdw %r0, [%r1-8]; exit", OOB)  # fmt: skip
reject(K, "callee_partial_write", "mov %r1, %r10; add %r1, -8; call local f; ldxdw %r0, [%r10-8]; exit; "
       "f: stw [%r1], 1; mov %r0, 0; exit", NOT_INIT)  # fmt: skip
reject(K, "no_pointer_passed", "call local f; exit; f: ldxdw %r0, [%r3]; exit", NOT_INIT)

# --- variable-offset stack accesses ----------------------------------------------------------

K = "variable_offset_stack"
_INIT8 = "lddw %r6, 0x8877665544332211; stxdw [%r10-8], %r6"
accept(K, "read_byte", f"{_INIT8}; ldxb %r3, [%r1]; and %r3, 7; mov %r4, %r10; add %r4, -8; add %r4, %r3; "
       "ldxb %r0, [%r4]; exit", 0x66, mem=b"\x05")  # fmt: skip
accept(K, "read_half_even", f"{_INIT8}; ldxb %r3, [%r1]; and %r3, 6; mov %r4, %r10; add %r4, -8; add %r4, %r3; "
       "ldxh %r0, [%r4]; exit", 0x4433, mem=b"\x02")  # fmt: skip
accept(K, "write_byte", "ldxb %r3, [%r1]; and %r3, 7; mov %r4, %r10; add %r4, -8; add %r4, %r3; stdw [%r10-8], 0; "
       "stb [%r4], 1; ldxdw %r0, [%r10-8]; exit", 0x10000, mem=b"\x02")  # fmt: skip
accept(K, "subtracted_index", f"{_INIT8}; ldxb %r3, [%r1]; and %r3, 7; mov %r4, %r10; sub %r4, %r3; "
       "ldxb %r0, [%r4-1]; exit", 0x77, mem=b"\x01")  # fmt: skip
accept(K, "sixteen_bytes", f"{_INIT8}; stdw [%r10-16], 0; ldxb %r3, [%r1]; and %r3, 15; mov %r4, %r10; "
       "add %r4, -16; add %r4, %r3; ldxb %r0, [%r4]; exit", 0x11, mem=b"\x08")  # fmt: skip
accept(K, "bounded_by_compare", f"{_INIT8}; ldxb %r3, [%r1]; mov %r0, 0; jgt %r3, 7, +4; mov %r4, %r10; "
       "add %r4, -8; add %r4, %r3; ldxb %r0, [%r4]; exit", 0x88, mem=b"\x07")  # fmt: skip
accept(K, "scaled_index", "stdw [%r10-32], 1; stdw [%r10-24], 2; stdw [%r10-16], 3; stdw [%r10-8], 4; "
       "ldxb %r3, [%r1]; and %r3, 3; lsh %r3, 3; mov %r4, %r10; add %r4, -32; add %r4, %r3; ldxdw %r0, [%r4]; exit",
       3, mem=b"\x02")  # fmt: skip
reject(K, "range_partly_uninit", f"{_INIT8}; ldxb %r3, [%r1]; and %r3, 15; mov %r4, %r10; add %r4, -16; "
       "add %r4, %r3; ldxb %r0, [%r4]; exit", NOT_INIT, mem=b"\x09")  # fmt: skip
reject(K, "past_the_top", f"{_INIT8}; ldxb %r3, [%r1]; and %r3, 15; mov %r4, %r10; add %r4, -8; add %r4, %r3; "
       "ldxb %r0, [%r4]; exit", STACK, mem=b"\x01")  # fmt: skip
reject(K, "unbounded", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r4, %r10; add %r4, -8; add %r4, %r3; ldxb %r0, [%r4]; exit",
       STACK, mem=bytes(8))  # fmt: skip
reject(K, "write_past_the_top", "ldxb %r3, [%r1]; and %r3, 15; mov %r4, %r10; add %r4, -8; add %r4, %r3; "
       "stb [%r4], 0; mov %r0, 0; exit", STACK, mem=b"\x01")  # fmt: skip
reject(K, "below_the_bottom", "ldxb %r3, [%r1]; and %r3, 7; mov %r4, %r10; add %r4, -512; sub %r4, %r3; "
       "stb [%r4], 0; mov %r0, 0; exit", STACK, mem=b"\x00")  # fmt: skip
reject(K, "pointer_read_as_bytes", "stxdw [%r10-8], %r1; ldxb %r3, [%r1]; and %r3, 7; mov %r4, %r10; add %r4, -8; "
       "add %r4, %r3; ldxb %r5, [%r4]; ldxb %r0, [%r5]; exit", "scalar", mem=b"\x00")  # fmt: skip
reject(K, "byte_index_wider_read", f"{_INIT8}; ldxb %r3, [%r1]; and %r3, 7; mov %r4, %r10; add %r4, -8; "
       "add %r4, %r3; ldxw %r0, [%r4]; exit", STACK, mem=b"\x00")  # fmt: skip

# --- 32-bit bounds ------------------------------------------------------------------------------

K = "bounds_32bit"
_IDX = "mov %r4, %r10; add %r4, -8; add %r4, %r3; ldxb %r0, [%r4]; exit"
accept(K, "and32", f"{_INIT8}; ldxw %r3, [%r1]; and32 %r3, 7; {_IDX}", 0x66, mem=b"\x05\x00\x00\x01")
accept(K, "mov32_zero_extends", f"{_INIT8}; ldxdw %r3, [%r1]; mov32 %r3, %r3; rsh %r3, 29; {_IDX}", 0x88,
       mem=(0xFFFFFFFFE0000000).to_bytes(8, "little"))  # fmt: skip
accept(K, "lsh32_rsh32", f"{_INIT8}; ldxw %r3, [%r1]; lsh32 %r3, 29; rsh32 %r3, 29; {_IDX}", 0x44,
       mem=(0xFFFFFFFB).to_bytes(4, "little"))  # fmt: skip
accept(K, "add32_wraps_to_zero", f"{_INIT8}; mov32 %r3, -1; add32 %r3, 1; {_IDX}", 0x11)
accept(K, "rsh32_of_unknown", f"{_INIT8}; ldxdw %r3, [%r1]; rsh32 %r3, 29; {_IDX}", 0x22,
       mem=(0xFFFFFFFF20000000).to_bytes(8, "little"))  # fmt: skip
accept(K, "sub32_keeps_range", f"{_INIT8}; ldxb %r3, [%r1]; and %r3, 3; add32 %r3, 0x100; sub32 %r3, 0xfc; {_IDX}",
       0x77, mem=b"\x02")  # fmt: skip
accept(K, "arsh32_of_byte", f"{_INIT8}; ldxb %r3, [%r1]; arsh32 %r3, 5; {_IDX}", 0x88, mem=b"\xff")
accept(K, "le32_of_byte", f"{_INIT8}; ldxb %r3, [%r1]; and %r3, 7; le32 %r3; {_IDX}", 0x44, mem=b"\x03")
accept(K, "mod32_bound", f"{_INIT8}; ldxw %r3, [%r1]; mod32 %r3, 8; {_IDX}", 0x33,
       mem=(1002).to_bytes(4, "little"))  # fmt: skip
reject(K, "unbounded_u32", f"{_INIT8}; ldxw %r3, [%r1]; {_IDX}", STACK, mem=bytes(4))
reject(K, "and32_too_wide", f"{_INIT8}; ldxw %r3, [%r1]; and32 %r3, 15; {_IDX}", STACK, mem=bytes(4))
reject(K, "u32_max", f"{_INIT8}; mov32 %r3, -1; {_IDX}", OOB)
reject(K, "alu32_on_stack_pointer", "stdw [%r10-8], 0; mov32 %r3, %r10; ldxb %r0, [%r3-1]; exit", "pointer")
reject(K, "add32_on_buffer_pointer", "mov %r3, %r1; add32 %r3, 1; ldxb %r0, [%r3]; exit", "pointer", mem=bytes(4))
reject(K, "rsh32_too_little", f"{_INIT8}; ldxdw %r3, [%r1]; rsh32 %r3, 28; {_IDX}", STACK, mem=bytes(8))
reject(K, "upper_half_unknown", f"{_INIT8}; ldxdw %r3, [%r1]; and32 %r3, 7; lsh %r3, 32; rsh %r3, 32; add %r3, -1; "
       f"{_IDX}", STACK, mem=bytes(8))  # fmt: skip

# --- JMP32 min/max deduction (verifier/jmp32.c) -----------------------------------------------

K = "jmp32_deduction"
accept(K, "jgt32_bounds_u32", f"{_INIT8}; ldxw %r3, [%r1]; mov %r0, 0; jgt32 %r3, 7, +4; {_IDX}", 0x44,
       mem=b"\x03\x00\x00\x00")  # fmt: skip
accept(K, "jgt32_then_mov32", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jgt32 %r3, 7, +5; mov32 %r3, %r3; {_IDX}",
       0x55, mem=b"\x04\x00\x00\x00\xff\xff\xff\xff")  # fmt: skip
accept(K, "jlt32_lower", f"{_INIT8}; ldxw %r3, [%r1]; mov %r0, 0; jlt32 %r3, 8, +1; exit; {_IDX}", 0x88,
       mem=b"\x07\x00\x00\x00")  # fmt: skip
accept(K, "jge32_exit", f"{_INIT8}; ldxw %r3, [%r1]; mov %r0, 0; jge32 %r3, 8, +4; {_IDX}", 0x11, mem=bytes(4))
accept(K, "jle32_window", f"{_INIT8}; ldxw %r3, [%r1]; mov %r0, 0; jle32 %r3, 7, +1; exit; {_IDX}", 0x22,
       mem=b"\x01\x00\x00\x00")  # fmt: skip
accept(K, "signed_window", f"{_INIT8}; ldxw %r3, [%r1]; mov %r0, 0; jsgt32 %r3, 7, +5; jslt32 %r3, 0, +4; {_IDX}",
       0x77, mem=b"\x06\x00\x00\x00")  # fmt: skip
accept(K, "jeq32_constant", f"{_INIT8}; ldxw %r3, [%r1]; mov %r0, 0; jne32 %r3, 5, +4; {_IDX}", 0x66,
       mem=b"\x05\x00\x00\x00")  # fmt: skip
accept(K, "dead_jeq32_high_bits", f"lddw %r3, 0x100000005; mov %r0, 1; jeq32 %r3, 5, +1; {POISON}; exit", 1)
accept(K, "dead_jne32_low_zero", f"lddw %r3, 0xffffffff00000000; mov %r0, 2; jne32 %r3, 0, +1; exit; {POISON}; exit",
       2)  # fmt: skip
accept(K, "dead_jgt32_byte", f"ldxw %r7, [%r1]; and %r7, 0xff; mov %r0, 0; jgt32 %r7, 0xff, +1; exit; {POISON}; exit",
       0, mem=b"\xff\x01\x00\x00")  # fmt: skip
accept(K, "dead_jle32_byte", f"ldxw %r7, [%r1]; and %r7, 0xff; mov %r0, 3; jle32 %r7, 0xff, +1; {POISON}; exit", 3,
       mem=b"\x10\x00\x00\x00")  # fmt: skip
accept(K, "dead_jsgt32_nonnegative", f"ldxb %r7, [%r1]; mov %r0, 4; jsgt32 %r7, -1, +1; {POISON}; exit", 4,
       mem=b"\x80")  # fmt: skip
accept(K, "dead_jslt32_minus_one", f"mov32 %r7, -1; mov %r0, 5; jslt32 %r7, 0, +1; {POISON}; exit", 5)
accept(K, "deduced_window_dead", f"ldxw %r7, [%r1]; mov %r0, 0; jgt32 %r7, 10, +4; jlt32 %r7, 5, +3; "
       f"jgt32 %r7, 10, +1; exit; {POISON}; exit", 0, mem=b"\x07\x00\x00\x00")  # fmt: skip
accept(K, "register_compare", f"{_INIT8}; ldxw %r3, [%r1]; mov %r5, 7; mov %r0, 0; jgt32 %r3, %r5, +4; {_IDX}", 0x33,
       mem=b"\x02\x00\x00\x00")  # fmt: skip
reject(K, "upper_bits_unknown", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jgt32 %r3, 7, +4; {_IDX}", STACK,
       mem=bytes(8))  # fmt: skip
reject(K, "live_poison", f"ldxw %r7, [%r1]; mov %r0, 0; jgt32 %r7, 0xff, +1; exit; {POISON}; exit", NOT_INIT,
       mem=bytes(4))  # fmt: skip
reject(K, "window_too_wide", f"{_INIT8}; ldxw %r3, [%r1]; mov %r0, 0; jgt32 %r3, 8, +4; {_IDX}", STACK, mem=bytes(4))
reject(K, "signed_only_upper", f"{_INIT8}; ldxw %r3, [%r1]; mov %r0, 0; jsgt32 %r3, 7, +4; {_IDX}", STACK,
       mem=bytes(4))  # fmt: skip
# a register whose upper half is unknown: what JMP32 learns is kept for its low half
_WIDE = b"\x00\x00\x00\x00\xde\xad\xbe\xef"
accept(K, "wide_jeq32_then_mov32", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jne32 %r3, 3, +5; mov32 %r3, %r3; {_IDX}",
       0x44, mem=b"\x03" + _WIDE[1:])  # fmt: skip
accept(K, "wide_window_then_add32", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jgt32 %r3, 20, +6; jlt32 %r3, 16, +5; "
       f"add32 %r3, -16; {_IDX}", 0x33, mem=b"\x12" + _WIDE[1:])  # fmt: skip
accept(
    K,
    "wide_lsh32_rsh32",
    f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jgt32 %r3, 7, +6; lsh %r3, 32; rsh %r3, 32; {_IDX}",
    0x66,
    mem=b"\x05" + _WIDE[1:],
)  # fmt: skip  (clang's -mcpu=v1 zero extension)
reject(K, "wide_lsh31_keeps_an_upper_bit", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jgt32 %r3, 7, +6; lsh %r3, 31; "
       f"rsh %r3, 31; {_IDX}", STACK, mem=bytes(8))  # fmt: skip
reject(K, "wide_rsh32_is_the_upper_half", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jgt32 %r3, 7, +5; rsh %r3, 32; "
       f"{_IDX}", STACK, mem=bytes(8))  # fmt: skip
reject(K, "wide_signed_upper_only", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jsgt32 %r3, 7, +5; mov32 %r3, %r3; "
       f"{_IDX}", STACK, mem=bytes(8))  # fmt: skip
reject(K, "jeq32_high_bits_live", f"lddw %r3, 0x100000005; mov %r0, 1; jeq32 %r3, 6, +1; {POISON}; exit", NOT_INIT)

# --- jset (verifier/jset.c) ---------------------------------------------------------------------

K = "jset"
GAPJSET = "jset does not refine known bits (Linux proves this branch dead or the access in bounds)"
accept(K, "known_const_compare", f"mov %r0, 1; jset %r0, 1, +1; {POISON}; exit", 1)
reject(K, "known_const_compare_bad", f"mov %r0, 0; jset %r0, 1, +1; {POISON}; exit", NOT_INIT)
accept(K, "masked_bits_never_set", f"ldxb %r7, [%r1]; and %r7, 0xf0; mov %r0, 0; jset %r7, 0x0f, +1; exit; {POISON}; "
       "exit", 0, mem=b"\xff")  # fmt: skip
accept(K, "false_branch_bounds", f"{_INIT8}; ldxb %r3, [%r1]; mov %r0, 0; jset %r3, 0xf8, +4; {_IDX}", 0x77,
       mem=b"\x06")  # fmt: skip
accept(K, "jset32_then_mov32", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jset32 %r3, 0xfffffff8, +5; mov32 %r3, %r3; "
       f"{_IDX}", 0x22, mem=b"\x01\x00\x00\x00\xff\xff\xff\xff")  # fmt: skip
accept(K, "register_mask", f"mov %r0, 3; mov %r4, 4; jset %r0, %r4, +1; ja +1; {POISON}; exit", 3)
accept(K, "not_taken_skips_poison", f"mov %r0, 3; jset %r0, 4, +1; ja +1; {POISON}; exit", 3)
accept(K, "jset32_ignores_high_bits", f"lddw %r3, 0x100000000; mov %r0, 6; jset32 %r3, 1, +1; ja +1; {POISON}; exit", 6)
accept(K, "jset_high_bit_set", f"lddw %r3, 0x8000000000000000; mov %r0, 7; jset %r3, 0x80000000, +1; {POISON}; exit",
       7)  # fmt: skip
accept(K, "taken_branch_nonzero", f"{_INIT8}; ldxb %r3, [%r1]; and %r3, 7; mov %r0, 0; jset %r3, 7, +1; exit; {_IDX}",
       0x44, mem=b"\x03")  # fmt: skip
reject(K, "taken_branch_unbounded", f"{_INIT8}; ldxb %r3, [%r1]; mov %r0, 0; jset %r3, 0xf8, +1; exit; {_IDX}", STACK,
       mem=b"\x08")  # fmt: skip
reject(K, "jset32_high_bits_unknown", f"{_INIT8}; ldxdw %r3, [%r1]; mov %r0, 0; jset32 %r3, 0xfffffff8, +4; {_IDX}",
       STACK, mem=bytes(8))  # fmt: skip
reject(K, "bit_may_be_set", f"ldxb %r7, [%r1]; mov %r0, 0; jset %r7, 0x80, +1; exit; {POISON}; exit", NOT_INIT,
       mem=b"\x00")  # fmt: skip

# --- packet pointers: comparisons against R2 and against the end pointer R1 + R2 -------------

K = "packet_pointer"
_END = "mov %r3, %r1; add %r3, %r2"
accept(K, "r2_check", "mov %r0, 0; jlt %r2, 4, +1; ldxw %r0, [%r1]; exit", 0x04030201, mem=b"\x01\x02\x03\x04",
       sized=False)  # fmt: skip
accept(K, "r2_check_short_buffer", "mov %r0, 0; jlt %r2, 4, +1; ldxw %r0, [%r1]; exit", 0, mem=b"\x01\x02",
       sized=False)  # fmt: skip
accept(K, "r2_jle", "mov %r0, 0; jle %r2, 3, +1; ldxw %r0, [%r1]; exit", 0x04030201, mem=b"\x01\x02\x03\x04",
       sized=False)  # fmt: skip
accept(K, "r2_offset", "mov %r0, 0; jlt %r2, 10, +1; ldxb %r0, [%r1+9]; exit", 0x0A, mem=bytes(range(1, 11)),
       sized=False)  # fmt: skip
accept(K, "r2_jge_taken", "mov %r0, 0; jge %r2, 8, +1; exit; ldxdw %r0, [%r1]; exit", 0x0807060504030201,
       mem=bytes(range(1, 9)), sized=False)  # fmt: skip
accept(K, "end_pointer", f"{_END}; mov %r4, %r1; add %r4, 2; mov %r0, 0; jgt %r4, %r3, +1; ldxh %r0, [%r1]; exit",
       0x1234, mem=b"\x34\x12", sized=False)  # fmt: skip
accept(K, "end_pointer_jge", f"mov %r0, 0; {_END}; mov %r4, %r1; add %r4, 8; jge %r3, %r4, +1; exit; "
       "ldxdw %r0, [%r1]; exit", 0x0807060504030201, mem=bytes(range(1, 9)), sized=False)  # fmt: skip
accept(K, "end_pointer_short", f"{_END}; mov %r4, %r1; add %r4, 4; mov %r0, 9; jgt %r4, %r3, +1; ldxw %r0, [%r1]; "
       "exit", 9, mem=b"\x01\x02\x03", sized=False)  # fmt: skip
accept(K, "end_pointer_jlt", f"{_END}; mov %r4, %r1; add %r4, 3; mov %r0, 0; jlt %r3, %r4, +1; ldxb %r0, [%r1+2]; "
       "exit", 0x33, mem=b"\x11\x22\x33", sized=False)  # fmt: skip
accept(K, "variable_offset_checked", "ldxb %r3, [%r1]; mov %r4, %r1; add %r4, %r3; mov %r5, %r1; add %r5, %r2; "
       "mov %r6, %r4; add %r6, 1; mov %r0, 0; jgt %r6, %r5, +1; ldxb %r0, [%r4]; exit", 30,
       mem=bytes([3, 10, 20, 30]))  # fmt: skip
accept(K, "write_checked", "jlt %r2, 2, +1; sth [%r1], 0x55aa; ldxb %r0, [%r1]; exit", 0xAA, mem=b"\x00\x00")  # fmt: skip
accept(K, "known_size", "ldxw %r0, [%r1]; exit", 0x04030201, mem=b"\x01\x02\x03\x04")
accept(K, "known_size_last_byte", "ldxb %r0, [%r1+7]; exit", 8, mem=bytes(range(1, 9)))
reject(K, "no_check", "ldxw %r0, [%r1]; exit", BUF, mem=bytes(4), sized=False)
reject(K, "check_4_read_8", "mov %r0, 0; jlt %r2, 4, +1; ldxdw %r0, [%r1]; exit", BUF, mem=bytes(8), sized=False)
reject(K, "check_wrong_direction", "mov %r0, 0; jgt %r2, 4, +1; ldxw %r0, [%r1]; exit", BUF, mem=bytes(8),
       sized=False)  # fmt: skip
reject(K, "end_off_by_one", f"{_END}; mov %r4, %r1; add %r4, 3; mov %r0, 0; jgt %r4, %r3, +1; ldxw %r0, [%r1]; exit",
       BUF, mem=bytes(4), sized=False)  # fmt: skip
reject(K, "negative_offset", "mov %r0, 0; jlt %r2, 4, +1; ldxb %r0, [%r1-1]; exit", BUF, mem=bytes(4), sized=False)
reject(K, "known_size_past_end", "ldxb %r0, [%r1+4]; exit", OOB, mem=bytes(4))
reject(K, "write_crosses_check", "mov %r0, 0; jlt %r2, 4, +1; stw [%r1+2], 0; exit", BUF, mem=bytes(4), sized=False)
reject(K, "variable_offset_unchecked", "ldxb %r3, [%r1]; mov %r4, %r1; add %r4, %r3; ldxb %r0, [%r4]; exit", BUF,
       mem=bytes([3, 10, 20, 30]))  # fmt: skip
reject(K, "check_on_other_path", "mov %r0, 0; ldxb %r5, [%r1]; jeq %r5, 0, +1; jlt %r2, 8, +1; ldxdw %r0, [%r1]; exit",
       BUF, mem=bytes(8), sized=False)  # fmt: skip

# --- map value null checks (verifier/value_or_null.c, "invalid mem access 'map_value_or_null'") ----------

K = "map_value_null_check"
_M = (("m", HASH, 4, 8, 4),)
_KEY = "stw [%r10-4], 1; lddw.mapfd %r1, 0; mov %r2, %r10; add %r2, -4"
_UPDATE = "stw [%r10-4], 1; stdw [%r10-16], 99; lddw.mapfd %r1, 0; mov %r2, %r10; add %r2, -4; mov %r3, %r10; " \
          "add %r3, -16; mov %r4, 0; call 2"  # fmt: skip
accept(K, "update_lookup_check", f"{_UPDATE}; {_KEY}; call 1; jeq %r0, 0, +2; ldxdw %r0, [%r0]; exit; mov %r0, 7; exit",
       99, maps=_M)  # fmt: skip
accept(K, "missing_key_is_null", f"{_KEY}; call 1; jeq %r0, 0, +2; ldxdw %r0, [%r0]; exit; mov %r0, 7; exit", 7,
       maps=_M)  # fmt: skip
accept(K, "check_on_a_copy", f"{_UPDATE}; {_KEY}; call 1; mov %r6, %r0; jne %r0, 0, +2; mov %r0, 7; exit; "
       "ldxdw %r0, [%r6]; exit", 99, maps=_M)  # fmt: skip
accept(K, "write_then_read", f"{_UPDATE}; {_KEY}; call 1; jeq %r0, 0, +10; stdw [%r0], 5; {_KEY}; call 1; "
       "jeq %r0, 0, +2; ldxdw %r0, [%r0]; exit; mov %r0, 7; exit", 5, maps=_M)  # fmt: skip
accept(K, "last_byte", f"{_UPDATE}; {_KEY}; call 1; jeq %r0, 0, +2; ldxb %r0, [%r0+7]; exit; mov %r0, 7; exit", 0,
       maps=_M)  # fmt: skip
accept(K, "arith_after_check", f"{_UPDATE}; {_KEY}; call 1; jeq %r0, 0, +3; add %r0, 4; ldxw %r0, [%r0]; exit; "
       "mov %r0, 7; exit", 0, maps=_M)  # fmt: skip
reject(K, "no_check", f"{_UPDATE}; {_KEY}; call 1; ldxdw %r0, [%r0]; exit", "null", maps=_M)
reject(K, "arith_before_check", f"{_UPDATE}; {_KEY}; call 1; add %r0, 4; jeq %r0, 4, +1; ldxw %r0, [%r0]; exit",
       "null", maps=_M)  # fmt: skip
reject(K, "deref_on_null_branch", f"{_KEY}; call 1; jne %r0, 0, +1; ldxdw %r0, [%r0]; exit", "null", maps=_M)
reject(K, "past_the_value", f"{_UPDATE}; {_KEY}; call 1; jeq %r0, 0, +2; ldxdw %r0, [%r0+8]; exit; mov %r0, 7; exit",
       OOB, maps=_M)  # fmt: skip
reject(K, "key_not_initialised", "lddw.mapfd %r1, 0; mov %r2, %r10; add %r2, -4; call 1; mov %r0, 0; exit", NOT_INIT,
       maps=_M)  # fmt: skip
reject(K, "copy_before_call", f"{_UPDATE}; {_KEY}; call 1; mov %r6, %r0; call 5; ldxdw %r0, [%r6]; exit", "null",
       maps=_M)  # fmt: skip
reject(K, "key_pointer_is_scalar", "lddw.mapfd %r1, 0; mov %r2, 4; call 1; mov %r0, 0; exit", "pointer", maps=_M)
reject(K, "spilled_unchecked", f"{_UPDATE}; {_KEY}; call 1; stxdw [%r10-24], %r0; ldxdw %r3, [%r10-24]; "
       "ldxdw %r0, [%r3]; exit", "null", maps=_M)  # fmt: skip

BY_NAME = {case.name: case for case in CASES}
