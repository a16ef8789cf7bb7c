"""eBPF maps: array, hash, per-CPU array and hash (one CPU), LRU hash and
program array, usable from Python and from programs on every engine.

Storage. Values live in a :class:`~jit.frontend.hostmem.HostMemory` arena of
``max_entries`` slots of ``value_stride = round_up(value_size, 8)`` bytes;
value ``i`` is at ``values_address + i * value_stride``. An array's index is
its slot; a hash map allocates a free slot when a key is inserted and keeps it
until the key is deleted (or evicted, for LRU), so a value pointer handed to a
program (``map_lookup_elem``) stays valid and stable on every engine.

Descriptor. Each map also owns a small read-only block, its *descriptor*,
whose address is what ``lddw.mapfd`` (LD_IMM64 src=1) resolves to: helpers
find the map from that address, and JIT backends may inline array lookups by
reading the fields below (all u64, little-endian, offsets in :class:`Desc`)::

    type  key_size  value_size  max_entries  values_address  value_stride  flags

Python API (keys and values are bytes of exactly ``key_size``/``value_size``;
ints are accepted where they fit, little-endian): ``lookup``, ``update``,
``delete``, ``items``, ``keys``, ``values``, ``len()``. Failures raise
:class:`MapError`, whose ``errno`` is what the helpers return negated:
``update`` with ``BPF_NOEXIST`` on an existing key -> EEXIST, ``BPF_EXIST``
on a missing key -> ENOENT, a full hash map or an array index out of range
-> E2BIG, ``delete`` on an array -> EINVAL, a missing key -> ENOENT.

LRU hash maps evict the least recently used entry when a new key is inserted
into a full map; program lookups and all updates count as uses, Python
lookups do not (like the kernel's syscall path).
"""

from __future__ import annotations

import copy
import enum
import errno
from collections import OrderedDict
from collections.abc import Iterator
from typing import ClassVar

from jit.core.abi import DESCRIPTOR_SIZE, Desc
from jit.core.bits import round_up
from jit.core.bytecode import Bytecode
from jit.core.errors import BpfError, UsageError
from jit.core.usage import check_int, check_str
from jit.frontend.hostmem import HostMemory

# Update flags (include/uapi/linux/bpf.h).
BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
# Map flag: the program may read but not write the values (.rodata).
BPF_F_RDONLY_PROG = 1 << 7

MAX_MAP_BYTES = 1 << 30  # cap on one map's value arena


class MapType(enum.IntEnum):
    """Linux map type ids (enum bpf_map_type) supported here."""

    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10


class MapError(BpfError):
    """A map operation failed; ``errno`` is the Linux error number."""

    def __init__(self, code: int, message: str):
        self.errno = code
        super().__init__(f"{message} ({errno.errorcode.get(code, code)})")


Key = bytes | bytearray | memoryview | int


def to_bytes(value: Key, size: int, what: str) -> bytes:
    """``value`` as exactly ``size`` bytes (ints little-endian, two's complement)."""
    if isinstance(value, int):
        bits = 8 * size
        if not -(1 << (bits - 1)) <= value < (1 << bits):
            raise MapError(errno.EINVAL, f"{what} {value} does not fit in {size} bytes")
        return (value & ((1 << bits) - 1)).to_bytes(size, "little")
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) != size:
            raise MapError(errno.EINVAL, f"{what} has {len(raw)} bytes, the map wants {size}")
        return raw
    raise UsageError(f"{what} must be bytes or int, not {type(value).__name__}")


