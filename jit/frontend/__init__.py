"""Front ends: assembly text, conformance-suite files and clang-built ELF objects
(with their maps and global data) turned into programs."""
