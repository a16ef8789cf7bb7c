"""Tail calls (``bpf_tail_call``), the same on every engine.

1. ``tail_call(ctx, prog_array, index)`` (:mod:`jit.runtime.helpers`) looks
   the target up. An index out of range or an empty slot returns ``-ENOENT``,
   and a chain that already made :data:`MAX_TAIL_CALLS` (33) tail calls
   returns ``-E2BIG``; execution then continues after the call, as in Linux.
2. Otherwise it counts the call in the :class:`TailCallChain` and raises
   :class:`TailCallRequest` carrying the target program. The engine ends the
   current run however it reports a helper exception, as long as the request
   stays reachable through ``__cause__`` (wrapping it in a
   :class:`jit.HelperError` ``from`` it is fine).
3. :func:`run_with_tail_calls` wraps one engine's "run this program once"
   function: it catches the request, and runs the target on the same input
   buffer with a fresh stack, until a program returns. Compiled programs use
   a :class:`TailCallRunner`, which compiles each target once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from jit.frontend.program import Program
from jit.runtime.buffers import Mem, writable_buffer

MAX_TAIL_CALLS = 33  # MAX_TAIL_CALL_CNT: a chain may make 33 tail calls


class TailCallRequest(Exception):
    """Raised by the tail_call helper: end this run and start ``target``."""

    def __init__(self, target: Program, count: int):
        self.target = target
        self.count = count
        super().__init__(f"tail call #{count} to {target.name!r}")


@dataclass
class TailCallChain:
    """How many tail calls the current top-level run has made."""

    count: int = 0


def find_tail_call(exc: BaseException | None) -> TailCallRequest | None:
    """The tail-call request ``exc`` is or was caused by, if any."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, TailCallRequest):
            return exc
        exc, seen = exc.__cause__, seen + 1
    return None


def run_with_tail_calls(
    run_one: Callable[[Program, bytearray | memoryview, TailCallChain], int],
    prog: Program,
    mem: Mem = None,
    chain: TailCallChain | None = None,
) -> int:
    """Run ``prog`` with ``run_one(prog, buffer, chain) -> R0``, following tail calls.

    ``run_one`` runs one program once on the (writable) buffer, with helpers
    built by ``helpers_for(prog, chain)``. The buffer is made writable once,
    so writes made before a tail call are seen by its target (and land in the
    caller's bytearray). ``chain`` is reset to 0 first.
    """
    buffer, _ = writable_buffer(mem)
    chain = chain if chain is not None else TailCallChain()
    chain.count = 0
    current = prog
    while True:
        try:
            return run_one(current, buffer, chain)
        except Exception as exc:
            request = find_tail_call(exc)
            if request is None:
                raise
            current = request.target


class Compiled(Protocol):
    """What the runner needs of a compiled program (:class:`jit.runtime.compiled.CompiledProgram`)."""

    prog: Program

    def run_direct(self, mem: Mem, n: int) -> int: ...

    def close(self) -> None: ...


class TailCallRunner:
    """Runs a compiled program following its tail calls (the protocol above):
    each target is compiled once, by ``build``,
    with the same architecture, options and helper table (so the same
    ``chain`` counts the calls), and run on the same buffer."""

    def __init__(self, build: Callable[[Program], Compiled], chain: TailCallChain):
        self._build = build
        self.chain = chain
        self._targets: dict[int, tuple[Program, Compiled]] = {}  # id(program): the program kept alive

    def target(self, prog: Program) -> Compiled:
        """The compiled ``prog``, compiled on first use."""
        entry = self._targets.get(id(prog))
        if entry is None:
            entry = self._targets[id(prog)] = (prog, self._build(prog))
        return entry[1]

    def close(self) -> None:
        """Close every compiled target (the main program is closing)."""
        for _, compiled in self._targets.values():
            compiled.close()
        self._targets.clear()

    def run_many(self, main: Compiled, mem: Mem, n: int) -> int:
        """``main.run_many(mem, n)``, each of the ``n`` runs following its tail calls."""
        buffer, _ = writable_buffer(mem)

        def run_one(prog: Program, buf: bytearray | memoryview, _chain: TailCallChain) -> int:
            engine = main if prog is main.prog else self.target(prog)
            return engine.run_direct(buf, 1)

        r0 = 0
        for _ in range(n):
            r0 = run_with_tail_calls(run_one, main.prog, buffer, self.chain)
        return r0
