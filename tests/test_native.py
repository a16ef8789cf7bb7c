"""The native runtime (jit.runtime.native) and jit.compile: W^X code pages, helpers
(Python with memory access, native function pointers, failures), the ``mem``
rules, run_many, close and garbage collection, the listing, compile errors and
run-time errors. Runs on x86-64 and ARM64 hosts, each running its own machine code
(tests/test_arm64_native.py has the ARM64-only ones)."""

from __future__ import annotations

import ctypes
import gc
import json
import subprocess
import sys
import textwrap

import pytest

import jit
from jit.core.host import host_arch
from jit.runtime import codemem
from jit.runtime.codecache import CACHE
from jit.runtime.native import NativeProgram

HOST = host_arch()
pytestmark = pytest.mark.skipif(
    HOST not in ("x86_64", "arm64"), reason=f"native execution needs an x86-64 or ARM64 host, not {HOST!r}"
)


def native(text: str, **options) -> NativeProgram:
    fn = jit.compile(text, **options)
    assert isinstance(fn, NativeProgram)
    return fn


def _maps() -> list[tuple[int, int, str]]:
    with open("/proc/self/maps") as maps:
        rows = [line.split() for line in maps]
    return [(int(r[0].split("-")[0], 16), int(r[0].split("-")[1], 16), r[1]) for r in rows]


def _writable_executable() -> list[tuple[int, int, str]]:
    return [m for m in _maps() if "w" in m[2] and "x" in m[2]]


# --- W^X ----------------------------------------------------------------------

WX_SCRIPT = textwrap.dedent(
    """
    import json
    import jit

    def maps():
        with open("/proc/self/maps") as lines:
            return [line.split() for line in lines]

    def writable_executable():
        return [row[0] for row in maps() if "w" in row[1] and "x" in row[1]]

    before = writable_executable()
    fn = jit.compile("mov %r0, 5\\nldxb %r1, [%r1]\\nadd %r0, %r1\\nexit")
    assert fn(bytearray(b"\\x25")) == 0x2A
    code = [row[1] for row in maps() if int(row[0].split("-")[0], 16) <= fn.address < int(row[0].split("-")[1], 16)]
    print(json.dumps([before, writable_executable(), code]))
    """
)


def test_no_mapping_is_writable_and_executable_after_compiling_and_running() -> None:
    """In a fresh process: no W+X mapping before or after, and the code pages are r-x."""
    result = subprocess.run([sys.executable, "-c", WX_SCRIPT], capture_output=True, text=True, check=True)
    before, after, code = json.loads(result.stdout)
    assert before == []
    assert after == []
    assert code == ["r-xp"]


def test_code_pages_are_read_execute_in_this_process() -> None:
    fn = native("mov %r0, 1\nexit")
    (perms,) = [p for lo, hi, p in _maps() if lo <= fn.address < hi]
    assert perms == "r-xp"


def test_python_helpers_share_one_dispatcher() -> None:
    """Each libffi closure costs a W+X page: compiling many programs with Python
    helpers must not add one per program or per helper."""
    helpers = {40: lambda *a: 1, 41: lambda *a: 2}
    native("call 40\ncall 41\nexit", helpers=helpers)()
    gc.collect()  # unicorn instances of other tests own W+X regions until collected
    baseline = len(_writable_executable())
    for i in range(20):
        assert native(f"call 40\nmov %r6, %r0\ncall 41\nadd %r0, %r6\nadd %r0, {i}\nexit", helpers=helpers)() == 3 + i
    assert len(_writable_executable()) <= baseline


# --- helpers ------------------------------------------------------------------


def test_python_helper_receives_arguments_and_returns_r0() -> None:
    seen = []

    def helper(a, b, c, d, e):
        seen.append((a, b, c, d, e))
        return -1  # truncated to 64 bits

    fn = native("mov %r1, 1\nmov %r2, -2\nmov %r3, 3\nmov %r4, 4\nmov %r5, 5\ncall 50\nexit", helpers={50: helper})
    assert fn() == 2**64 - 1
    assert seen == [(1, 2**64 - 2, 3, 4, 5)]


def test_helper_memory_accessor_reads_and_writes_buffer_and_stack() -> None:
    def frob(addr, size, stack, _d, _e, *, memory):
        data = memory.read(addr, size)
        memory.write(addr, bytes(b ^ 0x2A for b in data))
        memory.write(stack, memory.read(stack, 8)[::-1])
        return sum(data)

    text = """
    lddw %r3, 0x0102030405060708
    stxdw [%r10-16], %r3
    mov %r3, %r10
    add %r3, -16
    call 60
    ldxdw %r6, [%r10-16]
    stxdw [%r1+4], %r6
    exit
    """
    # (unverified: the program reads R1 after the call, as the interpreter allows)
    # the helper XORs the 12 buffer bytes with 42 and returns their sum (1+2+3);
    # it reverses the stack word 08 07 .. 01 (little-endian), which the program
    # then copies over buffer bytes 4..11
    mem = bytearray(b"\x01\x02\x03\x00" + bytes(8))
    assert native(text, helpers={60: frob}, verify=False)(mem) == 6
    assert mem == bytearray([1 ^ 42, 2 ^ 42, 3 ^ 42, 42, 1, 2, 3, 4, 5, 6, 7, 8])


