"""Interpreter speed: executed instructions per second on a tight arithmetic loop.

    python bench/interp_speed.py [--iterations N] [--repeat R]

Runs a loop of 4 ALU/JMP instructions ``N`` times (default 250,000, so about
1,000,000 executed instructions) ``R`` times and prints the median rate. A
script, not a test: the figure depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time

import jit
from jit.runtime.interpreter import run

LOOP = """
    mov %r0, 0
    mov %r1, {iterations}
loop:
    add %r0, %r1
    xor %r0, 0x55
    sub %r1, 1
    jne %r1, 0, loop
    exit
"""


def measure(iterations: int, repeat: int) -> tuple[int, list[float]]:
    """Executed instructions per run and the rate (instructions/s) of each run."""
    prog = jit.assemble(LOOP.format(iterations=iterations))
    run(prog)  # decode once, outside the timing
    rates, steps = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        steps = run(prog).steps
        rates.append(steps / (time.perf_counter() - start))
    return steps, rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=250_000, help="loop iterations per run")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs (the median is reported)")
    args = parser.parse_args(argv)
    steps, rates = measure(args.iterations, args.repeat)
    command = shlex.join([sys.executable, *sys.argv])
    print(f"command: {command}")
    print(f"executed instructions per run: {steps:,}")
    print(f"runs: {args.repeat}, min {min(rates):,.0f}/s, max {max(rates):,.0f}/s")
    print(f"interpreter: {statistics.median(rates):,.0f} instructions/second (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
