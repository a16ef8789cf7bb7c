"""Misuse of the public API and the CLI: a jit.BpfError subclass saying what
to give instead, never a raw TypeError, ValueError or OSError."""

from __future__ import annotations

import subprocess
import sys

import pytest

import jit

PROGRAM = "mov %r0, 1\nexit"


@pytest.mark.parametrize("mem", ["abc", 5, [1, 2], 1.5], ids=["str", "int", "list", "float"])
def test_a_buffer_of_the_wrong_type(mem: object) -> None:
    fn = jit.compile(PROGRAM)
    with pytest.raises(jit.UsageError, match=r"mem must be None, bytes, bytearray or memoryview"):
        fn(mem)  # type: ignore[arg-type]
    with pytest.raises(jit.UsageError):
        jit.interpret(PROGRAM, mem=mem)  # type: ignore[arg-type]


@pytest.mark.parametrize("prog", [[1, 2], 5, None], ids=["list", "int", "None"])
def test_a_program_of_the_wrong_type(prog: object) -> None:
    for entry in (jit.compile, jit.verify, jit.interpret):
        with pytest.raises(jit.UsageError, match=r"cannot make a program from .*: give a jit.Program"):
            entry(prog)  # type: ignore[arg-type]


def test_bad_helpers() -> None:
    with pytest.raises(jit.UsageError, match=r"helper 100: expected a callable or a native function address"):
        jit.compile("call 100\nexit", helpers={100: "x"})
    with pytest.raises(jit.UsageError, match=r"helper ids are ints in 0..2\*\*31-1, got 'a'"):
        jit.compile(PROGRAM, helpers={"a": len})  # type: ignore[dict-item]


@pytest.mark.parametrize("n", [0, -1, 2**63, 2**64, 1.0, True], ids=str)
def test_run_many_counts(n: object) -> None:
    fn = jit.compile(PROGRAM)
    with pytest.raises(jit.UsageError, match=r"run_many needs a repeat count n in 1..2\*\*63-1"):
        fn.run_many(None, n)  # type: ignore[arg-type]


def test_usage_errors_are_also_the_python_convention() -> None:
    with pytest.raises(TypeError):
        jit.compile(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        jit.compile(PROGRAM).run_many(None, 0)


def test_text_too_long_for_a_file_name_is_read_as_assembly() -> None:
    with pytest.raises(jit.AssemblyError, match="unknown mnemonic"):
        jit.compile("x" * 100_000)


def test_version() -> None:
    from importlib.metadata import version

    assert jit.__version__ == version("bpfjit")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jit", *args], capture_output=True, text=True, timeout=120)


def test_python_m_jit_and_version() -> None:
    done = _cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"bpfjit {jit.__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "nonexist.s"), "no such file: nonexist.s"),
        (("run", "{prog}", "--repeat", "0"), "--repeat: expected a whole number >= 1, got '0'"),
        (("run", "{prog}", "--max-steps", "-3"), "--max-steps: expected a whole number >= 1"),
        (("fuzz", "--count", "-5"), "--count: expected a whole number >= 1, got '-5'"),
        (("disasm", "missing.bin"), "no such file: missing.bin"),
    ],
)
def test_cli_refuses_bad_arguments(args: tuple[str, ...], message: str, tmp_path) -> None:
    prog = tmp_path / "prog.s"
    prog.write_text(PROGRAM)
    done = _cli(*(arg.format(prog=prog) for arg in args))
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("value", [-1, 1.5, True, "10", 2**63], ids=repr)
def test_a_step_budget_every_engine_can_count(value: object) -> None:
    """Checked before anything is compiled or run, the same on every entry point."""
    for run in (
        lambda: jit.compile(PROGRAM, max_steps=value),
        lambda: jit.compile(PROGRAM, max_steps=value, arch="arm64"),
        lambda: jit.interpret(PROGRAM, max_steps=value),
    ):
        with pytest.raises(jit.UsageError, match=r"max_steps must be an int in 0..2\*\*63-1, not "):
            run()


def _engines() -> list:
    return jit.engines()


@pytest.mark.parametrize("engine", _engines(), ids=lambda engine: engine.name)
@pytest.mark.parametrize("result", [None, 1.5, "1", b"\x01"], ids=repr)
def test_a_helper_result_that_is_not_an_int_is_a_helper_error(engine, result: object) -> None:
    run = engine.prepare("call 100\nexit", helpers={100: lambda *args: result})
    with pytest.raises(jit.HelperError, match=r"helper 100 .*not an int"):
        run(None)


@pytest.mark.parametrize("engine", _engines(), ids=lambda engine: engine.name)
def test_helper_results_are_taken_modulo_2_64(engine) -> None:
    for result, r0 in ((-1, 2**64 - 1), (2**64 + 5, 5), (-(2**70), 0), (True, 1), (2**63, 2**63)):
        run = engine.prepare("call 100\nexit", helpers={100: lambda *args, value=result: value})
        assert run(None) == r0, result


@pytest.mark.parametrize("engine", _engines(), ids=lambda engine: engine.name)
@pytest.mark.parametrize("control", [KeyboardInterrupt, SystemExit, GeneratorExit], ids=lambda c: c.__name__)
def test_control_exceptions_in_a_helper_pass_through_unchanged(engine, control: type[BaseException]) -> None:
    calls = []

    def helper(*args: int) -> int:
        calls.append(args)
        if len(calls) == 1:
            raise control("stop")
        return 5

    run = engine.prepare("mov %r6, 7\ncall 100\nadd %r0, %r6\nexit", helpers={100: helper})
    with pytest.raises(control) as raised:
        run(None)
    assert type(raised.value) is control and str(raised.value) == "stop"
    assert run(None) == 12  # the interrupted run left nothing behind


@pytest.mark.parametrize(
    ("helper", "message"),
    [
        (0, "0x0 is not a native function address"),
        (0x3039, "0x3039 is not in executable memory of this process"),
        (lambda r1, r2: 0, "cannot be called with R1-R5: too many positional arguments"),
        (lambda r1, r2, r3, r4, r5, r6: 0, "cannot be called with R1-R5: missing a required argument"),
    ],
    ids=["null", "wild", "two-args", "six-args"],
)
def test_a_helper_that_cannot_be_called_is_refused_at_compile_time(helper: object, message: str) -> None:
    """A wild native address used to kill the process with SIGSEGV."""
    for entry in (jit.compile, jit.interpret):
        with pytest.raises(jit.UsageError, match=message):
            entry("call 100\nexit", helpers={100: helper})


def test_a_real_native_helper_and_python_helpers_of_any_fitting_shape() -> None:
    import ctypes

    labs = ctypes.cast(ctypes.CDLL(None).labs, ctypes.c_void_p).value
    assert jit.compile("mov %r1, -5\ncall 100\nexit", helpers={100: labs})(None) == 5
    for helper in (lambda *args: 1, lambda r1, r2, r3, r4, r5: 1, lambda r1, *rest, memory=None: 1):
        assert jit.compile("call 100\nexit", helpers={100: helper})(None) == 1
