"""Native ARM64 execution: what only an ARM64 host can show.

On an ARM64 host ``jit.compile`` runs the ARM64 code in this process; these tests
hold that path to the host's rules: the code pages are mapped read-write,
flushed from the data to the instruction cache, then switched to read-execute
(never writable and executable at once); the generated entry follows AAPCS64
(callee-saved x19-x28, d8-d15, x29 and sp come back unchanged, also across
helper calls); helpers are called with a 16-byte aligned sp and may clobber
every caller-saved register; Python helpers run through the one ctypes
callback; faults and division corner cases behave as on the emulated engine.

``.ci/arm64-native`` runs them in an aarch64 Linux process (qemu-user under
binfmt_misc) on an x86-64 machine. On other hosts the tests that execute ARM64
code skip, saying why; the ones about mapping order and the missing-libgcc
error run everywhere.
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import subprocess
import sys
import textwrap

import pytest

import jit
from jit.core.abi import STACK_BYTES, BatchJob
from jit.core.host import host_arch
from jit.runtime import batch as batch_runtime
from jit.runtime import codemem
from jit.runtime import native as native_runtime
from jit.runtime.native import NativeProgram

ON_ARM64 = host_arch() == "arm64"
arm64_only = pytest.mark.skipif(
    not ON_ARM64, reason=f"runs ARM64 machine code natively: needs an ARM64 host, this one is {platform.machine()}"
)

CALLEE_SAVED_X = tuple(range(19, 29))  # x19-x28
CALLEE_SAVED_D = tuple(range(8, 16))  # d8-d15 (the low halves of v8-v15)
SENTINEL = 0x5EED_0000_0000_0000


def assemble(text: str) -> bytes:
    from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks

    encoding, _ = Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN).asm(text, 0)
    return bytes(encoding)


def load_constant(reg: str, value: int) -> list[str]:
    return [f"movz {reg}, #0x{value & 0xFFFF:x}"] + [
        f"movk {reg}, #0x{(value >> shift) & 0xFFFF:x}, lsl #{shift}" for shift in (16, 32, 48)
    ]


class NativeFunction:
    """Hand-written ARM64 code mapped like the JIT's (codemem.map_code), unmapped on close."""

    def __init__(self, text: str):
        self.address, self.size = codemem.map_code(assemble(text))

    def close(self) -> None:
        codemem.unmap(self.address, self.size)


@pytest.fixture
def functions():
    made: list[NativeFunction] = []
    yield lambda text: made.append(NativeFunction(text)) or made[-1]
    for function in made:
        function.close()


# --- the host and its engines -------------------------------------------------------------


@arm64_only
def test_the_host_is_arm64_and_jit_compile_runs_natively() -> None:
    assert platform.machine() == "aarch64"
    names = [engine.name for engine in jit.engines()]
    assert names == ["interpreter", "x86_64-emulated", "arm64", "arm64-emulated"]
    fn = jit.compile("mov %r0, 5\nldxb %r1, [%r1]\nadd %r0, %r1\nexit")
    assert isinstance(fn, NativeProgram)
    assert (fn.arch, fn.emulated) == ("arm64", False)
    assert fn(b"\x25") == 0x2A


@arm64_only
def test_native_and_emulated_engines_run_the_same_machine_code() -> None:
    text = "mov %r0, 0\nldxdw %r2, [%r1]\nl:\nadd %r0, %r2\nrsh %r2, 1\njne %r2, 0, l\nexit"
    mem = (1000).to_bytes(8, "little")
    native, emulated = jit.compile(text), jit.compile(text, emulate=True)
    assert not native.emulated and emulated.emulated
    assert native.code == emulated.code
    assert native(mem) == emulated(mem) == jit.interpret(text, mem) == sum(1000 >> i for i in range(10))


# --- W^X and the instruction cache --------------------------------------------------------