class Map:
    """Base of every map type: descriptor, value arena and the Python API."""

    map_type: ClassVar[MapType]

    def __init__(self, name: str, key_size: int, value_size: int, max_entries: int, flags: int = 0):
        self.name = check_str("name", name)
        self.key_size = check_int(f"map {name!r}: key_size", key_size, 0, MAX_MAP_BYTES)
        self.value_size = check_int(f"map {name!r}: value_size", value_size, 0, MAX_MAP_BYTES)
        self.max_entries = check_int(f"map {name!r}: max_entries", max_entries, 0, MAX_MAP_BYTES)
        self.flags = check_int(f"map {name!r}: flags", flags, 0, 2**32 - 1)
        self._check_shape()
        self.value_stride = round_up(value_size, 8)
        writable = not flags & BPF_F_RDONLY_PROG
        self.storage = HostMemory(
            self.value_stride * max_entries, f"{name} values", writable, stride=self.value_stride, item=value_size
        )
        self.descriptor = HostMemory(DESCRIPTOR_SIZE, f"{name} descriptor", writable=False)
        fields = {
            Desc.TYPE: int(self.map_type),
            Desc.KEY_SIZE: key_size,
            Desc.VALUE_SIZE: value_size,
            Desc.MAX_ENTRIES: max_entries,
            Desc.VALUES: self.storage.address,
            Desc.VALUE_STRIDE: self.value_stride,
            Desc.FLAGS: flags,
        }
        for offset, value in fields.items():
            self.descriptor.write(offset, value.to_bytes(8, "little"))

    def _check_shape(self) -> None:
        what = f"map {self.name!r}"
        if self.key_size <= 0 or self.value_size <= 0 or self.max_entries <= 0:
            raise MapError(
                errno.EINVAL,
                f"{what}: key_size {self.key_size}, value_size {self.value_size} and max_entries "
                f"{self.max_entries} must all be positive",
            )
        if round_up(self.value_size, 8) * self.max_entries > MAX_MAP_BYTES:
            raise MapError(errno.E2BIG, f"{what}: {self.max_entries} values of {self.value_size} bytes are too many")

    # --- addresses shared with the engines -------------------------------------

    @property
    def address(self) -> int:
        """The descriptor's host address: what ``lddw.mapfd`` loads."""
        return self.descriptor.address

    @property
    def values_address(self) -> int:
        """Host address of the first value (value ``i`` is ``value_stride`` bytes later each)."""
        return self.storage.address

    @property
    def memory(self) -> tuple[HostMemory, ...]:
        """The blocks a program using this map may access."""
        return (self.descriptor, self.storage)

    @property
    def readonly(self) -> bool:
        """True when programs may not write the values (``.rodata``)."""
        return bool(self.flags & BPF_F_RDONLY_PROG)

    def slot_address(self, slot: int) -> int:
        """Host address of the value in ``slot`` (0..max_entries-1)."""
        check_int(f"map {self.name!r}: slot", slot, 0, self.max_entries - 1)
        return self.storage.address + slot * self.value_stride

    # --- state, saved and put back (to run one program on several engines alike) -----

    def snapshot(self) -> tuple[bytes, dict[str, object]]:
        """Everything a run may change: the values and which key holds which slot."""
        return bytes(self.storage.view), {name: copy.copy(value) for name, value in self._keyed_state().items()}

    def restore(self, snapshot: tuple[bytes, dict[str, object]]) -> None:
        """Put back a :meth:`snapshot` of this map."""
        if not (
            isinstance(snapshot, tuple)
            and len(snapshot) == 2
            and isinstance(snapshot[0], bytes)
            and len(snapshot[0]) == len(self.storage.view)
            and isinstance(snapshot[1], dict)
            and snapshot[1].keys() == self._keyed_state().keys()
        ):
            raise UsageError(f"map {self.name!r}: restore takes what snapshot() of this map returned")
        values, index = snapshot
        self.storage.view[:] = values
        for name, value in index.items():
            setattr(self, name, copy.copy(value))

    def _keyed_state(self) -> dict[str, object]:
        """The Python-side state beside the values (none for arrays)."""
        return {}

    # --- the operations, by slot (subclasses) ------------------------------------

    def _find(self, key: bytes, touch: bool) -> int | None:
        """The slot holding ``key``, or None. ``touch`` marks it used (LRU)."""
        raise NotImplementedError

    def _insert(self, key: bytes, flags: int) -> int:
        """The slot to store ``key``'s value in, for an update with ``flags``."""
        raise NotImplementedError

    def _remove(self, key: bytes) -> None:
        raise NotImplementedError

    def _entries(self) -> Iterator[tuple[bytes, int]]:
        """(key, slot) of every entry, in iteration order."""
        raise NotImplementedError

    # --- raw-bytes operations (what the helpers call) ------------------------------

    def lookup_address(self, key: bytes) -> int:
        """Host address of ``key``'s value, or 0: ``map_lookup_elem`` for programs."""
        slot = self._find(self._raw(key, self.key_size, "key"), touch=True)
        return 0 if slot is None else self.slot_address(slot)

    def update_raw(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        """:meth:`update` with ``key`` and ``value`` as bytes of exactly the map's sizes."""
        if flags not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
            raise MapError(errno.EINVAL, f"map {self.name!r}: unknown update flags {flags}")
        slot = self._insert(self._raw(key, self.key_size, "key"), flags)
        self.storage.write(slot * self.value_stride, self._raw(value, self.value_size, "value"))

    def _raw(self, data: object, size: int, what: str) -> bytes:
        """``data`` if it is ``size`` bytes, else UsageError (the raw operations take no ints)."""
        if type(data) is not bytes or len(data) != size:
            raise UsageError(f"map {self.name!r}: the {what} must be {size} bytes, not {data!r:.60}")
        return data

    # --- the Python API -----------------------------------------------------------

    def key(self, key: Key) -> bytes:
        """``key`` as the map's key bytes (an int is stored little-endian)."""
        return to_bytes(key, self.key_size, f"key of map {self.name!r}")

    def lookup(self, key: Key) -> bytes | None:
        """A copy of the value stored under ``key``, or None."""
        slot = self._find(self.key(key), touch=False)
        return None if slot is None else self.storage.read(slot * self.value_stride, self.value_size)

    def update(self, key: Key, value: Key, flags: int = BPF_ANY) -> None:
        """Store ``value`` under ``key``; ``flags`` is BPF_ANY, BPF_NOEXIST or BPF_EXIST."""
        self.update_raw(self.key(key), to_bytes(value, self.value_size, f"value of map {self.name!r}"), flags)

    def delete(self, key: Key) -> None:
        """Remove ``key``; MapError(ENOENT) when it is missing."""
        self._remove(self.key(key))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs as bytes, in the map's order (arrays: by index)."""
        for key, slot in list(self._entries()):
            yield key, self.storage.read(slot * self.value_stride, self.value_size)

    def keys(self) -> Iterator[bytes]:
        """The keys, as bytes."""
        for key, _ in self.items():
            yield key

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def values(self) -> Iterator[bytes]:
        """Copies of the values, as bytes."""
        for _, value in self.items():
            yield value

    def len(self) -> int:
        """Number of entries (``max_entries`` for arrays)."""
        return len(self)

    def __len__(self) -> int:
        return sum(1 for _ in self._entries())

    def __contains__(self, key: Key) -> bool:
        return self._find(self.key(key), touch=False) is not None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} key_size={self.key_size} value_size={self.value_size} "
            f"max_entries={self.max_entries} at 0x{self.address:x}>"
        )


