"""The core layer, standard library only: errors, bit helpers, the ISA table,
instructions and programs as code, and the ABI records shared with the backends."""
