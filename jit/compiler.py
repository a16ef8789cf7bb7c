"""``jit.compile``: a program to a callable running machine code.

Steps: load the program (Program, bytecode, assembly text or a path), check
that every jump lands on an instruction, generate and assemble code with the
backend for ``arch``, then wrap it: :class:`jit.native.NativeProgram` when the
code is for this host and ``emulate`` is False, else the unicorn runner
:class:`backends.emulator.EmulatedProgram`.
"""

from __future__ import annotations

from collections.abc import Mapping

from .engines import host_arch
from .errors import CompileError
from .helpers import resolve_helpers
from .loader import ProgramLike, load_program
from .program import check_control_flow
from .runtime import CompiledProgram


def compile(
    prog: ProgramLike,
    arch: str | None = None,
    helpers: Mapping[int, object] | None = None,
    emulate: bool = False,
    *,
    max_steps: int | None = None,
    bounds_check: bool | str = False,
) -> CompiledProgram:
    """Compile ``prog`` for ``arch`` (None: this host) into ``fn(mem=None) -> R0``.

    ``helpers`` maps helper ids to Python callables or native function
    addresses, on top of the default helpers. ``emulate=True`` (or a foreign
    ``arch``) runs the code under unicorn. ``max_steps`` bounds the number of
    back-edges and local calls of one run (StepLimitError when exceeded).
    ``bounds_check`` must be False for now.
    """
    # backends imports jit.errors, which imports this package: import it here, not at the top.
    from backends import architectures, get_backend
    from backends.base import CodegenOptions

    program = load_program(prog)
    check_control_flow(program)
    host = host_arch()
    arch = arch or host
    if arch is None:
        raise CompileError(f"this host is not one of {', '.join(architectures())}: pass arch= and emulate=True")
    if arch not in architectures():
        raise CompileError(f"unknown architecture {arch!r} (valid: {', '.join(architectures())})")
    resolved = resolve_helpers(helpers)
    options = CodegenOptions(helper_ids=frozenset(resolved), max_steps=max_steps, bounds_check=bounds_check)
    native = get_backend(arch).compile(program, options)
    if arch == host and not emulate:
        from .native import NativeProgram

        return NativeProgram(native, resolved, keepalive=helpers)
    from backends.emulator import EmulatedProgram

    return EmulatedProgram(native, resolved, max_steps=max_steps)
