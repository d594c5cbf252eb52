//! marketdb-ingest (placeholder while the crate is built).
