"""JIT speed: compile throughput, the cost of one call, native vs interpreter.

    python bench/jit_speed.py [--quick] [--arch x86_64]

1. Compile throughput in BPF instructions (slots) per second for programs of
   100, 10,000 and 1,000,000 slots (a mix of ALU, jumps, loads and stores),
   measured as the whole ``jit.compile`` (codegen + one keystone call + mapping)
   without the verifier (``verify=False``: the random programs do not verify).
2. The cost of one call of a trivial compiled program from Python (``fn(mem)``
   for no buffer, bytes, bytearray and memoryview; medians over batches), of
   one iteration of ``fn.run_many`` and of one item of ``fn.run_batch``.
3. Per bench program: the whole ``jit.compile`` of its bytecode with the
   verifier, without it, without it with keystone assembling the whole text
   (the path copy and patch replaced), a second compile served by the
   in-process code cache, and one served by the disk cache (``cache_dir``)
   in a process whose in-process cache is empty.
4. The speedup of native code over the interpreter on a loop-heavy program
   (medians of whole runs; the native side uses ``run_many``).

A script, not a test: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import jit
from jit.bench.interp_speed import LOOP
from jit.core.bytecode import Instruction
from jit.core.isa import lookup
from jit.frontend.program import Program
from jit.runtime.codecache import CACHE


def median_time(action: Callable[[], object], runs: int) -> float:
    """Median wall time of ``runs`` calls of ``action``, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mixed_program(slots: int, seed: int = 1) -> Program:
    """``slots`` instructions: ALU (reg and imm), forward jumps, stack loads and stores, exit."""
    rng = random.Random(seed)
    alu = [0x07, 0x0F, 0x17, 0x1F, 0x27, 0x2F, 0x47, 0x57, 0xA7, 0xAF, 0xB7, 0xBF, 0x04, 0x0C, 0xC7, 0x3F]
    out = []
    for pc in range(slots - 1):
        kind = rng.random()
        dst, src = rng.randrange(10), rng.randrange(10)
        if kind < 0.7:
            opcode = rng.choice(alu)
            fields = (dst, src if opcode & 0x08 else 0, 0, rng.randrange(-1000, 1000) if not opcode & 0x08 else 0)
        elif kind < 0.85:
            fields = (dst, src, min(rng.randrange(1, 20), slots - 2 - pc), 0)
            opcode = 0x5D  # jne dst, src
        elif kind < 0.93:
            opcode, fields = 0x7B, (10, src, -8 * rng.randrange(1, 64), 0)  # stxdw [r10-off], src
        else:
            opcode, fields = 0x79, (dst, 10, -8 * rng.randrange(1, 64), 0)  # ldxdw dst, [r10-off]
        spec = lookup(opcode, *fields)
        out.append(Instruction(spec, *fields))
    out.append(Instruction(lookup(0x95, 0, 0, 0, 0)))
    return Program(tuple(out))


def compile_throughput(sizes: list[int], arch: str | None) -> list[tuple[int, float]]:
    rows = []
    # Code generation only: the random programs are not verifiable (uninitialised
    # registers and stack); the verifier's own cost is in `bpfjit bench --bounds`.
    options = {"arch": arch, "emulate": arch is not None, "verify": False, "bounds_check": False, "cache": False}
    for slots in sizes:
        prog = mixed_program(slots)
        runs = 1 if slots >= 1_000_000 else 5 if slots >= 10_000 else 21
        seconds = median_time(lambda prog=prog: jit.compile(prog, **options).close(), runs)
        rows.append((slots, slots / seconds))
    return rows


