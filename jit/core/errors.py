"""Every failure the library detects is a subclass of :class:`BpfError`.

Messages name the instruction (slot index and disassembly) or the assembly line,
so that a user can find the culprit without a debugger.
"""

from __future__ import annotations


class BpfError(Exception):
    """Base class of every error raised by this library."""


class UsageError(BpfError, TypeError, ValueError):
    """A public function was given an argument it cannot use (wrong type or
    value). Also a TypeError and a ValueError, as Python's own would be."""


class DecodeError(BpfError):
    """Malformed bytecode: bad opcode, register, reserved field or length."""


class AssemblyError(BpfError):
    """Assembly text that does not follow the dialect; names the line."""

    def __init__(self, message: str, line: int | None = None, text: str | None = None):
        self.line = line
        self.text = text
        where = f"line {line}: " if line is not None else ""
        shown = f"\n    {text.strip()}" if text else ""
        super().__init__(f"{where}{message}{shown}")


class CompileError(BpfError):
    """The backend cannot translate the program (e.g. an unsupported relocation)."""


class ElfError(BpfError):
    """An ELF object that cannot be loaded; names the section and symbol."""


class VerifierError(BpfError):
    """The verifier rejected the program."""


class ExecutionError(BpfError):
    """A run stopped with an error. ``pc`` is the BPF slot index, when known."""

    def __init__(self, message: str, pc: int | None = None):
        self.pc = pc
        super().__init__(message)


class MemoryAccessError(ExecutionError):
    """A load, store or atomic outside every memory region of the program."""


class StepLimitError(ExecutionError):
    """The ``max_steps`` budget ran out (a runaway loop)."""


class Interrupted(ExecutionError, KeyboardInterrupt):
    """A signal (Ctrl-C) stopped the run at a back-edge or call; also a
    KeyboardInterrupt, so code that stops on Ctrl-C keeps doing so."""


class CallDepthError(ExecutionError):
    """Local calls nested deeper than the limit."""


class HelperError(ExecutionError):
    """An unknown helper id, or a helper that raised an exception."""
