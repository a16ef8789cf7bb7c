"""What the verifier returns: :class:`VerifierResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from jit.analysis.state import Region


@dataclass(frozen=True)
class VerifierResult:
    """What the verifier found (:func:`jit.verify`, ``fn.verification``). ``unproven`` holds the
    slots of the accesses (and indirect calls) it could not prove safe,
    ``notes`` says why for each. ``imprecise`` is set when a violation was
    found on a state made imprecise by joins: then nothing is proven.

    ``regions`` gives, for each unproven slot, the region(s) the access is
    meant for: a run-time check must confine the access to those regions
    (not merely to some valid memory), or a stray store could forge a pointer
    spilled on the stack that the verifier trusts when it is reloaded.
    """

    insns_processed: int
    states_pruned: int
    unproven: frozenset[int]
    max_call_depth: int
    elapsed: float
    notes: Mapping[int, str] = field(default_factory=dict)
    regions: Mapping[int, frozenset[Region]] = field(default_factory=dict)
    states_stored: int = 0
    loops: bool = False
    # Set when a violation was found only on a state that joining or widening
    # made imprecise: the program is neither proven safe nor proven unsafe.
    # The message says where; jit.compile then checks every access at run time.
    imprecise: str | None = None
    # What Linux refuses but every engine runs the same way, slot -> message:
    # reads of uninitialised registers or stack bytes (a zeroed stack makes
    # them defined), unreachable instructions. jit.verify rejects them.
    lenient: Mapping[int, str] = field(default_factory=dict)

    @property
    def proven(self) -> bool:
        """Whether the program passes the strict, Linux-like checks: every
        access proven safe, nothing read before it is written, no dead code."""
        return not self.unproven and self.imprecise is None and not self.lenient