class RecordingLibc:
    """The C library as map_code uses it, with each mmap/mprotect/munmap recorded."""

    def __init__(self, calls: list[tuple]):
        self._libc = codemem._libc()
        self._calls = calls

    def mmap(self, *args):
        address = self._libc.mmap(*args)
        self._calls.append(("mmap", address, args[1], args[2]))
        return address

    def mprotect(self, address, size, prot):
        self._calls.append(("mprotect", address, size, prot))
        return self._libc.mprotect(address, size, prot)

    def munmap(self, address, size):
        self._calls.append(("munmap", address, size))
        return self._libc.munmap(address, size)


def test_code_is_flushed_while_writable_then_made_read_execute(monkeypatch) -> None:
    """The order an ARM64 host needs: map RW, copy, __clear_cache over the pages, then R+X."""
    monkeypatch.setattr(codemem, "POOL", codemem.CodePool(limit=0))  # fresh pages, unmapped on release
    calls: list[tuple] = []
    recording = RecordingLibc(calls)
    monkeypatch.setattr(codemem, "_libc", lambda: recording)
    monkeypatch.setattr("jit.core.host.host_arch", lambda: "arm64")
    monkeypatch.setattr(codemem, "_clear_cache", lambda: lambda begin, end: calls.append(("flush", begin, end)))
    code = bytes(range(256)) * 20  # two pages
    address, size = codemem.map_code(code)
    try:
        assert ctypes.string_at(address, len(code)) == code
    finally:
        codemem.unmap(address, size)
    rw, rx = mmap.PROT_READ | mmap.PROT_WRITE, mmap.PROT_READ | mmap.PROT_EXEC
    assert size == 2 * mmap.PAGESIZE
    assert calls == [
        ("mmap", address, size, rw),
        ("flush", address, address + size),
        ("mprotect", address, size, rx),
        ("munmap", address, size),
    ]


def test_a_missing_libgcc_is_a_clear_compile_error_and_leaks_no_mapping(monkeypatch) -> None:
    """glibc has no __clear_cache: without libgcc_s the code must not run unflushed."""
    monkeypatch.setattr(codemem, "POOL", codemem.CodePool())
    calls: list[tuple] = []
    recording = RecordingLibc(calls)
    monkeypatch.setattr(codemem, "_libc", lambda: recording)
    monkeypatch.setattr("jit.core.host.host_arch", lambda: "arm64")
    monkeypatch.setattr(codemem, "LIBGCC", "libgcc_s_missing_for_this_test.so.1")
    codemem._clear_cache.cache_clear()
    try:
        with pytest.raises(jit.CompileError, match=r"instruction cache.*libgcc_s_missing_for_this_test\.so\.1"):
            codemem.map_code(b"\xc0\x03\x5f\xd6")
    finally:
        codemem._clear_cache.cache_clear()
    (mapped,) = [call for call in calls if call[0] == "mmap"]
    assert ("munmap", mapped[1], mapped[2]) in calls
    assert not any(call[0] == "mprotect" for call in calls)


def test_libgcc_provides_clear_cache() -> None:
    """Every glibc Linux host has libgcc_s.so.1 (ctypes callbacks need it too)."""
    codemem._clear_cache.cache_clear()
    clear = codemem._clear_cache()
    buffer = ctypes.create_string_buffer(64)
    clear(ctypes.addressof(buffer), ctypes.addressof(buffer) + 64)  # harmless on data


@arm64_only
def test_compiling_flushes_the_code_pages(monkeypatch) -> None:
    real = codemem._clear_cache()
    flushed: list[tuple[int, int]] = []

    def spy(begin: int, end: int) -> None:
        flushed.append((begin, end))
        real(begin, end)

    monkeypatch.setattr(codemem, "_clear_cache", lambda: spy)
    fn = jit.compile("mov %r0, 7\nexit")
    assert fn() == 7
    assert any(begin <= fn.address and fn.address + len(fn.code) <= end for begin, end in flushed)


