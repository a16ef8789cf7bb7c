"""What every transfer function works with: the :class:`Context` of one analysis.

A transfer function simulates one instruction on a mutable
:class:`~jit.analysis.state.Work` copy of the state. Through the context it
reads registers (an unreadable one is an error), reports errors and unproven
accesses with the path reaching them, looks up the program's maps, and queues
the state of each instruction control goes to next (:meth:`Context.push`,
which the fixpoint implements).
"""

from __future__ import annotations

from collections.abc import Mapping

from jit.analysis.scalar import Scalar, unknown
from jit.analysis.state import Pointer, Region, State, Unset, Work
from jit.core.errors import VerifierError
from jit.core.helpers import Helper
from jit.frontend.program import Program

PATH_SHOWN = 40  # path entries shown in a message

Path = tuple[int, "Path"] | None  # the slots of a path, the latest first (shared tails)
CallStack = tuple[int, ...]  # the slots of the active local calls, outermost first


def extend(path: Path, *pcs: int) -> Path:
    """``path`` followed by ``pcs`` (a slot repeating the last one is not added)."""
    for pc in pcs:
        if path is None or path[0] != pc:
            path = (pc, path)
    return path


def show_path(path: Path, pc: int) -> str:
    """``path: 0 -> 3 -> 7`` (the last ``PATH_SHOWN`` entries), for a message about ``pc``."""
    pcs: list[int] = []
    node = extend(path, pc)
    while node is not None:
        pcs.append(node[0])
        node = node[1]
    pcs.reverse()
    if pcs[0] != 0:
        pcs.insert(0, 0)
    shown = " -> ".join(map(str, pcs[-PATH_SHOWN:]))
    return f"path: {'... -> ' if len(pcs) > PATH_SHOWN else ''}{shown}"


class Context:
    """The program being verified, what was found so far (``notes`` and
    ``regions`` of unproven accesses), and where the simulation is (``path``
    to the current block, ``pc`` of the current instruction)."""

    def __init__(self, prog: Program, helpers: Mapping[int, Helper], mem_size: int | None):
        self.prog, self.helpers, self.mem_size = prog, helpers, mem_size
        self.relocations = {r.pc: r for r in getattr(prog, "relocations", ())}
        self.maps = getattr(prog, "maps", None) or {}
        self.notes: dict[int, str] = {}
        self.regions: dict[int, set[Region]] = {}
        self.lenient: dict[int, str] = {}
        self._unset_reads: dict[int, str] = {}  # pc -> "reads %rN, which ..." (for error messages)
        self.exact = True  # whether the state being simulated is exact (no join contributed)
        self.path: Path = None
        self.pc = 0

    def push(self, calls: CallStack, pc: int, state: State, path: Path) -> None:
        """Queue ``state`` for the instruction at ``pc`` in the call context ``calls``."""
        raise NotImplementedError  # the fixpoint's

    def error(self, pc: int, message: str) -> VerifierError:
        """A :class:`VerifierError` naming the instruction at ``pc`` and the path reaching it."""
        unset = self._unset_reads.get(pc)
        if unset is not None:  # the violation follows from that read: say so
            message = f"{message} (it {unset})"
        return VerifierError(f"{self.prog.describe(pc)}: {message}\n  {show_path(self.path, pc)}")

    def unproven(self, pc: int, message: str, region: Region | None) -> None:
        """Record that the access at ``pc`` (meant for ``region``) is not provably safe."""
        if pc not in self.notes:
            self.notes[pc] = f"{message}\n  {show_path(self.path, pc)}"
        regions = self.regions.setdefault(pc, set())
        if region is not None:
            regions.add(region)

    def not_linux(self, pc: int, message: str) -> None:
        """Record something Linux refuses but every engine defines the same way
        (an uninitialised register or stack byte read, unreachable code):
        :func:`jit.verify` rejects it, ``jit.compile`` runs it with a zeroed stack."""
        if pc not in self.lenient:
            self.lenient[pc] = f"{self.prog.describe(pc)}: {message}\n  {show_path(self.path, pc)}"

    def read(self, w: Work, reg: int) -> Scalar | Pointer:
        """The value of ``reg``: an unknown scalar (and a :meth:`not_linux`
        finding) if it is unreadable on this path."""
        value = w.regs[reg]
        if isinstance(value, Unset):
            if value.by is not None:
                message = (
                    f"reads %r{reg}, which the call at {self.prog.describe(value.by)} clobbered"
                    " (R1-R5 are unreadable after a call until written again)"
                )
            else:
                message = f"reads %r{reg}, which is not initialised on this path"
            self.not_linux(self.pc, message)
            self._unset_reads.setdefault(self.pc, message)
            value = unknown(w.fresh())
        return value

    def map_by_reference(self, by_index: bool, ref: int) -> object:
        """The map an unresolved LD_IMM64 names (by index, or by fd = index here)."""
        maps = list(self.maps.values())
        return maps[ref] if ref < len(maps) else None

    def map_of(self, pointer: Pointer) -> object:
        """The map a map pointer or map value pointer belongs to, if known."""
        key = pointer.map
        if isinstance(key, str):
            return self.maps.get(key)
        if isinstance(key, tuple):
            return self.map_by_reference(*key)
        return None
