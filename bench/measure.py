"""Measuring one program on one engine: check the result first, then time it.

Engines of the benchmark: the reference interpreter, every JIT engine of
:func:`jit.engines` (native or under unicorn) and ``native``, the same
C compiled by gcc (:mod:`jit.bench.native`). A result that differs from the
expected one (or an exception) makes a FAILURE and is never timed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Protocol

import jit
from jit.bench import native
from jit.bench.suite import Benchmark
from jit.bench.timing import Budget, Timing, as_buffer, measure, repeat_calls
from jit.runtime.interpreter import run as interpreter_run
from jit.tools.engines import engines as all_engines

INTERPRETER, JIT, NATIVE = "interpreter", "jit", "native"


@dataclass(frozen=True)
class BenchEngine:
    """An engine as the benchmark sees it."""

    name: str
    kind: str  # INTERPRETER, JIT or NATIVE
    arch: str | None = None
    emulated: bool = False

    @property
    def label(self) -> str:
        """Column heading; emulated engines say so, their times are not native speed."""
        if self.kind == NATIVE:
            return "native C (gcc -O2)"
        if self.emulated:
            return f"{self.arch} JIT (emulated)"
        return f"{self.arch} JIT" if self.kind == JIT else "interpreter"


NATIVE_ENGINE = BenchEngine("native", NATIVE)


def available_engines() -> list[BenchEngine]:
    """Every engine on this host: the interpreter, the JITs, native C."""
    found = [BenchEngine(e.name, INTERPRETER if e.arch is None else JIT, e.arch, e.emulated) for e in all_engines()]
    return [*found, NATIVE_ENGINE]


def default_engines(engines: list[BenchEngine]) -> list[BenchEngine]:
    """All but the emulated twin of a native JIT (the same machine code, only slower)."""
    native_arches = {e.arch for e in engines if e.kind == JIT and not e.emulated}
    return [e for e in engines if not (e.emulated and e.arch in native_arches)]


@dataclass
class Case:
    """One program to benchmark, with its input and what it must return."""

    name: str
    description: str
    prog: jit.Program
    mem: bytes
    expected: int | None  # None: unchecked, the interpreter's result is the reference
    expected_memory: bytes | None = None
    benchmark: Benchmark | None = None  # the suite entry (for native C), None for a user's program
    size: int | None = None
    unit: str = "bytes"

    @classmethod
    def from_benchmark(cls, bench: Benchmark, size: str | int) -> Case:
        mem = bench.make_input(size)
        prog = jit.Program.from_bytes(bench.bytecode.read_bytes(), name=bench.name)
        memory = bench.expected_memory(mem) if bench.expected_memory else None
        n = bench.size(size) if isinstance(size, str) else size
        return cls(bench.name, bench.description, prog, mem, bench.reference(mem), memory, bench, n, bench.unit)


@dataclass
class EngineResult:
    """The figures of one engine on one program (times in seconds, per run)."""

    engine: BenchEngine
    status: str = "ok"  # "ok", "failure" or "skipped"
    detail: str = ""
    result: int | None = None
    compile: list[float] = field(default_factory=list)  # one time per compile
    run: Timing | None = None  # one execution, without Python call overhead where the engine allows
    call: Timing | None = None  # one fn(mem) call from Python
    code_bytes: int | None = None
    bytes_per_insn: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def compile_s(self) -> float | None:
        return statistics.median(self.compile) if self.compile else None

    @property
    def run_s(self) -> float | None:
        return self.run.seconds if self.run else None

    @property
    def call_s(self) -> float | None:
        return self.call.seconds if self.call else None


def reference_run(case: Case) -> tuple[jit.runtime.interpreter.RunResult | Exception, float, bytearray]:
    """One interpreter run: its result (or error), its time and the buffer after it."""
    buf = bytearray(case.mem)
    start = time.perf_counter()
    try:
        outcome = interpreter_run(case.prog, buf)
    except Exception as exc:  # reported as a failure, whatever went wrong
        outcome = exc
    return outcome, time.perf_counter() - start, buf


def _mismatch(case: Case, got: int, buf: bytearray) -> str:
    """Why a result is wrong, or '' when it is right."""
    if case.expected is not None and got != case.expected:
        return f"returned 0x{got:x}, expected 0x{case.expected:x}"
    if case.expected_memory is not None and bytes(buf) != case.expected_memory:
        at = next(i for i, (a, b) in enumerate(zip(buf, case.expected_memory)) if a != b)
        return f"returned the right value but left a wrong buffer (first wrong byte at offset {at})"
    return ""


def _failed(result: EngineResult, detail: str) -> EngineResult:
    result.status, result.detail = "failure", detail
    result.run = result.call = None
    return result


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def measure_interpreter(case: Case, first: tuple, budget: Budget) -> EngineResult:
    """The interpreter, checked by the reference run ``first`` (from :func:`reference_run`)."""
    engine = BenchEngine("interpreter", INTERPRETER)
    result = EngineResult(engine)
    outcome, seconds, buf = first
    if isinstance(outcome, Exception):
        return _failed(result, _error(outcome))
    result.result = outcome.r0
    problem = _mismatch(case, outcome.r0, buf)
    if problem:
        return _failed(result, problem)
    run_buf = bytearray(case.mem)
    # The interpreter has no batch loop: a batch is a Python loop of runs, and the check run is the warm-up.
    result.run = measure(repeat_calls(lambda: interpreter_run(case.prog, run_buf)), budget, first=seconds)
    result.call = result.run  # each of its runs is a call from Python
    return result


def measure_jit(case: Case, engine: BenchEngine, budget: Budget, compiles: int) -> EngineResult:
    """Compile ``compiles`` times (median), check, then time ``run_many`` and ``fn(mem)``."""
    result = EngineResult(engine)
    fn = None
    try:
        for _ in range(compiles):
            if fn is not None:
                fn.close()
            start = time.perf_counter()
            fn = jit.compile(case.prog, arch=engine.arch, emulate=engine.emulated)
            result.compile.append(time.perf_counter() - start)
        result.code_bytes = len(fn.code)
        result.bytes_per_insn = len(fn.code) / len(case.prog.instructions)
        return _check_and_time(case, result, fn, budget)
    except Exception as exc:
        return _failed(result, _error(exc))
    finally:
        if fn is not None:
            fn.close()


def measure_native(case: Case, budget: Budget) -> EngineResult:
    """The gcc -O2 build of the same C; skipped for a user's program or without a C compiler."""
    result = EngineResult(NATIVE_ENGINE)
    if case.benchmark is None:
        result.status, result.detail = "skipped", "no C source for this program"
        return result
    if native.compiler() is None:
        result.status, result.detail = "skipped", "no C compiler found ($CC, gcc or cc): native C column skipped"
        return result
    try:
        fn = native.NativeProgram(case.benchmark)
        return _check_and_time(case, result, fn, budget)
    except Exception as exc:
        return _failed(result, _error(exc))


class Runnable(Protocol):
    """What JIT and native programs share: ``fn(mem)`` and ``fn.run_many(mem, n)``."""

    def __call__(self, mem: bytearray) -> int: ...

    def run_many(self, mem: bytearray, n: int) -> int: ...


def _check_and_time(case: Case, result: EngineResult, fn: Runnable, budget: Budget) -> EngineResult:
    buf = as_buffer(bytes(case.mem))
    start = time.perf_counter()
    got = fn(buf)
    seconds = time.perf_counter() - start
    result.result = got
    problem = _mismatch(case, got, buf)
    if problem:
        return _failed(result, problem)
    # The check call is the warm-up of both measurements (and the one sample of a very slow engine).
    result.run = measure(lambda n: fn.run_many(buf, n), budget, first=seconds)
    result.call = measure(repeat_calls(lambda: fn(buf)), budget, first=seconds)
    return result
