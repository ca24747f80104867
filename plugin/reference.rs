//! CPU reference of `S6Scan` (filled in by the foundation work).
