"""Run generated x86-64 or ARM64 code under unicorn, with the same signature as native code.

One unicorn instance per compiled program, set up once and reused by every
call. Its address space::

    CODE_BASE   the machine code (read + execute)
    CTX_BASE    the run-time context (jit.core.abi.Ctx), helper table included
    STACK_BASE  the BPF stack, STACK_BYTES long (R10 starts at its end)
    HOST_BASE   the host stack of the generated code
    TRAP_BASE   one native ``ret`` per helper slot; ``ctx->helpers[id]`` points at
                slot ``id``, a code hook there calls the Python helper; the entry's
                return address (HALT) lies just past the slots
    MEM_TOP     the input buffer ends just below it (8-byte aligned start), copied
                in before a run and back after it; only the pages it occupies
                are accessible, so overruns and most underruns fault
    (host)      every ``prog.memory`` block (maps, global data) at its own host
                address, mapped onto the host memory itself (``mem_map_ptr``), so
                the program and Python see each other's writes without copies;
                read-only for the program where the block is not writable

with unmapped gaps between them, so a stray pointer faults and becomes a
:class:`jit.MemoryAccessError` naming the BPF instruction. A runaway program
is stopped by an instruction and time budget (:class:`jit.StepLimitError`).
"""

from __future__ import annotations

import struct
import threading
import weakref
from collections.abc import Callable
from typing import Any

from unicorn import (
    UC_ERR_EXCEPTION,
    UC_HOOK_CODE,
    UC_HOOK_MEM_INVALID,
    UC_MEM_FETCH_PROT,
    UC_MEM_FETCH_UNMAPPED,
    UC_MEM_READ_PROT,
    UC_MEM_READ_UNMAPPED,
    UC_MEM_WRITE_PROT,
    UC_MEM_WRITE_UNMAPPED,
    UC_PROT_EXEC,
    UC_PROT_NONE,
    UC_PROT_READ,
    UC_PROT_WRITE,
    Uc,
    UcError,
)

from jit.backends import get_backend
from jit.backends.base import NativeCode
from jit.core.abi import CONTEXT_SIZE, HELPER_SLOTS, STACK_BYTES, Ctx, ErrorCode, Span
from jit.core.errors import ExecutionError, StepLimitError
from jit.core.helpers import Helper, HelperId
from jit.core.isa import STACK_SIZE, Access
from jit.runtime.buffers import Mem, alignment_offset
from jit.runtime.compiled import CompiledProgram, RegionAccessor
from jit.runtime.faults import execution_error
from jit.runtime.interrupts import begin_watch, end_watch

# Everything lies above 4 GiB, as host addresses do (a pointer truncated to 32
# bits points nowhere on every engine), and the input buffer has 1 TiB below
# MEM_TOP to itself.
PAGE = 0x1000
CODE_BASE = 0x1_1000_0000
CTX_BASE = 0x1_2000_0000
STACK_BASE = 0x1_3000_0000
HOST_BASE = 0x1_4000_0000
HOST_STACK_BYTES = 0x10_0000
TRAP_BASE = 0x1_5000_0000
TRAP_STRIDE = 4
HALT = TRAP_BASE + TRAP_STRIDE * HELPER_SLOTS
MEM_TOP = 0x110_0000_0000

# An instruction count makes unicorn instrument every instruction (about 17x
# slower, measured), so by default only the wall-clock budget is on.
DEFAULT_MAX_INSTRUCTIONS = None
DEFAULT_TIMEOUT_SECONDS = 60.0

_CTX_HEADER = struct.Struct("<11Q")  # Ctx.ERROR .. Ctx.STOP
_U64 = struct.Struct("<Q")
_ACCESS = {
    UC_MEM_READ_UNMAPPED: "read",
    UC_MEM_READ_PROT: "read",
    UC_MEM_WRITE_UNMAPPED: "write",
    UC_MEM_WRITE_PROT: "write",
    UC_MEM_FETCH_UNMAPPED: "instruction fetch",
    UC_MEM_FETCH_PROT: "instruction fetch",
}


def _pages(size: int) -> int:
    return max(PAGE, (size + PAGE - 1) & ~(PAGE - 1))


