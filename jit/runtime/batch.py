"""Run a compiled program over many packets in one call: :func:`run_batch`.

    verdicts = jit.run_batch(fn, packets)      # array('Q'): R0 per packet
    verdicts = fn.run_batch(packets)           # the same

``packets`` is a :class:`PacketBatch` (one buffer, an offset and a length per
packet; build it once with :meth:`PacketBatch.from_packets` and reuse it) or
any sequence of bytes-like packets (made into a batch on each call). Each
packet runs exactly as ``fn(packet)`` would, with R1 at the packet and R2 its
length; writes land in the batch's own buffer.

How it runs, per kind of compiled program:

* **native** (x86-64 on an x86-64 host, ARM64 on an ARM64 host): the
  program's own batch entry (``fn.native.labels["batch"]``, see
  :class:`jit.core.abi.BatchJob`) loops over the packets inside the generated
  code, with a context and BPF stack of the batch's own, so the only Python
  cost is one ctypes call per batch;
* **emulated** (unicorn): the same batch entry under a unicorn instance of
  the batch's own, holding the program, the packets and the result array,
  run with one ``emu_start`` per batch;
* **otherwise**, a Python loop of ``fn(packet)``: for programs that call
  helpers, use maps or global data, make tail calls, have back-edges (which
  the native paths do not set up or cannot interrupt) or use LD_ABS/LD_IND,
  and for any object without the native code (the reference interpreter's
  callables).

When a run fails (a run-time bounds check, a step limit), the driver stops
at that packet and it is run again through ``fn`` to raise the program's
own error, prefixed by the packet's index.
"""

from __future__ import annotations

import ctypes
import operator
import weakref
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from jit.core.abi import BATCH_JOB_SIZE, CONTEXT_SIZE, STACK_BYTES, BatchJob, Ctx, batch_job
from jit.core.errors import BpfError, ExecutionError, UsageError
from jit.core.isa import STACK_SIZE

Packet = bytes | bytearray | memoryview


