"""Run generated machine code in this process.

:class:`NativeProgram` maps the code read-write, copies it in, then switches
the pages to read-execute (never writable and executable at once) and calls
the entry point through ctypes. It owns a run-time context and a BPF stack
(see :mod:`jit.backends.base` for the ABI). Its code is a
:class:`jit.runtime.codemem.CodeMapping`, which programs made from one cached
compile share; the mapping is released when :meth:`close` (or garbage
collection) drops the last program using it and the code cache has let it go.

Python helpers are reached through ONE ctypes callback for the whole process
(each libffi closure costs a writable+executable page), created the first time
a program that calls a Python helper is compiled. It finds the running call's
state through ``ctx->handle``. Native helpers (function addresses) go straight
into the context's helper table.

When the code has the array-map lookup stub (``native.labels["map_lookup"]``,
see :mod:`jit.backends.base`), ``ctx->helpers[1]`` points at it and the entry it
replaces (the dispatcher) becomes ``ctx->lookup_fallback``.

The module is architecture-neutral; :mod:`jit.runtime.codemem` maps the code
(and flushes the instruction cache on ARM64 hosts).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping
from typing import Any

from jit.backends.base import NativeCode
from jit.core.abi import CONTEXT_SIZE, HELPER_SLOTS, STACK_BYTES, Ctx, ErrorCode, Span
from jit.core.helpers import Helper, HelperId
from jit.core.isa import STACK_SIZE
from jit.runtime.buffers import Mem, writable_buffer
from jit.runtime.codemem import CodeMapping, map_code
from jit.runtime.compiled import CompiledProgram, RegionAccessor
from jit.runtime.interrupts import begin_watch, end_watch
from jit.runtime.redirect import Redirector, install

_u64 = ctypes.c_uint64
_ENTRY = ctypes.CFUNCTYPE(_u64, ctypes.c_void_p, _u64, ctypes.c_void_p)
# The direct call of a program without helpers or back-edges: it keeps the GIL
# (no release and re-acquire around a bounded straight run of native code).
_DIRECT_ENTRY = ctypes.PYFUNCTYPE(_u64, ctypes.c_void_p, _u64, ctypes.c_void_p)
_HELPER = ctypes.CFUNCTYPE(_u64, _u64, _u64, _u64, _u64, _u64, _u64, ctypes.c_void_p)
_CONTEXT_WORDS = CONTEXT_SIZE // 8
_byte_at, _addressof = ctypes.c_char.from_buffer, ctypes.addressof
_INTERRUPTED = int(ErrorCode.INTERRUPTED)
# Word indexes of the context fields (plain ints: run_many is on the hot path).
_ERROR, _ERROR_PC, _REPEAT, _MEM_START, _MEM_END, _HANDLE = (
    int(f) // 8 for f in (Ctx.ERROR, Ctx.ERROR_PC, Ctx.REPEAT, Ctx.MEM_START, Ctx.MEM_END, Ctx.HANDLE)
)
_STACK_START, _STACK_END, _STACK_LIMIT, _HELPERS, _LOOKUP_FALLBACK, _FAULT_ADDR = (
    int(f) // 8
    for f in (Ctx.STACK_START, Ctx.STACK_END, Ctx.STACK_LIMIT, Ctx.HELPERS, Ctx.LOOKUP_FALLBACK, Ctx.FAULT_ADDR)
)


@functools.cache
def redirector() -> Redirector | None:
    """The process's signal redirector (jit.runtime.redirect), installed on first use."""
    return install(map_code)


class _Run:
    """What the helper dispatcher needs during one run: the program and the
    memory its helpers may access."""

    def __init__(self, program: NativeProgram, regions: list[Span]):
        self.program = program
        self.accessor = RegionAccessor(
            regions, ctypes.string_at, lambda addr, data: ctypes.memmove(addr, data, len(data))
        )

    def call(self, helper_id: int, args: tuple[int, int, int, int, int]) -> int:
        result = self.program.call_helper(helper_id, args, self.accessor)
        if result is None:
            self.program._context[_ERROR] = ErrorCode.HELPER
            return 0
        return result


def _dispatch(r1: int, r2: int, r3: int, r4: int, r5: int, helper_id: int, ctx: int) -> int:
    handle = _u64.from_address(ctx + Ctx.HANDLE).value
    run: _Run = ctypes.cast(ctypes.c_void_p(handle), ctypes.py_object).value
    return run.call(helper_id, (r1, r2, r3, r4, r5))


@functools.cache
def helper_dispatcher() -> int:
    """Address of the one ctypes callback that calls Python helpers (made once)."""
    callback = _HELPER(_dispatch)
    _KEEP_ALIVE.append(callback)
    return ctypes.cast(callback, ctypes.c_void_p).value


_KEEP_ALIVE: list[object] = []  # the dispatcher callback lives as long as the process


