//! marketdb-export (placeholder while the crate is built).
