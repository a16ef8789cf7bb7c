"""How a time is measured: batches of runs, the median per run, within a time budget.

A *batch* is a callable ``batch(n)`` that performs ``n`` runs (one native
``fn.run_many(mem, n)``, or a Python loop of ``n`` calls). :func:`measure`
warms up with one batch of one run, grows ``n`` until a batch takes at least
``Budget.min_batch`` seconds (aiming at ``Budget.target``), then times up to
``Budget.batches`` batches, as many as ``Budget.seconds`` allows (at least
one), and reports the median of the per-run times.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Mem = bytes | bytearray | memoryview | None

MAX_BATCH = 1 << 30


@dataclass(frozen=True)
class Budget:
    """How much measuring one figure may cost."""

    batches: int = 7  # batches timed at most
    seconds: float = 1.5  # time for all batches together (at least one batch is timed)
    target: float = 0.02  # wanted duration of one batch
    min_batch: float = 0.01  # a batch shorter than this is too noisy: grow it


FULL = Budget()
QUICK = Budget(batches=3, seconds=0.25, target=0.01, min_batch=0.005)


@dataclass(frozen=True)
class Timing:
    """The median time of one run, and how it was obtained."""

    seconds: float  # median over batches of (batch time / runs per batch)
    runs_per_batch: int
    batches: int
    samples: tuple[float, ...]  # per-run time of each timed batch

    @property
    def runs(self) -> int:
        return self.runs_per_batch * self.batches

    def as_dict(self) -> dict[str, object]:
        return {
            "seconds": self.seconds,
            "runs_per_batch": self.runs_per_batch,
            "batches": self.batches,
            "min_seconds": min(self.samples),
            "samples": list(self.samples),
        }


def timed(batch: Callable[[int], object], n: int) -> float:
    """Wall-clock seconds of one batch of ``n`` runs."""
    start = time.perf_counter()
    batch(n)
    return time.perf_counter() - start


def measure(batch: Callable[[int], object], budget: Budget = FULL, first: float | None = None) -> Timing:
    """The median time per run of ``batch``.

    ``first`` is the time of a run the caller has already made (and checked); it
    serves as the warm-up, and as the only sample when a single run is longer
    than the whole budget (slow engines: the interpreter on big inputs).
    """
    elapsed = timed(batch, 1) if first is None else first
    if elapsed >= budget.seconds:
        if first is None:
            elapsed = timed(batch, 1)
        return Timing(elapsed, 1, 1, (elapsed,))
    n, elapsed = calibrate(batch, budget, elapsed)
    count = max(1, min(budget.batches, int(budget.seconds / max(elapsed, 1e-9))))
    samples = tuple(timed(batch, n) / n for _ in range(count))
    return Timing(statistics.median(samples), n, count, samples)


def calibrate(batch: Callable[[int], object], budget: Budget, elapsed: float) -> tuple[int, float]:
    """Runs per batch (and that batch's time) so that a batch lasts at least
    ``budget.min_batch``; ``elapsed`` is the time of one run."""
    n = 1
    while elapsed < budget.min_batch and n < MAX_BATCH:
        n = min(MAX_BATCH, max(2 * n, int(n * budget.target / max(elapsed, 1e-9))))
        elapsed = timed(batch, n)
    return n, elapsed


def measure_interleaved(batches: Mapping[str, Callable[[int], object]], budget: Budget = FULL) -> dict[str, Timing]:
    """:func:`measure` for several variants of one workload, their batches
    interleaved round by round, so that a change of machine load (frequency,
    other processes) shifts every variant alike. Each batch has run once
    (checked) before; one round of all variants fits the budget at least once."""
    sizes = {name: calibrate(batch, budget, timed(batch, 1)) for name, batch in batches.items()}
    round_time = sum(elapsed for _, elapsed in sizes.values())
    rounds = max(1, min(budget.batches, int(budget.seconds / max(round_time, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in batches}
    for _ in range(rounds):
        for name, batch in batches.items():
            n = sizes[name][0]
            samples[name].append(timed(batch, n) / n)
    return {
        name: Timing(statistics.median(times), sizes[name][0], rounds, tuple(times)) for name, times in samples.items()
    }


def repeat_calls(call: Callable[[], object]) -> Callable[[int], None]:
    """A batch of ``n`` Python-level calls of ``call``."""

    def batch(n: int) -> None:
        for _ in range(n):
            call()

    return batch


def as_buffer(mem: Mem) -> bytearray:
    """A bytearray holding ``mem`` (the object itself when it is one, so writes land in it)."""
    if isinstance(mem, bytearray):
        return mem
    return bytearray(b"" if mem is None else mem)