class HintingLibc(RecordingLibc):
    """map_code's C library, asking mmap for the address in ``hint`` (if it is free)."""

    hint: int | None = None

    def mmap(self, _address, *args):
        return super().mmap(self.hint, *args)


@arm64_only
@pytest.mark.parametrize("pooled", [True, False], ids=["code pool", "mmap hint"])
def test_new_code_at_a_reused_address_runs_the_new_instructions(monkeypatch, pooled: bool) -> None:
    """Stale instructions would run if the cache were not flushed: each program's
    pages are the ones the previous one just freed (from the code pool, or asked
    of mmap by address without it), and every program must still return its own value."""
    libc = HintingLibc([])
    monkeypatch.setattr(codemem, "_libc", lambda: libc)
    monkeypatch.setattr(codemem, "POOL", codemem.CodePool(limit=codemem.POOL_PAGES * mmap.PAGESIZE if pooled else 0))
    reused = 0
    for i in range(50):
        fn = jit.compile(f"mov %r0, {i}\nexit", cache=False)  # a cached compile keeps its pages mapped
        reused += fn.address == libc.hint
        assert fn() == i
        assert fn() == i
        libc.hint = fn.address
        fn.close()
    assert reused >= 40, f"mmap gave the freed page back {reused} times of 49: the test proved little"


WX_CHILD = textwrap.dedent(
    """
    import json, jit

    def maps():
        with open("/proc/self/maps") as lines:
            return [line.split() for line in lines]

    before = [row[0] for row in maps() if "w" in row[1] and "x" in row[1]]
    fn = jit.compile("mov %r0, 1\\nl:\\nadd %r0, %r0\\nsub %r2, 1\\njne %r2, 0, l\\nexit")
    result = fn(bytearray(3))
    after = [row[0] for row in maps() if "w" in row[1] and "x" in row[1]]
    code = [row[1] for row in maps() if int(row[0].split("-")[0], 16) <= fn.address < int(row[0].split("-")[1], 16)]
    print(json.dumps([fn.arch, fn.emulated, result, before, after, code]))
    """
)


@arm64_only
def test_no_mapping_is_writable_and_executable_in_a_fresh_arm64_process() -> None:
    import json

    out = subprocess.run([sys.executable, "-c", WX_CHILD], capture_output=True, text=True, check=True).stdout
    arch, emulated, result, before, after, code = json.loads(out)
    assert (arch, emulated, result) == ("arm64", False, 8)
    assert before == after == []
    assert code == ["r-xp"]


# --- AAPCS64 at the entry point -------------------------------------------------------------


def checking_trampoline(entry: int, result: int) -> str:
    """``f(mem, len, ctx)`` that sets every callee-saved register to a sentinel,
    calls ``entry`` with the same arguments, and stores in ``*result`` a mask of
    what came back changed: bit i for x19+i, bit 10+i for d8+i, bit 18 sp, bit
    19 x29. Returns what ``entry`` returned."""
    saves = [f"stp x{r}, x{r + 1}, [sp, #{16 + 8 * (r - 19)}]" for r in range(19, 29, 2)]
    saves += [f"stp d{r}, d{r + 1}, [sp, #{96 + 8 * (r - 8)}]" for r in range(8, 16, 2)]
    lines = ["stp x29, x30, [sp, #-176]!", "mov x29, sp", *saves]
    for r in CALLEE_SAVED_X:
        lines += load_constant(f"x{r}", SENTINEL + r)
    for r in CALLEE_SAVED_D:
        lines += [*load_constant("x9", SENTINEL + 0x100 + r), f"fmov d{r}, x9"]
    lines += ["mov x9, sp", "str x9, [sp, #160]", *load_constant("x16", entry), "blr x16", "mov x12, #0"]
    checks = [(f"x{r}", SENTINEL + r, bit) for bit, r in enumerate(CALLEE_SAVED_X)]
    checks += [(f"d{r}", SENTINEL + 0x100 + r, 10 + bit) for bit, r in enumerate(CALLEE_SAVED_D)]
    for reg, value, bit in checks:
        if reg.startswith("d"):
            lines.append(f"fmov x10, {reg}")
            reg = "x10"
        lines += [*load_constant("x11", value), f"cmp {reg}, x11", "cset x13, ne", f"orr x12, x12, x13, lsl #{bit}"]
    lines += ["ldr x9, [sp, #160]", "mov x10, sp", "cmp x9, x10", "cset x13, ne", "orr x12, x12, x13, lsl #18"]
    lines += ["mov x10, sp", "cmp x29, x10", "cset x13, ne", "orr x12, x12, x13, lsl #19"]
    lines += [*load_constant("x9", result), "str x12, [x9]"]
    lines += [s.replace("stp", "ldp") for s in saves] + ["ldp x29, x30, [sp], #176", "ret"]
    return "\n".join(lines)


