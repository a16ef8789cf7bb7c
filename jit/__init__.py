"""An eBPF JIT compiler for Python: x86-64 and ARM64 code from RFC 9669 bytecode.

Example::

    import jit
    prog = jit.assemble("mov %r0, 42\nexit")
    jit.interpret(prog)          # reference semantics -> 42
    fn = jit.compile(prog)       # native code for this host
    fn()                         # -> 42

This module is the whole public API. Its names are loaded from the layers
below on first use (PEP 562), so ``import jit`` costs almost nothing and
``import jit.core.isa`` loads only the core. The layers, each importing only
from the ones before it (tests/test_layers.py enforces it):

``jit.core``      errors, bits, the ISA table (``Op``), ``Instruction``, the ABI records
``jit.frontend``  assembly text, conformance files, ELF objects, maps: ``Program``
``jit.analysis``  the verifier and the planning of run-time checks
``backends``      code generation, one module per architecture
``jit.runtime``   the interpreter, helpers, ``compile`` and the compiled program
``jit.tools``     engines, crosscheck, fuzzing, the command line
"""

from __future__ import annotations

import importlib

# public name -> module defining it
_EXPORTS = {
    "AssemblyError": "jit.core.errors",
    "BpfError": "jit.core.errors",
    "CallDepthError": "jit.core.errors",
    "Interrupted": "jit.core.errors",
    "CompileError": "jit.core.errors",
    "DecodeError": "jit.core.errors",
    "ElfError": "jit.core.errors",
    "ExecutionError": "jit.core.errors",
    "HelperError": "jit.core.errors",
    "MemoryAccessError": "jit.core.errors",
    "StepLimitError": "jit.core.errors",
    "UsageError": "jit.core.errors",
    "VerifierError": "jit.core.errors",
    "Instruction": "jit.core.bytecode",
    "Program": "jit.frontend.program",
    "assemble": "jit.frontend.asm",
    "disassemble": "jit.frontend.asm",
    "Map": "jit.frontend.maps",
    "MapError": "jit.frontend.maps",
    "create_map": "jit.frontend.maps",
    "VerifierResult": "jit.analysis.verifier",
    "verify": "jit.analysis.verifier",
    "DEFAULT_HELPERS": "jit.runtime.helpers",
    "Helper": "jit.runtime.helpers",
    "MemoryAccessor": "jit.runtime.helpers",
    "interpret": "jit.runtime.interpreter",
    "compile": "jit.runtime.compiler",
    "crosscheck": "jit.tools.crosscheck",
    "engines": "jit.tools.engines",
    # classic BPF (tcpdump filters) and batches of packets
    "ClassicProgram": "jit.frontend.cbpf",
    "classic_to_ebpf": "jit.frontend.cbpf_translate",
    "compile_expression": "jit.frontend.pcapfilter",
    "FilterError": "jit.frontend.pcapfilter",
    "run_classic": "jit.runtime.cbpf_interpreter",
    "Filter": "jit.runtime.cbpf_filter",
    "PacketBatch": "jit.runtime.batch",
    "run_batch": "jit.runtime.batch",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"  # pyproject.toml reads it from here


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
