"""The benchmark suite: programs (C sources and their bytecode), inputs, references
and the runner behind ``bpfjit bench``."""
