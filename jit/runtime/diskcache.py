"""Compiled code kept on disk, for later processes (``jit.compile(cache_dir=...)``
or the ``BPFJIT_CACHE_DIR`` environment variable).

One file per compile, named by a SHA-256 digest of everything the code depends
on (the in-process cache's key, see :mod:`jit.runtime.codecache`, plus a digest
of this library's own source, so a changed compiler never meets old code).
A file holds JSON for the records (offsets, labels, checks, the verifier's
result) and the machine code, authenticated with HMAC-SHA256 under a random
key kept in the directory (mode 0600). Nothing is unpickled or executed before
the tag and the records' shapes check out: a corrupted, truncated, foreign or
tampered file counts as a miss (``rejected``) and is compiled and written
afresh. Writes go to a temporary file that is renamed into place, so
concurrent writers and readers only ever see whole files.

The directory must belong to the user and not be writable by others (as for
ssh's files): whoever can write it could plant code, and whoever can read the
key could forge it. Only programs without maps or global data are written:
their code holds no address of this process.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import hmac
import json
import os
import secrets
import stat
import struct
import tempfile
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

from jit.analysis.result import VerifierResult
from jit.analysis.state import Region
from jit.backends.base import CodeFacts, NativeCode
from jit.core.abi import Check
from jit.core.errors import UsageError
from jit.frontend.program import Program
from jit.runtime.codecache import Compiled, Key

ENV_VAR = "BPFJIT_CACHE_DIR"
MAGIC = b"bpfjit-code\x00v1\x00\x00\x00"  # 16 bytes: format name and version
KEY_FILE = "hmac-key"
SUFFIX = ".code"
_TAG = hashlib.sha256().digest_size
_LENGTH = struct.Struct("<I")
_ENUMS = {cls.__name__: cls for cls in (Region, Check)}  # the only enum types a file may name


class Unkeyable(TypeError):
    """A key holds a value with no stable byte form (kept in memory only)."""


def canonical(value: object) -> bytes:
    """A byte string that is equal for equal keys in any process (sets sorted, types named)."""
    if value is None or isinstance(value, bool | int | str):
        return f"{type(value).__name__}:{value!r};".encode()
    if isinstance(value, enum.Enum):
        return f"enum:{type(value).__qualname__}.{value.name};".encode()
    if isinstance(value, bytes):
        return b"bytes:%d:%s;" % (len(value), value)
    if isinstance(value, tuple | list):
        return b"(" + b"".join(canonical(item) for item in value) + b")"
    if isinstance(value, frozenset | set):
        return b"{" + b"".join(sorted(canonical(item) for item in value)) + b"}"
    if isinstance(value, Mapping):
        return b"[" + b"".join(sorted(canonical(k) + canonical(v) for k, v in value.items())) + b"]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (canonical(getattr(value, f.name)) for f in dataclasses.fields(value))
        return f"{type(value).__qualname__}<".encode() + b"".join(fields) + b">"
    raise Unkeyable(f"no stable form for {type(value).__name__}")


@functools.cache
def source_digest() -> bytes:
    """SHA-256 over this library's Python source: code compiled by another version never hits."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


def cacheable(prog: Program) -> bool:
    """Whether ``prog``'s code is free of this process's addresses (no maps, global data or relocations)."""
    return not prog.maps and not prog.memory and not prog.relocations


class DiskCache:
    """The compiled-code files of one directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory).expanduser().absolute()
        self.hits = self.misses = self.rejected = self.writes = 0
        self._lock = threading.Lock()  # for the counters
        _make_private_dir(self.directory)
        self._secret = _load_secret(self.directory / KEY_FILE)

    def path_for(self, key: Key) -> Path | None:
        """The file that holds (or would hold) the code for ``key``; None when the key has no stable form."""
        try:
            form = canonical(key.value)
        except Unkeyable:
            return None
        return self.directory / (hashlib.sha256(source_digest() + form).hexdigest() + SUFFIX)

    def load(self, path: Path, prog: Program) -> Compiled | None:
        """The code stored at ``path``, attached to ``prog``; None when there is none or it fails a check."""
        try:
            blob = path.read_bytes()
        except OSError:
            self._count("misses")
            return None
        try:
            compiled = _decode(blob, self._secret, path.name, prog)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, UsageError):  # any malformed record
            self._count("rejected")
            return None
        self._count("hits")
        return compiled

    def store(self, path: Path, compiled: Compiled) -> None:
        """Write ``compiled`` to ``path`` atomically; a failure to write only warns."""
        blob = _encode(compiled, self._secret, path.name)
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=SUFFIX)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(blob)
                os.replace(temp, path)
            except BaseException:
                os.unlink(temp)
                raise
        except OSError as exc:
            warnings.warn(f"bpfjit: cannot write compiled code to {path}: {exc}", RuntimeWarning, stacklevel=3)
            return
        self._count("writes")

    def entries(self) -> list[Path]:
        """The stored compiles' files (not a writer's temporary file)."""
        return sorted(self.directory.glob("[!.]*" + SUFFIX))

    def clear(self) -> int:
        """Delete every stored compile (the key stays); returns how many."""
        removed = 0
        for path in self.entries():
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


@functools.lru_cache(maxsize=16)
def open_cache(directory: str) -> DiskCache:
    """The process's :class:`DiskCache` for ``directory`` (checked and its key read once)."""
    return DiskCache(directory)


