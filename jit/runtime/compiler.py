"""``jit.compile``: a program to a callable running machine code.

Steps: load the program (:mod:`jit.frontend.loader`: a Program, bytecode,
assembly text or a path); verify it (:mod:`jit.analysis.verifier`, which
checks its control flow first; with ``verify=False`` only the control flow is
checked) and plan the run-time bounds checks (:mod:`jit.analysis.checks`);
generate and assemble code with the backend for ``arch`` (:mod:`backends`);
then wrap it: :class:`jit.runtime.native.NativeProgram` when the code is for
this host and ``emulate`` is False, else
:class:`jit.runtime.emulated.EmulatedProgram` (unicorn).

Every program gets the library's helpers (:func:`jit.runtime.helpers.program_helpers`:
map helpers over ``prog.maps``, trace_printk, tail_call, ...) with the user's
``helpers=`` on top, as on the interpreter. Array-map lookups take the native
fast path of :mod:`jit.backends.base` unless ``fast_lookup=False`` or the user
replaced helper 1. A program with a program array that may call ``tail_call``
gets a :class:`jit.runtime.tailcalls.TailCallRunner`: each run follows the
chain of tail calls, compiling each target once with the same options and
helpers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace

from jit.analysis.checks import plan_checks, validate_mode
from jit.analysis.verifier import analyze
from jit.backends import architectures, get_backend
from jit.backends.base import CodegenOptions
from jit.core.abi import check_max_steps
from jit.core.bytecode import check_control_flow
from jit.core.errors import CompileError
from jit.core.gcpause import gc_paused
from jit.core.helpers import HelperId
from jit.core.host import host_arch
from jit.core.isa import Op
from jit.core.usage import check_bool, check_optional_str, check_path
from jit.frontend.loader import ProgramLike, load_program
from jit.frontend.maps import MapType, ProgArrayMap
from jit.frontend.program import Program
from jit.runtime import codecache, diskcache
from jit.runtime.codecache import CACHE, Compiled
from jit.runtime.compiled import CompiledProgram
from jit.runtime.helpers import program_helpers
from jit.runtime.tailcalls import TailCallChain, TailCallRunner

ARRAY_TYPES = (MapType.ARRAY, MapType.PERCPU_ARRAY)  # served by the lookup fast path


def compile(
    prog: ProgramLike,
    arch: str | None = None,
    helpers: Mapping[int, object] | None = None,
    emulate: bool = False,
    *,
    section: str | None = None,
    max_steps: int | None = None,
    bounds_check: bool | str = "auto",
    verify: bool = True,
    fast_lookup: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> CompiledProgram:
    """Compile ``prog`` for ``arch`` (None: this host) into ``fn(mem=None) -> R0``.

    ``helpers`` maps helper ids to Python callables or native function
    addresses, on top of the default helpers. ``emulate=True`` (or a foreign
    ``arch``) runs the code under unicorn. ``section`` picks the program of
    an ELF object; ``fast_lookup=False`` sends array-map lookups through the
    Python helper too (for comparison).

    Safety. The static verifier (what :func:`jit.verify` runs, with these
    helpers) runs first: a definite violation raises VerifierError. A
    possible violation found only where joining paths lost precision is not
    definite: the program then runs with every access checked and a zeroed
    stack, as with ``verify=False`` (``fn.verification.imprecise`` says why).
    ``bounds_check`` then decides the run-time checks:
    ``"auto"`` checks exactly the loads, stores and atomics the verifier could
    not prove safe, True checks every one, False none (trusting the program,
    as peer JITs do; for benchmarking). A failed check raises
    MemoryAccessError naming the instruction and the address.
    ``verify=False`` skips the verifier: ``"auto"`` then checks every access
    like True, and ``bounds_check=False, verify=False`` runs the program
    unchecked, where a bad pointer can crash the process (never use it on
    untrusted programs). ``fn.verification`` keeps the verifier's result and
    ``fn.native.checked`` the slots that got a check.

    ``max_steps`` bounds one run: native code counts back-edges (jumps to the
    same or an earlier slot, taken or not) and local calls, and raises
    StepLimitError naming the jump or call that exhausted the budget; the
    interpreter (``jit.interpret(max_steps=)``) counts every executed
    instruction instead, so the same budget stops native code much later.

    Compiling the same program again (same code, maps and global data, helper
    names and prototypes, architecture and options) reuses the first compile's
    verification and machine code from an in-process cache of 256 programs;
    ``cache=False`` compiles afresh. ``cache_dir`` (default: the
    ``BPFJIT_CACHE_DIR`` environment variable, else none) keeps compiles on
    disk for later processes: a private directory (made if missing; refused
    when others may write it), files authenticated with a key kept there and
    checked before use (:mod:`jit.runtime.diskcache`). Programs with maps or
    global data stay in memory only.
    """
    validate_mode(bounds_check)
    check_max_steps(max_steps)
    emulate, verify, fast_lookup = (
        check_bool(name, value)
        for name, value in (("emulate", emulate), ("verify", verify), ("fast_lookup", fast_lookup))
    )
    cache = check_bool("cache", cache)
    if cache_dir is not None:
        cache_dir = check_path("cache_dir", cache_dir)
    disk = diskcache.lookup(cache_dir) if cache else None
    arch = check_optional_str("arch", arch)
    section = check_optional_str("section", section)
    if cache and isinstance(prog, bytes | bytearray | memoryview):
        program = codecache.decode(bytes(prog))
    else:
        program = load_program(prog, section)
    host = host_arch()
    arch = arch or host
    if arch is None:
        raise CompileError(f"this host is not one of {', '.join(architectures())}: pass arch= and emulate=True")
    if arch not in architectures():
        raise CompileError(f"unknown architecture {arch!r} (valid: {', '.join(architectures())})")
    chain = TailCallChain()
    resolved = program_helpers(program, helpers, chain)
    array_maps = _array_maps(program) if fast_lookup and HelperId.MAP_LOOKUP_ELEM not in (helpers or {}) else ()
    options = CodegenOptions(
        helper_ids=frozenset(resolved),
        max_steps=max_steps,
        bounds_check=bounds_check,
        array_maps=array_maps,
        blocks=tuple(block.span for block in program.memory),
        assembler=os.environ.get("BPFJIT_ASSEMBLER", "patch"),  # "keystone": whole-text keystone (tests)
    )

    def generate(target: Program) -> Compiled:
        with gc_paused():  # verification and code generation make many objects and no garbage cycles
            return _generate(target)

    def _generate(target: Program) -> Compiled:
        if verify:
            verification = analyze(target, helpers=resolved)  # checks the control flow too
        else:
            verification = None
            check_control_flow(target)
        checks = plan_checks(target, bounds_check, verification)
        # a verified program never reads stack it did not write: no need to zero it per run
        zero_stack = verification is None or verification.imprecise is not None or bool(verification.lenient)
        native = get_backend(arch).compile(target, replace(options, checks=checks, zero_stack=zero_stack))
        return Compiled(verification, native)

    def build(target: Program, tail_calls: TailCallRunner | None = None) -> CompiledProgram:
        key = codecache.key(arch, target, options, verify, resolved) if cache else None
        if key is not None:
            compiled = CACHE.get(key)
            if compiled is None:
                compiled = _from_disk(disk, key, target, generate)
                CACHE.put(key, compiled)
            compiled = codecache.for_program(compiled, target)
        else:
            compiled = generate(target)
        verification, native = compiled.verification, compiled.native
        if arch == host and not emulate:
            from jit.runtime.codemem import CodeMapping
            from jit.runtime.native import NativeProgram

            # programs from one cached compile share its executable pages (kept while it is cached)
            code = compiled.shared.get("code") if key is not None else None
            if code is None and key is not None:
                code = compiled.shared.setdefault("code", CodeMapping(native.code))
            return NativeProgram(native, resolved, helpers, code, verification=verification, tail_calls=tail_calls)
        from jit.runtime.emulated import EmulatedProgram

        return EmulatedProgram(native, resolved, max_steps, verification=verification, tail_calls=tail_calls)

    return build(program, TailCallRunner(build, chain) if _may_tail_call(program) else None)


def _from_disk(
    disk: diskcache.DiskCache | None, key: codecache.Key, target: Program, generate: Callable[[Program], Compiled]
) -> Compiled:
    """``generate(target)``, read from or written to the disk cache when there is one and the code may go there."""
    path = disk.path_for(key) if disk is not None and diskcache.cacheable(target) else None
    if path is None:
        return generate(target)
    compiled = disk.load(path, target)
    if compiled is None:
        compiled = generate(target)
        disk.store(path, compiled)
    return compiled


def _array_maps(program: Program) -> tuple[int, ...]:
    """Descriptor addresses of the maps the lookup fast path serves."""
    return tuple(m.address for m in program.maps.values() if m.map_type in ARRAY_TYPES)


def _may_tail_call(program: Program) -> bool:
    """True when ``program`` has a program array and calls tail_call (or callx)."""
    if not any(isinstance(m, ProgArrayMap) for m in program.maps.values()):
        return False
    return any(
        (insn.op is Op.CALL and insn.imm == HelperId.TAIL_CALL) or insn.op is Op.CALLX for insn in program.instructions
    )
