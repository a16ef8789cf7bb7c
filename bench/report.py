"""What a benchmark run reports: derived figures, the rich tables, the JSON file, the chart.

speedup = interpreter time / JIT time and ratio = JIT time / native C time,
per program and per JIT engine, with their geometric means over the programs
where both figures exist.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.table import Table

from jit.bench import native
from jit.bench.measure import INTERPRETER, JIT, NATIVE, BenchEngine, Case, EngineResult
from jit.bench.timing import Timing

SCHEMA = "bpfjit-bench/1"
PACKAGES = ("bpfjit", "keystone-engine", "capstone", "unicorn", "pyelftools", "rich", "matplotlib")


@dataclass
class ProgramResult:
    """Every engine's figures for one program."""

    case: Case
    steps: int | None = None  # executed BPF instructions (one interpreter run)
    engines: dict[str, EngineResult] = field(default_factory=dict)

    def _run(self, kind: str) -> float | None:
        found = [r for r in self.engines.values() if r.engine.kind == kind and r.ok]
        return found[0].run_s if found else None

    def speedup(self, name: str) -> float | None:
        """Interpreter time / this engine's time."""
        interp, own = self._run(INTERPRETER), self.engines[name].run_s if name in self.engines else None
        return interp / own if interp and own else None

    def ratio(self, name: str) -> float | None:
        """This engine's time / native C time."""
        base, own = self._run(NATIVE), self.engines[name].run_s if name in self.engines else None
        return own / base if base and own else None

    @property
    def failures(self) -> list[EngineResult]:
        return [r for r in self.engines.values() if r.status == "failure"]


def geomean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def jit_engines(engines: list[BenchEngine]) -> list[BenchEngine]:
    return [e for e in engines if e.kind == JIT]


def primary_engine(engines: list[BenchEngine]) -> BenchEngine | None:
    """The JIT the summary is about: the host's native one, else the first JIT."""
    jits = jit_engines(engines)
    return next((e for e in jits if not e.emulated), jits[0] if jits else None)


def geomeans(results: list[ProgramResult], engines: list[BenchEngine]) -> dict[str, dict[str, float | None]]:
    """Geometric mean of speedups and of ratios per JIT engine."""
    out: dict[str, dict[str, float | None]] = {"speedup": {}, "ratio": {}}
    for engine in jit_engines(engines):
        for key, figure in (("speedup", ProgramResult.speedup), ("ratio", ProgramResult.ratio)):
            values = [v for r in results if (v := figure(r, engine.name)) is not None]
            out[key][engine.name] = geomean(values)
    return out


# --- formatting -------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_factor(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.3g}x"


def _runs(timing: Timing | None) -> str:
    return "-" if timing is None else f"{timing.runs_per_batch} x {timing.batches}"


def _cell(result: EngineResult | None, show_runs: bool = False) -> str:
    if result is None:
        return "-"
    if result.status == "failure":
        return "[bold red]FAILURE[/]"
    if result.status == "skipped":
        return "[dim]skipped[/]"
    text = fmt_time(result.run_s)
    return f"{text} [dim]x{result.run.runs}[/]" if show_runs else text


Figure = Callable[["ProgramResult", str], float | None]


def _factors(engines: list[BenchEngine]) -> list[tuple[str, Figure]]:
    """The derived figures this set of engines allows: speedup needs the interpreter, ratio native C."""
    kinds = {e.kind for e in engines}
    wanted = (("speedup", INTERPRETER, ProgramResult.speedup), ("ratio", NATIVE, ProgramResult.ratio))
    return [(key, figure) for key, kind, figure in wanted if kind in kinds]