def test_helper_memory_access_outside_the_program_fails_cleanly() -> None:
    def bad(*_args, memory):
        return memory.read(0x10, 4)[0]

    with pytest.raises(jit.HelperError) as err:
        native("call 61\nexit", helpers={61: bad})()
    assert "instruction 0 (call 61)" in str(err.value)
    assert isinstance(err.value.__cause__, jit.MemoryAccessError)


def test_native_function_pointer_helper() -> None:
    libc = ctypes.CDLL(None)
    fn = native("mov %r1, -42\ncall 70\nexit", helpers={70: libc.labs})
    assert fn() == 42


def test_ctypes_callback_helper_stays_alive() -> None:
    proto = ctypes.CFUNCTYPE(ctypes.c_uint64, *[ctypes.c_uint64] * 5)
    fn = native("mov %r1, 20\nmov %r2, 22\ncall 71\nexit", helpers={71: proto(lambda a, b, *_: a + b)})
    gc.collect()  # the compiled program keeps the callback object alive
    assert fn() == 42


def test_helper_exception_becomes_helper_error_naming_the_instruction() -> None:
    def boom(*_args):
        raise ValueError("no such thing")

    fn = native("mov %r0, 1\ncall 80\nmov %r0, 2\nexit", helpers={80: boom})
    with pytest.raises(jit.HelperError) as err:
        fn()
    assert err.value.pc == 1
    assert "instruction 1 (call 80)" in str(err.value)
    assert "ValueError: no such thing" in str(err.value)
    assert isinstance(err.value.__cause__, ValueError)


def test_program_runs_again_after_a_helper_error() -> None:
    calls = []

    def flaky(a, *_):
        calls.append(a)
        if a == 0:
            raise RuntimeError("zero")
        return a * 2

    fn = native("ldxb %r1, [%r1]\ncall 81\nexit", helpers={81: flaky})
    with pytest.raises(jit.HelperError):
        fn(b"\x00")
    assert fn(b"\x15") == 42


def test_callx_out_of_table_and_unknown_id() -> None:
    # The verifier rejects both ids: unverified, to test the run-time checks.
    fn = native("lddw %r3, 0x100000005\ncall %r3\nexit", verify=False)
    with pytest.raises(jit.HelperError, match=r"instruction 2 \(call %r3\).*outside the helper table"):
        fn()
    fn = native("mov %r3, 99\ncall %r3\nexit", verify=False)
    with pytest.raises(jit.HelperError, match=r"instruction 1 \(call %r3\)"):
        fn()
    assert native("mov %r3, 90\ncall %r3\nexit", helpers={90: lambda *a: 9})() == 9


# --- mem rules, run_many --------------------------------------------------------

STORE_AND_REPORT = "mov %r0, %r2\njeq %r2, 0, +1\nstb [%r1], 0x7f\nexit"  # R0 = length; write byte 0


def test_no_buffer_gives_null_pointer_and_zero_length() -> None:
    assert native("mov %r0, %r1\nor %r0, %r2\nexit")() == 0
    assert native(STORE_AND_REPORT)(None) == 0


def test_bytearray_is_written_in_place() -> None:
    mem = bytearray(b"\x00\x01\x02")
    assert native(STORE_AND_REPORT)(mem) == 3
    assert mem == bytearray(b"\x7f\x01\x02")


def test_writable_memoryview_is_written_in_place() -> None:
    backing = bytearray(8)
    assert native(STORE_AND_REPORT)(memoryview(backing)[2:6]) == 4
    assert backing == bytearray(b"\x00\x00\x7f\x00\x00\x00\x00\x00")


def test_bytes_and_readonly_views_are_not_modified() -> None:
    data = b"\x01\x02"
    fn = native(STORE_AND_REPORT)
    assert fn(data) == 2
    assert data == b"\x01\x02"
    view = memoryview(bytearray(b"\x05")).toreadonly()
    assert fn(view) == 1
    assert bytes(view) == b"\x05"


def test_run_many_runs_n_times_in_one_native_loop() -> None:
    fn = native("ldxdw %r0, [%r1]\nadd %r0, 1\nstxdw [%r1], %r0\nexit")
    mem = bytearray(8)
    assert fn.run_many(mem, 1000) == 1000
    assert int.from_bytes(mem, "little") == 1000
    with pytest.raises(ValueError):
        fn.run_many(mem, 0)


