"""Code generators, one module per target architecture, and the unicorn runner.

Nothing outside this package knows a CPU register name.
"""