@dataclass
class PacketBatch:
    """Packets in one buffer: packet ``i`` is ``data[offsets[i] : offsets[i] + lengths[i]]``.

    ``offsets`` and ``lengths`` are ``array('Q')`` of the same length; every
    packet must lie inside ``data`` (checked once, here)."""

    data: bytearray
    offsets: array
    lengths: array

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytearray):
            raise UsageError(f"PacketBatch.data must be a bytearray, not {type(self.data).__name__}")
        for name in ("offsets", "lengths"):
            value = getattr(self, name)
            if not isinstance(value, array) or value.typecode != "Q":
                raise UsageError(f"PacketBatch.{name} must be an array('Q')")
        if len(self.offsets) != len(self.lengths):
            raise UsageError(f"PacketBatch has {len(self.offsets)} offsets but {len(self.lengths)} lengths")
        end = max(map(operator.add, self.offsets, self.lengths), default=0)
        if end > len(self.data):
            raise UsageError(f"a packet of the batch ends at byte {end}, past the end of its data ({len(self.data)})")

    @classmethod
    def from_packets(cls, packets: Iterable[Packet]) -> PacketBatch:
        """A batch holding a copy of each packet, back to back."""
        try:
            packets = packets if isinstance(packets, list | tuple) else list(packets)
            lengths = array("Q", map(len, packets))
            data = bytearray().join(packets)
        except TypeError as exc:
            raise UsageError(f"packets must be a PacketBatch or a list of bytes-like objects: {exc}") from None
        offsets = array("Q", accumulate(lengths, initial=0))
        offsets.pop()
        return cls(data, offsets, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> memoryview:
        start = self.offsets[index]
        return memoryview(self.data)[start : start + self.lengths[index]]

    def __iter__(self) -> Iterable[memoryview]:  # type: ignore[override]
        view = memoryview(self.data)
        return (view[o : o + n] for o, n in zip(self.offsets, self.lengths))


def as_batch(packets: PacketBatch | Sequence[Packet]) -> PacketBatch:
    return packets if isinstance(packets, PacketBatch) else PacketBatch.from_packets(packets)


def batch_path(fn: object) -> str:
    """How :func:`run_batch` runs ``fn``: "native", "emulated" or "loop" (with the reason)."""
    native = getattr(fn, "native", None)
    if native is None or not hasattr(fn, "run_many"):
        return "loop: not a compiled program"
    if fn.tail_calls is not None:  # type: ignore[attr-defined]
        return "loop: the program makes tail calls"
    if fn.loops:  # type: ignore[attr-defined]
        return "loop: the program has back-edges (the batch driver cannot be interrupted)"
    if fn.prog.memory:  # type: ignore[attr-defined]
        return "loop: the program uses maps or global data"
    if native.facts.helper_ids != frozenset():
        return "loop: the program calls helpers"
    if "batch" not in native.labels:
        return "loop: the program uses LD_ABS or LD_IND (no batch entry)"
    return "emulated" if fn.emulated else "native"  # type: ignore[attr-defined]


def run_batch(fn: Callable[[Packet], int], packets: PacketBatch | Sequence[Packet]) -> array:
    """R0 of ``fn`` on each packet, as an ``array('Q')`` (see the module docstring)."""
    if not callable(fn):
        raise UsageError(f"run_batch runs a compiled program (jit.compile) or a Filter, not {type(fn).__name__}")
    batch = as_batch(packets)
    out = array("Q", [0]) * len(batch)
    if not len(batch):
        return out
    if getattr(fn, "closed", False):
        raise ExecutionError(f"program {fn.prog.name!r} has been closed; compile it again to run it")  # type: ignore[attr-defined]
    path = batch_path(fn)
    if path == "native":
        done = _run_native(fn, batch, out)
    elif path == "emulated":
        done = _emulator(fn).run(batch, out)
    else:
        for index, packet in enumerate(batch):
            out[index] = _run_one(fn, batch, index, packet)
        return out
    if done < len(batch):
        _run_one(fn, batch, done, batch[done])
        raise ExecutionError(f"packet {done}: the run failed in the batch but not on its own", pc=None)
    return out


def _run_one(fn: Callable[[Packet], int], batch: PacketBatch, index: int, packet: memoryview) -> int:
    try:
        return fn(packet)
    except BpfError as exc:
        exc.args = (f"packet {index}: {exc.args[0] if exc.args else exc}", *exc.args[1:])
        raise


def _context(stack: int) -> Any:
    """A fresh run-time context whose BPF stack starts at ``stack``."""
    ctx = (ctypes.c_uint64 * (CONTEXT_SIZE // 8))()
    ctx[Ctx.STACK_START // 8] = stack
    ctx[Ctx.STACK_END // 8] = stack + STACK_BYTES
    ctx[Ctx.STACK_LIMIT // 8] = stack + STACK_SIZE
    return ctx


def _address(buffer: array | bytearray) -> int:
    if isinstance(buffer, array):
        return buffer.buffer_info()[0]
    return ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer)) if buffer else 0


_BATCH_ENTRY = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p)


def new_job(base: int, offsets: int, lengths: int, out: int, count: int) -> Any:
    """A :class:`jit.core.abi.BatchJob` holding these addresses, at packet 0, in host memory."""
    return (ctypes.c_uint64 * (BATCH_JOB_SIZE // 8)).from_buffer_copy(batch_job(base, offsets, lengths, out, count))


def _run_native(fn: Any, batch: PacketBatch, out: array) -> int:
    stack = (ctypes.c_uint64 * (STACK_BYTES // 8))()
    ctx = _context(ctypes.addressof(stack))
    job = new_job(_address(batch.data), _address(batch.offsets), _address(batch.lengths), _address(out), len(batch))
    entry = _BATCH_ENTRY(fn.address + fn.native.labels["batch"])
    keep = (fn, stack)  # noqa: F841 - the code and the stack stay alive during the call
    entry(ctypes.addressof(job), 0, ctypes.addressof(ctx))
    return job[BatchJob.INDEX // 8]


_EMULATORS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _emulator(fn: Any) -> Any:
    """The unicorn batch runner of ``fn`` (made on first use, kept with it)."""
    runner = _EMULATORS.get(fn)
    if runner is None:
        from jit.runtime.batch_emulated import EmulatedBatch

        runner = _EMULATORS[fn] = EmulatedBatch(fn.native)
    return runner
