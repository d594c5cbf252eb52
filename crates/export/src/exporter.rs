//! [`AsyncDataExporter`]: the public entry points. Each export resolves the request into a
//! plan, then runs two halves joined by a bounded channel: the producer (`source.rs`) on the
//! async side, which streams, resamples and enriches bars from the store, and a writer
//! (NumPy, CSV, Parquet or statistics) on a blocking thread that encodes and writes files.
//! The store reads ahead while the writer writes, and memory stays bounded by a few chunks.
//!
//! The writer only commits its output when the producer says the stream is complete; a
//! store error, a cancelled future or a panic leaves no file with partial content under a
//! final name and no manifest. It does not render progress: it calls [`ExportProgress`].

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use marketdb_model::time::day_floor;
use marketdb_model::{Freq, TimeRange};
use marketdb_store::AsyncMarketDB;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::{
    CsvReport, Error, ExportProgress, ExportRequest, NoProgress, ParquetReport, Result,
    StatsReport, SymbolStats,
    atomic::{Dest, Stream, sync_dir},
    csv::CsvWriter,
    manifest::{MANIFEST_NAME, write_manifest},
    numpy::{DayReport, NumpyWriter},
    parquet::ParquetWriter,
    plan::Plan,
    source::{Msg, Walk, produce},
    stats::StatsWriter,
    table::Table,
    target::{resolve_folder, sweep_stale_temps},
};
use marketdb_output::{CheckedPath, OutputGate};

/// Tables queued between the producer and the writer thread (each can be a whole day of
/// every symbol, so the queue is short).
const WRITER_QUEUE: usize = 1;

/// What a NumPy export wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NumpyReport {
    /// The export root.
    pub out_dir: PathBuf,
    /// `{out_dir}/manifest.json`.
    pub manifest: PathBuf,
    /// The interval of the files (the target freq when resampling).
    pub freq: Freq,
    /// `"ok"`, or `"no_data"` when no day had a bar.
    pub status: &'static str,
    /// Every day written, in order.
    pub days: Vec<DayReport>,
    /// Files written, manifest excluded.
    pub files: usize,
    /// Bytes written, manifest excluded.
    pub bytes: u64,
    /// Bars exported.
    pub bars: u64,
    /// Whether the folder held an earlier export (its files are replaced).
    pub replaced: bool,
}

/// Exports from one store. Cheap to clone.
#[derive(Clone)]
pub struct AsyncDataExporter {
    db: AsyncMarketDB,
    /// Every file goes through it; it protects the database being exported.
    gate: OutputGate,
    progress: Arc<dyn ExportProgress>,
    fsync: bool,
}

impl std::fmt::Debug for AsyncDataExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncDataExporter")
            .field("db", &self.db.path())
            .field("fsync", &self.fsync)
            .finish_non_exhaustive()
    }
}

/// A writer run on a blocking thread.
trait Sink: Send + 'static {
    type Report: Send + 'static;
    fn consume(&mut self, table: Table) -> Result<()>;
    fn finish(self) -> Result<Self::Report>;
}

impl AsyncDataExporter {
    /// An exporter reading from `db` (a clone is kept), with no progress observer and
    /// fsync on.
    pub fn new(db: &AsyncMarketDB) -> AsyncDataExporter {
        AsyncDataExporter {
            db: db.clone(),
            gate: OutputGate::protecting(db.path()),
            progress: Arc::new(NoProgress),
            fsync: true,
        }
    }

