//! Integration tests of marketdb-dataset: publication and replication between real SQLite
//! files in temporary folders, read back by REAL DuckDB, pyarrow and pyspark (from the
//! virtualenv `<workspace>/target/pyenv` that `scripts/pyenv.sh` makes), and an S3 bucket
//! served by moto on loopback. Without `python3` on the machine the Python halves are
//! skipped with a loud message (unless `MARKETDB_REQUIRE_PYTHON` is set, as in CI).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::disallowed_methods
)]

#[path = "dataset/fixture.rs"]
mod fixture;
#[path = "dataset/property.rs"]
mod property;
#[path = "dataset/publication.rs"]
mod publication;
#[path = "dataset/replication.rs"]
mod replication;
