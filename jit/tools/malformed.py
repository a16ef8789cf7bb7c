"""Malformed-input fuzzing: bad input must give a result or a ``jit.BpfError``,
never a crash of the Python process and never a hang.

Each case is bytes made from a seeded random source (:func:`make_case`):
random bytes of any length, truncated or mutated valid programs, or programs
of random but well-formed instructions (jumps anywhere, any registers, any
memory offsets). :func:`exercise` sends one case through every stage: decode,
verify, compile for each architecture (verified, and with ``verify=False`` so
that every access is checked at run time), and run on every engine with a step
budget. Only a value or a ``BpfError`` is an acceptable outcome.

:func:`campaign` runs the cases in a child process, so a crash (a signal) or a
hang is seen by the parent, recorded with the case's bytes, and the campaign
goes on with the next case.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jit.core import isa
from jit.core.bytecode import Instruction
from jit.core.errors import BpfError
from jit.frontend.program import Program
from jit.tools.fuzz import FUZZ_HELPERS, generate

STEP_BUDGET = 10_000
HANG_SECONDS = 60.0


def _random_instruction(rng: random.Random) -> Instruction:
    spec = isa.ISA[rng.randrange(len(isa.ISA))]
    imm = rng.getrandbits(64) if spec.is_wide else rng.randint(-(2**31), 2**31 - 1)
    off = rng.choice((0, 1, -1, 2, -2, 8, -8, 512, -512, rng.randint(-32768, 32767)))
    return Instruction(spec, rng.randint(0, 10), rng.randint(0, 10), off, imm)


def make_case(seed: int, index: int) -> bytes:
    """The bytes of case ``index`` of a campaign (reproducible from both numbers)."""
    rng = random.Random(f"{seed}:{index}")
    kind = rng.randrange(4)
    if kind == 0:  # random bytes, any length
        return rng.randbytes(rng.randint(0, 96))
    if kind == 3:  # well-formed instructions, random everything else
        insns = [_random_instruction(rng) for _ in range(rng.randint(1, 24))]
        return Program(insns).to_bytes()
    from jit.frontend.asm import assemble

    raw = bytearray(assemble(generate(rng, max_ops=12).program()).to_bytes())
    if kind == 1:  # truncated
        return bytes(raw[: rng.randint(0, len(raw))])
    for _ in range(rng.randint(1, 6)):  # mutated bytes
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    return bytes(raw)


def exercise(raw: bytes, native: bool = True) -> list[str]:
    """Decode, verify, compile and run ``raw`` everywhere (the native engine
    only when ``native``: run it in a child process); the outcome of each stage
    as text. Any exception that is not a BpfError propagates."""
    from jit.analysis.verifier import analyze
    from jit.runtime.compiler import compile as jit_compile
    from jit.runtime.interpreter import interpret
    from jit.tools.engines import engines

    outcomes: list[str] = []

    def attempt(stage: str, action: Callable[[], object]) -> object:
        try:
            value = action()
        except BpfError as exc:
            outcomes.append(f"{stage}: {type(exc).__name__}")
            return None
        outcomes.append(f"{stage}: ok")
        return value

    prog = attempt("decode", lambda: Program.from_bytes(raw))
    if prog is None:
        return outcomes
    attempt("verify", lambda: analyze(prog, mem_size=64, helpers=FUZZ_HELPERS))
    mem = bytes(64)
    for engine in engines():
        if not (native or engine.arch is None or engine.emulated):
            continue
        if engine.arch is None:
            attempt(engine.name, lambda: interpret(prog, mem, helpers=FUZZ_HELPERS, max_steps=STEP_BUDGET))
            continue
        # As compiled by default (verified, checked where not proven), and
        # unverified (every memory access checked at run time): the second is
        # what stands between a program the verifier would reject and a crash.
        for label, options in (("", {}), (" unverified", {"verify": False})):
            fn = attempt(
                f"compile {engine.name}{label}",
                lambda engine=engine, options=options: jit_compile(
                    prog,
                    arch=engine.arch,
                    helpers=FUZZ_HELPERS,
                    emulate=engine.emulated,
                    max_steps=STEP_BUDGET,
                    **options,
                ),
            )
            if fn is not None:
                attempt(f"{engine.name}{label}", lambda fn=fn: fn(mem))
    return outcomes


@dataclass
class Failure:
    """A case whose outcome was not a result or a BpfError."""

    index: int
    kind: str  # "crash", "hang" or "exception"
    detail: str
    path: Path | None = None


@dataclass
class MalformedResult:
    runs: int = 0
    failures: list[Failure] = field(default_factory=list)


def _worker(seed: int, start: int, stop: int, current, errors) -> None:
    for index in range(start, stop):
        current.value = index
        try:
            exercise(make_case(seed, index))
        except Exception as exc:  # a non-BpfError escaping is a bug: report it, go on
            errors.put((index, f"{type(exc).__name__}: {exc}"))
    current.value = stop


def campaign(count: int, seed: int, out_dir: Path, progress: Callable[[int], None] | None = None) -> MalformedResult:
    """Run ``count`` malformed cases in a child process, restarting it after a
    crash or a hang; every failure is saved as ``<out_dir>/malformed-SEED-INDEX.bin``."""
    ctx = mp.get_context("fork")
    result = MalformedResult()
    errors = ctx.Queue()
    start = 0
    while start < count:
        current = ctx.Value("q", start)
        child = ctx.Process(target=_worker, args=(seed, start, count, current, errors), daemon=True)
        child.start()
        last, seen = current.value, time.monotonic()
        while child.is_alive():
            child.join(0.2)
            if current.value != last:
                last, seen = current.value, time.monotonic()
                if progress is not None:
                    progress(last)
            elif time.monotonic() - seen > HANG_SECONDS:
                child.kill()
                child.join()
                result.failures.append(Failure(last, "hang", f"no progress for {HANG_SECONDS:g} s"))
                break
        else:
            if child.exitcode != 0:
                result.failures.append(Failure(current.value, "crash", f"child died with exit code {child.exitcode}"))
        start = current.value + 1 if current.value < count else count
    while not errors.empty():
        index, detail = errors.get()
        result.failures.append(Failure(index, "exception", detail))
    result.runs = count
    for failure in result.failures:
        out_dir.mkdir(parents=True, exist_ok=True)
        failure.path = out_dir / f"malformed-{seed}-{failure.index}.bin"
        failure.path.write_bytes(make_case(seed, failure.index))
    if progress is not None:
        progress(count)
    return result