def _weak(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` through a weak reference (returns None once its object is gone)."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> Any:
        target = ref()
        return target(*args) if target is not None else None

    return call


def _drop_hooks(uc: Uc, hooks: list[int]) -> None:
    """Free the emulator when its program goes: ctypes callbacks form reference
    cycles, so the Uc object itself waits for a garbage collection, but its
    engine (translated code, mapped memory: megabytes) is closed now, through
    the Uc's own once-only finalizer (so it is never closed twice)."""
    for handle in hooks:
        uc.hook_del(handle)
    close = getattr(uc, "_Uc__finalizer", None)
    if close is not None:
        close()


def _buffer_address(size: int, offset: int) -> int:
    """Where a ``size``-byte input buffer ``offset`` bytes past an 8-byte boundary goes."""
    return MEM_TOP - ((size + offset + 7) & ~7) + offset


class EmulatedProgram(CompiledProgram):
    """A compiled program run under unicorn: ``fn(mem=None) -> int``.

    ``max_instructions`` (emulated machine instructions) and ``timeout``
    (seconds) bound one call (``fn`` or ``run_many``); 0 or None disables a
    bound. ``max_steps`` is the BPF-level budget the code was compiled with.
    """

    emulated = True

    def __init__(
        self,
        native: NativeCode,
        helpers: dict[int, Helper],
        max_steps: int | None = None,
        *,
        max_instructions: int | None = DEFAULT_MAX_INSTRUCTIONS,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        **options: Any,
    ):
        super().__init__(native, helpers, **options)
        self.machine = get_backend(native.arch).emulation()
        self.max_steps = max_steps
        self.max_instructions = max_instructions
        self.timeout = timeout
        self._mem_size = 0  # bytes mapped below MEM_TOP
        self._mem_open = 0  # of which accessible (the pages of the current buffer)
        self._accessor: RegionAccessor | None = None
        self._fault: tuple[str, int, int] | None = None
        self._stopped = False  # a signal stopped the current run (see _stop)
        self._counted = False  # whether the cached translations count instructions
        self._blocks = tuple(self.prog.memory)  # mapped by pointer: they must outlive the instance
        self._uc: Uc | None = self._setup()

    # --- set-up, once per program -------------------------------------------------------
    def _setup(self) -> Uc:
        machine, code = self.machine, self.native.code
        uc = Uc(machine.uc_arch, machine.uc_mode)
        # Translated code is cached; the default 1 GiB cache per instance is far too
        # much (unicorn flushes and retranslates when the cache is full).
        uc.ctl_set_tcg_buffer_size(min(1 << 30, max(4 << 20, 32 * len(code))))
        uc.mem_map(CODE_BASE, _pages(len(code)), UC_PROT_READ | UC_PROT_EXEC)
        uc.mem_write(CODE_BASE, code)
        uc.mem_map(CTX_BASE, _pages(CONTEXT_SIZE), UC_PROT_READ | UC_PROT_WRITE)
        uc.mem_map(STACK_BASE, _pages(STACK_BYTES), UC_PROT_READ | UC_PROT_WRITE)
        uc.mem_map(HOST_BASE, HOST_STACK_BYTES, UC_PROT_READ | UC_PROT_WRITE)
        uc.mem_map(TRAP_BASE, PAGE, UC_PROT_READ | UC_PROT_EXEC)
        uc.mem_write(TRAP_BASE, machine.ret * (PAGE // TRAP_STRIDE))
        # registered helpers: their trap slot; empty slots stay 0, which the code reports
        table = [TRAP_BASE + TRAP_STRIDE * slot if slot in self.helpers else 0 for slot in range(HELPER_SLOTS)]
        if "map_lookup" in self.native.labels:  # array-map fast path (backends.base)
            lookup = HelperId.MAP_LOOKUP_ELEM
            uc.mem_write(CTX_BASE + Ctx.LOOKUP_FALLBACK, _U64.pack(table[lookup]))
            table[lookup] = CODE_BASE + self.native.labels["map_lookup"]
        uc.mem_write(CTX_BASE + Ctx.HELPERS, struct.pack(f"<{HELPER_SLOTS}Q", *table))
        self._map_blocks(uc)
        uc.reg_write_batch([(reg, 0) for reg in machine.registers])
        # The hooks hold the program weakly, and go when it does: unicorn's callbacks
        # refer back to the Uc, a cycle that would hold the emulator's memory until
        # a garbage collection.
        hooks = [
            uc.hook_add(UC_HOOK_CODE, _weak(self._on_helper), begin=TRAP_BASE, end=HALT - 1),
            uc.hook_add(UC_HOOK_MEM_INVALID, _weak(self._on_fault)),
        ]
        self._finalizer = weakref.finalize(self, _drop_hooks, uc, hooks)
        return uc

    def _map_blocks(self, uc: Uc) -> None:
        """Map every ``prog.memory`` block at its host address, onto the host memory."""
        for block in self._blocks:
            perms = UC_PROT_READ | (UC_PROT_WRITE if block.writable else 0)
            try:
                uc.mem_map_ptr(block.address, block.mapped_size, perms, block.address)
            except UcError as exc:
                raise ExecutionError(
                    f"{self.prog.name}: cannot map {block.name} at 0x{block.address:x} into the emulator ({exc})"
                ) from None

    def _open_buffer(self, uc: Uc, span: int) -> None:
        """Map (growing when needed) and open exactly the pages of a ``span``-byte
        buffer below MEM_TOP; pages below it stay mapped but inaccessible."""
        pages = _pages(span)
        if pages > self._mem_size:
            if self._mem_size:
                uc.mem_unmap(MEM_TOP - self._mem_size, self._mem_size)
            uc.mem_map(MEM_TOP - pages, pages, UC_PROT_READ | UC_PROT_WRITE)
            self._mem_size = self._mem_open = pages
        if pages != self._mem_open:
            if pages < self._mem_size:
                uc.mem_protect(MEM_TOP - self._mem_size, self._mem_size - pages, UC_PROT_NONE)
            uc.mem_protect(MEM_TOP - pages, pages, UC_PROT_READ | UC_PROT_WRITE)
            self._mem_open = pages

    @property
    def closed(self) -> bool:
        return self._uc is None

    def _release(self) -> None:
        self._finalizer()
        self._uc = None  # unicorn frees the instance with its last reference

    # --- tracing ---------------------------------------------------------------------------
    def trace(self, mem: Mem = None) -> tuple[int, list[tuple[int, tuple[int, ...]]]]:
        """Run once, recording ``(slot, R0..R10)`` each time the code of a BPF
        instruction starts: the same trace as :func:`jit.runtime.interpreter.run` gives,
        read from the CPU registers the backend maps BPF registers to.

        An instruction that generates no code (e.g. ``le64``) shares its
        address with the next one and is recorded under the first slot.
        """
        uc = self._uc
        if uc is None:
            return self.run_many(mem, 1), []  # raises: the program is closed
        registers = self.machine.bpf_registers
        slots: dict[int, int] = {}
        for pc, offset in zip(self.prog.pcs, self.native.offsets):
            slots.setdefault(CODE_BASE + offset, pc)
        steps: list[tuple[int, tuple[int, ...]]] = []

        def record(uc: Uc, address: int, size: int, user_data: object) -> None:
            slot = slots.get(address)
            if slot is not None:
                steps.append((slot, tuple(uc.reg_read(reg) for reg in registers)))

        handle = uc.hook_add(UC_HOOK_CODE, record, begin=CODE_BASE, end=CODE_BASE + len(self.native.code) - 1)
        uc.ctl_flush_tb()  # blocks translated before the hook existed would not call it
        try:
            r0 = self.run_many(mem, 1)
        finally:
            uc.hook_del(handle)
            uc.ctl_flush_tb()
        return r0, steps

    def regions(self, mem_size: int, offset: int = 0) -> dict[str, tuple[int, int]]:
        """Where the input buffer (of ``mem_size`` bytes, ``offset`` from an 8-byte
        boundary on the host) and the BPF stack live in this engine, as
        ``name -> (start, end)`` (to compare pointers across engines)."""
        start = _buffer_address(mem_size, offset)
        return {"mem": (start, start + mem_size), "stack": (STACK_BASE, STACK_BASE + STACK_BYTES)}

    # --- one call ---------------------------------------------------------------------------
    def _execute(self, buf: bytearray | memoryview, n: int) -> int:
        uc = self._uc
        assert uc is not None
        size = len(buf)
        addr = self._load_buffer(uc, buf)
        self._start(uc, addr, size, n)
        try:
            self._emulate(uc)
        finally:
            if size:
                buf[:] = uc.mem_read(addr, size)
            self._accessor = None
        return uc.reg_read(self.machine.result)

    def _stop(self) -> bool:
        self._stopped = True
        if self._uc is not None:
            self._uc.emu_stop()
        return True

    def _error(self) -> tuple[int, int, int]:
        uc = self._uc
        assert uc is not None
        if self._stopped:
            slot = self._slot(uc.reg_read(self.machine.pc))
            return ErrorCode.INTERRUPTED, slot, 0
        error, error_pc = struct.unpack("<2Q", uc.mem_read(CTX_BASE, 16))
        (fault_addr,) = _U64.unpack(uc.mem_read(CTX_BASE + Ctx.FAULT_ADDR, 8))
        return error, error_pc, fault_addr

    def _load_buffer(self, uc: Uc, buf: bytearray | memoryview) -> int:
        """Copy the buffer in; its address (0 for an empty buffer): as far from an
        8-byte boundary as the host buffer is, at most 7 bytes below MEM_TOP."""
        size = len(buf)
        if not size:
            return 0
        addr = _buffer_address(size, alignment_offset(buf))
        self._open_buffer(uc, MEM_TOP - addr)
        uc.mem_write(addr, bytes(buf))
        return addr

    def _start(self, uc: Uc, addr: int, size: int, n: int) -> None:
        stack_end = STACK_BASE + STACK_BYTES
        steps = self.max_steps if self.max_steps is not None else 0
        header = (0, 0, 0, steps, STACK_BASE + STACK_SIZE, n, addr, addr + size, STACK_BASE, stack_end, 0)
        uc.mem_write(CTX_BASE, _CTX_HEADER.pack(*header))
        regions = [Span("stack", STACK_BASE, stack_end), *(block.span for block in self._blocks)]
        if size:
            regions.insert(0, Span("mem", addr, addr + size))
        self._accessor = RegionAccessor(regions, lambda a, k: bytes(uc.mem_read(a, k)), uc.mem_write)
        self._fault = None
        self._stopped = False
        machine = self.machine
        sp = HOST_BASE + HOST_STACK_BYTES - 16
        values = list(zip(machine.entry_args, (addr, size, CTX_BASE)))
        if machine.link is None:
            sp -= 8
            uc.mem_write(sp, _U64.pack(HALT))
        else:
            values.append((machine.link, HALT))
        values.append((machine.sp, sp))
        uc.reg_write_batch(values)

    def _emulate(self, uc: Uc) -> None:
        counted = bool(self.max_instructions)
        if counted != self._counted:
            # unicorn counts through instrumentation compiled into the translated
            # blocks: blocks cached under the other setting must go (else a count
            # is never reached and the run hangs).
            uc.ctl_flush_tb()
            self._counted = counted
        # The time budget is a timer thread calling emu_stop: unicorn's own
        # timeout costs about 3.5 ms per run, a threading.Timer about 0.1 ms.
        watchdog = None
        if self.timeout:
            watchdog = threading.Timer(self.timeout, uc.emu_stop)
            watchdog.daemon = True
            watchdog.start()
        try:
            watch = begin_watch(self._stop) if self.loops else None
            try:
                uc.emu_start(CODE_BASE + self.native.entry, HALT, count=self.max_instructions or 0)
            finally:
                end_watch(watch)
        except UcError as exc:
            raise self._fault_error(uc, exc) from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
                watchdog.join()  # a late emu_stop must not hit the next run
        failure = self._helper_failure
        if self._stopped:
            return  # reported by _error
        if failure is not None and not isinstance(failure[1], Exception):
            raise failure[1]  # a helper's KeyboardInterrupt or SystemExit stopped the emulation
        pc = uc.reg_read(self.machine.pc)
        if pc != HALT:
            budget = []
            if self.max_instructions:
                budget.append(f"{self.max_instructions} emulated instructions")
            if self.timeout:
                budget.append(f"{self.timeout:g} s")
            slot = self._slot(pc)
            message = f"{self._where(slot)}: stopped, the emulation budget ({' or '.join(budget)}) ran out"
            raise StepLimitError(message, pc=slot)

    def _slot(self, pc: int) -> int | None:
        """The BPF slot whose machine code holds the emulator address ``pc``."""
        if CODE_BASE <= pc < CODE_BASE + len(self.native.code):
            return self.native.pc_at(pc - CODE_BASE)
        return None

    def _fault_error(self, uc: Uc, exc: UcError) -> ExecutionError:
        slot = self._slot(uc.reg_read(self.machine.pc))
        if self._fault is not None:
            kind, address, size = self._fault
            detail = f"invalid {kind} of {size} byte{'s' if size != 1 else ''} at 0x{address:x} ({exc})"
            return execution_error(ErrorCode.MEMORY, slot, self.prog, detail)
        if exc.errno == UC_ERR_EXCEPTION and slot is not None and self.prog.at(slot).spec.access is Access.ATOMIC:
            detail = f"the CPU rejected the atomic access, which must be naturally aligned ({exc})"
            return execution_error(ErrorCode.MEMORY, slot, self.prog, detail)
        return ExecutionError(f"{self._where(slot)}: the emulated CPU stopped: {exc}", pc=slot)

    def _where(self, slot: int | None) -> str:
        return self.prog.describe(slot) if slot is not None else "outside the program's code"

    # --- hooks --------------------------------------------------------------------------------
    def _on_fault(self, uc: Uc, access: int, address: int, size: int, value: int, user_data: object) -> bool:
        self._fault = (_ACCESS.get(access, "access"), address, size)
        return False

    def _on_helper(self, uc: Uc, address: int, size: int, user_data: object) -> None:
        """A helper slot was reached: run the Python helper, put its result in the return register."""
        helper_id = (address - TRAP_BASE) // TRAP_STRIDE
        args = tuple(uc.reg_read(reg) for reg in self.machine.helper_args)
        assert self._accessor is not None
        result = self.call_helper(helper_id, args, self._accessor)  # type: ignore[arg-type]
        if result is None:  # reported through ctx->error, raised after the run
            uc.mem_write(CTX_BASE + Ctx.ERROR, _U64.pack(ErrorCode.HELPER))
            if not isinstance(self._helper_failure[1], Exception):  # type: ignore[index]
                uc.emu_stop()  # KeyboardInterrupt, SystemExit: stop now
            result = 0
        uc.reg_write(self.machine.result, result)
