"""The machine this process runs on."""

from __future__ import annotations

import platform

_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def host_arch() -> str | None:
    """The host's architecture name ("x86_64" or "arm64"), or None for any other."""
    return _ARCHITECTURES.get(platform.machine().lower())