def test_every_run_starts_with_a_zeroed_stack_and_registers() -> None:
    """R0 = old [r10-8] + R6 (both 0 at entry); the program leaves garbage behind."""
    text = "ldxdw %r0, [%r10-8]\nadd %r0, %r6\nstdw [%r10-8], 99\nmov %r6, 7\nexit"
    fn = native(text, verify=False)  # reads an unwritten stack slot and R6, which the verifier rejects
    assert fn.run_many(None, 5) == 0
    assert fn() == 0


# --- the direct call: fn(mem) of a program without helpers or back-edges ---------


def test_a_typed_memoryview_is_written_in_place_as_bytes() -> None:
    import array

    words = array.array("I", [1, 2, 3, 4])
    fn = native("ldxw %r0, [%r1+12]\nstw [%r1+0], 9\nmov %r1, %r2\nlsh %r1, 32\nor %r0, %r1\nexit")
    assert fn(memoryview(words)) == (16 << 32) | 4  # R2 is the size in bytes, not in items
    assert list(words) == [9, 2, 3, 4]


def test_bytes_stay_unmodified_when_the_code_writes_through_a_copy_of_r10() -> None:
    """Only stores through R10 itself let bytes be passed in place: a store
    through any other register may reach the input."""
    data = bytes(4)
    fn = native("mov %r3, %r1\nstb [%r3+0], 7\nldxb %r0, [%r1+0]\nexit")
    assert fn(data) == 7
    assert data == bytes(4)
    reader = native("stb [%r10-1], 5\nldxb %r0, [%r10-1]\nldxb %r1, [%r1+3]\nadd %r0, %r1\nexit")
    assert reader(b"\x00\x00\x00\x10") == 0x15


@pytest.mark.parametrize(
    "text, mem",
    [
        ("ldxw %r0, [%r1+6]\nexit", bytes(8)),  # bounds check
        ("ldxw %r0, [%r1+6]\nexit", b""),
        ("ldxw %r0, [%r1+6]\nexit", bytearray(9)),
        ("stxdw [%r1+0], %r1\nmov %r0, 0\nexit", bytes(4)),  # a store past the end of bytes
    ],
)
def test_direct_call_raises_what_the_general_path_raises(text: str, mem: object) -> None:
    fn = native(text, verify=False)
    with pytest.raises(jit.BpfError) as direct:
        fn(mem)
    with pytest.raises(jit.BpfError) as general:
        fn.run_many(mem, 1)
    assert type(direct.value) is type(general.value)
    assert direct.value.pc == general.value.pc
    assert str(direct.value).split(" at 0x")[0] == str(general.value).split(" at 0x")[0]  # addresses differ
    assert fn(bytearray(16)) == 0  # and the program runs again


def test_direct_calls_wait_for_a_run_in_another_thread() -> None:
    """The direct path and run_many share one context: a direct call made
    while another thread's run_many is in native code must not clobber it."""
    import threading

    fn = native("ldxdw %r0, [%r1]\nadd %r0, 1\nstxdw [%r1], %r0\nexit")
    counter, other = bytearray(8), bytearray(8)
    runs = 3_000_000
    worker = threading.Thread(target=fn.run_many, args=(counter, runs))
    worker.start()
    calls = 0
    while worker.is_alive() or calls < 1000:
        fn(other)
        calls += 1
    worker.join()
    assert int.from_bytes(counter, "little") == runs
    assert int.from_bytes(other, "little") == calls


# --- lifetime -----------------------------------------------------------------


