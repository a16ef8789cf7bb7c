"""Checks of public arguments: each raises :class:`UsageError` naming the parameter,
what it takes and what it got, before any work is done with the value."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike

from jit.core.errors import UsageError

INT64_MAX = (1 << 63) - 1


def _got(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def check_int(name: str, value: object, lo: int = 0, hi: int = INT64_MAX) -> int:
    """``value`` as an int in lo..hi (bool is not a count)."""
    if type(value) is bool or not isinstance(value, int):
        raise UsageError(f"{name} must be an int in {lo}..{hi}, not {_got(value)}")
    if not lo <= value <= hi:
        raise UsageError(f"{name} must be an int in {lo}..{hi}, not {value}")
    return int(value)


def check_optional_int(name: str, value: object, lo: int = 0, hi: int = INT64_MAX) -> int | None:
    """None, or ``value`` as an int in lo..hi."""
    return None if value is None else check_int(name, value, lo, hi)


def check_bool(name: str, value: object) -> bool:
    """``value`` as a bool (True/False, or the ints 0 and 1)."""
    if isinstance(value, bool) or (type(value) is int and value in (0, 1)):
        return bool(value)
    raise UsageError(f"{name} must be True or False, not {_got(value)}")


def check_str(name: str, value: object) -> str:
    """``value`` as a str."""
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a str, not {_got(value)}")
    return value


def check_optional_str(name: str, value: object) -> str | None:
    """None, or ``value`` as a str."""
    return None if value is None else check_str(name, value)


def check_path(name: str, value: object) -> str | PathLike[str]:
    """``value`` as a file path (str or os.PathLike)."""
    if not isinstance(value, str | PathLike):
        raise UsageError(f"{name} must be a file path (str or pathlib.Path), not {_got(value)}")
    return value


def check_mapping(name: str, value: object, what: str) -> Mapping:
    """``value`` as a mapping (``what`` says what it maps, for the message)."""
    if not isinstance(value, Mapping):
        raise UsageError(f"{name} must be a mapping of {what} (e.g. a dict), not {_got(value)}")
    return value
