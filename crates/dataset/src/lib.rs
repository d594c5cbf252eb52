//! marketdb-dataset: the database published as a Hive-partitioned Parquet dataset that
//! DuckDB, Spark, polars and pyarrow read as tables, and **replication**: another node
//! importing such a dataset into its own database. Locally or on an object store (S3 and
//! compatible servers).
//!
//! Main entry points: [`export_dataset_to`] (publication, [`DatasetRequest`] →
//! [`DatasetReport`]) and [`import_dataset_from`] (replication, → [`ImportReport`]), over a
//! [`DatasetLocation`]. The layout and its version are [`layout`]'s; [`DatasetState`] is
//! the state file a reader goes through: the dataset's scope and, per partition, its digest
//! and the symbols it covers. Publication is incremental (a partition is rewritten only when
//! its rows changed) and atomic for readers; one export at a time holds the dataset's lock.
//! An import replaces exactly what each partition covers, skips a bad partition with its
//! reason, and never deletes a row no source brought.
//!
//! It does not export NumPy, CSV or single Parquet files (`marketdb-export` does), and
//! decides nothing about what to publish: the caller's request does.

mod error;
mod import;
pub mod layout;
mod lock;
mod publish;
mod remote;
mod rows;
mod state;

pub use error::{Error, Result};
pub use import::{FailedPartition, ImportReport, import_dataset, import_dataset_from};
pub use layout::{DATASET_VERSION, DatasetKind, LOCK_PATH, Partition, STATE_PATH};
pub use lock::LockHolder;
pub use publish::{
    DatasetReport, DatasetRequest, GROUP_MAX_ROWS, GROUP_MIN_ROWS, export_dataset,
    export_dataset_to,
};
pub use remote::DatasetLocation;
pub use state::{AllSymbols, DatasetState, PartitionState, Scope, Selection};
