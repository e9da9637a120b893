//! End-to-end suites for Weft; they live in `tests/` and need `cargo build --workspace` first.