def call_through_trampoline(fn: NativeProgram, target: int, functions, mem=None) -> tuple[int, int]:
    """Run ``fn`` (its context set up as usual) with its entry replaced by the
    trampoline around ``target``; returns (R0, changed-register mask)."""
    mask = (ctypes.c_uint64 * 1)(0xFFFF_FFFF)
    trampoline = functions(checking_trampoline(target, ctypes.addressof(mask)))
    fn._entry = native_runtime._ENTRY(trampoline.address)
    r0 = fn.run_many(mem, 1)  # the general path, which calls fn._entry (fn(mem) may enter directly)
    return r0, mask[0]


@arm64_only
def test_trampoline_detects_a_clobbered_callee_saved_register(functions) -> None:
    """The checker itself: code that breaks AAPCS64 (x23, d12) is caught."""
    bad = functions("mov x23, #1\nfmov d12, x23\nmov x0, #9\nret")
    fn = jit.compile("mov %r0, 1\nexit")
    r0, mask = call_through_trampoline(fn, bad.address, functions)
    assert r0 == 9
    assert mask == (1 << (23 - 19)) | (1 << (10 + 12 - 8))


PRESSURE = """
    mov %r6, 6
    mov %r7, 7
    mov %r8, 8
    mov %r9, 9
    stxdw [%r10-8], %r6
    call 90
    call local +5
    add %r0, %r6
    add %r0, %r9
    ldxdw %r1, [%r10-8]
    add %r0, %r1
    exit
    mov %r6, 60
    mov %r9, 90
    call 90
    mov %r0, 100
    exit
"""


@arm64_only
def test_generated_code_preserves_every_callee_saved_register(functions) -> None:
    """Through the real entry (prologue, R6-R9 in x19-x22, R10 in x25, the context in
    x26, a local call, Python helper calls through the ctypes callback)."""
    calls = []
    fn = jit.compile(PRESSURE, helpers={90: lambda *args: calls.append(args) or 0})
    entry = fn.address + fn.native.entry
    r0, mask = call_through_trampoline(fn, entry, functions)
    assert mask == 0, f"AAPCS64 violated: changed-register mask {mask:#x}"
    assert r0 == 100 + 6 + 9 + 6 == jit.interpret(PRESSURE, helpers={90: lambda *args: 0})
    assert len(calls) == 2
    r0, mask = call_through_trampoline(fn, entry, functions)  # and again: nothing left behind
    assert (r0, mask) == (121, 0)


