"""The ``bpfjit`` command line.

    bpfjit run PROGRAM [--mem FILE] [--engine NAME | --arch ARCH] [--repeat N] [--section NAME] [--dump-maps]
    bpfjit sections FILE.o                 programs and maps of a clang-built ELF object
    bpfjit disasm PROGRAM [--native ARCH] [--section NAME]
    bpfjit asm FILE.s -o FILE.bin
    bpfjit conformance [DIR] [--engine NAME ...]
    bpfjit check PROGRAM [--mem FILE] [--section NAME]   every engine, compared with the interpreter
    bpfjit fuzz [--count N] [--seed S]     random programs on every engine
    bpfjit bench [...]                     (see ``bpfjit bench --help``)
    bpfjit filter EXPR FILE.pcap [-w OUT] [--count]   tcpdump filter, JIT-compiled (jit.tools.cli_cbpf)
    bpfjit cbpf EXPR [-d|--dd|--ddd]       classic BPF, eBPF and machine code of a filter
    bpfjit cache [--dir DIR] [--clear]     the on-disk code cache (BPFJIT_CACHE_DIR)

PROGRAM is raw bytecode (.bin), assembly (.s/.asm), a conformance test (.data)
or an ELF object built with ``clang -target bpf`` (``--section`` picks the program).
Every failure the library reports is printed as one clear line with exit status 1;
Ctrl-C stops a running program at once (exit status 130).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jit
from jit.core.errors import BpfError
from jit.frontend.loader import load_program
from jit.frontend.program import Program
from jit.tools.cli_cache import add_cache_command
from jit.tools.cli_cbpf import add_commands as add_classic_commands
from jit.tools.engines import Engine, engines


def _engine(name: str) -> Engine:
    available = {engine.name: engine for engine in engines()}
    if name not in available:
        raise SystemExit(f"bpfjit: unknown engine {name!r}; available here: {', '.join(available)}")
    return available[name]


def _read_mem(path: str | None) -> bytearray | None:
    return bytearray(Path(path).read_bytes()) if path else None


def _run_engine(args: argparse.Namespace) -> Engine:
    """``--engine``, or the engine ``--arch`` means here (native on the host, else emulated)."""
    if args.arch is None:
        return _engine(args.engine or (engines()[1].name if len(engines()) > 1 else "interpreter"))
    by_arch = next(e for e in engines() if e.arch == args.arch and (e.name == args.arch or e.emulated))
    if args.engine is not None and args.engine != by_arch.name:
        raise SystemExit(f"bpfjit: --arch {args.arch} runs on {by_arch.name}, not --engine {args.engine}")
    return by_arch


def cmd_run(args: argparse.Namespace) -> int:
    prog = load_program(args.program, args.section)
    engine = _run_engine(args)
    options = {"max_steps": args.max_steps} if args.max_steps else {}
    run = engine.prepare(prog, **options)
    mem = _read_mem(args.mem)
    traced = len(prog.trace_log)
    started = time.perf_counter()
    if args.repeat > 1 and hasattr(run, "run_many"):
        r0 = run.run_many(mem, args.repeat)
    else:
        for _ in range(args.repeat):
            r0 = run(mem)
    elapsed = time.perf_counter() - started
    print(f"0x{r0:x}" if args.hex else r0)
    if args.repeat > 1:
        print(f"{args.repeat} runs on {engine.name}: {elapsed / args.repeat * 1e9:.0f} ns per run", file=sys.stderr)
    if args.mem and args.write_mem and mem is not None:
        Path(args.mem).write_bytes(mem)
    for line in prog.trace_log[traced:]:  # bpf_trace_printk output
        print(f"trace: {line}", end="" if line.endswith("\n") else "\n", file=sys.stderr)
    if args.dump_maps:
        _print_maps(prog)
    return 0


def _print_maps(prog: Program) -> None:
    """Every map's entries as hex (arrays over 64 entries: the non-zero ones)."""
    from rich.console import Console
    from rich.table import Table

    from jit.frontend.maps import ArrayMap, ProgArrayMap

    console = Console()
    if not prog.maps:
        console.print("no maps")
    for name, table in prog.maps.items():
        console.print(f"map {name}: {type(table).__name__}, {len(table)} entries", markup=False, highlight=False)
        out = Table()
        out.add_column("key")
        out.add_column("value", overflow="fold")  # hex is never cut short
        hidden = 0
        for key, value in table.items():
            if isinstance(table, ProgArrayMap):
                out.add_row(key.hex(), f"program {value.name!r}")
            elif isinstance(table, ArrayMap) and table.max_entries > 64 and not any(value):
                hidden += 1
            else:
                out.add_row(key.hex(), value.hex())
        if hidden:
            out.caption = f"{hidden} all-zero entries not shown"
        console.print(out)