@pytest.fixture
def no_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Released code pages go straight back to the system (tests/test_codemem.py covers the pool)."""
    monkeypatch.setattr(codemem, "POOL", codemem.CodePool(limit=0))


def test_close_releases_the_code_and_later_calls_raise(no_pool) -> None:
    fn = native("mov %r0, 3\nexit", cache=False)
    address = fn.address
    assert fn() == 3
    fn.close()
    fn.close()  # idempotent
    assert fn.closed
    assert not any(lo <= address < hi for lo, hi, _ in _maps())
    with pytest.raises(jit.BpfError, match="closed"):
        fn()


def test_programs_from_one_cached_compile_share_the_code_until_the_last_goes(no_pool) -> None:
    CACHE.clear()
    first, second = native("mov %r0, 8\nexit"), native("mov %r0, 8\nexit")
    address = first.address
    assert second.address == address and first() == second() == 8
    first.close()
    assert second() == 8  # still mapped: second and the cache hold it
    CACHE.clear()
    assert second() == 8
    second.close()
    assert not any(lo <= address < hi for lo, hi, _ in _maps())


def test_context_manager_closes() -> None:
    with native("mov %r0, 4\nexit") as fn:
        assert fn() == 4
    assert fn.closed


def test_garbage_collection_unmaps_the_code(no_pool) -> None:
    fn = native("mov %r0, 3\nexit", cache=False)
    address = fn.address
    del fn
    gc.collect()
    assert not any(lo <= address < hi for lo, hi, _ in _maps())


# --- API surface ----------------------------------------------------------------


# per host: the return instruction's encoding and the load of ``ldxw %r0, [%r1+4]``
_LISTING = {
    "x86_64": (b"\xc3", "mov eax, dword ptr [rdi + 4]"),
    "arm64": (bytes.fromhex("c0035fd6"), "ldr w7, [x0, #4]"),
}


def test_code_arch_and_listing() -> None:
    fn = native("mov %r0, 42\nldxw %r0, [%r1+4]\nexit", bounds_check=False)  # no check before the load
    ret, load = _LISTING[HOST]
    assert fn.arch == HOST
    assert fn.emulated is False
    assert isinstance(fn.code, bytes) and ret in fn.code
    listing = fn.disasm()
    lines = listing.splitlines()
    head = lines.index("     1: ldxw %r0, [%r1+4]")
    assert load in lines[head + 1]
    assert "<prologue>" in listing and "<fail>" in listing


def test_accepts_bytes_text_and_program() -> None:
    prog = jit.assemble("mov %r0, 6\nexit")
    assert jit.compile(prog)() == jit.compile(prog.to_bytes())() == jit.compile("mov %r0, 6\nexit")() == 6


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("call 12345\nexit", {"verify": False}, r"instruction 0 \(call 12345\): unknown helper id 12345"),
        ("call 600\nexit", {"helpers": {600: lambda *a: 0}}, r"instruction 0 \(call 600\).*outside the helper table"),
        ("call runtime 7\nexit", {"verify": False}, r"instruction 0 \(call runtime 7\).*BTF"),
        ("lddw.mapfd %r1, 3\nexit", {"verify": False}, r"instruction 0 .*unresolved relocation"),
        ("mov %r0, 1\nexit", {"arch": "riscv"}, r"unknown architecture 'riscv' \(valid: x86_64, arm64\)"),
        ("mov %r0, 1\nexit", {"bounds_check": 1}, r"bounds_check must be 'auto', True or False, not 1"),
    ],
)
def test_compile_errors(text: str, options: dict, message: str) -> None:
    with pytest.raises(jit.CompileError, match=message):
        jit.compile(text, **options)


def test_jump_outside_the_program_is_rejected() -> None:
    with pytest.raises(jit.VerifierError, match=r"instruction 0 \(ja \+5\)"):
        jit.compile("ja +5\nexit")


# --- run-time errors ------------------------------------------------------------


def test_max_steps_stops_an_infinite_loop() -> None:
    fn = native("mov %r0, 0\nadd %r0, 1\nja -2\nexit", max_steps=1000, verify=False)  # exit is unreachable
    with pytest.raises(jit.StepLimitError) as err:
        fn()
    assert err.value.pc == 2
    assert "instruction 2 (ja -2)" in str(err.value)


def test_max_steps_is_per_run_and_counts_backward_jumps() -> None:
    """The budget counts executions of backward jumps (taken or not): 10 here."""
    loop = "mov %r0, 0\nadd %r0, 1\njlt %r0, 10, -2\nexit"
    assert native(loop, max_steps=10).run_many(None, 3) == 10
    with pytest.raises(jit.StepLimitError):
        native(loop, max_steps=9)()


def test_unbounded_recursion_hits_the_call_depth_limit() -> None:
    with pytest.raises(jit.CallDepthError, match=r"instruction 0 \(call local -1\)"):
        native("call local -1\nexit", verify=False)()  # the verifier rejects recursion


def test_falling_off_the_end_is_an_error() -> None:
    with pytest.raises(jit.ExecutionError, match=r"fell off the end"):
        native("mov %r0, 1\njeq %r0, 1, +1\nexit\nmov %r0, 2", verify=False)()  # rejected by the verifier


def test_packet_loads_in_and_out_of_bounds() -> None:
    text = "mov %r6, %r1\nmov %r7, 3\nldabsh 1\nmov %r8, %r0\nldindw %r7, 1\nadd %r0, %r8\nexit"
    # ldabsh 1 = bytes 1-2 big-endian = 0x0203; ldindw r7+1 = bytes 4-7 = 0x05060708
    assert native(text)(bytes(range(1, 9))) == 0x0203 + 0x05060708
    assert native(text)(bytes(range(1, 8))) == 0  # the word at 4 needs 8 bytes: the run ends with 0
