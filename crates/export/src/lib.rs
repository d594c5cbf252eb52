//! marketdb-export: [`AsyncDataExporter`] turns stored klines and metrics into
//! research-ready files: per-day NumPy `.npy` matrices with a manifest, CSV, Parquet and
//! labelled summary statistics. It streams the store one UTC day (or one symbol-day) at a
//! time, resamples on the fly when a target interval is asked for, aligns metrics onto bars
//! without look-ahead, and writes every file under a temporary name before renaming it.
//!
//! Main types: [`AsyncDataExporter`], [`ExportRequest`], [`FillPolicy`],
//! [`ParquetCompression`], [`ExportProgress`] and the reports ([`NumpyReport`],
//! [`CsvReport`], [`ParquetReport`], [`StatsReport`]). The file formats are the contract
//! documented in `docs/formats.md` ("Export contract (v1.0)"). [`NumpyExport`] reads a
//! NumPy export folder back (manifest, symbols, timestamps, [`Matrix`] per feature and
//! day), checking every file against that contract, with its own `.npy` parser.
//!
//! It does not download anything or render progress: the CLI
//! renders the [`ExportProgress`] callbacks. It is the only workspace crate that depends on
//! parquet; its Parquet schema and arrays come from `marketdb_store::arrow` (it turns on the
//! store's `arrow` feature), so they match `KlineFrame::to_record_batch`.

mod align;
mod atomic;
mod csv;
mod error;
mod exporter;
#[cfg(feature = "hdf5")]
mod hdf5;
mod manifest;
mod npy;
mod npy_read;
mod numpy;
mod options;
mod parquet;
mod plan;
mod reader;
mod resample;
mod source;
mod stats;
mod table;
mod target;

pub(crate) use marketdb_store::{Column, KlineFrame};

pub use atomic::FileRecord;
pub use csv::CsvReport;
pub use error::{Error, Result};
pub use exporter::{AsyncDataExporter, NumpyReport};
#[cfg(feature = "hdf5")]
pub use hdf5::Hdf5Report;
pub use manifest::{CONTRACT_VERSION, MANIFEST_NAME, TIME_CONVENTION};
pub use marketdb_output::MAX_LINKS;
pub use numpy::DayReport;
pub use options::{ExportProgress, ExportRequest, FillPolicy, NoProgress, ParquetCompression};
pub use parquet::{ParquetReport, ROW_GROUP_ROWS, codec as parquet_codec};
pub use reader::{
    Cell, ExportManifest, ManifestMetric, ManifestSection, Matrix, MatrixData, NumpyExport,
};
pub use stats::{Describe, STATISTICS, StatsReport, SymbolStats};
pub use target::check_numpy_folder;
