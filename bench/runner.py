"""``bpfjit bench``: the benchmark suite (or a user's program) on every engine.

    bpfjit bench                          whole suite, default engines (a few minutes)
    bpfjit bench --quick                  smaller inputs, fewer repetitions (< 30 s)
    bpfjit bench --program crc32 --engine x86_64 --engine interpreter
    bpfjit bench --json out.json --plot out.png
    bpfjit bench prog.bin --mem input.dat your own program (.bin, .s or .o)
    bpfjit bench --bounds                 also: bounds_check=False/'auto'/True and verifier cost
    bpfjit bench --cbpf [--packets N]     instead: tcpdump filters over a generated capture
                                          against libpcap (:mod:`jit.bench.cbpf_bench`)

Per program and engine: compile time, time per run (median over batches of a
native repeat loop, after a warm-up), cost of one ``fn(mem)`` call from Python,
executed BPF instructions and code bytes per BPF instruction. Every result is
checked before anything is timed; a wrong one is a FAILURE and the exit status
is 1. JIT engines compile with the defaults (verified, ``bounds_check="auto"``);
``--bounds`` adds the cost of the checks (:mod:`jit.bench.bounds`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import jit
from jit.bench import native, suite
from jit.bench.bounds import FULL as BOUNDS_FULL
from jit.bench.bounds import QUICK as BOUNDS_QUICK
from jit.bench.bounds import BoundsResult, bounds_json, bounds_markdown, bounds_table, measure_bounds
from jit.bench.measure import (
    INTERPRETER,
    JIT,
    NATIVE,
    BenchEngine,
    Case,
    EngineResult,
    available_engines,
    default_engines,
    measure_interpreter,
    measure_jit,
    measure_native,
    reference_run,
)
from jit.bench.report import ProgramResult, markdown_table, primary_engine, print_report, report_json, write_plot
from jit.bench.timing import FULL, QUICK, Budget
from jit.frontend.loader import load_program

MIN_FILE_WIDTH = 160


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpfjit bench",
        description="Benchmark the JIT against the interpreter and native C (gcc -O2).",
        epilog="Times are medians per run; emulated engines run under unicorn and do not show native speed.",
    )
    parser.add_argument("file", nargs="?", type=Path, help="your own program (.bin bytecode, .s assembly, .o ELF)")
    parser.add_argument("--mem", type=Path, metavar="FILE", help="input buffer for your own program (default: empty)")
    parser.add_argument("--quick", action="store_true", help="smaller inputs and fewer repetitions (a smoke check)")
    parser.add_argument("--program", action="append", metavar="NAME", help="a suite program (repeatable)")
    parser.add_argument("--engine", action="append", metavar="NAME", help="an engine (repeatable); see --list")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every figure and the machine info as JSON")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="write a PNG chart of speedups and ratios")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write the summary table as Markdown")
    parser.add_argument("--list", action="store_true", help="list the suite programs and the engines, then exit")
    parser.add_argument(
        "--bounds",
        action="store_true",
        help="also time each program with bounds_check=False, 'auto' and True on the main JIT, and the verifier",
    )
    parser.add_argument(
        "--cbpf",
        action="store_true",
        help="instead of the suite: classic BPF filters (tcpdump expressions) over a generated capture, "
        "the JIT's batch path against libpcap's interpreter and tcpdump",
    )
    parser.add_argument(
        "--packets",
        type=int,
        metavar="N",
        help="with --cbpf: packets in the capture (default 1,000,000; --quick 20,000)",
    )
    return parser


def run_cbpf(args: argparse.Namespace) -> int:
    """``bpfjit bench --cbpf``: the classic BPF benchmark with this command's options."""
    others = [name for name in ("file", "mem", "program", "engine", "plot", "markdown") if getattr(args, name)]
    if args.bounds or args.list or others:
        options = ["--" + name for name in others if name != "file"] + (["--bounds"] if args.bounds else [])
        raise UsageError(f"--cbpf takes only --quick, --packets and --json, not {', '.join(options) or 'a program'}")
    from jit.bench import cbpf_bench

    argv = ["--quick"] if args.quick else []
    argv += ["--packets", str(args.packets)] if args.packets is not None else []
    argv += ["--json", str(args.json)] if args.json else []
    return cbpf_bench.main(argv)


