"""What the verifier returns: :class:`VerifierResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from jit.analysis.state import Region


@dataclass(frozen=True)
class VerifierResult:
    """What :func:`jit.analysis.verifier.analyze` found. ``unproven`` holds the
    slots of the accesses (and indirect calls) it could not prove safe,
    ``notes`` says why for each.

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
