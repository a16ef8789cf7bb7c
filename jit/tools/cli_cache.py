"""``bpfjit cache``: what the on-disk code cache (``BPFJIT_CACHE_DIR``) holds, and clearing it."""

from __future__ import annotations

import argparse
import os
from typing import Any

from jit.core.errors import UsageError


def cmd_cache(args: argparse.Namespace) -> int:
    from jit.runtime import diskcache

    disk = diskcache.lookup(args.dir)
    if disk is None:
        raise UsageError(f"no cache directory: pass --dir DIR or set {diskcache.ENV_VAR}")
    files = disk.entries()
    size = sum(path.stat().st_size for path in files if path.exists())
    print(f"{disk.directory}: {len(files)} compiled program{'s' if len(files) != 1 else ''}, {size:,} bytes")
    if args.clear:
        print(f"removed {disk.clear()}")
    return 0


def add_cache_command(sub: Any) -> None:
    """Add ``bpfjit cache`` to the CLI's subcommands."""
    cache = sub.add_parser("cache", help="show or clear the on-disk code cache (jit.compile(cache_dir=...))")
    cache.add_argument(
        "--dir", default=None, type=os.path.expanduser, help="the cache directory (default: $BPFJIT_CACHE_DIR)"
    )
    cache.add_argument("--clear", action="store_true", help="delete every stored compile")
    cache.set_defaults(func=cmd_cache)