def select_engines(names: list[str] | None) -> list[BenchEngine]:
    """The engines asked for; the default set without names."""
    found = available_engines()
    if not names:
        return default_engines(found)
    by_name = {e.name: e for e in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UsageError(f"unknown engine {', '.join(unknown)}; available here: {', '.join(by_name)}")
    wanted = set(names)
    return [e for e in found if e.name in wanted]  # the usual order: interpreter, JITs, native


def suite_cases(names: list[str] | None, size: str) -> list[Case]:
    try:
        benches = [suite.get(n) for n in dict.fromkeys(names)] if names else list(suite.SUITE)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    return [Case.from_benchmark(b, size) for b in benches]


def user_case(path: Path, mem_path: Path | None) -> Case:
    """A case for the user's own program: unchecked, the interpreter's result is the reference."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.suffix.lower() == ".o":
        from_elf = getattr(jit.Program, "from_elf", None)
        if from_elf is None:
            raise UsageError(f"{path}: ELF loading is not available yet; give the bytecode (.bin) or assembly (.s)")
        prog = from_elf(path)
    else:
        prog = load_program(path)
    mem = mem_path.read_bytes() if mem_path else b""
    return Case(path.stem, f"your program {path}", prog, mem, expected=None, size=len(mem))


def run_case(
    case: Case, engines: list[BenchEngine], budget: Budget, compiles: int, step: Callable[[str], None]
) -> ProgramResult:
    """Every engine on one case; ``step(text)`` reports progress."""
    step(f"{case.name}: reference interpreter run")
    first = reference_run(case)
    outcome, _, buf = first
    result = ProgramResult(case, steps=None if isinstance(outcome, Exception) else outcome.steps)
    if case.expected is None:  # a user's program: every engine must agree with the interpreter
        if isinstance(outcome, Exception):
            detail = f"nothing to compare with, the interpreter failed: {type(outcome).__name__}: {outcome}"
            result.engines = {e.name: EngineResult(e, "failure", detail) for e in engines}
            return result
        case.expected, case.expected_memory = outcome.r0, bytes(buf)
    for engine in engines:
        step(f"{case.name}: {engine.label}")
        if engine.kind == INTERPRETER:
            result.engines[engine.name] = measure_interpreter(case, first, budget)
        elif engine.kind == JIT:
            result.engines[engine.name] = measure_jit(case, engine, budget, compiles)
        elif engine.kind == NATIVE:
            result.engines[engine.name] = measure_native(case, budget)
    return result


def run_all(
    console: Console, cases: list[Case], engines: list[BenchEngine], budget: Budget, compiles: int
) -> list[ProgramResult]:
    """Every case on every engine, with a progress bar."""
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(cases) * (len(engines) + 1))

        def step(text: str) -> None:
            progress.update(task, description=text)

        for case in cases:
            result = run_case(case, engines, budget, compiles, step)
            results.append(result)
            progress.advance(task, len(engines) + 1)
    return results


def run_bounds(console: Console, cases: list[Case], engine: BenchEngine, budget: Budget) -> list[BoundsResult]:
    """The bounds-check study of every case on ``engine``, with a progress bar."""
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("bounds checks", total=len(cases))
        for case in cases:
            progress.update(task, description=f"{case.name}: bounds checks on {engine.label}")
            results.append(measure_bounds(case, engine, budget))
            progress.advance(task)
    return results


def _notes(console: Console, engines: list[BenchEngine], budget: Budget, user: bool) -> None:
    console.print(f"engines: {', '.join(e.label for e in engines)}", markup=False)
    console.print(
        f"each time: median over up to {budget.batches} batches (~{budget.target * 1e3:.0f} ms each, after a warm-up);"
        " the interpreter has no batch loop: the number of runs it was timed over is shown next to its time",
        markup=False,
    )
    if any(e.emulated for e in engines):
        console.print("emulated engines run the generated machine code under unicorn: not native speed", markup=False)
    if user:
        console.print("your program: results unchecked, every engine must agree with the interpreter", markup=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bpfjit bench``; returns the exit status."""
    args = _parser().parse_args(argv)
    console = Console()
    if not console.is_terminal:  # a file or a pipe: no wrapping of the wide tables
        console = Console(width=max(console.width, MIN_FILE_WIDTH))
    try:
        if args.cbpf:
            return run_cbpf(args)
        if args.packets is not None:
            raise UsageError("--packets only applies to --cbpf")
        engines = select_engines(args.engine)
        if args.list:
            for b in suite.SUITE:
                console.print(f"program {b.name}: {b.description}", markup=False, soft_wrap=True)
            for e in available_engines():
                console.print(f"engine {e.name}: {e.label}", markup=False, soft_wrap=True)
            return 0
        if args.file is not None:
            if args.program:
                raise UsageError("give either your own program or --program, not both")
            cases = [user_case(args.file, args.mem)]
            engines = [e for e in engines if e.kind != NATIVE]
        else:
            if args.mem is not None:
                raise UsageError("--mem only applies to your own program (bpfjit bench FILE --mem DATA)")
            cases = suite_cases(args.program, "quick" if args.quick else "full")
        bounds_engine = primary_engine(engines) if args.bounds else None
        if args.bounds and bounds_engine is None:
            raise UsageError("--bounds needs a JIT engine")
    except (UsageError, OSError, jit.BpfError) as exc:
        console.print(f"bpfjit bench: error: {exc}", style="red", markup=False)
        return 2
    budget, compiles = (QUICK, 3) if args.quick else (FULL, 5)
    _notes(console, engines, budget, user=args.file is not None)
    if any(e.kind == NATIVE for e in engines) and native.compiler() is None:
        console.print("native C skipped: no C compiler found ($CC, gcc or cc)", markup=False)
    results = run_all(console, cases, engines, budget, compiles)
    print_report(console, results, engines)
    bounds_budget = BOUNDS_QUICK if args.quick else BOUNDS_FULL
    bounds = run_bounds(console, cases, bounds_engine, bounds_budget) if bounds_engine else []
    if bounds_engine:
        console.print(bounds_table(bounds, bounds_engine))
    settings = {
        "quick": args.quick,
        "size": "quick" if args.quick else "full",
        "budget": asdict(budget),
        "compiles": compiles,
        "user_program": str(args.file) if args.file else None,
    }
    report = report_json(results, engines, settings)
    markdown = markdown_table(report)
    if bounds_engine:
        report["bounds"] = bounds_json(bounds, bounds_engine)
        report["ok"] = report["ok"] and all(r.status == "ok" for r in bounds)
        markdown += "\n" + bounds_markdown(report)
    for path, text in ((args.json, json.dumps(report, indent=2) + "\n"), (args.markdown, markdown)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            console.print(f"wrote {path}", markup=False)
    if args.plot:
        write_plot(args.plot, results, engines)
        console.print(f"wrote {args.plot}", markup=False)
    return 1 if any(res.failures for res in results) or any(r.status != "ok" for r in bounds) else 0
