//! marketdb stores crypto market data (Binance klines from 1s to 1M, funding rates, open
//! interest, long/short ratios) in SQLite and turns it into NumPy matrices, CSV and Parquet.
//!
//! This facade re-exports the workspace crates so an application can depend on one package:
//! [`model`] (vocabulary, no I/O), [`pool`] (SQLite connection pools), [`store`]
//! ([`AsyncMarketDB`]), [`sync`] (the blocking [`MarketDB`]), [`export`]
//! ([`AsyncDataExporter`]), [`dataset`] (the Parquet dataset: publication and
//! replication), [`ingest`] (Binance Vision files), [`fetch`] (Binance Vision
//! and REST transfers), [`download`] (what to download and the source record), [`stream`] (live WebSocket klines) and [`synth`] (the
//! deterministic synthetic market of `marketdb demo` and the benchmark harness). It adds no
//! code of its own; the `marketdb` command line lives in this package's binary, not in the
//! library.

pub use marketdb_dataset as dataset;
pub use marketdb_download as download;
pub use marketdb_export as export;
pub use marketdb_fetch as fetch;
pub use marketdb_ingest as ingest;
pub use marketdb_model as model;
pub use marketdb_pool as pool;
pub use marketdb_store as store;
pub use marketdb_stream as stream;
pub use marketdb_sync as sync;
pub use marketdb_synth as synth;

pub use marketdb_export::AsyncDataExporter;
pub use marketdb_model::{Feature, Freq, Kline, TimeRange};
pub use marketdb_store::AsyncMarketDB;
pub use marketdb_sync::MarketDB;
