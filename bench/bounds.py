"""``bpfjit bench --bounds``: the cost of run-time bounds checks and of the verifier.

Per program, on one JIT engine (the host's native one unless ``--engine``
says otherwise): the time per run compiled with ``bounds_check=False``,
``"auto"`` and ``True`` (batches of the three interleaved round by round, so
that a change of machine load shifts all three alike), how many memory
accesses each mode checks, and the static verifier's time (median of
several :func:`jit.analysis.verifier.analyze` calls) with the instructions it
processed. Overhead = time with checks / time without, per program and as a
geometric mean over the programs, from the *fastest* batch of each mode: on
a shared machine the minimum is the figure least disturbed by other load. A
mode whose machine code is identical to False's (no access needed a check)
is not timed again: its overhead is 0 by construction.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from rich.table import Table

import jit
from jit.analysis.verifier import analyze
from jit.bench.measure import BenchEngine, Case
from jit.bench.report import fmt_factor, fmt_time, geomean
from jit.bench.timing import Budget, Timing, as_buffer, measure_interleaved
from jit.runtime.helpers import program_helpers
from jit.runtime.tailcalls import TailCallChain

# More, shorter batches than the other figures: overheads of a few percent need them.
FULL = Budget(batches=15, seconds=3.0, target=0.01, min_batch=0.005)
QUICK = Budget(batches=5, seconds=0.5, target=0.005, min_batch=0.002)

MODES: tuple[tuple[str, bool | str], ...] = (("off", False), ("auto", "auto"), ("all", True))
CHECKED_MODES = ("auto", "all")
VERIFIER_RUNS = 5


@dataclass
class BoundsResult:
    """One program's figures; ``runs`` and ``checked`` are keyed by mode name."""

    name: str
    accesses: int  # loads, stores and atomics in the program
    status: str = "ok"  # or "failure"
    detail: str = ""
    checked: dict[str, int] = field(default_factory=dict)
    runs: dict[str, Timing] = field(default_factory=dict)
    same_code: list[str] = field(default_factory=list)  # modes whose code is False's
    verifier_seconds: float | None = None
    insns_processed: int | None = None
    states_pruned: int | None = None

    def overhead(self, mode: str) -> float | None:
        """Time per run in ``mode`` / time per run without checks."""
        if mode not in self.runs or "off" not in self.runs:
            return None
        return min(self.runs[mode].samples) / min(self.runs["off"].samples)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "accesses": self.accesses,
            "checked": self.checked,
            "run_seconds": {mode: min(timing.samples) for mode, timing in self.runs.items()},
            "same_code_as_off": self.same_code,
            "runs": {mode: timing.as_dict() for mode, timing in self.runs.items()},
            "overhead": {mode: self.overhead(mode) for mode in CHECKED_MODES},
            "verifier_seconds": self.verifier_seconds,
            "verifier_insns_processed": self.insns_processed,
            "verifier_states_pruned": self.states_pruned,
        }


def measure_bounds(case: Case, engine: BenchEngine, budget: Budget) -> BoundsResult:
    """The three modes of ``case`` on ``engine`` (results checked first) and the verifier's cost."""
    prog = case.prog
    result = BoundsResult(case.name, sum(1 for _, insn in prog if insn.spec.access is not None))
    compiled: dict[str, jit.runtime.CompiledProgram] = {}
    try:
        helpers = program_helpers(prog, None, TailCallChain())
        times = []
        for _ in range(VERIFIER_RUNS):
            start = time.perf_counter()
            verification = analyze(prog, helpers=helpers)
            times.append(time.perf_counter() - start)
        result.verifier_seconds = statistics.median(times)
        result.insns_processed, result.states_pruned = verification.insns_processed, verification.states_pruned
        batches = {}
        for mode, setting in MODES:
            fn = compiled[mode] = jit.compile(prog, arch=engine.arch, emulate=engine.emulated, bounds_check=setting)
            result.checked[mode] = len(fn.native.checked)
            buf = as_buffer(bytes(case.mem))
            got = fn(buf)
            if case.expected is not None and got != case.expected:
                raise AssertionError(f"bounds_check={setting!r}: returned 0x{got:x}, expected 0x{case.expected:x}")
            if mode != "off" and fn.code == compiled["off"].code:
                result.same_code.append(mode)
            else:
                batches[mode] = lambda n, fn=fn, buf=buf: fn.run_many(buf, n)
        result.runs = measure_interleaved(batches, budget)
        result.runs.update({mode: result.runs["off"] for mode in result.same_code})
    except Exception as exc:  # reported as a failure, whatever went wrong
        result.status, result.detail = "failure", f"{type(exc).__name__}: {exc}"
        result.runs = {}
    finally:
        for fn in compiled.values():
            fn.close()
    return result