def cmd_sections(args: argparse.Namespace) -> int:
    from jit.frontend.elf import format_sections

    print(format_sections(args.file))
    return 0


def cmd_disasm(args: argparse.Namespace) -> int:
    prog = load_program(args.program, args.section)
    if args.native:
        from jit.runtime.compiler import compile as jit_compile

        print(jit_compile(prog, arch=args.native, emulate=True).disasm())
    else:
        from jit.frontend.asm import disassemble

        print(disassemble(prog, labels=args.labels), end="")
    return 0


def cmd_asm(args: argparse.Namespace) -> int:
    from jit.frontend.asm import assemble

    prog = assemble(Path(args.source).read_text())
    out = Path(args.output or Path(args.source).with_suffix(".bin"))
    out.write_bytes(prog.to_bytes())
    print(f"{out}: {len(prog)} slots")
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from jit.frontend.conformance import load, suite_dir

    directory = Path(args.directory) if args.directory else suite_dir()
    if directory is None:
        raise SystemExit("bpfjit: conformance suite not found: pass DIR or set BPF_CONFORMANCE_DIR")
    files = sorted(directory.glob("*.data"))
    if not files:
        raise SystemExit(f"bpfjit: no .data files in {directory}")
    selected = [_engine(name) for name in args.engine] if args.engine else engines()
    table = Table(title=f"conformance: {len(files)} files in {directory}")
    table.add_column("engine")
    table.add_column("passed", justify="right")
    table.add_column("failed", justify="right")
    failures: list[str] = []
    for engine in selected:
        passed = 0
        for path in files:
            try:
                case = load(path)
                result = engine.prepare(case.program)(case.mem)
                ok = result == case.expected
                detail = f"got 0x{result:x}, expected 0x{case.expected:x}" if not ok else ""
            except BpfError as exc:
                ok, detail = False, str(exc)
            passed += ok
            if not ok:
                failures.append(f"{engine.name} {path.name}: {detail}")
        table.add_row(engine.name, str(passed), str(len(files) - passed))
    console = Console()
    console.print(table)
    for line in failures:
        console.print(line, style="red", markup=False)
    return 1 if failures else 0


def cmd_check(args: argparse.Namespace) -> int:
    from jit.tools.crosscheck import crosscheck

    selected = [_engine(name) for name in args.engine] if args.engine else None
    prog = load_program(args.program, args.section)
    report = crosscheck(prog, _read_mem(args.mem), engine_list=selected, max_steps=args.max_steps)
    print(report)
    return 0 if report.ok else 1


def cmd_fuzz(args: argparse.Namespace) -> int:
    if args.malformed:
        return _fuzz_malformed(args)
    from rich.progress import Progress

    from jit.tools.fuzz import campaign

    out = Path(args.out)
    started = time.perf_counter()
    with Progress() as progress:
        task = progress.add_task(f"fuzzing (seed {args.seed})", total=args.count)
        result = campaign(args.count, args.seed, out, progress=lambda done: progress.update(task, completed=done))
    elapsed = time.perf_counter() - started
    names = ", ".join(engine.name for engine in engines())
    print(f"{result.runs} programs on {names} in {elapsed:.1f} s: {len(result.divergences)} divergence(s)")
    for path in result.divergences:
        print(f"  reproducer: {path}")
    return 1 if result.divergences else 0