    /// Reports progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn ExportProgress>) -> AsyncDataExporter {
        self.progress = progress;
        self
    }

    /// Whether every file is fsynced before its rename (default true). Turning it off
    /// keeps the rename atomicity against a crashing process, not against power loss.
    pub fn with_fsync(mut self, fsync: bool) -> AsyncDataExporter {
        self.fsync = fsync;
        self
    }

    /// Writes the per-day NumPy file sets and `manifest.json` under `out_dir` (see
    /// `docs/formats.md`). The folder must be new, empty or an earlier marketdb export
    /// (never the database's folder or a file); every file is written under a temporary
    /// name and all are renamed only when the export is complete, so a failed export leaves
    /// the earlier export as it was. The earlier manifest is removed just before the
    /// renames and the new one written after them.
    pub async fn export_to_numpy(
        &self,
        request: &ExportRequest,
        out_dir: impl AsRef<Path>,
    ) -> Result<NumpyReport> {
        let out_dir = out_dir.as_ref().to_path_buf();
        let mut plan = Plan::new(request)?;
        let (dir, gate) = (out_dir.clone(), self.gate.clone());
        let replaces = off_runtime(&out_dir, move || -> Result<bool> {
            let resolved = resolve_folder(&gate, &dir)?;
            gate.create_dir_all(&dir)?;
            let swept = sweep_stale_temps(&dir, ".", true);
            if swept > 0 {
                info!(swept, "removed temporary files of interrupted exports");
            }
            Ok(resolved.replaces)
        })
        .await??;
        self.resolve_symbols(&mut plan).await?;
        let (root, p, target, fsync, gate) = (
            out_dir.clone(),
            plan.clone(),
            request.target_freq.map(|f| f.as_str()),
            self.fsync,
            self.gate.clone(),
        );
        let sink = move || {
            Ok(NumpySink {
                writer: NumpyWriter::new(&gate, &root, &p, fsync)?,
                gate,
                root,
                plan: p,
                target,
                fsync,
            })
        };
        let mut report = self.run(&plan, Walk::Days, sink, &out_dir).await?;
        report.replaced = replaces;
        info!(
            days = report.days.len(),
            files = report.files,
            "numpy export finished: {}",
            out_dir.display()
        );
        Ok(report)
    }

    /// The Python 1.9 call `export_to_files(output_path, start_date, end_date, freq,
    /// symbols)`: a NumPy export ([`Self::export_to_numpy`], default features) of `symbols`
    /// (all of `freq` when empty) from `start_date` to `end_date`, both days included
    /// whole (1.9 stopped at `end_date` 00:00; `docs/compat.md`). The dates take the
    /// formats of `TimeRange::parse`; a bad one is an error naming it.
    pub async fn export_to_files(
        &self,
        output_path: impl AsRef<Path>,
        start_date: &str,
        end_date: &str,
        freq: Freq,
        symbols: &[String],
    ) -> Result<NumpyReport> {
        let range = TimeRange::parse(start_date, end_date)?;
        let request = ExportRequest::new(symbols.to_vec(), range, freq);
        self.export_to_numpy(&request, output_path).await
    }

    /// Writes a CSV file (or `{stem}_part_{n}` files when `csv_part_rows` is set), rows in
    /// (symbol, time) order. The path is checked first (see [`Self::export_to_parquet`]).
    pub async fn export_to_csv(
        &self,
        request: &ExportRequest,
        out_file: impl AsRef<Path>,
    ) -> Result<CsvReport> {
        let out = self.file_target(out_file.as_ref()).await?;
        let dest = Dest::File(self.gate.clone(), out_file.as_ref().to_path_buf());
        let mut report = self
            .export_csv(request, dest, request.csv_part_rows)
            .await?;
        report.replaced |= out.exists;
        Ok(report)
    }

    /// Streams the CSV export to `writer` (stdout, a pipe...). Parts are refused.
    pub async fn export_csv_to_writer(
        &self,
        request: &ExportRequest,
        writer: impl Write + Send + 'static,
    ) -> Result<CsvReport> {
        if let Some(n) = request.csv_part_rows {
            return Err(Error::request(
                "csv part rows",
                n,
                "a stream cannot be split into part files",
            ));
        }
        self.export_csv(request, Dest::Stream(Stream(Box::new(writer))), None)
            .await
    }

    async fn export_csv(
        &self,
        request: &ExportRequest,
        dest: Dest,
        part_rows: Option<usize>,
    ) -> Result<CsvReport> {
        let label = dest.label();
        let mut plan = Plan::new(request)?;
        self.resolve_symbols(&mut plan).await?;
        let (p, gzip, fsync) = (plan.clone(), request.csv_gzip, self.fsync);
        let sink = move || CsvWriter::new(dest, &p, part_rows, gzip, fsync);
        let report = self.run(&plan, Walk::Symbols, sink, &label).await?;
        info!(
            rows = report.rows,
            "csv export finished: {}",
            label.display()
        );
        Ok(report)
    }

    /// Writes one HDF5 file holding the NumPy layout (a group per feature, a `(K, T)`
    /// dataset per day, `symbols` and `timestamp` datasets, attributes for the interval and
    /// version; see `docs/formats.md`). Cargo feature `hdf5`, over the system HDF5 library.
    /// The path is checked as for Parquet.
    #[cfg(feature = "hdf5")]
    pub async fn export_to_hdf5(
        &self,
        request: &ExportRequest,
        out_file: impl AsRef<Path>,
    ) -> Result<crate::Hdf5Report> {
        let out = self.file_target(out_file.as_ref()).await?;
        let mut plan = Plan::new(request)?;
        self.resolve_symbols(&mut plan).await?;
        let (p, path, gate) = (
            plan.clone(),
            out_file.as_ref().to_path_buf(),
            self.gate.clone(),
        );
        let sink = move || crate::hdf5::Hdf5Writer::new(&gate, &path, &p);
        let mut report = self.run(&plan, Walk::Days, sink, &out.path).await?;
        report.replaced = out.exists;
        info!(
            days = report.days.len(),
            "hdf5 export finished: {}",
            out.path.display()
        );
        Ok(report)
    }

    /// Writes a Parquet file, rows in (symbol, time) order.
    ///
    /// The path is checked before anything is written: the database being exported (or
    /// its `-wal`/`-shm`), any SQLite file, a folder, a FIFO, a device or a socket is
    /// refused; a symlink is followed and its target replaced (the link stays). An
    /// existing regular file is replaced (`replaced` in the report).
    pub async fn export_to_parquet(
        &self,
        request: &ExportRequest,
        out_file: impl AsRef<Path>,
    ) -> Result<ParquetReport> {
        let out = self.file_target(out_file.as_ref()).await?;
        let dest = Dest::File(self.gate.clone(), out_file.as_ref().to_path_buf());
        let mut report = self.export_parquet(request, dest).await?;
        report.replaced = out.exists;
        Ok(report)
    }

    /// Streams the Parquet export to `writer` (Parquet needs no seeking).
    pub async fn export_parquet_to_writer(
        &self,
        request: &ExportRequest,
        writer: impl Write + Send + 'static,
    ) -> Result<ParquetReport> {
        self.export_parquet(request, Dest::Stream(Stream(Box::new(writer))))
            .await
    }

    async fn export_parquet(&self, request: &ExportRequest, dest: Dest) -> Result<ParquetReport> {
        let label = dest.label();
        let mut plan = Plan::new(request)?;
        self.resolve_symbols(&mut plan).await?;
        let (p, compression, fsync) = (plan.clone(), request.compression, self.fsync);
        let sink = move || ParquetWriter::new(dest, &p, compression, fsync);
        let report = self.run(&plan, Walk::Symbols, sink, &label).await?;
        info!(
            rows = report.rows,
            "parquet export finished: {}",
            label.display()
        );
        Ok(report)
    }

    /// Writes labelled summary statistics per symbol and feature as a long CSV
    /// `symbol,statistic,<features>`. The path is checked as for Parquet.
    pub async fn export_summary_statistics(
        &self,
        request: &ExportRequest,
        out_file: impl AsRef<Path>,
    ) -> Result<StatsReport> {
        let out = self.file_target(out_file.as_ref()).await?;
        let dest = Dest::File(self.gate.clone(), out_file.as_ref().to_path_buf());
        let mut report = self.export_statistics(request, dest).await?;
        report.replaced = out.exists;
        Ok(report)
    }

    /// The statistics of [`Self::export_summary_statistics`] as a value, without writing
    /// anything: per symbol, per feature, count, mean, std, min, quartiles and max.
    pub async fn summary_statistics(&self, request: &ExportRequest) -> Result<Vec<SymbolStats>> {
        let mut plan = Plan::new(request)?;
        self.resolve_symbols(&mut plan).await?;
        let p = plan.clone();
        let sink = move || Ok(StatsWriter::in_memory(&p));
        let report = self
            .run(
                &plan,
                Walk::Symbols,
                sink,
                Path::new("statistics in memory"),
            )
            .await?;
        Ok(report.symbols)
    }

    /// Streams the statistics CSV to `writer`.
    pub async fn export_summary_statistics_to_writer(
        &self,
        request: &ExportRequest,
        writer: impl Write + Send + 'static,
    ) -> Result<StatsReport> {
        self.export_statistics(request, Dest::Stream(Stream(Box::new(writer))))
            .await
    }

    async fn export_statistics(&self, request: &ExportRequest, dest: Dest) -> Result<StatsReport> {
        let label = dest.label();
        let mut plan = Plan::new(request)?;
        self.resolve_symbols(&mut plan).await?;
        let (p, fsync) = (plan.clone(), self.fsync);
        let sink = move || StatsWriter::new(dest, &p, fsync);
        let report = self.run(&plan, Walk::Symbols, sink, &label).await?;
        info!(
            symbols = report.symbols.len(),
            "statistics export finished: {}",
            label.display()
        );
        Ok(report)
    }

    /// Checks an output file path against the database and sweeps the stale temporary
    /// files of earlier runs beside it, off the runtime.
    async fn file_target(&self, out: &Path) -> Result<CheckedPath> {
        let (path, gate) = (out.to_path_buf(), self.gate.clone());
        off_runtime(out, move || -> Result<CheckedPath> {
            let resolved = gate.check_file(&path)?;
            let folder = match resolved.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let stem = resolved
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let swept = sweep_stale_temps(&folder, &format!(".{stem}"), false);
            if swept > 0 {
                info!(swept, "removed temporary files of interrupted exports");
            }
            Ok(resolved)
        })
        .await?
    }

    /// Fills an empty symbol list with every symbol stored at the source freq.
    async fn resolve_symbols(&self, plan: &mut Plan) -> Result<()> {
        if plan.symbols.is_empty() {
            plan.symbols = self
                .db
                .get_symbols(Some(plan.source_freq))
                .await
                .map_err(|e| Error::store(format!("the symbols of {}", plan.source_freq), e))?;
            debug!(count = plan.symbols.len(), "exporting every stored symbol");
        }
        Ok(())
    }

    /// Runs the producer here and the sink `make` builds on a blocking thread (building it
    /// creates folders and files: no file I/O on a runtime worker); see the module docs.
    async fn run<S: Sink>(
        &self,
        plan: &Plan,
        walk: Walk,
        make: impl FnOnce() -> Result<S> + Send + 'static,
        out: &Path,
    ) -> Result<S::Report> {
        let (tx, rx) = mpsc::channel::<Msg>(WRITER_QUEUE);
        let progress = self.progress.clone();
        let out_path = out.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || {
            // A sink that cannot start drops `rx`, which stops the producer.
            sink_loop(make()?, rx, progress.as_ref(), out_path)
        });
        let total = match walk {
            Walk::Days => plan.total_days(),
            Walk::Symbols => plan.total_days() * plan.symbols.len() as u64,
        };
        self.progress.on_start(total);
        let produced = produce(&self.db, plan, walk, &tx).await;
        if produced.is_ok() {
            let _ = tx.send(Msg::Progress(total)).await;
            let _ = tx.send(Msg::Finish).await;
        }
        drop(tx);
        let written = match writer.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::WriterStopped {
                path: out.to_path_buf(),
            }),
        };
        match produced {
            Err(e) => {
                warn!(error = %e, "export failed: {}", out.display());
                Err(e)
            }
            Ok(()) => written,
        }
    }
}

