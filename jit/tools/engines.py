"""The engines that can run a program on this host, under one interface.

    for engine in jit.engines():
        run = engine.prepare(prog, helpers=...)
        r0 = run(mem)

Engines: the reference ``interpreter``; ``x86_64`` (native, on x86-64 hosts);
``x86_64-emulated`` and ``arm64-emulated`` (the same machine code under
unicorn); ``arm64`` (native, on ARM64 hosts).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jit.frontend.loader import ProgramLike, load_program
from jit.runtime.buffers import Mem

ARCHES = ("x86_64", "arm64")
COMPILE_ONLY = frozenset({"bounds_check", "verify"})  # jit.compile options the interpreter ignores


def host_arch() -> str | None:
    """The host's architecture name ("x86_64" or "arm64"), or None for any other."""
    machine = platform.machine().lower()
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)


@dataclass(frozen=True)
class Engine:
    """One way of running a program: ``arch`` None is the interpreter."""

    name: str
    arch: str | None = None
    emulated: bool = False

    def prepare(
        self, prog: ProgramLike, helpers: Mapping[int, object] | None = None, **options
    ) -> Callable[[Mem], int]:
        """A callable ``run(mem) -> R0`` for ``prog`` on this engine.

        ``options`` go to :func:`jit.compile`; the interpreter takes only
        ``max_steps`` (it checks every memory access and verifies nothing, so
        ``bounds_check`` and ``verify`` do not apply to it).
        """
        program = load_program(prog)
        if self.arch is None:
            from jit.runtime.interpreter import interpret

            options = {key: value for key, value in options.items() if key not in COMPILE_ONLY}
            return lambda mem=None: interpret(program, mem, helpers=helpers, **options)
        from jit.runtime.compiler import compile as jit_compile

        return jit_compile(program, arch=self.arch, helpers=helpers, emulate=self.emulated, **options)


def engines() -> list[Engine]:
    """Every engine available on this host, the interpreter first."""
    found = [Engine("interpreter")]
    host = host_arch()
    for arch in ARCHES:
        if arch == host:
            found.append(Engine(arch, arch))
        found.append(Engine(f"{arch}-emulated", arch, emulated=True))
    return found