def _make_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        raise UsageError(f"cache_dir {directory}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"cache_dir {directory} is not a directory")
    _check_private(directory, info, 0o022, "writable by other users")


def _check_private(path: Path, info: os.stat_result, forbidden: int, what: str) -> None:
    if info.st_uid != os.getuid():
        raise UsageError(f"cache_dir: {path} belongs to another user (uid {info.st_uid}); use a directory of your own")
    if info.st_mode & forbidden:
        raise UsageError(
            f"cache_dir: {path} is {what} (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run chmod go-{'w' if forbidden == 0o022 else 'rwx'} on it or pick a private directory"
        )


def _load_secret(path: Path) -> bytes:
    """The directory's HMAC key, made on first use (linked into place, so concurrent makers agree)."""
    if not path.exists():
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-key-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
            os.link(temp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError as exc:
            raise UsageError(f"cache_dir: cannot create {path}: {exc.strerror or exc}") from None
        finally:
            os.unlink(temp)
    try:
        with open(path, "rb") as key_file:
            _check_private(path, os.fstat(key_file.fileno()), 0o077, "readable or writable by other users")
            secret = key_file.read()
    except OSError as exc:
        raise UsageError(f"cache_dir: cannot read {path}: {exc.strerror or exc}") from None
    if len(secret) != 32:
        raise UsageError(f"cache_dir: {path} is not a bpfjit key (delete it to make a new one)")
    return secret


# --- the file format ---------------------------------------------------------------------


def _encode(compiled: Compiled, secret: bytes, name: str) -> bytes:
    native, verification = compiled.native, compiled.verification
    header = {
        "name": name,
        "arch": native.arch,
        "entry": native.entry,
        "offsets": native.offsets,
        "labels": native.labels,
        "checks": [[slot, int(where)] for slot, where in native.checks.items()],
        "assembly": native.assembly,
        "facts": _to_json(_fields(native.facts)),
        "verification": None if verification is None else _to_json(_fields(verification)),
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    body = _LENGTH.pack(len(text)) + text + native.code
    return MAGIC + hmac.digest(secret, body, "sha256") + body


def _decode(blob: bytes, secret: bytes, name: str, prog: Program) -> Compiled:
    """The Compiled a file holds; ValueError (or TypeError, KeyError) when any check fails."""
    start = len(MAGIC) + _TAG
    if len(blob) < start + _LENGTH.size or not blob.startswith(MAGIC):
        raise ValueError("not a bpfjit code file")
    body = blob[start:]
    if not hmac.compare_digest(blob[len(MAGIC) : start], hmac.digest(secret, body, "sha256")):
        raise ValueError("authentication tag mismatch")
    (length,) = _LENGTH.unpack_from(body)
    header = json.loads(body[_LENGTH.size : _LENGTH.size + length])
    code = body[_LENGTH.size + length :]
    if header["name"] != name:  # a valid file renamed to another key
        raise ValueError("stored under another key")
    native = NativeCode(
        arch=_typed(header["arch"], str),
        code=code,
        offsets=_ints(header["offsets"]),
        entry=_typed(header["entry"], int),
        prog=prog,
        assembly=_typed(header["assembly"], str),
        labels={_typed(k, str): _typed(v, int) for k, v in header["labels"].items()},
        checks={_typed(slot, int): Check(_typed(where, int)) for slot, where in header["checks"]},
        facts=CodeFacts(**_from_json(header["facts"])),
    )
    _check_layout(native)
    stored = header["verification"]
    verification = None if stored is None else VerifierResult(**_from_json(stored))
    return Compiled(verification, native)


def _check_layout(native: NativeCode) -> None:
    size = len(native.code)
    if len(native.offsets) != len(native.prog.instructions) or list(native.offsets) != sorted(native.offsets):
        raise ValueError("offsets do not fit the program")
    if not all(0 <= at <= size for at in (native.entry, *native.offsets, *native.labels.values())):
        raise ValueError("an offset lies outside the code")
    if not set(native.checks) <= set(native.prog.pcs):
        raise ValueError("a check names a slot that holds no instruction")


def _ints(values: list) -> tuple[int, ...]:
    if not all(type(value) is int for value in values):
        raise TypeError("expected a list of ints")
    return tuple(values)


def _typed(value: object, kind: type) -> object:
    if type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _fields(record: object) -> dict[str, object]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _to_json(value: object) -> object:
    """Plain JSON with tags for what JSON lacks: sets, int-keyed maps, the allowed enums."""
    if isinstance(value, enum.Enum):
        return {"enum": type(value).__name__, "name": value.name}
    if isinstance(value, frozenset | set):
        return {"set": sorted((_to_json(item) for item in value), key=json.dumps)}
    if isinstance(value, Mapping):
        return {"map": [[_to_json(k), _to_json(v)] for k, v in value.items()]}
    if isinstance(value, tuple | list):
        return [_to_json(item) for item in value]
    return value


def _from_json(value: object) -> object:
    if isinstance(value, list):
        return tuple(_from_json(item) for item in value)
    if not isinstance(value, dict):
        return value
    if value.keys() == {"enum", "name"}:
        return _ENUMS[value["enum"]][value["name"]]
    if value.keys() == {"set"}:
        return frozenset(_from_json(item) for item in value["set"])
    if value.keys() == {"map"}:
        return {_from_json(k): _from_json(v) for k, v in value["map"]}
    raise ValueError(f"unknown record {sorted(value)}")


def lookup(directory: str | os.PathLike[str] | None) -> DiskCache | None:
    """The disk cache ``jit.compile`` uses: ``directory``, else ``$BPFJIT_CACHE_DIR``, else none."""
    chosen = os.fspath(directory) if directory is not None else os.environ.get(ENV_VAR)
    return open_cache(chosen) if chosen else None
