//! marketdb-unify: no code, only dependencies. Cargo enables a dependency's features from
//! the packages a build selects, so the Python extension built alone (by maturin), the CLI,
//! the benchmark and the tests would each compile some shared crates with other features,
//! and compile them again. This crate, a dependency of `marketdb-export` (which every one of
//! those builds contains), asks for the union of those features, so each shared crate is
//! compiled once per profile. It exports nothing and must never gain code; when a new
//! dependency makes two builds differ again, its features are added here.
