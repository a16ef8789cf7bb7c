"""The helper registry: every helper this library knows, by its Linux id.

One row per helper (:data:`REGISTRY`): its id (``enum bpf_func_id`` in
include/uapi/linux/bpf.h), its name and its prototype, which the verifier
checks calls against. The Python implementations live in
:mod:`jit.runtime.helpers` (one per row, built for each program over its maps);
generated code reaches them through the helper table of the run-time context
(:mod:`jit.core.abi`), and may serve one natively (the array-map lookup stub).

A resolved helper is a :class:`Helper`: a Python callable ``f(r1, r2, r3, r4,
r5) -> int`` taking the five argument registers as unsigned 64-bit ints, or a
native function address following the C ABI ``uint64_t f(u64, u64, u64, u64,
u64)``, with the prototype that applies to it. A helper that must read or
write program memory declares a keyword-only parameter ``memory`` and is
handed a :class:`MemoryAccessor` for the running engine::

    def memfrob(addr, size, _c, _d, _e, *, memory):
        data = bytes(b ^ 42 for b in memory.read(addr, size))
        memory.write(addr, data)
        return 0
"""

from __future__ import annotations

import ctypes
import enum
import functools
import inspect
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from jit.core.bits import MASK64
from jit.core.errors import UsageError
from jit.core.usage import check_mapping


class HelperId(enum.IntEnum):
    """Linux helper ids of the helpers in the registry."""

    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    PROBE_READ = 4
    KTIME_GET_NS = 5
    TRACE_PRINTK = 6
    GET_PRANDOM_U32 = 7
    GET_SMP_PROCESSOR_ID = 8
    TAIL_CALL = 12
    GET_CURRENT_PID_TGID = 14
    GET_CURRENT_COMM = 16
    PROBE_READ_USER = 112
    PROBE_READ_KERNEL = 113


class Arg(enum.Enum):
    """What a helper argument must be; the memory kinds are its memory effects."""

    ANY = "an initialised value"
    SCALAR = "a scalar"
    MAP = "a map pointer"
    KEY = "a pointer to a map key"  # read: the map's key_size bytes
    VALUE = "a pointer to a map value"  # read: the map's value_size bytes
    MEM_IN = "a pointer to readable memory"  # read: as many bytes as the next argument says
    MEM_OUT = "a pointer to writable memory"  # written: as many bytes as the next argument says
    SIZE = "a size"  # more than zero (Linux's ARG_CONST_SIZE)
    SIZE_OR_ZERO = "a size or zero"  # Linux's ARG_CONST_SIZE_OR_ZERO


class Ret(enum.Enum):
    SCALAR = "scalar"
    U32 = "u32"
    MAP_VALUE_OR_NULL = "map value or null"


@dataclass(frozen=True)
class Prototype:
    """A helper's argument kinds (R1, R2, ...) and return kind. A helper without
    one may take anything, returns a scalar and may write any stack memory it
    is given a pointer to."""

    name: str
    args: tuple[Arg, ...] = ()
    ret: Ret = Ret.SCALAR


@dataclass(frozen=True)
class HelperSpec:
    """One row of the registry: a helper's id, name and prototype (None: unchecked)."""

    id: HelperId
    name: str
    prototype: Prototype | None


def _spec(helper_id: HelperId, args: tuple[Arg, ...] = (), ret: Ret = Ret.SCALAR) -> HelperSpec:
    name = helper_id.name.lower()
    return HelperSpec(helper_id, name, Prototype(name, args, ret))