class ArrayMap(Map):
    """Fixed entries ``0 .. max_entries-1``, all present, zero-initialised."""

    map_type = MapType.ARRAY

    def _check_shape(self) -> None:
        super()._check_shape()
        if self.key_size != 4:
            raise MapError(errno.EINVAL, f"map {self.name!r}: array keys are 4 bytes, not {self.key_size}")

    def _index(self, key: bytes) -> int:
        return int.from_bytes(key, "little")

    def _find(self, key: bytes, touch: bool) -> int | None:
        index = self._index(key)
        return index if index < self.max_entries else None

    def _insert(self, key: bytes, flags: int) -> int:
        index = self._index(key)
        if index >= self.max_entries:
            raise MapError(errno.E2BIG, f"map {self.name!r}: index {index} is out of range (0..{self.max_entries - 1})")
        if flags == BPF_NOEXIST:
            raise MapError(errno.EEXIST, f"map {self.name!r}: array entries always exist (BPF_NOEXIST)")
        return index

    def _remove(self, key: bytes) -> None:
        raise MapError(errno.EINVAL, f"map {self.name!r}: array entries cannot be deleted")

    def _entries(self) -> Iterator[tuple[bytes, int]]:
        for index in range(self.max_entries):
            yield index.to_bytes(4, "little"), index

    def __len__(self) -> int:
        return self.max_entries


class PercpuArrayMap(ArrayMap):
    """A per-CPU array on a one-CPU machine: an array."""

    map_type = MapType.PERCPU_ARRAY


class HashMap(Map):
    """Up to ``max_entries`` keys; each key keeps its value slot until deleted."""

    map_type = MapType.HASH

    def __init__(self, name: str, key_size: int, value_size: int, max_entries: int, flags: int = 0):
        super().__init__(name, key_size, value_size, max_entries, flags)
        self._slots: OrderedDict[bytes, int] = OrderedDict()
        self._free = list(range(max_entries - 1, -1, -1))  # pop() hands out slot 0 first

    def _find(self, key: bytes, touch: bool) -> int | None:
        return self._slots.get(key)

    def _keyed_state(self) -> dict[str, object]:
        return {"_slots": self._slots, "_free": self._free}

    def _insert(self, key: bytes, flags: int) -> int:
        slot = self._slots.get(key)
        if slot is not None:
            if flags == BPF_NOEXIST:
                raise MapError(errno.EEXIST, f"map {self.name!r}: key {key.hex()} exists (BPF_NOEXIST)")
            self._used(key)
            return slot
        if flags == BPF_EXIST:
            raise MapError(errno.ENOENT, f"map {self.name!r}: key {key.hex()} does not exist (BPF_EXIST)")
        if not self._free:
            self._make_room()
        slot = self._free.pop()
        self.storage.write(slot * self.value_stride, bytes(self.value_stride))
        self._slots[key] = slot
        return slot

    def _used(self, key: bytes) -> None:
        """Hook for LRU maps: ``key`` was just used."""

    def _make_room(self) -> None:
        raise MapError(errno.E2BIG, f"map {self.name!r} is full ({self.max_entries} entries)")

    def _remove(self, key: bytes) -> None:
        slot = self._slots.pop(key, None)
        if slot is None:
            raise MapError(errno.ENOENT, f"map {self.name!r}: key {key.hex()} does not exist")
        self._free.append(slot)

    def _entries(self) -> Iterator[tuple[bytes, int]]:
        return iter(self._slots.items())

    def __len__(self) -> int:
        return len(self._slots)


