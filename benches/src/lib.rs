//! Criterion micro-benchmarks live in benches/ (see README.md there).