_MEM_OUT = (Arg.MEM_OUT, Arg.SIZE_OR_ZERO, Arg.ANY)  # probe_read_user/kernel may read nothing, as in Linux
REGISTRY: Mapping[int, HelperSpec] = MappingProxyType(
    {
        spec.id: spec
        for spec in (
            _spec(HelperId.MAP_LOOKUP_ELEM, (Arg.MAP, Arg.KEY), Ret.MAP_VALUE_OR_NULL),
            _spec(HelperId.MAP_UPDATE_ELEM, (Arg.MAP, Arg.KEY, Arg.VALUE, Arg.SCALAR)),
            _spec(HelperId.MAP_DELETE_ELEM, (Arg.MAP, Arg.KEY)),
            # The legacy probe_read is unchecked, as it always was here.
            HelperSpec(HelperId.PROBE_READ, "probe_read", None),
            _spec(HelperId.KTIME_GET_NS),
            _spec(HelperId.TRACE_PRINTK, (Arg.MEM_IN, Arg.SIZE)),
            _spec(HelperId.GET_PRANDOM_U32, (), Ret.U32),
            _spec(HelperId.GET_SMP_PROCESSOR_ID, (), Ret.U32),
            _spec(HelperId.TAIL_CALL, (Arg.ANY, Arg.MAP, Arg.SCALAR)),
            _spec(HelperId.GET_CURRENT_PID_TGID),
            _spec(HelperId.GET_CURRENT_COMM, (Arg.MEM_OUT, Arg.SIZE)),
            _spec(HelperId.PROBE_READ_USER, _MEM_OUT),
            _spec(HelperId.PROBE_READ_KERNEL, _MEM_OUT),
        )
    }
)
# The prototypes the verifier checks calls against, by helper id.
HELPER_PROTOTYPES: Mapping[int, Prototype] = MappingProxyType(
    {i: spec.prototype for i, spec in REGISTRY.items() if spec.prototype is not None}
)


class MemoryAccessor(Protocol):
    """Program memory as a helper sees it; the same on every engine.

    Addresses are those the program holds in its registers. An access outside
    every region of the program raises :class:`jit.MemoryAccessError`.
    """

    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


@dataclass(frozen=True)
class Helper:
    """A resolved helper: a Python callable or a native function address, and
    the prototype the verifier checks its calls against (None: unchecked)."""

    id: int
    name: str
    func: Callable[..., int] | None = None
    address: int | None = None
    wants_memory: bool = False
    prototype: Prototype | None = None

    @property
    def is_native(self) -> bool:
        return self.address is not None

    def call(self, args: tuple[int, int, int, int, int], memory: MemoryAccessor) -> int:
        """Call a Python helper. Its result must be an int (a bool counts); it is
        taken modulo 2**64, so -1 is 0xffffffffffffffff. Anything else (None,
        a float) is a TypeError, which the engines report as a HelperError."""
        if self.func is None:
            raise TypeError(f"helper {self.id} ({self.name}) is native and cannot be called from Python")
        result = self.func(*args, memory=memory) if self.wants_memory else self.func(*args)
        if not isinstance(result, int):
            raise TypeError(f"returned {result!r}, not an int (the value of R0)")
        return result & MASK64


def prototype_for(helper_id: int, name: str) -> Prototype | None:
    """The prototype that applies to a user's helper: the registry's for that
    id when the helper carries the registry's name (``bpf_`` prefix optional)."""
    proto = HELPER_PROTOTYPES.get(helper_id)
    return proto if proto is not None and name.removeprefix("bpf_") == proto.name else None


def make_helper(helper_id: int, value: object, builtin: bool = False) -> Helper:
    """A :class:`Helper` from a callable, a native address (int or ctypes
    function pointer) or a Helper. ``builtin`` marks the library's own
    implementation of the registry row ``helper_id``: its prototype applies."""
    if builtin and type(value) is types.FunctionType and value.__closure__ is None:
        return _builtin_helper(helper_id, value)  # a module-level function: the same Helper every time
    if isinstance(value, Helper):
        return value
    if isinstance(value, int):
        _check_native_address(helper_id, value)
        return Helper(helper_id, f"native@0x{value:x}", address=value)
    if isinstance(value, ctypes._CFuncPtr):  # a ctypes function pointer (CFUNCTYPE or a library symbol)
        address = ctypes.cast(value, ctypes.c_void_p).value or 0
        name = getattr(value, "__name__", f"native@0x{address:x}")
        return Helper(helper_id, name, address=address, prototype=prototype_for(helper_id, name))
    if not callable(value):
        raise UsageError(f"helper {helper_id}: expected a callable or a native function address, got {value!r}")
    if builtin and isinstance(value, types.FunctionType):  # our own, known to fit R1-R5: skip inspect.signature
        wants_memory = _takes_memory(value.__code__)
    else:
        wants_memory = _check_arity(helper_id, value)
    if builtin:
        spec = REGISTRY[helper_id]
        return Helper(helper_id, spec.name, func=value, wants_memory=wants_memory, prototype=spec.prototype)
    name = getattr(value, "__name__", repr(value))
    return Helper(helper_id, name, func=value, wants_memory=wants_memory, prototype=prototype_for(helper_id, name))


