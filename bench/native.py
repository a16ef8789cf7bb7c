"""The native baseline: the same C compiled with ``gcc -O2``, called like a JIT program.

For each program a shared library is built from ``programs/NAME.c`` and a small
harness with ``uint64_t run_many(uint8_t *mem, uint64_t len, uint64_t n)``: a
loop calling the entry function ``n`` times on the same buffer. The entry
function lives in its own translation unit (no LTO), so it cannot be inlined
into the loop, and compiler barriers around each call make every call happen
(the buffer may have changed, the result is used). Libraries are cached by a
hash of their sources and the compiler, under ``$XDG_CACHE_HOME/bpfjit`` (or
the system's temp directory when that is not writable).

:func:`compiler` returns None when no C compiler exists; the runner then skips
the native column and prints why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from jit.bench.suite import PROGRAMS, Benchmark
from jit.bench.timing import Mem, as_buffer

CFLAGS = ("-O2", "-shared", "-fPIC")

HARNESS = """\
#include "bench.h"

uint64_t {entry}(uint8_t *mem, uint64_t len);

/* noinline and the empty asm statements (compiler barriers) keep every call in the loop. */
__attribute__((noinline, visibility("default")))
uint64_t run_many(uint8_t *mem, uint64_t len, uint64_t n)
{{
	uint64_t r = 0;
	for (uint64_t i = 0; i < n; i++) {{
		__asm__ __volatile__("" : "+r"(mem), "+r"(len) : : "memory");
		r = {entry}(mem, len);
		__asm__ __volatile__("" : "+r"(r) : : "memory");
	}}
	return r;
}}
"""


class NativeError(Exception):
    """The C compiler failed on a program."""


@cache
def compiler() -> tuple[str, str] | None:
    """``(path, version line)`` of the C compiler: $CC, else gcc, else cc; None if there is none."""
    for name in (os.environ.get("CC"), "gcc", "cc"):
        path = shutil.which(name) if name else None
        if path:
            done = subprocess.run([path, "--version"], capture_output=True, text=True)
            version = done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else name
            return path, version
    return None


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bpfjit" / "native"
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = base / ".probe"
        probe.touch()
        probe.unlink()
        return base
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "bpfjit-native"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def build_library(bench: Benchmark) -> Path:
    """The shared library for ``bench`` (built now unless cached); raises NativeError."""
    found = compiler()
    if found is None:
        raise NativeError("no C compiler found ($CC, gcc or cc)")
    cc, version = found
    harness = HARNESS.format(entry=bench.entry)
    digest = hashlib.sha256()
    for part in (version, " ".join(CFLAGS), harness, *(p.read_text() for p in sorted(PROGRAMS.glob("*.h")))):
        digest.update(part.encode())
    digest.update(bench.source.read_bytes())
    lib = _cache_dir() / f"{bench.name}-{digest.hexdigest()[:16]}.so"
    if lib.exists():
        return lib
    with tempfile.TemporaryDirectory() as tmp:
        harness_c = Path(tmp) / "harness.c"
        harness_c.write_text(harness)
        out = Path(tmp) / lib.name
        cmd = [cc, *CFLAGS, f"-I{PROGRAMS}", str(bench.source), str(harness_c), "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise NativeError(f"{bench.name}: {Path(cc).name} failed:\n{done.stderr}")
        os.replace(out, lib)  # atomic: a concurrent run never sees half a library
    return lib


class NativeProgram:
    """``fn(mem) -> int`` and ``fn.run_many(mem, n)`` over the gcc-built code, like a JIT program."""

    emulated = False
    arch = "native"

    def __init__(self, bench: Benchmark):
        self.library = build_library(bench)
        self._dll = ctypes.CDLL(str(self.library))
        signature = [ctypes.c_void_p, ctypes.c_uint64]
        self._entry = getattr(self._dll, bench.entry)
        self._entry.argtypes, self._entry.restype = signature, ctypes.c_uint64
        self._run_many = self._dll.run_many
        self._run_many.argtypes, self._run_many.restype = [*signature, ctypes.c_uint64], ctypes.c_uint64

    def __call__(self, mem: Mem = None) -> int:
        buf = as_buffer(mem)
        view = (ctypes.c_char * len(buf)).from_buffer(buf)
        return self._entry(ctypes.addressof(view), len(buf))

    def run_many(self, mem: Mem, n: int) -> int:
        buf = as_buffer(mem)
        view = (ctypes.c_char * len(buf)).from_buffer(buf)
        return self._run_many(ctypes.addressof(view), len(buf), n)
