"""The verifier's abstract machine: values, frames and states, and how states are joined.

A register holds a :class:`~jit.analysis.scalar.Scalar`, a :class:`Pointer`
(a :class:`Region` plus an abstract offset) or :class:`Unset`; a stack frame
maps each 8-byte slot to a mask of the bytes written or to a spilled value. A
:class:`State` (the frames of the active calls, and bounds on the input
length) is immutable and stored per instruction; :class:`Work` is its mutable
copy for simulating straight-line code. :func:`canonical` renumbers a state's
ids, and :class:`Joiner` joins two states (widening at loop heads) into a
canonical one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from jit.analysis import domain
from jit.analysis.scalar import Scalar, unknown, with_ids
from jit.core.bits import s64
from jit.core.isa import ARGUMENT_REGISTERS

# --- abstract values -----------------------------------------------------------------


class Region(enum.Enum):
    """Where a pointer points; the value names it in messages."""

    BUF = "the input buffer"
    STACK = "the stack"
    MAP = "a map"
    MAP_VALUE = "a map value"
    MAP_VALUE_OR_NULL = "a map value or null"


@dataclass(frozen=True, slots=True)
class Pointer:
    """A pointer: ``region`` plus an abstract byte offset. ``frame`` is the call
    depth of a stack frame (0 = main); ``map`` names a map (LD_IMM64 key);
    ``size`` is a map value's size when known; ``id`` ties copies of a
    possibly-null pointer together; ``readonly`` marks read-only map values."""

    region: Region
    off: Scalar
    frame: int = 0
    map: object = None
    size: int | None = None
    id: int | None = None
    readonly: bool = False


@dataclass(frozen=True, slots=True)
class Unset:
    """An unreadable register: never written, or clobbered by the call at ``by``."""

    by: int | None = None


NEVER = Unset()
Value = Scalar | Pointer | Unset
Slot = int | Scalar | Pointer  # a byte mask of written bytes, or a spilled 8-byte value


@dataclass(frozen=True, slots=True)
class Frame:
    """One call's registers and stack: 8-byte slot index -> contents, for the
    slots with any byte written (the dict is never changed once in a Frame)."""

    regs: tuple[Value, ...]
    stack: Mapping[int, Slot]


@dataclass(frozen=True, slots=True)
class State:
    """The abstract machine at one instruction: the active frames (callers
    first) and bounds on the input length. Ids are numbered canonically."""

    frames: tuple[Frame, ...]
    len_lo: int
    len_hi: int
    ids: int = field(default=0, compare=False)


def repoint(
    p: Pointer,
    *,
    region: Region | None = None,
    off: Scalar | None = None,
    ident: int | bool | None = False,
) -> Pointer:
    """``p`` with some fields changed (faster than dataclasses.replace)."""
    return Pointer(
        p.region if region is None else region,
        p.off if off is None else off,
        p.frame,
        p.map,
        p.size,
        p.id if ident is False else ident,  # type: ignore[arg-type]
        p.readonly,
    )


def describe(value: Value) -> str:
    """How a message names a value: ``the scalar 0x5``, ``a pointer to the stack (offset -8)``..."""
    if isinstance(value, Unset):
        return "uninitialised"
    if isinstance(value, Scalar):
        return f"the scalar {value.umin:#x}" if value.const is not None else f"a scalar in {value}"
    if value.region is Region.MAP:
        return "a map pointer"
    off = value.off
    where = s64(off.umin) if off.const is not None else off
    return f"a pointer to {value.region.value} (offset {where})"


# --- the abstract machine during a block ------------------------------------------------------


class Work:
    """A mutable copy of a :class:`State` for simulating straight-line code."""

    __slots__ = ("callers", "len_hi", "len_lo", "next_id", "regs", "stacks")

    def __init__(self, state: State):
        self.callers = [frame.regs for frame in state.frames[:-1]]
        self.regs: list[Value] = list(state.frames[-1].regs)
        self.stacks = [dict(frame.stack) for frame in state.frames]
        self.len_lo, self.len_hi = state.len_lo, state.len_hi
        self.next_id = state.ids + 1

    def fresh(self) -> int:
        """A new id, for a value not known to equal any other."""
        self.next_id += 1
        return self.next_id - 1

    def copy(self) -> Work:
        """An independent copy (for each outcome of a branch)."""
        other = object.__new__(Work)
        other.callers = list(self.callers)
        other.regs = list(self.regs)
        other.stacks = [dict(stack) for stack in self.stacks]
        other.len_lo, other.len_hi, other.next_id = self.len_lo, self.len_hi, self.next_id
        return other

    def state(self) -> State:
        """An immutable snapshot."""
        frames = [Frame(regs, dict(stack)) for regs, stack in zip(self.callers, self.stacks)]
        frames.append(Frame(tuple(self.regs), dict(self.stacks[-1])))
        return State(tuple(frames), self.len_lo, self.len_hi, self.next_id)

    @property
    def depth(self) -> int:
        """The number of active frames (1 in the main program)."""
        return len(self.stacks)

    def clobber(self, pc: int) -> None:
        """R1-R5 are unreadable after the call at ``pc``, until written again."""
        clobbered = Unset(pc)
        regs = self.regs
        for reg in ARGUMENT_REGISTERS:
            regs[reg] = clobbered

    def values(self) -> Iterator[tuple[list | dict, int, Value]]:
        """(container, index, value) of every value a refinement may apply to:
        the current registers and every spilled stack slot."""
        regs = self.regs
        for index, value in enumerate(regs):
            if not isinstance(value, Unset):
                yield regs, index, value
        for stack in self.stacks:
            for index, slot in stack.items():
                if not isinstance(slot, int):
                    yield stack, index, slot


# --- states: canonical ids, join, widening ------------------------------------------------------


def canonical(state: State) -> State:
    """Renumber ids 1, 2, ... in order of first appearance (ids are only names)."""
    mapping: dict[int, int] = {}

    def rename(ident: int | None) -> int | None:
        if ident is None:
            return None
        new = mapping.get(ident)
        if new is None:
            new = mapping[ident] = len(mapping) + 1
        return new

    def scalar(s: Scalar) -> Scalar:
        if s.id is None and s.base is None:
            return s
        ident, base = rename(s.id), rename(s.base)
        return s if (ident, base) == (s.id, s.base) else with_ids(s, ident, base, s.delta)

    def value(v: Value | int) -> Value | int:
        if isinstance(v, Scalar):
            return scalar(v)
        if isinstance(v, Pointer):
            off, ident = scalar(v.off), rename(v.id)
            return v if off is v.off and ident == v.id else repoint(v, off=off, ident=ident)
        return v

    frames = tuple(
        Frame(
            tuple(map(value, f.regs)),  # type: ignore[arg-type]
            {index: value(f.stack[index]) for index in sorted(f.stack)},  # type: ignore[misc]
        )
        for f in state.frames
    )
    return State(frames, state.len_lo, state.len_hi, len(mapping))


def unset_only_in(a: State, b: State) -> bool:
    """Whether ``a`` has an unreadable register or an unwritten stack byte that ``b`` has not."""
    for fa, fb in zip(a.frames, b.frames):
        for x, y in zip(fa.regs, fb.regs):
            if isinstance(x, Unset) and not isinstance(y, Unset):
                return True
        for index, slot in fb.stack.items():
            written = fa.stack.get(index, 0)
            if (slot if isinstance(slot, int) else 0xFF) & ~(written if isinstance(written, int) else 0xFF):
                return True
    return False


class Joiner:
    """Joins (and widens) two states at one instruction. Ids pair up: values
    that are equal in both states (same id in each) stay equal in the join."""

    def __init__(
        self,
        old: State,
        new: State,
        widen: bool,
        give_up: bool,
        thresholds: tuple[tuple[int, ...], ...],
        pc: int,
    ):
        self.old, self.new = old, new
        self.len_old, self.len_new = (old.len_lo, old.len_hi), (new.len_lo, new.len_hi)
        self.len = (min(old.len_lo, new.len_lo), max(old.len_hi, new.len_hi))
        if widen:
            self.len = domain.widen_len(self.len_old, self.len, thresholds[-1])
        self.widen, self.give_up, self.all_thresholds, self.pc = widen, give_up, thresholds, pc
        self.thresholds = thresholds[-1]  # those of what is being joined
        self.pairs: dict[tuple[object, object], int] = {}

    def state(self) -> State:
        """The joined state."""
        frames = tuple(
            Frame(tuple(self._regs(fa.regs, fb.regs)), self.stack(fa.stack, fb.stack))
            for fa, fb in zip(self.old.frames, self.new.frames)
        )
        # pairs are numbered in the order canonical would number them: the join is canonical
        return State(frames, *self.len, len(self.pairs))

    def _regs(self, a: tuple[Value, ...], b: tuple[Value, ...]) -> Iterator[Value]:
        for reg, (x, y) in enumerate(zip(a, b)):
            self.thresholds = self.all_thresholds[reg]
            yield self.value(x, y)
        self.thresholds = self.all_thresholds[-1]

    def _pair(self, a: object, b: object) -> int | None:
        if a is None or b is None:
            return None
        return self.pairs.setdefault((a, b), len(self.pairs) + 1)

    @staticmethod
    def _key(s: Scalar) -> object:
        return s.id if s.id is not None else (("c", s.umin) if s.umin == s.umax else None)

    def scalar(self, a: Scalar, b: Scalar) -> Scalar:
        """The join of two scalars (widened if at a loop head), with paired ids."""
        if a == b and a.id is None and a.base is None:
            return a
        if domain.same_bounds(a, b) and (self.len_old == self.len_new or a.dlo is a.dhi is None):
            joined = a
        else:
            joined = domain.join(a, b, self.len_old, self.len_new, self.len)
        if self.widen and joined is not a:
            joined = domain.widen(a, joined, self.thresholds)
            if self.give_up and not domain.same_bounds(a, joined):
                joined = unknown()
        if joined.umin == joined.umax:
            return joined
        lost = a.lost if a.lost is not None else b.lost
        ident = self._pair(self._key(a), self._key(b))  # numbered as canonical numbers them
        base = self._pair(a.base, b.base) if a.delta == b.delta else None
        return with_ids(joined, ident, base, a.delta if base is not None else 0, lost)

    def value(self, a: Value, b: Value) -> Value:
        """The join of two values; a pointer joined with anything else than a
        compatible pointer (or null, for a map value) becomes a scalar."""
        if isinstance(a, Unset):
            return a
        if isinstance(b, Unset):
            return b
        if isinstance(a, Scalar) and isinstance(b, Scalar):
            return self.scalar(a, b)
        if isinstance(a, Pointer) and isinstance(b, Pointer):
            joined = self.pointer(a, b)
            if joined is not None:
                return joined
        pointer = a if isinstance(a, Pointer) else b
        other = b if pointer is a else a
        maybe_null = (Region.MAP_VALUE, Region.MAP_VALUE_OR_NULL)
        if pointer.region in maybe_null and isinstance(other, Scalar) and other.const == 0:
            off = self.scalar(pointer.off, pointer.off) if pointer.off.const is None else pointer.off
            return repoint(pointer, region=Region.MAP_VALUE_OR_NULL, off=off, ident=None)
        if (
            isinstance(other, Pointer)
            and pointer.map == other.map
            and {pointer.region, other.region} == {Region.MAP_VALUE, Region.MAP_VALUE_OR_NULL}
        ):
            off = self.scalar(a.off, b.off)  # type: ignore[union-attr]
            return repoint(pointer, region=Region.MAP_VALUE_OR_NULL, off=off, ident=None)
        return unknown(lost=self.pc)

    def pointer(self, a: Pointer, b: Pointer) -> Pointer | None:
        """The join of two pointers into the same region, else None."""
        if (a.region, a.frame, a.map, a.size, a.readonly) != (b.region, b.frame, b.map, b.size, b.readonly):
            return None
        off = self.scalar(a.off, b.off)
        return repoint(a, off=off, ident=self._pair(a.id, b.id))

    def stack(self, a: Mapping[int, Slot], b: Mapping[int, Slot]) -> dict[int, Slot]:
        """Slots written on both sides stay written; spills are joined."""
        out: dict[int, Slot] = {}
        for index in sorted(a.keys() & b.keys()):
            x, y = a[index], b[index]
            if isinstance(x, int) or isinstance(y, int):
                mask = (x if isinstance(x, int) else 0xFF) & (y if isinstance(y, int) else 0xFF)
                if mask:
                    out[index] = mask
            else:
                out[index] = self.value(x, y)  # type: ignore[assignment]
        return out
