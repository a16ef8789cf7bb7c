"""``python -m jit``: the ``bpfjit`` command."""

import sys

from jit.tools.cli import main

sys.exit(main())
