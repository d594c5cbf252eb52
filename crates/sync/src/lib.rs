//! marketdb-sync (placeholder while the crate is built).
