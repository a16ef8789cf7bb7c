"""Filter expressions ("tcp port 80") compiled to classic BPF by libpcap itself.

libpcap is loaded through ctypes, from the first of

1. ``$BPFJIT_LIBPCAP`` (a path to a libpcap shared library);
2. the library the ``libpcap`` package from PyPI carries in its wheel
   (``pip install libpcap``; it is a dependency of this project), found on
   disk without importing that package;
3. the system's libpcap (Debian: ``apt-get install libpcap0.8``).

:func:`compile_expression` runs ``pcap_compile`` on a ``pcap_open_dead(linktype,
snaplen)`` handle; :meth:`Libpcap.filter` is libpcap's own interpreter
(``bpf_filter``), for differential testing and benchmarks. A missing library
raises :class:`LibpcapMissing`, an expression libpcap refuses
:class:`FilterError` with libpcap's message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
import os
import platform
import threading
from pathlib import Path

from jit.core.errors import BpfError, UsageError
from jit.core.usage import check_bool, check_int
from jit.frontend.cbpf import ClassicProgram

DLT_EN10MB = 1  # Ethernet
DEFAULT_SNAPLEN = 262144
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
_ARCH_DIRS = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


class FilterError(BpfError):
    """libpcap could not compile a filter expression (its message says why)."""


class LibpcapMissing(FilterError):
    """No libpcap shared library could be loaded."""


class _BpfProgram(ctypes.Structure):
    _fields_ = (("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p))


def _candidates() -> list[str]:
    found = []
    if os.environ.get("BPFJIT_LIBPCAP"):
        found.append(os.environ["BPFJIT_LIBPCAP"])
    spec = importlib.util.find_spec("libpcap")
    arch = _ARCH_DIRS.get(platform.machine().lower())
    if spec is not None and spec.submodule_search_locations and arch:
        root = Path(next(iter(spec.submodule_search_locations)))
        bundled = root / "_platform" / "linux" / arch / "tcpdump" / "libpcap.so"
        if bundled.is_file():
            found.append(str(bundled))
    system = ctypes.util.find_library("pcap")
    found += [name for name in (system, "libpcap.so.1", "libpcap.so.0.8") if name]
    return found


class Libpcap:
    """The functions of one loaded libpcap this module uses."""

    def __init__(self, path: str):
        lib = ctypes.CDLL(path)
        self.path = path
        self._lock = threading.Lock()  # pcap_compile is not reentrant in every release
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = (ctypes.c_int, ctypes.c_int)
        lib.pcap_close.argtypes = (ctypes.c_void_p,)
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = (ctypes.c_void_p,)
        lib.pcap_compile.argtypes = (
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        )
        lib.pcap_freecode.argtypes = (ctypes.POINTER(_BpfProgram),)
        lib.pcap_lib_version.restype = ctypes.c_char_p
        lib.pcap_datalink_name_to_val.argtypes = (ctypes.c_char_p,)
        lib.bpf_filter.restype = ctypes.c_uint
        lib.bpf_filter.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint)
        self.lib = lib

    @property
    def version(self) -> str:
        return self.lib.pcap_lib_version().decode()

    def linktype(self, name: int | str) -> int:
        """A DLT number from a number or a name ("EN10MB", "RAW", ...)."""
        if isinstance(name, int):
            return check_int("linktype", name, 0, 2**31 - 1)
        if isinstance(name, str) and name.isdigit():
            return int(name)
        value = self.lib.pcap_datalink_name_to_val(str(name).encode())
        if value < 0:
            raise UsageError(f"unknown link type {name!r} (try EN10MB, RAW, LINUX_SLL or a DLT number)")
        return value

    def compile(
        self,
        expression: str,
        linktype: int | str = DLT_EN10MB,
        snaplen: int = DEFAULT_SNAPLEN,
        optimize: bool = True,
        netmask: int = PCAP_NETMASK_UNKNOWN,
    ) -> ClassicProgram:
        """``pcap_compile(pcap_open_dead(linktype, snaplen), expression)``."""
        if not isinstance(expression, str):
            raise UsageError(f"a filter expression is a str, not {type(expression).__name__}")
        dlt = self.linktype(linktype)
        snaplen = check_int("snaplen", snaplen, 1, 2**31 - 1)
        optimize = check_bool("optimize", optimize)
        netmask = check_int("netmask", netmask, 0, 2**32 - 1)
        with self._lock:
            handle = self.lib.pcap_open_dead(dlt, snaplen)
            if not handle:
                raise FilterError(f"pcap_open_dead({dlt}, {snaplen}) failed")
            try:
                program = _BpfProgram()
                if self.lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), int(optimize), netmask):
                    message = self.lib.pcap_geterr(handle).decode(errors="replace")
                    raise FilterError(f"libpcap cannot compile {expression!r}: {message}")
                try:
                    raw = ctypes.string_at(program.bf_insns, 8 * program.bf_len)
                finally:
                    self.lib.pcap_freecode(ctypes.byref(program))
            finally:
                self.lib.pcap_close(handle)
        return ClassicProgram.from_bytes(raw, name=expression)

    def filter(self, prog: ClassicProgram | LoadedFilter, packet: bytes, wirelen: int | None = None) -> int:
        """libpcap's verdict (``bpf_filter``) on ``packet``."""
        loaded = prog if isinstance(prog, LoadedFilter) else self.load(prog)
        return loaded(packet, wirelen)

    def load(self, prog: ClassicProgram) -> LoadedFilter:
        """``prog`` copied once for repeated :meth:`filter` calls."""
        return LoadedFilter(self, prog)


class LoadedFilter:
    """A classic program in libpcap's ``struct bpf_insn`` layout, called with
    ``bpf_filter``: ``f(packet, wirelen=None) -> int``."""

    def __init__(self, libpcap: Libpcap, prog: ClassicProgram):
        self.prog = prog
        self.insns = ctypes.create_string_buffer(prog.to_bytes())  # same 8-byte layout on every host
        self.address = ctypes.addressof(self.insns)
        self.call = libpcap.lib.bpf_filter

    def __call__(self, packet: bytes, wirelen: int | None = None) -> int:
        packet = bytes(packet)
        return self.call(self.address, packet, len(packet) if wirelen is None else wirelen, len(packet))


@functools.cache
def libpcap() -> Libpcap:
    """The process's libpcap (loaded once); LibpcapMissing when there is none."""
    tried = []
    for path in _candidates():
        try:
            return Libpcap(path)
        except (OSError, AttributeError) as exc:
            tried.append(f"{path}: {exc}")
    raise LibpcapMissing(
        "libpcap is needed to compile filter expressions and was not found"
        + (f" (tried {'; '.join(tried)})" if tried else "")
        + ": install the libpcap package from PyPI (pip install libpcap; its wheel carries the library),"
        " or the system's (Debian: apt-get install libpcap0.8), or set BPFJIT_LIBPCAP to its path"
    )


def compile_expression(
    expression: str,
    linktype: int | str = DLT_EN10MB,
    snaplen: int = DEFAULT_SNAPLEN,
    optimize: bool = True,
    netmask: int = PCAP_NETMASK_UNKNOWN,
) -> ClassicProgram:
    """The classic program libpcap compiles ``expression`` to (tcpdump's filter syntax)."""
    return libpcap().compile(expression, linktype, snaplen, optimize, netmask)