/// Removes every visible file under `dir` (an interval folder of the export at `root`)
/// that `keep` does not list, and the folders left empty: an export replaces its
/// interval's folder whole, so a reader never finds days or features of an earlier export
/// beside the new ones. Hidden names (temporary files of running exports) are left alone.
/// Returns how many files were removed.
fn remove_stale_files(
    gate: &OutputGate,
    dir: &Path,
    keep: &[crate::FileRecord],
    root: &Path,
) -> Result<usize> {
    let keep: std::collections::HashSet<PathBuf> =
        keep.iter().map(|f| root.join(&f.path)).collect();
    fn walk(
        gate: &OutputGate,
        dir: &Path,
        keep: &std::collections::HashSet<PathBuf>,
        removed: &mut usize,
    ) -> Result<bool> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut empty = true;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if ft.is_dir() {
                if walk(gate, &path, keep, removed)? {
                    std::fs::remove_dir(&path).map_err(|e| Error::io(&path, e))?;
                } else {
                    empty = false;
                }
            } else if !hidden && !keep.contains(&path) {
                // The gate refuses the database, SQLite files, FIFOs and devices.
                gate.remove(&path)?;
                *removed += 1;
            } else {
                empty = false;
            }
        }
        Ok(empty)
    }
    let mut removed = 0;
    if walk(gate, dir, &keep, &mut removed)? {
        // Nothing of this interval is left (an export without data).
        let _ = std::fs::remove_dir(dir);
    }
    Ok(removed)
}

