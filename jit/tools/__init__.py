"""Tools over every engine: the engine list, crosscheck, fuzzing, malformed-input
campaigns and the ``bpfjit`` command line."""
