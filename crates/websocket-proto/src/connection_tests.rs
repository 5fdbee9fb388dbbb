//! Unit tests of the sans-I/O connection (see the parent module).
