"""A small reader for the BPF Type Format (the ``.BTF`` section of an object).

Only what the ELF loader needs: the type table (every kind is decoded so the
walk stays aligned), names, sizes, struct members, and the variables of a
data section. Layout: include/uapi/linux/btf.h (kernel documentation
"BPF Type Format").
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from jit.core.errors import ElfError

BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_TYPE = struct.Struct("<III")  # name_off, info, size_or_type


class Kind(enum.IntEnum):
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


# Bytes of kind-specific data after the common header: (fixed, per vlen item).
_TRAILER = {
    Kind.INT: (4, 0),
    Kind.ARRAY: (12, 0),
    Kind.STRUCT: (0, 12),
    Kind.UNION: (0, 12),
    Kind.ENUM: (0, 8),
    Kind.FUNC_PROTO: (0, 8),
    Kind.VAR: (4, 0),
    Kind.DATASEC: (0, 12),
    Kind.DECL_TAG: (4, 0),
    Kind.ENUM64: (0, 12),
}
_SIZED = {Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.FLOAT, Kind.DATASEC, Kind.ENUM64}
_MODIFIERS = {Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG, Kind.VAR}


@dataclass(frozen=True)
class Member:
    """A struct member (``offset`` in bits), or a DATASEC variable (in bytes)."""

    name: str
    type: int
    offset: int
    size: int = 0


@dataclass(frozen=True)
class BtfType:
    """One type. ``ref`` is the referenced type id (PTR, modifiers, VAR,
    ARRAY element); ``size`` is set for sized kinds; ``nelems`` for arrays."""

    kind: Kind
    name: str
    size: int = 0
    ref: int = 0
    nelems: int = 0
    members: tuple[Member, ...] = field(default=())


class Btf:
    """The types of one ``.BTF`` section; ``types[0]`` is void."""

    def __init__(self, data: bytes):
        if len(data) < _HEADER.size:
            raise ElfError(f".BTF: section of {len(data)} bytes is shorter than its header")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
        if magic != BTF_MAGIC:
            raise ElfError(f".BTF: bad magic 0x{magic:04x} (expected 0x{BTF_MAGIC:04x})")
        types_at, strings_at = hdr_len + type_off, hdr_len + str_off
        if types_at + type_len > len(data) or strings_at + str_len > len(data):
            raise ElfError(".BTF: type or string table runs past the end of the section")
        self._strings = data[strings_at : strings_at + str_len]
        self.types: list[BtfType | None] = [None]
        self._parse(data[types_at : types_at + type_len])

    def _string(self, offset: int) -> str:
        end = self._strings.find(b"\0", offset)
        return self._strings[offset : end if end >= 0 else None].decode("utf-8", "replace")

    def _parse(self, blob: bytes) -> None:
        at = 0
        while at < len(blob):
            if at + _TYPE.size > len(blob):
                raise ElfError(f".BTF: truncated type {len(self.types)}")
            name_off, info, size_or_type = _TYPE.unpack_from(blob, at)
            at += _TYPE.size
            try:
                kind = Kind((info >> 24) & 0x1F)
            except ValueError:
                raise ElfError(f".BTF: type {len(self.types)} has unknown kind {(info >> 24) & 0x1F}") from None
            vlen = info & 0xFFFF
            fixed, each = _TRAILER.get(kind, (0, 0))
            trailer = blob[at : at + fixed + each * vlen]
            if len(trailer) < fixed + each * vlen:
                raise ElfError(f".BTF: truncated type {len(self.types)} ({kind.name})")
            at += len(trailer)
            self.types.append(self._make(kind, self._string(name_off), size_or_type, vlen, trailer))

    def _make(self, kind: Kind, name: str, size_or_type: int, vlen: int, trailer: bytes) -> BtfType:
        if kind is Kind.ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", trailer)
            return BtfType(kind, name, ref=elem, nelems=nelems)
        if kind in (Kind.STRUCT, Kind.UNION):
            members = tuple(
                Member(self._string(n), t, off & 0xFFFFFF) for n, t, off in struct.iter_unpack("<III", trailer)
            )
            return BtfType(kind, name, size=size_or_type, members=members)
        if kind is Kind.DATASEC:
            members = tuple(Member("", t, off, size) for t, off, size in struct.iter_unpack("<III", trailer))
            return BtfType(kind, name, size=size_or_type, members=members)
        if kind in _SIZED:
            return BtfType(kind, name, size=size_or_type)
        return BtfType(kind, name, ref=size_or_type)

    def type(self, type_id: int) -> BtfType:
        if not 0 < type_id < len(self.types):
            raise ElfError(f".BTF: type id {type_id} does not exist")
        return self.types[type_id]  # type: ignore[return-value]

    def resolve(self, type_id: int) -> BtfType:
        """Follow typedefs, qualifiers and variables to the underlying type."""
        for _ in range(len(self.types)):
            t = self.type(type_id)
            if t.kind not in _MODIFIERS:
                return t
            type_id = t.ref
        raise ElfError(f".BTF: type {type_id} is part of a reference loop")

    def size_of(self, type_id: int) -> int:
        """Size in bytes of a type (pointers are 8 bytes)."""
        t = self.resolve(type_id)
        if t.kind is Kind.PTR:
            return 8
        if t.kind is Kind.ARRAY:
            return t.nelems * self.size_of(t.ref)
        if t.kind in _SIZED:
            return t.size
        raise ElfError(f".BTF: type {t.name or type_id} ({t.kind.name}) has no size")

    def datasec(self, name: str) -> dict[str, int]:
        """Variable name -> VAR type id for the data section ``name``."""
        for t in self.types[1:]:
            if t is not None and t.kind is Kind.DATASEC and t.name == name:
                return {self.type(m.type).name: m.type for m in t.members}
        return {}
