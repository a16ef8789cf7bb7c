"""A program's batch entry under unicorn, for emulated programs (:func:`jit.run_batch`).

An :class:`EmulatedBatch` is a unicorn instance of its own (not the one of
the :class:`jit.runtime.emulated.EmulatedProgram`, whose layout serves one
buffer per call) holding the program's machine code, a context and a BPF
stack, a host stack, and per call the packets and the job with its arrays;
the code's batch entry (``labels["batch"]``) then runs the whole batch in one
``emu_start``. Only programs :func:`jit.runtime.batch.batch_path`
calls "emulated" come here: no helpers, maps, tail calls or loops, so the
code needs nothing else mapped.
"""

from __future__ import annotations

import struct
from array import array
from typing import Any

from unicorn import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc, UcError

from jit.backends import get_backend
from jit.backends.base import NativeCode
from jit.core.abi import BATCH_JOB_SIZE, CONTEXT_SIZE, STACK_BYTES, BatchJob, Ctx, batch_job
from jit.core.errors import ExecutionError
from jit.core.isa import STACK_SIZE

PAGE = 0x1000
CODE = 0x1000_0000
CTX = 0x2000_0000
STACK = 0x3000_0000
HOST = 0x4000_0000
HOST_STACK = 0x10_0000
HALT = 0x5000_0000  # the batch entry returns here: the end of emulation
JOB = 0x6000_0000
DATA = 0x1_0000_0000
TIMEOUT_US = 600 * 1_000_000


def _pages(size: int) -> int:
    return max(PAGE, (size + PAGE - 1) & ~(PAGE - 1))


class EmulatedBatch:
    """Runs batches of one program's machine code under unicorn."""

    def __init__(self, native: NativeCode):
        self.native = native
        self.machine = get_backend(native.arch).emulation()
        uc = self.uc = Uc(self.machine.uc_arch, self.machine.uc_mode)
        # unicorn's default translation cache is 1 GiB of address space per instance
        uc.ctl_set_tcg_buffer_size(min(1 << 30, max(4 << 20, 32 * len(native.code))))
        uc.mem_map(CODE, _pages(len(native.code)), UC_PROT_READ | UC_PROT_EXEC)
        uc.mem_write(CODE, native.code)
        uc.mem_map(HALT, PAGE, UC_PROT_READ | UC_PROT_EXEC)
        uc.mem_write(HALT, self.machine.ret * (PAGE // len(self.machine.ret)))
        uc.mem_map(CTX, _pages(CONTEXT_SIZE), UC_PROT_READ | UC_PROT_WRITE)
        uc.mem_map(STACK, _pages(STACK_BYTES), UC_PROT_READ | UC_PROT_WRITE)
        uc.mem_map(HOST, HOST_STACK, UC_PROT_READ | UC_PROT_WRITE)
        header = {Ctx.STACK_START: STACK, Ctx.STACK_END: STACK + STACK_BYTES, Ctx.STACK_LIMIT: STACK + STACK_SIZE}
        for field, value in header.items():
            uc.mem_write(CTX + field, struct.pack("<Q", value))
        self._mapped: list[tuple[int, int]] = []

    def _map(self, base: int, data: bytes) -> None:
        size = _pages(len(data))
        self.uc.mem_map(base, size, UC_PROT_READ | UC_PROT_WRITE)
        self._mapped.append((base, size))
        if data:
            self.uc.mem_write(base, data)

    def run(self, batch: Any, out: array) -> int:
        """Run every packet of a :class:`jit.runtime.batch.PacketBatch`; fills
        ``out`` and returns how many completed."""
        uc, machine, n = self.uc, self.machine, len(batch)
        offsets = JOB + _pages(BATCH_JOB_SIZE)
        lengths = offsets + _pages(8 * n)
        results = lengths + _pages(8 * n)
        job = batch_job(DATA, offsets, lengths, results, n)
        try:
            for base, blob in (
                (JOB, job),
                (offsets, batch.offsets.tobytes()),
                (lengths, batch.lengths.tobytes()),
            ):
                self._map(base, blob)
            self._map(results, bytes(8 * n))
            self._map(DATA, bytes(batch.data))
            sp = HOST + HOST_STACK - 64
            if machine.link is None:  # x86-64: the return address on the stack
                sp -= 8
                uc.mem_write(sp, struct.pack("<Q", HALT))
            else:
                uc.reg_write(machine.link, HALT)
            uc.reg_write(machine.sp, sp)
            for reg, value in zip(machine.entry_args, (JOB, 0, CTX)):
                uc.reg_write(reg, value)
            try:
                uc.emu_start(CODE + self.native.labels["batch"], HALT, timeout=TIMEOUT_US)
            except UcError as exc:
                pc = uc.reg_read(machine.pc)
                raise ExecutionError(f"the emulated batch stopped at 0x{pc:x}: {exc}") from None
            if uc.reg_read(machine.pc) != HALT:
                raise ExecutionError("the emulated batch did not finish within its time budget")
            done = struct.unpack("<Q", uc.mem_read(JOB + BatchJob.INDEX, 8))[0]
            out[:] = array("Q", bytes(uc.mem_read(results, 8 * n)))
            if batch.data:
                batch.data[:] = uc.mem_read(DATA, len(batch.data))
            return done
        finally:
            for base, size in self._mapped:
                uc.mem_unmap(base, size)
            self._mapped.clear()
