"""Pure business rules: no I/O, shared by every edge."""