def summary_table(results: list[ProgramResult], engines: list[BenchEngine]) -> Table:
    """Per program: time per run on each engine, speedup and ratio of the primary JIT."""
    primary = primary_engine(engines)
    factors = _factors(engines) if primary else []
    table = Table(
        title="Time per run (median; xN = interpreter runs timed) - speedup = interpreter / JIT, ratio = JIT / native C"
    )
    table.add_column("program")
    table.add_column("BPF insns\nexecuted", justify="right")
    for engine in engines:
        table.add_column(engine.label, justify="right")
    for key, _ in factors:
        table.add_column(f"{key}\n({primary.name})", justify="right")
    for res in results:
        row = [res.case.name, "-" if res.steps is None else f"{res.steps:,}"]
        row += [_cell(res.engines.get(e.name), show_runs=e.kind == INTERPRETER) for e in engines]
        row += [fmt_factor(figure(res, primary.name)) for _, figure in factors]
        table.add_row(*row)
    if factors:
        means = geomeans(results, engines)
        table.add_section()
        blanks = [""] * (len(engines) + 1)
        table.add_row(
            "geometric mean", *blanks, *(fmt_factor(means[key][primary.name]) for key, _ in factors), style="bold"
        )
    return table


def detail_table(results: list[ProgramResult], engines: list[BenchEngine]) -> Table:
    """Per program and engine: compile time, run time, Python call cost, runs timed, code size."""
    table = Table(title="Details (times are medians; runs timed = runs per batch x batches)")
    for name, justify in (
        ("program", "left"),
        ("engine", "left"),
        ("compile", "right"),
        ("per run", "right"),
        ("per fn(mem) call\nfrom Python", "right"),
        ("runs timed", "right"),
        ("code bytes /\nBPF insn", "right"),
        ("speedup", "right"),
        ("ratio", "right"),
    ):
        table.add_column(name, justify=justify)
    for res in results:
        for engine in engines:
            r = res.engines.get(engine.name)
            if r is None:
                continue
            if not r.ok:
                status = "[bold red]FAILURE[/]" if r.status == "failure" else "[dim]skipped[/]"
                table.add_row(res.case.name, engine.label, f"{status} {r.detail}", *[""] * 6)
                continue
            jit = engine.kind == JIT
            table.add_row(
                res.case.name,
                engine.label,
                fmt_time(r.compile_s),
                fmt_time(r.run_s),
                fmt_time(r.call_s),
                _runs(r.run),
                "-" if r.bytes_per_insn is None else f"{r.bytes_per_insn:.1f}",
                fmt_factor(res.speedup(engine.name)) if jit else "",
                fmt_factor(res.ratio(engine.name)) if jit else "",
            )
        table.add_section()
    return table


def print_report(console: Console, results: list[ProgramResult], engines: list[BenchEngine]) -> None:
    console.print(detail_table(results, engines))
    console.print(summary_table(results, engines))
    for res in results:
        for r in res.failures:
            console.print(f"FAILURE {res.case.name} on {r.engine.name}: {r.detail}", style="bold red", markup=False)


# --- JSON -------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, object]:
    """What the figures were measured on."""
    found = native.compiler()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _version(name) for name in PACKAGES},
        "c_compiler": found[1] if found else None,
    }


def _engine_json(engine: BenchEngine) -> dict[str, object]:
    return {
        "name": engine.name,
        "label": engine.label,
        "kind": engine.kind,
        "arch": engine.arch,
        "emulated": engine.emulated,
    }


def _result_json(r: EngineResult) -> dict[str, object]:
    return {
        **_engine_json(r.engine),
        "status": r.status,
        "detail": r.detail,
        "result": r.result,
        "compile_seconds": r.compile_s,
        "compile_samples": r.compile,
        "run_seconds": r.run_s,
        "run": r.run.as_dict() if r.run else None,
        "call_seconds": r.call_s,
        "call": r.call.as_dict() if r.call else None,
        "code_bytes": r.code_bytes,
        "code_bytes_per_instruction": r.bytes_per_insn,
    }


