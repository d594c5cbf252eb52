//! The blocking exports (feature `export`, on by default): [`MarketDB`]'s counterparts of
//! [`AsyncDataExporter`]'s methods, with the same names and arguments, plus the Python 1.9
//! call `export_to_files(output_path, start_date, end_date, freq, symbols)`. Each call
//! builds an exporter with the defaults (fsync on, no progress observer); for other
//! settings drive [`MarketDB::exporter`] from async code.

use std::{io::Write, path::Path};

use marketdb_dataset::{DatasetLocation, DatasetReport, DatasetRequest, ImportReport};
use marketdb_export::{
    AsyncDataExporter, CsvReport, ExportRequest, NumpyReport, ParquetReport, StatsReport,
    SymbolStats,
};
use marketdb_model::{Freq, TimeRange};

use crate::{Error, MarketDB, Result};

impl MarketDB {
    /// An async exporter over this database (for progress observers, fsync off...).
    pub fn exporter(&self) -> AsyncDataExporter {
        AsyncDataExporter::new(self.inner())
    }

    fn block_export<T: Send>(
        &self,
        fut: impl Future<Output = marketdb_export::Result<T>> + Send,
    ) -> Result<T> {
        let rt = self.runtime.as_ref().ok_or(Error::Closed)?;
        Ok(crate::where_blocking_is_allowed(|| rt.block_on(fut))?)
    }

    pub fn export_to_numpy(
        &self,
        request: &ExportRequest,
        out_dir: impl AsRef<Path>,
    ) -> Result<NumpyReport> {
        let ex = self.exporter();
        self.block_export(ex.export_to_numpy(request, out_dir.as_ref()))
    }

    pub fn export_to_csv(
        &self,
        request: &ExportRequest,
        out_file: impl AsRef<Path>,
    ) -> Result<CsvReport> {
        let ex = self.exporter();
        self.block_export(ex.export_to_csv(request, out_file.as_ref()))
    }

    pub fn export_csv_to_writer(
        &self,
        request: &ExportRequest,
        writer: impl Write + Send + 'static,
    ) -> Result<CsvReport> {
        let ex = self.exporter();
        self.block_export(ex.export_csv_to_writer(request, writer))
    }

    pub fn export_to_parquet(
        &self,
        request: &ExportRequest,
        out_file: impl AsRef<Path>,
    ) -> Result<ParquetReport> {
        let ex = self.exporter();
        self.block_export(ex.export_to_parquet(request, out_file.as_ref()))
    }

    /// Publishes the Hive-partitioned Parquet dataset at `location` (a folder or an
    /// object-store prefix), incrementally.
    pub fn export_dataset(
        &self,
        request: &DatasetRequest,
        location: &DatasetLocation,
    ) -> Result<DatasetReport> {
        let db = self.inner().clone();
        self.block_dataset(async move {
            marketdb_dataset::export_dataset_to(&db, location, request).await
        })
    }

    /// Imports a dataset written by [`Self::export_dataset`] (replication).
    pub fn import_dataset(&self, location: &DatasetLocation) -> Result<ImportReport> {
        let db = self.inner().clone();
        self.block_dataset(
            async move { marketdb_dataset::import_dataset_from(&db, location).await },
        )
    }

    fn block_dataset<T: Send>(
        &self,
        fut: impl Future<Output = marketdb_dataset::Result<T>> + Send,
    ) -> Result<T> {
        let rt = self.runtime.as_ref().ok_or(Error::Closed)?;
        Ok(crate::where_blocking_is_allowed(|| rt.block_on(fut))?)
    }

    pub fn export_summary_statistics(
        &self,
        request: &ExportRequest,
        out_file: impl AsRef<Path>,
    ) -> Result<StatsReport> {
        let ex = self.exporter();
        self.block_export(ex.export_summary_statistics(request, out_file.as_ref()))
    }

    pub fn summary_statistics(&self, request: &ExportRequest) -> Result<Vec<SymbolStats>> {
        let ex = self.exporter();
        self.block_export(ex.summary_statistics(request))
    }

    /// The Python 1.9 call: a NumPy export of `symbols` at `freq` from `start_date` to
    /// `end_date`, both days included whole (1.9 stopped at `end_date` 00:00), in
    /// marketdb's layout (`docs/formats.md`), not 1.9's.
    pub fn export_to_files(
        &self,
        output_path: impl AsRef<Path>,
        start_date: &str,
        end_date: &str,
        freq: Freq,
        symbols: &[String],
    ) -> Result<NumpyReport> {
        let ex = self.exporter();
        self.block_export(ex.export_to_files(
            output_path.as_ref(),
            start_date,
            end_date,
            freq,
            symbols,
        ))
    }

    /// [`Self::export_to_files`] for a range already parsed.
    pub fn export_range_to_files(
        &self,
        output_path: impl AsRef<Path>,
        range: TimeRange,
        freq: Freq,
        symbols: &[String],
    ) -> Result<NumpyReport> {
        let request = ExportRequest::new(symbols.to_vec(), range, freq);
        self.export_to_numpy(&request, output_path)
    }
}
