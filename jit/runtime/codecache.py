"""Compiled code kept for reuse within the process.

Compiling a program again with everything that shapes its code unchanged (the
instructions, its maps' shapes and host addresses, its global data, the helpers'
names and prototypes, the architecture and the options) reuses the verifier's
result and the generated machine code of the first compile, and native
programs share its executable mapping (``Compiled.shared``); only the
per-program state (context, stack, helper table) is made afresh. The key
holds values, never identities, so a freed map whose address is reused by a map
of another shape cannot hit, and a helper is known by its name and prototype
(the code calls helpers through the context, by id).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jit.analysis.result import VerifierResult
from jit.backends.base import CodegenOptions, NativeCode
from jit.core.errors import UsageError
from jit.core.helpers import REGISTRY, Helper
from jit.frontend.program import Program

DEFAULT_SIZE = 256  # programs kept; the least recently compiled goes first
CODE_VERSION = 1  # raise when generated code changes meaning for the same inputs


@dataclass(frozen=True)
class Compiled:
    """What a compile produced that does not depend on the program object.

    ``shared`` holds what every program made from one cached compile may share
    (jit.compile keeps the executable mapping of the code there)."""

    verification: VerifierResult | None
    native: NativeCode
    shared: dict[str, object] = field(default_factory=dict, compare=False, repr=False)


class CodeCache:
    """A bounded, thread-safe least-recently-used map (e.g. from :func:`key` to :class:`Compiled`)."""

    def __init__(self, size: int = DEFAULT_SIZE):
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


CACHE = CodeCache()  # the process's cache, used by jit.compile
DECODED = CodeCache()  # bytecode -> its decoded Program, for programs given as bytes


def decode(raw: bytes) -> Program:
    """``Program.from_bytes(raw)``, decoding each distinct bytecode once.

    Each call returns a new Program that shares the first decode's immutable
    tables (instructions, slots) and has its own maps, trace log and engine cache."""
    first = DECODED.get(raw)
    if first is None:
        first = Program.from_bytes(raw)
        DECODED.put(raw, first)  # never handed out: a pristine template
    prog = copy.copy(first)
    for spec in dataclasses.fields(prog):
        if spec.default_factory is not dataclasses.MISSING:
            setattr(prog, spec.name, spec.default_factory())
    prog.cache["bytes"] = first.cache["bytes"]
    return prog


def key(
    arch: str, prog: Program, options: CodegenOptions, verify: bool, helpers: Mapping[int, Helper]
) -> Hashable | None:
    """Everything the verifier's verdict and the generated code depend on, as values.

    None for a program built in memory with fields no bytecode can hold (e.g. a 32-bit branch offset):
    it is compiled afresh every time.
    """
    try:
        raw = prog.to_bytes()
    except UsageError:
        return None
    maps = tuple(
        (name, int(m.map_type), m.address, m.values_address, m.key_size, m.value_size, m.max_entries, m.flags)
        for name, m in prog.maps.items()
    )
    # The library's own helpers are described by their registry row (options.helper_ids lists them all);
    # only the others are spelt out.
    described = tuple(
        (i, h.name, h.prototype, h.wants_memory, h.is_native)
        for i, h in helpers.items()
        if (row := REGISTRY.get(i)) is None or h.prototype is not row.prototype or h.name != row.name or h.is_native
    )
    return Key((CODE_VERSION, arch, raw, prog.relocations, maps, options, verify, described))


class Key:
    """A cache key that hashes its (large) value once."""

    __slots__ = ("_hash", "value")

    def __init__(self, value: tuple):
        self.value = value
        self._hash = hash(value)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and self._hash == other._hash and self.value == other.value


def for_program(compiled: Compiled, prog: Program) -> Compiled:
    """``compiled`` with its code attached to ``prog`` (messages, maps and trace log are that program's)."""
    if compiled.native.prog is prog:
        return compiled
    native = copy.copy(compiled.native)  # a shallow copy keeps the computed facts
    native.prog = prog
    return Compiled(compiled.verification, native, compiled.shared)