@arm64_only
def test_direct_and_batch_entries_preserve_every_callee_saved_register(functions) -> None:
    """The direct entry (fn(mem)) and the batch entry (run_batch) of a program
    using R6-R9 (x19-x22) leave every callee-saved register as they found it."""
    from array import array

    fn = jit.compile("mov %r6, 6\nmov %r7, 7\nmov %r8, 8\nmov %r9, %r2\nmov %r0, %r6\nadd %r0, %r9\nexit")
    assert call_through_trampoline(fn, fn.address + fn.native.labels["direct"], functions, b"abc") == (9, 0)
    mask = (ctypes.c_uint64 * 1)(0xFFFF_FFFF)
    trampoline = functions(checking_trampoline(fn.address + fn.native.labels["batch"], ctypes.addressof(mask)))
    packets = batch_runtime.PacketBatch.from_packets([b"a", b"bc", b""])
    out = array("Q", [0]) * 3
    stack = (ctypes.c_uint64 * (STACK_BYTES // 8))()
    ctx = batch_runtime._context(ctypes.addressof(stack))
    address = batch_runtime._address
    job = batch_runtime.new_job(
        address(packets.data), address(packets.offsets), address(packets.lengths), address(out), 3
    )
    entry = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p)(trampoline.address)
    entry(ctypes.addressof(job), 0, ctypes.addressof(ctx))
    assert (out.tolist(), job[BatchJob.INDEX // 8], mask[0]) == ([7, 8, 6], 3, 0)


# --- native helpers: the call into C -------------------------------------------------------


@arm64_only
def test_helpers_are_called_with_a_16_byte_aligned_stack(functions) -> None:
    sp_low_bits = functions("mov x0, sp\nand x0, x0, #15\nret")
    text = "call 70\nmov %r6, %r0\ncall local +2\nadd %r0, %r6\nexit\ncall 70\nexit"
    assert jit.compile(text, helpers={70: sp_low_bits.address})() == 0
    deep = "\n".join(["call local +1", "exit"] * 7 + ["call 70", "add %r0, 1", "exit"])
    assert jit.compile(deep, helpers={70: sp_low_bits.address})() == 1


CLOBBER = "\n".join(
    [f"mov x{r}, #0x{0xDEAD + r:x}" for r in range(0, 18)]
    + [f"movi v{r}.2d, #0xffffffffffffffff" for r in (*range(0, 8), *range(16, 32))]
    + ["mov x0, #42", "ret"]
)
KEEPS = """
    mov %r6, %r1
    mov %r1, 11
    mov %r2, 22
    mov %r3, 33
    mov %r4, 44
    mov %r5, 55
    mov %r7, 77
    mov %r8, 88
    mov %r9, 99
    stdw [%r10-16], 1616
    call 71
    stxdw [%r6+0], %r0
    stxdw [%r6+8], %r1
    stxdw [%r6+16], %r2
    stxdw [%r6+24], %r3
    stxdw [%r6+32], %r4
    stxdw [%r6+40], %r5
    stxdw [%r6+48], %r7
    stxdw [%r6+56], %r8
    stxdw [%r6+64], %r9
    ldxdw %r0, [%r10-16]
    stxdw [%r6+72], %r0
    mov %r0, 0
    exit
"""


@arm64_only
def test_a_helper_may_clobber_every_caller_saved_register(functions) -> None:
    """x0-x17 and v0-v7, v16-v31 are the callee's to use: R1-R9, R10 and the stack survive."""
    clobber = functions(CLOBBER)
    mem = bytearray(80)
    fn = jit.compile(KEEPS, helpers={71: clobber.address}, verify=False)  # R1-R5 read after the call
    fn(mem)
    expected = bytearray(80)
    jit.interpret(KEEPS, expected, helpers={71: lambda *args: 42})
    assert mem == expected
    assert [int.from_bytes(mem[i : i + 8], "little") for i in range(0, 80, 8)] == [
        42,
        11,
        22,
        33,
        44,
        55,
        77,
        88,
        99,
        1616,
    ]


@arm64_only
def test_python_helpers_get_full_64_bit_arguments_many_times() -> None:
    """The ctypes callback on AArch64: x0-x4 arguments, x5 id, x6 context, in a loop."""
    seen = []

    def helper(a, b, c, d, e):
        seen.append((a, b, c, d, e))
        return (a ^ e) + 1

    text = """
        mov %r6, 0
        mov %r7, 0
    l:
        lddw %r1, 0x8000000000000001
        mov %r2, -2
        lddw %r3, 0x123456789abcdef0
        mov %r4, %r6
        lddw %r5, 0xfedcba9876543210
        call 80
        add %r7, %r0
        add %r6, 1
        jlt %r6, 500, l
        mov %r0, %r7
        exit
    """
    r1, r5 = 0x8000000000000001, 0xFEDCBA9876543210
    assert jit.compile(text, helpers={80: helper})() == (500 * ((r1 ^ r5) + 1)) % 2**64
    assert seen[0] == (r1, 2**64 - 2, 0x123456789ABCDEF0, 0, r5)
    assert [args[3] for args in seen] == list(range(500))


# --- faults and corner cases -------------------------------------------------------------------


@arm64_only
def test_division_corner_cases_do_not_trap() -> None:
    """ARM64 udiv/sdiv give BPF's answers without a signal (x86 needs guards)."""
    cases = {
        "mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit": 0,
        "mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit": 7,
        "lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit": 1 << 63,
        "lddw %r0, 0x8000000000000000\nsmod %r0, -1\nexit": 0,
        "mov32 %r0, -13\nsmod32 %r0, 3\nexit": 0xFFFFFFFF,
    }
    for text, expected in cases.items():
        assert jit.compile(text)() == expected == jit.interpret(text), text


@arm64_only
def test_checked_faults_raise_and_the_program_runs_again() -> None:
    fn = jit.compile("ldxdw %r0, [%r1+8]\nexit", verify=False)  # every access checked
    with pytest.raises(jit.MemoryAccessError, match=r"instruction 0 \(ldxdw %r0, \[%r1\+8\]\)"):
        fn(bytes(8))
    assert fn(bytes(range(16))) == int.from_bytes(bytes(range(8, 16)), "little")


@arm64_only
def test_an_unchecked_wild_load_is_a_sigsegv_of_that_process_only() -> None:
    """What bounds_check=False, verify=False means: the host's fault, not a hang."""
    child = "import jit\njit.compile('lddw %r1, 0x10\\nldxdw %r0, [%r1]\\nexit', bounds_check=False, verify=False)()"
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
    assert result.returncode == -11, result.stderr.decode()


@arm64_only
def test_a_misaligned_atomic_is_a_memory_error_when_checked() -> None:
    """ARM64 exclusives fault (SIGBUS) on a misaligned address, x86-64 does not: the
    planned check must catch it before the ldaxr, under default settings too."""
    text = "mov %r2, 1\nlock add [%r1+1], %r2\nexit"
    for options in ({"verify": False}, {"verify": False, "bounds_check": True}):
        with pytest.raises(jit.MemoryAccessError, match=r"instruction 1 \(lock add \[%r1\+1\], %r2\).*aligned"):
            jit.compile(text, **options)(bytearray(16))
    with pytest.raises(jit.VerifierError):
        jit.compile(text)  # the verifier sees the misalignment statically
    mem = bytearray(16)
    assert jit.compile("mov %r2, 5\nlock add [%r1+8], %r2\nexit", verify=False)(mem) == 0
    assert mem[8] == 5


@arm64_only
def test_an_unchecked_misaligned_atomic_is_a_sigbus_of_that_process_only() -> None:
    child = "import jit\njit.compile('mov %r2, 1\\nlock add [%r1+1], %r2\\nexit', bounds_check=False, verify=False)(bytearray(16))"
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
    assert result.returncode == -7, result.stderr.decode()


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_every_backend_counts_a_back_edge_taken_or_not(arch: str) -> None:
    """max_steps stops both architectures at the same point: the back-edge below
    executes 10 times (9 taken). ARM64 used to count only the taken ones."""
    loop = "mov %r0, 0\nadd %r0, 1\njlt %r0, 10, -2\nexit"
    emulate = arch != host_arch()
    assert jit.compile(loop, arch=arch, emulate=emulate, max_steps=10)() == 10
    with pytest.raises(jit.StepLimitError, match=r"instruction 2 \(jlt %r0, 10, -2\)"):
        jit.compile(loop, arch=arch, emulate=emulate, max_steps=9)()
