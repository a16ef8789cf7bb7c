"""Code generators: the shared emitter template (``template``), one module per
target architecture, the native ABI (``base``) and listings.

Nothing outside this package knows a CPU register name. ``get_backend(arch)``
imports a backend module only when it is asked for, so one backend never
depends on another being present.
"""

from __future__ import annotations

import importlib

from jit.backends.base import Backend
from jit.core.errors import CompileError

# arch -> (module, class); modules are imported lazily.
_BACKENDS = {
    "x86_64": ("jit.backends.x86_64", "X86_64Backend"),
    "arm64": ("jit.backends.arm64", "Arm64Backend"),
}


def get_backend(arch: str) -> Backend:
    """A fresh code generator for ``arch`` ("x86_64" or "arm64")."""
    try:
        module_name, class_name = _BACKENDS[arch]
    except (KeyError, TypeError):
        raise CompileError(f"unknown architecture {arch!r} (valid: {', '.join(_BACKENDS)})") from None
    return getattr(importlib.import_module(module_name), class_name)()


def architectures() -> tuple[str, ...]:
    """The architecture names ``get_backend`` accepts."""
    return tuple(_BACKENDS)