/// Runs file-system work on the blocking pool, not on a runtime worker.
async fn off_runtime<T, F>(path: &Path, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::WriterStopped {
            path: path.to_path_buf(),
        }),
    }
}

/// The writer thread: consumes messages until `Finish` (then commits) or until the
/// producer goes away (then drops everything uncommitted).
fn sink_loop<S: Sink>(
    mut sink: S,
    mut rx: mpsc::Receiver<Msg>,
    progress: &dyn ExportProgress,
    out: PathBuf,
) -> Result<S::Report> {
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Table(t) => sink.consume(t)?,
            Msg::Progress(done) => progress.on_day(done),
            Msg::Finish => return sink.finish(),
        }
    }
    Err(Error::WriterStopped { path: out })
}

/// The NumPy writer plus what the manifest needs.
struct NumpySink {
    writer: NumpyWriter,
    gate: OutputGate,
    root: PathBuf,
    plan: Plan,
    target: Option<&'static str>,
    fsync: bool,
}

impl Sink for NumpySink {
    type Report = NumpyReport;

    fn consume(&mut self, table: Table) -> Result<()> {
        match table.timestamp.first() {
            Some(&t) => self.writer.write_day(day_floor(t), &table),
            None => Ok(()),
        }
    }

    fn finish(self) -> Result<NumpyReport> {
        let NumpySink {
            mut writer,
            gate,
            root,
            plan,
            target,
            fsync,
        } = self;
        if writer.off_grid > 0 {
            warn!(
                rows = writer.off_grid,
                "bars off the interval grid were not exported"
            );
        }
        // The new files are complete under temporary names: note what the old manifest
        // says of the other intervals, retire it, move the new files into place, remove
        // what an earlier export of this interval left, then describe them all.
        let earlier = crate::manifest::earlier_sections(&root, plan.out_freq.as_str());
        gate.remove(&root.join(MANIFEST_NAME))?;
        writer.commit_pending()?;
        let stale = remove_stale_files(
            &gate,
            &root.join(plan.out_freq.as_str()),
            &writer.files,
            &root,
        )?;
        if stale > 0 {
            info!(
                files = stale,
                "removed files of an earlier export of this interval"
            );
        }
        if fsync && !writer.days.is_empty() {
            for d in &writer.dirs {
                sync_dir(d)?;
            }
        }
        let manifest = write_manifest(
            &gate,
            &root,
            &plan,
            target,
            crate::manifest::Written {
                days: &writer.days,
                files: &writer.files,
                earlier,
            },
            fsync,
        )?;
        if fsync {
            sync_dir(&root)?;
        }
        debug!(sha256 = %manifest.sha256, "manifest written");
        Ok(NumpyReport {
            manifest: root.join(MANIFEST_NAME),
            out_dir: root,
            freq: plan.out_freq,
            status: if writer.days.is_empty() {
                "no_data"
            } else {
                "ok"
            },
            files: writer.files.len(),
            bytes: writer.files.iter().map(|f| f.bytes).sum(),
            bars: writer.days.iter().map(|d| d.bars as u64).sum(),
            days: writer.days,
            replaced: false,
        })
    }
}

