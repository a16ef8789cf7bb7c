"""Array-map lookups: the native fast path versus a Python helper callback.

    python bench/map_lookup.py [--lookups N] [--quick] [--emulated]

One program does N ``bpf_map_lookup_elem`` calls on an array map (keys
cycling through 0..7, each value loaded and summed). It is compiled twice:
``jit.compile(prog)`` (array lookups served by the generated stub of
backends.base) and ``jit.compile(prog, fast_lookup=False)`` (every lookup a
call of the Python helper through the ctypes dispatcher). Both must return the
same sum; the figures are the median time per run (jit.bench.timing.measure over
``fn.run_many`` batches) and per lookup. ``--emulated`` adds the unicorn
engines, where the callback is a unicorn hook instead.

A script, not a test: the figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import jit
from jit.bench.timing import FULL, QUICK, Budget, measure
from jit.core.isa import Op
from jit.frontend.elf import Relocation
from jit.frontend.maps import ArrayMap
from jit.frontend.program import Program
from jit.tools.engines import Engine, engines

KEYS = 8

LOOP = """
    mov %r6, 0
    mov %r7, 0
loop:
    mov %r1, %r6
    and %r1, {mask}
    stxw [%r10-4], %r1
    lddw %r1, {table:#x}
    mov %r2, %r10
    add %r2, -4
    call 1
    jeq %r0, 0, skip
    ldxdw %r1, [%r0]
    add %r7, %r1
skip:
    add %r6, 1
    jne %r6, {lookups}, loop
    mov %r0, %r7
    exit
"""


def lookup_program(lookups: int) -> tuple[Program, int]:
    """The program and the sum it must return (value of key k: 3k + 1)."""
    table = ArrayMap("values", 4, 8, KEYS)
    for key in range(KEYS):
        table.update(key, 3 * key + 1)
    code = jit.assemble(LOOP.format(mask=KEYS - 1, table=table.address, lookups=lookups))
    # Name the map at its lddw the way the ELF loader does, so the verifier types the pointer.
    (lddw,) = [pc for pc, insn in code if insn.op is Op.LDDW]
    reloc = Relocation(lddw, "map", "values", 0, 0, "values")
    prog = Program(code.instructions, maps={"values": table}, memory=table.memory, relocations=(reloc,))
    return prog, sum(3 * (i % KEYS) + 1 for i in range(lookups))


def time_engine(engine: Engine, prog: Program, expected: int, budget: Budget) -> dict[bool, float]:
    """Seconds per run with and without the fast path."""
    out = {}
    for fast in (True, False):
        fn = jit.compile(prog, arch=engine.arch, emulate=engine.emulated, fast_lookup=fast)
        if fn() != expected:
            raise SystemExit(f"{engine.name} (fast_lookup={fast}) returned {fn()}, expected {expected}")
        out[fast] = measure(lambda n, fn=fn: fn.run_many(None, n), budget).seconds
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=1000, help="lookups per run (default 1000)")
    parser.add_argument("--quick", action="store_true", help="a short measuring budget (a smoke run)")
    parser.add_argument("--emulated", action="store_true", help="also measure the unicorn engines")
    args = parser.parse_args(argv)
    if args.lookups < 1:
        parser.error("--lookups must be at least 1")
    budget = QUICK if args.quick else FULL
    prog, expected = lookup_program(args.lookups)
    chosen = [e for e in engines() if e.arch is not None and (args.emulated or not e.emulated)]
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print()
    print("| engine | lookups/run | fast path: per run | per lookup | Python callback: per run | per lookup | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for engine in chosen:
        times = time_engine(engine, prog, expected, budget)
        fast, slow = times[True], times[False]
        n = args.lookups
        print(
            f"| {engine.name} | {n:,} | {fast * 1e6:,.1f} us | {fast / n * 1e9:,.1f} ns "
            f"| {slow * 1e6:,.1f} us | {slow / n * 1e9:,.1f} ns | {slow / fast:,.1f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
