"""The callable :func:`jit.compile` returns, the same for native and emulated code.

:class:`CompiledProgram` holds everything a run shares whatever executes the
machine code: argument checks, one run at a time per program (and no
re-entry from a helper), tail calls, calling a Python helper for the code,
the helper memory accessor, and turning ``ctx->error`` into the
:class:`jit.BpfError` naming the instruction (:mod:`jit.runtime.faults`).
Two subclasses supply the execution itself (:meth:`CompiledProgram._execute`
and the context fields it leaves): :class:`jit.runtime.native.NativeProgram`
(code run in this process) and :class:`jit.runtime.emulated.EmulatedProgram`
(unicorn). So both raise the same errors with the same messages.

A helper that raises an ``Exception`` fails the run with a HelperError caused
by it; ``KeyboardInterrupt`` and ``SystemExit`` stop the run and propagate
unchanged, as they do from the interpreter.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from jit.backends.base import NativeCode
from jit.core.abi import ErrorCode, Span
from jit.core.errors import ExecutionError, HelperError, Interrupted, MemoryAccessError, UsageError
from jit.core.helpers import Helper
from jit.core.isa import Op
from jit.runtime.batch import Packet, PacketBatch, run_batch
from jit.runtime.buffers import Mem, writable_buffer
from jit.runtime.faults import execution_error, fault_detail

if TYPE_CHECKING:
    from jit.analysis.verifier import VerifierResult
    from jit.runtime.tailcalls import TailCallRunner


class RegionAccessor:
    """A :class:`jit.MemoryAccessor` over a list of spans.

    ``read_raw``/``write_raw`` do the actual transfer once the access has been
    checked to lie inside one span, so a helper can never touch memory the
    program does not own.
    """

    def __init__(
        self,
        regions: list[Span],
        read_raw: Callable[[int, int], bytes],
        write_raw: Callable[[int, bytes], object],
    ):
        self.regions = regions
        self._read_raw = read_raw
        self._write_raw = write_raw

    def _region(self, addr: int, size: int, write: bool) -> Span:
        for region in self.regions:
            if region.contains(addr, size):
                if write and not region.writable:
                    raise MemoryAccessError(f"helper wrote {size} bytes to read-only {region.name} at 0x{addr:x}")
                return region
        kind = "wrote" if write else "read"
        raise MemoryAccessError(f"helper {kind} {size} bytes at 0x{addr:x}, outside every memory region of the program")

    def read(self, addr: int, size: int) -> bytes:
        self._region(addr, size, write=False)
        return self._read_raw(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        self._region(addr, len(data), write=True)
        self._write_raw(addr, bytes(data))


class CompiledProgram(ABC):
    """The callable returned by :func:`jit.compile`: ``fn(mem=None) -> int``.

    ``fn.code`` is the machine code, ``fn.arch`` its architecture,
    ``fn.emulated`` whether it runs under unicorn, ``fn.disasm()`` a listing,
    ``fn.run_batch(packets)`` runs it over many buffers in one call,
    ``fn.verification`` what the verifier found (None with ``verify=False``;
    ``fn.native.checked`` holds the slots that got a run-time check), and
    ``fn.tail_calls`` the runner that follows tail calls, for programs that
    may make them.
    """

    emulated: ClassVar[bool] = False

    def __init__(
        self,
        native: NativeCode,
        helpers: dict[int, Helper],
        *,
        verification: VerifierResult | None = None,
        tail_calls: TailCallRunner | None = None,
    ):
        self.native = native
        self.prog = native.prog
        self.helpers = helpers
        self.verification = verification
        self.tail_calls = tail_calls
        self._lock = threading.Lock()  # one context per program: one run at a time
        self._owner: int | None = None  # the thread running it, to refuse re-entry from a helper
        self._helper_failure: tuple[int, BaseException] | None = None
        # A run of code with a back-edge may go on until stopped: it is run
        # under jit.runtime.interrupts.begin_watch.
        self.loops = native.facts.loops

    @property
    def code(self) -> bytes:
        return self.native.code

    @property
    def arch(self) -> str:
        return self.native.arch

    def __call__(self, mem: Mem = None) -> int:
        """Run once; returns R0 as an unsigned 64-bit int."""
        return self.run_many(mem, 1)

    def run_batch(self, packets: PacketBatch | Sequence[Packet]) -> array:
        """R0 on each of ``packets``, in one native call where the program allows
        (:func:`jit.run_batch`: a :class:`jit.PacketBatch` or a list of buffers)."""
        return run_batch(self, packets)

    def run_many(self, mem: Mem, n: int) -> int:
        """Run ``n`` times on the same buffer in one native loop; returns the last R0."""
        _check_count(n)
        if self.tail_calls is not None:
            return self.tail_calls.run_many(self, mem, n)
        return self.run_direct(mem, n)

    def run_direct(self, mem: Mem, n: int) -> int:
        """:meth:`run_many` without following tail calls (one batch)."""
        _check_count(n)
        if self.closed:
            raise ExecutionError(f"program {self.prog.name!r} has been closed; compile it again to run it")
        me = threading.get_ident()
        if self._owner == me:
            raise ExecutionError(f"program {self.prog.name!r} called itself again while running (from a helper)")
        buf, _ = writable_buffer(mem)
        with self._lock:
            self._owner = me
            self._helper_failure = None
            try:
                try:
                    r0 = self._execute(buf, n)
                    error, pc, fault_addr = self._error()
                except KeyboardInterrupt as exc:  # the default SIGINT handler, right after the stop
                    error, pc, _ = self._error()
                    if error != ErrorCode.INTERRUPTED or isinstance(exc, Interrupted):
                        raise
                    raise execution_error(error, pc, self.prog) from exc
                if error:
                    self._raise(error, pc, fault_addr)
                return r0
            finally:
                self._owner = None
                self._helper_failure = None

    # --- what the executing subclass supplies ----------------------------------------------

    @abstractmethod
    def _execute(self, buf: bytearray | memoryview, n: int) -> int:
        """Run the code ``n`` times on ``buf``; returns R0 (the error, if any, is left in the context)."""

    @abstractmethod
    def _stop(self) -> bool:
        """Make the running code stop with INTERRUPTED (called from another thread);
        False: not stopped yet, try again shortly."""

    @abstractmethod
    def _error(self) -> tuple[int, int, int]:
        """``ctx->error``, ``ctx->error_pc`` and ``ctx->fault_addr`` after a run."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Whether :meth:`close` released the code."""

    def _release(self) -> None:
        """Free the code and run-time memory (called once by :meth:`close`)."""

    # --- shared by both executions -------------------------------------------------------------

    def call_helper(self, helper_id: int, args: tuple[int, int, int, int, int], memory: RegionAccessor) -> int | None:
        """Call the Python helper ``helper_id`` for the running code; None when
        it failed (the failure is kept and reported after the run)."""
        helper = self.helpers.get(helper_id)
        try:
            if helper is None:
                raise HelperError(f"unknown helper id {helper_id}")
            if helper.is_native:
                raise HelperError(f"helper {helper_id} ({helper.name}) is a native function; it cannot run emulated")
            return helper.call(args, memory)
        except BaseException as exc:  # never lost in a ctypes callback or a unicorn hook
            self._helper_failure = (helper_id, exc)
            return None

    def _raise(self, code: int, pc: int, fault_addr: int) -> None:
        failure = self._helper_failure
        cause = failure[1] if failure is not None else None
        if cause is not None and not isinstance(cause, Exception):
            raise cause  # KeyboardInterrupt, SystemExit: not an error of the program
        if cause is not None:
            helper_id = failure[0]  # type: ignore[index]
            helper = self.helpers.get(helper_id)
            if isinstance(cause, HelperError) and (helper is None or helper.is_native):
                detail = str(cause)
            else:
                detail = f"helper {helper_id} ({helper.name if helper else '?'}) raised {type(cause).__name__}: {cause}"
        elif code == ErrorCode.HELPER:
            detail = "no helper is registered under the id it called"
            if pc in self.prog.index_of and self.prog.at(pc).spec.op is Op.CALL:
                detail = f"helper {self.prog.at(pc).imm} is not callable"
        elif code == ErrorCode.MEMORY:
            detail = fault_detail(self.prog, self.native.checks, pc, fault_addr)
        else:
            detail = ""
        raise execution_error(code, pc, self.prog, detail) from cause

    def close(self) -> None:
        """Release the code and run-time memory now rather than at garbage collection."""
        self._release()
        if self.tail_calls is not None:
            self.tail_calls.close()

    def __enter__(self) -> CompiledProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def disasm(self) -> str:
        """Capstone listing: each BPF instruction above the native code it became."""
        from jit.backends.listing import listing

        return listing(self.native)


def _check_count(n: object) -> None:
    if type(n) is not int or not 1 <= n < 1 << 63:
        raise UsageError(f"run_many needs a repeat count n in 1..2**63-1, got {n!r}")
