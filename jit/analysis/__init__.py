"""Static analysis: the verifier and the planning of run-time bounds checks."""
