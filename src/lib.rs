//! The workspace's root package exists to hold the black-box tests in `tests/` and the benchmarks
//! in `benches/`; this library is empty (the test helpers live in `tests/it/common.rs`).
