"""The batch driver: native code that runs a compiled program once per packet.

``uint64_t driver(BatchJob *job)`` (the job's layout is
:class:`jit.core.abi.BatchJob`) calls the program's direct entry
``direct(base + offsets[i], lengths[i], ctx)`` for each ``i < count`` (the
stub before the prologue that clears ``ctx->error`` and sets
``ctx->repeat = 1`` and ``ctx->mem_start``/``mem_end`` to the packet),
stores R0 in ``out[i]``, and stops at the first packet whose run sets
``ctx->error``. It returns how many packets ran to completion, so the caller
can report the failing one. One call from Python then costs a few
nanoseconds per packet instead of a Python call each.

One function per architecture builds its driver (assembled by that
backend's keystone path); :func:`driver_code` picks one by name.
"""

from __future__ import annotations

import functools

from jit.core.abi import BatchJob, Ctx
from jit.core.errors import CompileError


def _x86_64() -> bytes:
    """SysV ABI: the job's fields in the six callee-saved registers across
    the calls; ``[rsp]`` the count, ``[rsp+8]`` the index (rsp stays 16-byte
    aligned at the call: 6 pushes and 24 bytes below an 8 mod 16 entry)."""
    from jit.backends.x86_64 import assemble

    job = {field.name: int(field) for field in BatchJob}
    saved = ("rbx", "rbp", "r12", "r13", "r14", "r15")
    fields = (("rbx", "ENTRY"), ("rbp", "CTX"), ("r12", "BASE"), ("r13", "OFFSETS"), ("r14", "LENGTHS"), ("r15", "OUT"))

    def ctx(field: Ctx) -> str:
        return f"qword ptr [rbp+{int(field)}]"

    text = [f"push {reg}" for reg in saved] + ["sub rsp, 24"]
    text += [f"mov {reg}, qword ptr [rdi+{job[name]}]" for reg, name in fields]
    text += [f"mov rax, qword ptr [rdi+{job['COUNT']}]", "mov qword ptr [rsp], rax", "mov qword ptr [rsp+8], 0"]
    text += [
        "batch_loop:",
        "mov rax, qword ptr [rsp+8]",
        "cmp rax, qword ptr [rsp]",
        "jae batch_done",
        "mov rdi, qword ptr [r13+rax*8]",
        "add rdi, r12",
        "mov rsi, qword ptr [r14+rax*8]",
        "mov rdx, rbp",
        "call rbx",
        f"cmp {ctx(Ctx.ERROR)}, 0",
        "jne batch_done",
        "mov rcx, qword ptr [rsp+8]",
        "mov qword ptr [r15+rcx*8], rax",
        "add rcx, 1",
        "mov qword ptr [rsp+8], rcx",
        "jmp batch_loop",
        "batch_done:",
        "mov rax, qword ptr [rsp+8]",
        "add rsp, 24",
    ]
    text += [f"pop {reg}" for reg in reversed(saved)] + ["ret"]
    return assemble("\n".join(text), "the x86-64 batch driver")


def _arm64() -> bytes:
    """AAPCS64: the job's fields in callee-saved x19-x25, the index in x26;
    the program returns R0 in x0."""
    from jit.backends.arm64 import Arm64Backend

    job = {field.name: int(field) for field in BatchJob}
    text = [
        "stp x29, x30, [sp, #-80]!",
        "mov x29, sp",
        "stp x19, x20, [sp, #16]",
        "stp x21, x22, [sp, #32]",
        "stp x23, x24, [sp, #48]",
        "stp x25, x26, [sp, #64]",
        f"ldp x19, x20, [x0, #{job['ENTRY']}]",  # entry, ctx
        f"ldp x21, x22, [x0, #{job['BASE']}]",  # base, offsets
        f"ldp x23, x24, [x0, #{job['LENGTHS']}]",  # lengths, out
        f"ldr x25, [x0, #{job['COUNT']}]",
        "mov x26, #0",
        "batch_loop:",
        "cmp x26, x25",
        "b.hs batch_done",
        "ldr x0, [x22, x26, lsl #3]",
        "add x0, x0, x21",
        "ldr x1, [x23, x26, lsl #3]",
        "mov x2, x20",
        "blr x19",
        f"ldr x9, [x20, #{int(Ctx.ERROR)}]",
        "cbnz x9, batch_done",
        "str x0, [x24, x26, lsl #3]",
        "add x26, x26, #1",
        "b batch_loop",
        "batch_done:",
        "mov x0, x26",
        "ldp x25, x26, [sp, #64]",
        "ldp x23, x24, [sp, #48]",
        "ldp x21, x22, [sp, #32]",
        "ldp x19, x20, [sp, #16]",
        "ldp x29, x30, [sp], #80",
        "ret",
    ]
    return Arm64Backend().assemble("\n".join(text), "the ARM64 batch driver")


_DRIVERS = {"x86_64": _x86_64, "arm64": _arm64}


@functools.cache
def driver_code(arch: str) -> bytes:
    """The batch driver's machine code for ``arch`` (assembled once)."""
    build = _DRIVERS.get(arch)
    if build is None:
        raise CompileError(f"no batch driver for architecture {arch!r} (have: {', '.join(_DRIVERS)})")
    return build()