def _program_json(res: ProgramResult, engines: list[BenchEngine]) -> dict[str, object]:
    case = res.case
    return {
        "name": case.name,
        "description": case.description,
        "checked": case.benchmark is not None,
        "size": case.size,
        "unit": case.unit,
        "input_bytes": len(case.mem),
        "bpf_instructions": len(case.prog.instructions),
        "bpf_slots": len(case.prog),
        "executed_instructions": res.steps,
        "expected": case.expected,
        "engines": {name: _result_json(r) for name, r in res.engines.items()},
        "speedup": {e.name: res.speedup(e.name) for e in jit_engines(engines)},
        "ratio": {e.name: res.ratio(e.name) for e in jit_engines(engines)},
    }


def report_json(results: list[ProgramResult], engines: list[BenchEngine], settings: dict[str, object]) -> dict:
    """Every figure of the run, with the machine and the settings."""
    failures = [
        {"program": res.case.name, "engine": r.engine.name, "detail": r.detail} for res in results for r in res.failures
    ]
    return {
        "schema": SCHEMA,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": settings,
        "engines": [_engine_json(e) for e in engines],
        "programs": [_program_json(res, engines) for res in results],
        "geomean": geomeans(results, engines),
        "failures": failures,
        "ok": not failures,
    }


def markdown_table(report: dict) -> str:
    """The summary table of a :func:`report_json` report in Markdown (for the README)."""
    engines = report["engines"]
    jits = [e for e in engines if e["kind"] == JIT]
    primary = next((e for e in jits if not e["emulated"]), jits[0] if jits else None)
    head = ["program", "BPF insns executed", *(e["label"] for e in engines)]
    if primary:
        head += [f"speedup ({primary['name']})", f"ratio ({primary['name']})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for prog in report["programs"]:
        row = [prog["name"], "-" if prog["executed_instructions"] is None else f"{prog['executed_instructions']:,}"]
        for engine in engines:
            figures = prog["engines"].get(engine["name"])
            if figures is None or figures["status"] != "ok":
                row.append("FAILURE" if figures and figures["status"] == "failure" else "-")
                continue
            runs = figures["run"]["runs_per_batch"] * figures["run"]["batches"]
            extra = f" (x{runs})" if engine["kind"] == INTERPRETER else ""
            row.append(fmt_time(figures["run_seconds"]) + extra)
        if primary:
            row += [fmt_factor(prog["speedup"].get(primary["name"])), fmt_factor(prog["ratio"].get(primary["name"]))]
        lines.append("| " + " | ".join(row) + " |")
    if primary:
        means = [fmt_factor(report["geomean"][key].get(primary["name"])) for key in ("speedup", "ratio")]
        cells = ["**geometric mean**", *[""] * (len(engines) + 1), *(f"**{m}**" for m in means)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- chart ------------------------------------------------------------------------


def write_plot(path: Path, results: list[ProgramResult], engines: list[BenchEngine]) -> None:
    """A PNG: speedup over the interpreter and ratio to native C per program, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    jits = jit_engines(engines)
    names = [res.case.name for res in results] + ["geometric mean"]
    means = geomeans(results, engines)
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.75 * len(names) + 3), 8), sharex=True)
    panels = (
        ("speedup", ProgramResult.speedup, "speedup = interpreter time / JIT time (higher is better)"),
        ("ratio", ProgramResult.ratio, "ratio = JIT time / native C (gcc -O2) time (lower is better)"),
    )
    width = 0.8 / max(len(jits), 1)
    for ax, (key, figure, title) in zip(axes, panels):
        for i, engine in enumerate(jits):
            values = [figure(res, engine.name) for res in results] + [means[key][engine.name]]
            xs = [x + (i - (len(jits) - 1) / 2) * width for x in range(len(names))]
            # Bars grow from 1.0 (parity), up or down: on a log axis a bar from the
            # axis bottom would make a 0.9x ratio look like most of a 2x one.
            heights = [v - 1.0 if v else float("nan") for v in values]
            ax.bar(xs, heights, width, bottom=1.0, label=engine.label)
        ax.set_yscale("log")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(title)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize="small")
    axes[-1].set_xticks(range(len(names)))
    axes[-1].set_xticklabels(names, rotation=35, ha="right")
    fig.suptitle("bpfjit benchmarks")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
