"""An eBPF JIT compiler for Python: x86-64 and ARM64 code from RFC 9669 bytecode.

Example::

    import jit
    prog = jit.assemble("mov %r0, 42\nexit")
    jit.interpret(prog)          # reference semantics -> 42
    fn = jit.compile(prog)       # native code for this host
    fn()                         # -> 42
"""

from .asm import assemble, disassemble
from .compiler import compile
from .crosscheck import crosscheck
from .engines import engines
from .errors import (
    AssemblyError,
    BpfError,
    CallDepthError,
    CompileError,
    DecodeError,
    ElfError,
    ExecutionError,
    HelperError,
    MemoryAccessError,
    StepLimitError,
    VerifierError,
)
from .helpers import DEFAULT_HELPERS, Helper, MemoryAccessor
from .interpreter import interpret
from .maps import Map, MapError
from .program import Instruction, Program
from .verifier import VerifierResult, verify

__all__ = [
    "DEFAULT_HELPERS",
    "AssemblyError",
    "BpfError",
    "CallDepthError",
    "CompileError",
    "DecodeError",
    "ElfError",
    "ExecutionError",
    "Helper",
    "HelperError",
    "Instruction",
    "Map",
    "MapError",
    "MemoryAccessError",
    "MemoryAccessor",
    "Program",
    "StepLimitError",
    "VerifierError",
    "VerifierResult",
    "assemble",
    "compile",
    "crosscheck",
    "disassemble",
    "engines",
    "interpret",
    "verify",
]