class PercpuHashMap(HashMap):
    """A per-CPU hash map on a one-CPU machine: a hash map."""

    map_type = MapType.PERCPU_HASH


class LruHashMap(HashMap):
    """A hash map that evicts the least recently used key when full."""

    map_type = MapType.LRU_HASH

    def _find(self, key: bytes, touch: bool) -> int | None:
        slot = self._slots.get(key)
        if slot is not None and touch:
            self._used(key)
        return slot

    def _used(self, key: bytes) -> None:
        self._slots.move_to_end(key)

    def _make_room(self) -> None:
        _, slot = self._slots.popitem(last=False)
        self._free.append(slot)


class LruPercpuHashMap(LruHashMap):
    map_type = MapType.LRU_PERCPU_HASH


class ProgArrayMap(ArrayMap):
    """Programs for ``bpf_tail_call``, indexed 0 .. max_entries-1.

    ``update(i, prog)`` stores a :class:`jit.Program`, ``lookup(i)`` returns
    it (or None for an empty slot) and ``delete(i)`` empties the slot. The
    value arena holds a u64 per slot, 1 when the slot is occupied.
    """

    map_type = MapType.PROG_ARRAY

    def __init__(self, name: str, key_size: int = 4, value_size: int = 4, max_entries: int = 1, flags: int = 0):
        super().__init__(name, key_size, value_size, max_entries, flags)
        self._programs: list[Bytecode | None] = [None] * max_entries

    def target(self, index: int) -> Bytecode | None:
        """The program in slot ``index``, or None (empty or out of range)."""
        return self._programs[index] if 0 <= index < self.max_entries else None

    def lookup(self, key: Key) -> Bytecode | None:  # type: ignore[override]
        return self.target(int.from_bytes(self.key(key), "little"))

    def update(self, key: Key, value: Bytecode, flags: int = BPF_ANY) -> None:  # type: ignore[override]

        if not isinstance(value, Bytecode):
            raise UsageError(f"map {self.name!r}: program arrays hold jit.Program values, not {type(value).__name__}")
        if flags not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
            raise MapError(errno.EINVAL, f"map {self.name!r}: unknown update flags {flags}")
        index = self._insert(self.key(key), flags)
        self._programs[index] = value
        self.storage.write(index * self.value_stride, (1).to_bytes(8, "little"))

    def update_raw(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        raise MapError(errno.EINVAL, f"map {self.name!r}: programs cannot store into a program array")

    def delete(self, key: Key) -> None:
        index = int.from_bytes(self.key(key), "little")
        if self.target(index) is None:
            raise MapError(errno.ENOENT, f"map {self.name!r}: slot {index} is empty")
        self._programs[index] = None
        self.storage.write(index * self.value_stride, bytes(8))

    def items(self) -> Iterator[tuple[bytes, Bytecode]]:  # type: ignore[override]
        for index, prog in enumerate(self._programs):
            if prog is not None:
                yield index.to_bytes(4, "little"), prog

    def __len__(self) -> int:
        return sum(prog is not None for prog in self._programs)


MAP_CLASSES: dict[MapType, type[Map]] = {
    cls.map_type: cls
    for cls in (
        ArrayMap,
        PercpuArrayMap,
        HashMap,
        PercpuHashMap,
        LruHashMap,
        LruPercpuHashMap,
        ProgArrayMap,
    )
}


def create_map(name: str, map_type: int | str, key_size: int, value_size: int, max_entries: int, flags: int = 0) -> Map:
    """A new map: ``map_type`` is a Linux map type id or its name (``"array"``,
    ``"hash"``, ``"lru_hash"``, ...); MapError(EINVAL) for an unsupported type.
    E.g. ``jit.create_map("counts", "array", 4, 8, 16)``, then bind it to a
    program with ``jit.assemble(text, maps=[counts])``."""
    try:
        kind = MapType[map_type.upper()] if isinstance(map_type, str) else MapType(map_type)
        cls = MAP_CLASSES[kind]
    except (ValueError, KeyError, TypeError):
        supported = ", ".join(f"{t.value} ({t.name.lower()})" for t in MAP_CLASSES)
        raise MapError(
            errno.EINVAL, f"map {name!r}: unsupported map type {map_type} (supported: {supported})"
        ) from None
    return cls(name, key_size, value_size, max_entries, flags)


def maps_by_address(maps: dict[str, Map] | None) -> dict[int, Map]:
    """Descriptor address -> map: how helpers find the map a program passes in R1."""
    return {m.address: m for m in (maps or {}).values()}