def overhead_geomeans(results: list[BoundsResult]) -> dict[str, float | None]:
    """Geometric mean of each checked mode's overhead over the programs."""
    out = {}
    for mode in CHECKED_MODES:
        values = [v for r in results if (v := r.overhead(mode)) is not None]
        out[mode] = geomean(values)
    return out


def _overhead(value: float | None) -> str:
    return "-" if value is None else f"{(value - 1) * 100:+.1f}%"


def _mode_cell(r: BoundsResult, mode: str) -> str:
    if mode in r.same_code:
        return "same code"
    return f"{fmt_time(min(r.runs[mode].samples))} ({_overhead(r.overhead(mode))})"


def bounds_table(results: list[BoundsResult], engine: BenchEngine) -> Table:
    """Per program: the verifier's cost, the accesses checked and the time per run in each mode."""
    table = Table(
        title=f"Bounds checks on the {engine.label}: fastest time per run with bounds_check=False / 'auto' / True"
        " (overhead vs False), checked accesses, verifier cost"
    )
    for name in ("program", "verifier", "insns\nprocessed", "accesses\nchecked auto/all", "False", "'auto'", "True"):
        table.add_column(name, justify="left" if name == "program" else "right")
    for r in results:
        if r.status != "ok":
            table.add_row(r.name, f"[bold red]FAILURE[/] {r.detail}", *[""] * 5)
            continue
        checked = f"{r.checked['auto']}/{r.checked['all']} of {r.accesses}"
        cells = [fmt_time(min(r.runs["off"].samples))]
        cells += [_mode_cell(r, m) for m in CHECKED_MODES]
        table.add_row(r.name, fmt_time(r.verifier_seconds), f"{r.insns_processed:,}", checked, *cells)
    means = overhead_geomeans(results)
    table.add_section()
    table.add_row(
        "geometric mean", "", "", "", "", *(f"{fmt_factor(means[m])} ({_overhead(means[m])})" for m in CHECKED_MODES)
    )
    return table


def bounds_json(results: list[BoundsResult], engine: BenchEngine) -> dict[str, object]:
    return {
        "engine": engine.name,
        "programs": [r.as_dict() for r in results],
        "overhead_geomean": overhead_geomeans(results),
    }


def bounds_markdown(report: dict) -> str:
    """The bounds-check table of a report's ``bounds`` section in Markdown."""
    section = report["bounds"]
    head = ["program", "verifier", "insns processed", "checked auto/all", "False", "'auto'", "True"]
    lines = [f"Bounds checks on {section['engine']}:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for prog in section["programs"]:
        if prog["status"] != "ok":
            lines.append(f"| {prog['name']} | FAILURE |" + " |" * 5)
            continue
        times, over = prog["run_seconds"], prog["overhead"]
        row = [
            prog["name"],
            fmt_time(prog["verifier_seconds"]),
            f"{prog['verifier_insns_processed']:,}",
            f"{prog['checked']['auto']}/{prog['checked']['all']} of {prog['accesses']}",
            fmt_time(times["off"]),
            *(
                "same code" if m in prog["same_code_as_off"] else f"{fmt_time(times[m])} ({_overhead(over[m])})"
                for m in CHECKED_MODES
            ),
        ]
        lines.append("| " + " | ".join(row) + " |")
    means = section["overhead_geomean"]
    cells = ["**geometric mean**", "", "", "", "", *(f"**{_overhead(means[m])}**" for m in CHECKED_MODES)]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