class NativeProgram(CompiledProgram):
    """Machine code for the host, run in this process through ctypes.

    Map values and global data (``prog.memory``) are plain host memory the
    code addresses directly; helpers reach them through the accessor.
    ``keepalive`` holds the user's helper objects (ctypes function objects
    behind native helpers must outlive the code that calls them); ``code``
    is a mapping of ``native.code`` to share (None: map it afresh).
    """

    def __init__(
        self,
        native: NativeCode,
        helpers: dict[int, Helper],
        keepalive: Mapping[int, object] | None = None,
        code: CodeMapping | None = None,
        **options: Any,
    ):
        super().__init__(native, helpers, **options)
        self._blocks = [block.span for block in self.prog.memory]
        self._keepalive = dict(keepalive or {})
        self._context = (_u64 * _CONTEXT_WORDS)()
        self._context_address = ctypes.addressof(self._context)
        self._stack = (_u64 * (STACK_BYTES // 8))()
        self._python_helpers = self._fill_helper_table()
        stack = ctypes.addressof(self._stack)
        self._context[_STACK_START] = stack
        self._context[_STACK_END] = stack + STACK_BYTES
        self._context[_STACK_LIMIT] = stack + STACK_SIZE  # lowest R10 of the deepest frame
        self._mapping = code if code is not None else CodeMapping(native.code)
        self._addr = self._mapping.address
        self._entry = _ENTRY(self._addr + native.entry)
        # fn(mem) skips the general path (re-entry check, watch, blocking lock)
        # when nothing can run Python or loop during the call: no helper calls,
        # no back-edges, no tail calls. It enters at the "direct" stub, which
        # sets the context's run fields itself. None after close().
        direct = not self.loops and self.tail_calls is None and native.facts.helper_ids == frozenset()
        self._direct = _DIRECT_ENTRY(self._addr + native.labels["direct"]) if direct else None
        # bytes are immutable: they are copied unless the code stores only through R10 itself.
        self._bytes_in_place = not native.facts.stores
        if "map_lookup" in native.labels:  # array-map fast path (backends.base)
            lookup = _HELPERS + HelperId.MAP_LOOKUP_ELEM
            self._context[_LOOKUP_FALLBACK] = self._context[lookup]
            self._context[lookup] = self._addr + native.labels["map_lookup"]

    def _fill_helper_table(self) -> bool:
        """Native helpers by address, Python ones through the dispatcher (only
        created when the program can call one); empty slots stay 0."""
        called = self.native.facts.helper_ids
        python = [i for i, h in self.helpers.items() if not h.is_native and (called is None or i in called)]
        dispatcher = helper_dispatcher() if python else 0
        for helper_id, helper in self.helpers.items():
            if helper_id < HELPER_SLOTS:
                address = helper.address if helper.is_native else dispatcher
                self._context[_HELPERS + helper_id] = address or 0
        return bool(python)

    @property
    def address(self) -> int:
        """Address of the read-execute mapping holding the code."""
        return self._addr

    @property
    def closed(self) -> bool:
        return self._mapping is None

    def _release(self) -> None:
        self._direct = None
        self._mapping = None  # unmapped when no other program shares it

    def __call__(self, mem: Mem = None) -> int:
        """Run once; returns R0 as an unsigned 64-bit int."""
        direct, lock = self._direct, self._lock
        if direct is None or not lock.acquire(False):  # busy: the general path waits its turn
            return self.run_many(mem, 1)
        try:
            if type(mem) is bytes and mem and self._bytes_in_place:
                r0 = direct(mem, len(mem), self._context_address)  # ctypes passes the bytes' own buffer
            else:
                if type(mem) is memoryview and not mem.readonly and mem.c_contiguous:
                    size = mem.nbytes  # any item format: the program sees the bytes
                else:
                    if type(mem) is not bytearray:
                        mem, _ = writable_buffer(mem)
                    size = len(mem)
                view = _byte_at(mem) if size else None  # no copy: the caller's memory
                r0 = direct(_addressof(view) if size else 0, size, self._context_address)
            if self._context[_ERROR]:
                self._raise(*self._error())
            return r0
        finally:
            lock.release()

    def _execute(self, buf: bytearray | memoryview, n: int) -> int:
        size = len(buf)
        view = (ctypes.c_char * size).from_buffer(buf) if size else None  # no copy: the caller's memory
        address = ctypes.addressof(view) if view is not None else 0
        ctx = self._context
        ctx[_ERROR] = 0
        ctx[_REPEAT] = n
        ctx[_MEM_START] = address
        ctx[_MEM_END] = address + size
        run = None
        if self._python_helpers:
            stack = ctypes.addressof(self._stack)
            regions = [Span("mem", address, address + size), Span("stack", stack, stack + STACK_BYTES)]
            run = _Run(self, regions + self._blocks)
            ctx[_HANDLE] = id(run)  # the dispatcher finds ``run`` through it; run stays alive until we return
        try:
            if not self.loops:
                return self._entry(address, size, self._context_address)
            watch = begin_watch(self._stop)
            try:
                return self._entry(address, size, self._context_address)
            finally:
                end_watch(watch)
        finally:
            ctx[_HANDLE] = 0
            del view

    def _stop(self) -> bool:
        redirect = redirector()
        if redirect is None:
            return True  # cannot be stopped: the run goes on (see jit.runtime.redirect)
        if redirect.stopped_at:
            return True
        labels = self.native.labels
        start = self._addr + labels["generated"]
        redirect.arm(start, self._addr + len(self.native.code) - start, self._addr + labels["interrupt"])
        return not redirect.send()

    def _error(self) -> tuple[int, int, int]:
        ctx = self._context
        if ctx[_ERROR] == _INTERRUPTED:  # the slot is where the signal found the code
            redirect = redirector()
            pc = self.native.pc_at(redirect.stopped_at - self._addr) if redirect else None
            # None: the signal found the prologue, before the first instruction ran
            return ctx[_ERROR], 0 if pc is None else pc, 0
        return ctx[_ERROR], ctx[_ERROR_PC], ctx[_FAULT_ADDR]
