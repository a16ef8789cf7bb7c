"""Pausing Python's cyclic garbage collector around work that allocates many
small objects and makes no reference cycles (decoding, code generation,
verification): a collection there only costs time (15-20% of a 100,000-slot
compile), and the objects are freed by reference counting anyway."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (unless it is already off), then restore it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