def _fuzz_malformed(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from jit.tools.malformed import campaign

    started = time.perf_counter()
    with Progress() as progress:
        task = progress.add_task(f"malformed inputs (seed {args.seed})", total=args.count)
        result = campaign(
            args.count, args.seed, Path(args.out), progress=lambda done: progress.update(task, completed=done)
        )
    elapsed = time.perf_counter() - started
    print(f"{result.runs} malformed inputs through decode, verify, compile and every engine in {elapsed:.1f} s:")
    print(f"  {len(result.failures)} failure(s) (crash, hang or an exception that is not a BpfError)")
    for failure in result.failures:
        print(f"  case {failure.index}: {failure.kind}: {failure.detail} -> {failure.path}")
    return 1 if result.failures else 0


def cmd_bench(argv: list[str]) -> int:
    from jit.bench.runner import main

    return main(argv)


def _count(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _program_file(text: str) -> str:
    """An argparse type: a program file that exists."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpfjit", description="eBPF JIT compiler: run, inspect and benchmark programs"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {jit.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a program and print R0")
    run.add_argument("program", type=_program_file, help="bytecode (.bin), assembly (.s) or conformance test (.data)")
    run.add_argument("--mem", help="file holding the input buffer (R1/R2)")
    run.add_argument("--write-mem", action="store_true", help="write the buffer back to --mem afterwards")
    run.add_argument("--engine", help="engine name (default: native code for this host)")
    run.add_argument("--arch", choices=["x86_64", "arm64"], help="shortcut: native on this host, else emulated")
    run.add_argument("--section", help="program section of an ELF object")
    run.add_argument("--dump-maps", action="store_true", help="print every map's entries afterwards")
    run.add_argument("--repeat", type=_count, default=1, help="run N times (native batch loop where available)")
    run.add_argument(
        "--max-steps",
        type=_count,
        help="fail with StepLimitError after N steps (back-edges and calls); default: no budget, Ctrl-C stops a run",
    )
    run.add_argument("--hex", action="store_true", help="print R0 in hex")
    run.set_defaults(func=cmd_run)

    sections = sub.add_parser("sections", help="list the programs and maps of an ELF object")
    sections.add_argument("file", help="object built with clang -target bpf")
    sections.set_defaults(func=cmd_sections)

    dis = sub.add_parser("disasm", help="disassemble a program (BPF, or native with --native ARCH)")
    dis.add_argument("program", type=_program_file)
    dis.add_argument("--native", choices=["x86_64", "arm64"], help="show the generated machine code instead")
    dis.add_argument("--labels", action="store_true", help="print jump targets as labels")
    dis.add_argument("--section", help="program section of an ELF object")
    dis.set_defaults(func=cmd_disasm)

    asm = sub.add_parser("asm", help="assemble a .s file into raw bytecode")
    asm.add_argument("source")
    asm.add_argument("-o", "--output")
    asm.set_defaults(func=cmd_asm)

    conf = sub.add_parser("conformance", help="run the eBPF conformance suite on every engine")
    conf.add_argument(
        "directory",
        nargs="?",
        help="folder of .data files (default $BPF_CONFORMANCE_DIR or ../shared/conformance/tests)",
    )
    conf.add_argument("--engine", action="append", help="engine name (repeatable; default all)")
    conf.set_defaults(func=cmd_conformance)

    check = sub.add_parser("check", help="run a program on every engine and report any difference")
    check.add_argument("program", type=_program_file)
    check.add_argument("--mem", help="file holding the input buffer")
    check.add_argument("--engine", action="append", help="engines to compare (repeatable; the first is the reference)")
    check.add_argument("--max-steps", type=_count, default=1_000_000, help="budget of every run")
    check.add_argument("--section", help="program section of an ELF object")
    check.set_defaults(func=cmd_check)

    fuzz = sub.add_parser("fuzz", help="random-program campaign across every engine")
    fuzz.add_argument("--count", type=_count, default=1000)
    fuzz.add_argument("--seed", type=int, default=0)
    fuzz.add_argument("--out", default="fuzz-divergences", help="folder for minimised reproducers")
    fuzz.add_argument(
        "--malformed", action="store_true", help="feed malformed bytecode through every stage (crash/hang detection)"
    )
    fuzz.set_defaults(func=cmd_fuzz)

    add_classic_commands(sub)  # filter, cbpf (jit.tools.cli_cbpf)
    add_cache_command(sub)  # jit.tools.cli_cache
    sub.add_parser("bench", help="benchmark JIT vs interpreter vs native C (bpfjit bench --help)", add_help=False)
    return parser


COMMANDS_WITH_OWN_PARSER: dict[str, Callable[[list[str]], int]] = {"bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS_WITH_OWN_PARSER:
        return COMMANDS_WITH_OWN_PARSER[argv[0]](argv[1:])
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:  # jit.Interrupted too: Ctrl-C stopped a run
        print(f"bpfjit: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130
    except BpfError as exc:
        print(f"bpfjit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"bpfjit: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
