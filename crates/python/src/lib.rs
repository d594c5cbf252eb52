//! marketdb-python is the native half of the Python package `marketdb`: the extension
//! module `marketdb._native`, whose class `Native` runs the marketdb store
//! (`marketdb_store::AsyncMarketDB`) and exporter on a tokio runtime, and whose
//! `ArrowStream` hands Arrow data to Python through the Arrow PyCapsule interface
//! (`__arrow_c_stream__`) without copying; `read_data`'s columns come as NumPy arrays that
//! own the Rust vectors (writable, no copy). The Python-facing classes (`MarketDB`,
//! `AsyncMarketDB`, `AsyncDataExporter`) and the pandas shaping live in the package's Python
//! files (`python/marketdb/`), which call this module. Every call releases the GIL while
//! the database works; errors become `ValueError` (bad input) or `marketdb.StorageError`
//! (an `OSError`: files, SQLite, locks).
//!
//! The crate is empty unless the `extension` feature is on (maturin turns it on), so the
//! workspace builds and tests without Python. It does not parse pandas or pyarrow objects:
//! the Python side hands it plain NumPy buffers and strings.

#![cfg(feature = "extension")]

mod args;
mod db;
mod error;
mod runtime;
mod stream;

use pyo3::prelude::*;

/// The extension module `marketdb._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<db::Native>()?;
    m.add_class::<stream::ArrowStream>()?;
    m.add("StorageError", m.py().get_type::<error::StorageError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
