"""Running programs: the reference interpreter, helpers, ``compile`` and the
compiled program (native or emulated)."""