def bench_compiles(arch: str | None, runs: int) -> list[tuple[str, int, float, float, float, float, float]]:
    """Per bench program: median seconds of a whole ``jit.compile`` of its bytecode
    with the verifier, without it, without it and with keystone assembling the
    whole text (``BPFJIT_ASSEMBLER=keystone``, the path before copy and patch),
    and again from the in-process code cache."""
    from jit.bench.suite import SUITE

    rows = []
    options = {"arch": arch, "emulate": arch is not None}
    for bench in SUITE:
        raw = bench.bytecode.read_bytes()
        verified = median_time(lambda raw=raw: jit.compile(raw, cache=False, **options).close(), runs)
        unverified = median_time(lambda raw=raw: jit.compile(raw, cache=False, verify=False, **options).close(), runs)
        before, os.environ["BPFJIT_ASSEMBLER"] = os.environ.get("BPFJIT_ASSEMBLER"), "keystone"
        try:
            keystone = median_time(lambda raw=raw: jit.compile(raw, cache=False, verify=False, **options).close(), runs)
        finally:
            os.environ.pop("BPFJIT_ASSEMBLER")
            if before is not None:
                os.environ["BPFJIT_ASSEMBLER"] = before
        jit.compile(raw, **options).close()  # fills the cache
        cached = median_time(lambda raw=raw: jit.compile(raw, **options).close(), runs)
        with tempfile.TemporaryDirectory() as directory:
            jit.compile(raw, cache_dir=directory, **options).close()  # writes the file

            def from_disk(raw: bytes = raw, directory: str = directory) -> None:
                CACHE.clear()
                jit.compile(raw, cache_dir=directory, **options).close()

            on_disk = median_time(from_disk, runs)
        rows.append((bench.name, len(raw) // 8, verified, unverified, keystone, cached, on_disk))
    return rows


def call_cost(calls: int) -> list[tuple[str, float]]:
    """Seconds per call of ``mov r0, 1; exit``: ``fn(mem)`` for each kind of
    buffer, one ``run_many`` iteration, and one item of ``fn.run_batch``."""
    fn = jit.compile("mov %r0, 1\nexit")
    rows = []
    buffers = {"fn()": None, "fn(bytes(64))": bytes(64), "fn(bytearray(64))": bytearray(64)}
    buffers["fn(memoryview(bytearray(64)))"] = memoryview(bytearray(64))
    for name, mem in buffers.items():

        def batch(mem: object = mem) -> None:
            for _ in range(calls):
                fn(mem)

        rows.append((f"{name} from Python", median_time(batch, 15) / calls))
    rows.append(("one iteration of fn.run_many", median_time(lambda: fn.run_many(None, calls * 10), 15) / (calls * 10)))
    for items in (1_000, calls * 10):
        packets = jit.PacketBatch.from_packets([bytes(64)] * items)
        rows.append(
            (
                f"one item of fn.run_batch ({items:,} buffers of 64 bytes)",
                median_time(lambda p=packets: fn.run_batch(p), 15) / items,
            )
        )
    return rows


def loop_speedup(iterations: int, native_batch: int) -> tuple[float, float]:
    """Seconds per run of the loop on the interpreter and natively."""
    prog = jit.assemble(LOOP.format(iterations=iterations))
    expected = jit.interpret(prog)
    interpreter = median_time(lambda: jit.interpret(prog), 5)
    fn = jit.compile(prog)
    assert fn() == expected
    native = median_time(lambda: fn.run_many(None, native_batch), 7) / native_batch
    return interpreter, native


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and counts (a smoke run)")
    parser.add_argument("--arch", default=None, help="compile for this arch (emulated when foreign); default host")
    args = parser.parse_args(argv)
    sizes = [100, 10_000] if args.quick else [100, 10_000, 1_000_000]
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print()
    print("| compile | slots | BPF instructions/s |")
    print("|---|---:|---:|")
    for slots, rate in compile_throughput(sizes, args.arch):
        print(f"| jit.compile | {slots:,} | {rate:,.0f} |")
    print()
    print("| bench program | slots | jit.compile | verify=False | verify=False, keystone alone | cached | on disk |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, slots, *seconds in bench_compiles(args.arch, 3 if args.quick else 11):
        verified, unverified, keystone, cached, on_disk = seconds
        times = f"{verified * 1e3:.2f} ms | {unverified * 1e3:.2f} ms | {keystone * 1e3:.2f} ms"
        print(f"| {name} | {slots} | {times} | {cached * 1e6:.0f} us | {on_disk * 1e6:.0f} us |")
    print()
    print("| call of `mov r0, 1; exit` | time (median) |")
    print("|---|---:|")
    for name, seconds in call_cost(1_000 if args.quick else 20_000):
        print(f"| {name} | {seconds * 1e6:.3f} us |" if seconds >= 1e-6 else f"| {name} | {seconds * 1e9:.1f} ns |")
    iterations = 20_000 if args.quick else 250_000
    interpreter, native = loop_speedup(iterations, 20 if args.quick else 200)
    print()
    print(f"| loop of {iterations:,} iterations (4 instructions each) | time per run |")
    print("|---|---:|")
    print(f"| interpreter (median of 5) | {interpreter * 1e3:.2f} ms |")
    print(f"| native x86-64 run_many (median of 7 batches) | {native * 1e3:.4f} ms |")
    print(f"| speedup | {interpreter / native:,.0f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