@functools.lru_cache(maxsize=512)
def _builtin_helper(helper_id: int, func: types.FunctionType) -> Helper:
    spec = REGISTRY[helper_id]
    return Helper(helper_id, spec.name, func=func, wants_memory=_takes_memory(func.__code__), prototype=spec.prototype)


@functools.lru_cache(maxsize=512)
def _takes_memory(code: types.CodeType) -> bool:
    """Whether a function with this code takes ``memory=`` (a named parameter or **kwargs)."""
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return "memory" in names or bool(code.co_flags & inspect.CO_VARKEYWORDS)


def _check_arity(helper_id: int, value: Callable) -> bool:
    """Whether ``value`` takes ``memory=``; UsageError when it cannot be called with R1-R5."""
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):  # a builtin without a signature: called as it is
        return False
    params = signature.parameters
    wants_memory = "memory" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    try:
        signature.bind(*range(5), **({"memory": None} if wants_memory else {}))
    except TypeError as exc:
        raise UsageError(
            f"helper {helper_id} ({getattr(value, '__name__', repr(value))}) cannot be called with R1-R5: {exc};"
            " define it as f(r1, r2, r3, r4, r5) or f(*args), with a memory= keyword if it reads memory"
        ) from None
    return wants_memory


def _check_native_address(helper_id: int, address: int) -> None:
    """A native helper given as an int must lie in executable memory of this
    process (else calling it would crash the interpreter)."""
    if not 0 < address < 1 << 64:
        raise UsageError(f"helper {helper_id}: 0x{address:x} is not a native function address")
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                span, perms = line.split()[:2]
                lo, hi = (int(bound, 16) for bound in span.split("-"))
                if lo <= address < hi:
                    if "x" in perms:
                        return
                    break
    except OSError:  # no /proc: nothing to check against
        return
    raise UsageError(
        f"helper {helper_id}: 0x{address:x} is not in executable memory of this process; give a ctypes"
        " function (CFUNCTYPE or a library symbol) or its address"
    )


def resolve_helpers(builtins: Mapping[int, object], user: Mapping[int, object] | None = None) -> dict[int, Helper]:
    """The library's helpers (``builtins``: registry id -> implementation)
    updated with the user's ``helpers=`` (a value of None removes one)."""
    table = {helper_id: make_helper(helper_id, value, builtin=True) for helper_id, value in builtins.items()}
    if user is not None:
        check_mapping("helpers", user, "helper ids to callables or native function addresses")
    for helper_id, value in (user or {}).items():
        if not isinstance(helper_id, int) or not 0 <= helper_id < 2**31:
            raise UsageError(f"helper ids are ints in 0..2**31-1, got {helper_id!r}")
        if value is None:
            table.pop(helper_id, None)
        else:
            table[helper_id] = make_helper(helper_id, value)
    return dict(sorted(table.items()))


def declared_helpers(user: Mapping[int, object] | None = None) -> dict[int, Helper]:
    """The helpers a program may call, for checking it before it runs: every
    registry row (its name and prototype, no implementation), then the user's."""
    rows = {helper_id: Helper(helper_id, spec.name, prototype=spec.prototype) for helper_id, spec in REGISTRY.items()}
    return resolve_helpers(rows, user)