#[cfg(feature = "hdf5")]
impl Sink for crate::hdf5::Hdf5Writer {
    type Report = crate::Hdf5Report;
    fn consume(&mut self, table: Table) -> Result<()> {
        match table.timestamp.first() {
            Some(&t) => self.write_day(day_floor(t), &table),
            None => Ok(()),
        }
    }
    fn finish(self) -> Result<crate::Hdf5Report> {
        crate::hdf5::Hdf5Writer::finish(self)
    }
}

impl Sink for CsvWriter {
    type Report = CsvReport;
    fn consume(&mut self, table: Table) -> Result<()> {
        self.write_table(&table)
    }
    fn finish(self) -> Result<CsvReport> {
        CsvWriter::finish(self)
    }
}

impl Sink for ParquetWriter {
    type Report = ParquetReport;
    fn consume(&mut self, table: Table) -> Result<()> {
        self.write_table(table)
    }
    fn finish(self) -> Result<ParquetReport> {
        ParquetWriter::finish(self)
    }
}

impl Sink for StatsWriter {
    type Report = StatsReport;
    fn consume(&mut self, table: Table) -> Result<()> {
        self.write_table(&table);
        Ok(())
    }
    fn finish(self) -> Result<StatsReport> {
        StatsWriter::finish(self)
    }
}
