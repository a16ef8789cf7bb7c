"""Runaway runs stop on Ctrl-C: a real SIGINT sent to a child process that is
inside a data-dependent endless loop ends the run with jit.Interrupted (also a
KeyboardInterrupt) naming the instruction, on every engine, and the program
runs normally afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import jit

RUNAWAY = "ldxb %r3, [%r1]\nmov %r0, 0\nl:\nadd %r0, 1\njne %r3, 0, l\nexit"

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import jit
    from jit.tools.engines import engines

    engine = next(e for e in engines() if e.name == sys.argv[1])
    mode = sys.argv[2]
    run = engine.prepare({program!r})
    if mode == "custom-handler":
        seen = []
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    if mode == "wakeup-fd":
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd)
    print("ready", flush=True)
    try:
        if mode == "run-many" and engine.arch is not None:
            run.run_many(bytearray(b"\\x01"), 10**12)
        else:
            run(bytearray(b"\\x01"))
    except jit.Interrupted as exc:
        assert isinstance(exc, KeyboardInterrupt) and isinstance(exc, jit.BpfError)
        print("interrupted:", exc.pc, exc)
    if mode == "custom-handler":
        print("handler saw:", seen)
    if mode == "wakeup-fd":
        print("forwarded:", list(os.read(read_fd, 16)), "restored:", signal.set_wakeup_fd(-1) == write_fd)
    print("afterwards:", run(bytearray(b"\\x00")), flush=True)
    """
).format(program=RUNAWAY)


def _interrupt_child(engine: str, mode: str) -> str:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, engine, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()
        if ready != "ready\n":
            out, err = child.communicate(timeout=60)
            raise AssertionError(f"the child ended before 'ready' (exit status {child.returncode}): {ready + out}{err}")
        # Once the child has spent 0.3 s of CPU time after "ready" it is in the loop
        # (a signal any earlier would be a plain KeyboardInterrupt from Python code,
        # and fail the test); CPU time, not wall time, so a loaded machine waits longer.
        _wait_for_cpu_time(child, 0.3)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    return out


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _wait_for_cpu_time(child: subprocess.Popen, seconds: float, timeout: float = 60) -> None:
    start, deadline = _cpu_seconds(child.pid), time.monotonic() + timeout
    while _cpu_seconds(child.pid) - start < seconds:
        if child.poll() is not None:  # a dead child's CPU time stops: say how it died, not that it idled
            out, err = child.communicate()
            raise AssertionError(
                f"the child ended inside its endless loop (exit status {child.returncode}): {out}{err}"
            )
        assert time.monotonic() < deadline, "the child used no CPU for a minute after 'ready'"
        time.sleep(0.01)


def _stopped_in_the_loop(out: str) -> None:
    assert "interrupted: " in out, out
    pc, message = out.split("interrupted: ")[1].split(" ", 1)
    assert int(pc) in (2, 3), out  # the add or the back-edge (emulation stops wherever it is)
    assert message.startswith(f"instruction {pc} (") and "interrupted by a signal" in message
    assert "afterwards: 1" in out


@pytest.mark.parametrize("engine", jit.engines(), ids=lambda engine: engine.name)
def test_ctrl_c_stops_a_runaway_loop(engine) -> None:
    _stopped_in_the_loop(_interrupt_child(engine.name, "plain"))


@pytest.mark.parametrize("engine", [e for e in jit.engines() if e.arch], ids=lambda engine: engine.name)
def test_ctrl_c_stops_run_many(engine) -> None:
    _stopped_in_the_loop(_interrupt_child(engine.name, "run-many"))


def test_a_custom_handler_runs_and_the_run_still_stops() -> None:
    out = _interrupt_child(jit.engines()[1].name, "custom-handler")
    assert "interrupted: " in out and f"handler saw: [{int(signal.SIGINT)}]" in out, out


def test_the_previous_wakeup_fd_gets_the_signal_and_is_restored() -> None:
    out = _interrupt_child(jit.engines()[1].name, "wakeup-fd")
    assert f"forwarded: [{int(signal.SIGINT)}] restored: True" in out, out


def test_loop_free_programs_are_not_watched() -> None:
    """Only code with a back-edge can run away; the rest pays nothing for it."""
    assert not jit.compile("mov %r0, 1\nexit").loops
    assert jit.compile(RUNAWAY).loops


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
@pytest.mark.parametrize("inside", [True, False], ids=["inside", "outside"])
def test_the_signal_handler_moves_only_a_pc_inside_the_code(arch: str, inside: bool) -> None:
    """Each backend's handler, run under unicorn on a hand-made ucontext: the
    saved pc (x86-64: gregs[REG_RIP] at +168; ARM64: uc_mcontext.pc at +440)."""
    import struct

    from unicorn import Uc

    from jit.backends import get_backend

    backend = get_backend(arch)
    emulation = backend.emulation()
    code_at, data_at, ucontext_at, halt = 0x10000, 0x20000, 0x30000, 0x40000
    pc_offset = {"x86_64": 168, "arm64": 440}[arch]
    start, size, stub = 0x7000_0000, 0x1000, 0x7000_0040
    interrupted = start + 0x123 if inside else start + size
    uc = Uc(emulation.uc_arch, emulation.uc_mode)
    for base in (code_at, data_at, ucontext_at, halt):
        uc.mem_map(base, 0x10000)
    uc.mem_write(code_at, backend.interrupt_handler(data_at))
    uc.mem_write(data_at, struct.pack("<4Q", start, size, stub, 0))
    uc.mem_write(ucontext_at + pc_offset, struct.pack("<Q", interrupted))
    sp = halt + 0x8000
    if emulation.link is None:  # x86-64: the return address on the stack
        sp -= 8
        uc.mem_write(sp, struct.pack("<Q", halt))
    else:
        uc.reg_write(emulation.link, halt)
    uc.reg_write(emulation.sp, sp)
    for reg, value in zip(emulation.entry_args, (0, 0, ucontext_at)):
        uc.reg_write(reg, value)
    uc.emu_start(code_at, halt)
    (pc,) = struct.unpack("<Q", uc.mem_read(ucontext_at + pc_offset, 8))
    (stopped_at,) = struct.unpack("<Q", uc.mem_read(data_at + 24, 8))
    assert (pc, stopped_at) == ((stub, interrupted) if inside else (interrupted, 0))
