//! [`Native`]: one open marketdb database. Each method runs a store or exporter call on the
//! shared tokio runtime: blocking with the GIL released, or, with `is_async`, as an asyncio
//! awaitable (pyo3-async-runtimes). Results come back as an [`ArrowStream`] (bars), JSON text
//! (summaries, metrics, reports: small, and the Python side shapes them) or plain numbers.

use std::{future::Future, path::PathBuf, sync::Mutex};

use arrow_array::RecordBatch;
use marketdb_dataset::DatasetRequest;
use marketdb_export::{AsyncDataExporter, ExportRequest, FillPolicy, ParquetCompression};
use marketdb_model::{
    Feature, FeatureKind, FundingRate, LongShortRatio, MetricFamily, OpenInterest, RatioType,
};
use marketdb_store::{AsyncMarketDB, Column, IncompletePolicy, KlineFrame, StoreConfig};
use pyo3::{IntoPyObjectExt, prelude::*};

use crate::{
    args::{self, TimeArg},
    error::{Failure, Result, value_error},
    runtime::{self, ProcessRuntime},
    stream::ArrowStream,
};

/// Runs `fut` to completion with the GIL released, or returns it as an asyncio awaitable.
fn finish<T>(
    py: Python<'_>,
    is_async: bool,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> PyResult<Py<PyAny>>
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let runtime = runtime::handle()?;
    if is_async {
        let fut = async move { fut.await.map_err(PyErr::from) };
        return Ok(
            pyo3_async_runtimes::generic::future_into_py::<ProcessRuntime, _, _>(py, fut)?.unbind(),
        );
    }
    let out = py.detach(|| runtime.block_on(fut)).map_err(PyErr::from)?;
    Ok(out.into_bound_py_any(py)?.unbind())
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Failure::Py(value_error(format!("cannot encode the result: {e}"))))
}

fn frame_stream(frame: KlineFrame) -> Result<ArrowStream> {
    let schema = frame.arrow_schema();
    let batch: RecordBatch = frame.into_record_batch()?;
    Ok(ArrowStream::new(schema, vec![batch]))
}

/// A frame handed to Python as NumPy arrays that own the frame's vectors (no copy, and
/// writable, unlike Arrow's buffers): `(symbols, rows per symbol, timestamps, columns)`.
struct FrameColumns(KlineFrame);

impl<'py> IntoPyObject<'py> for FrameColumns {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        use numpy::PyArray1;
        let (symbols, timestamp, _features, columns) = self.0.into_parts();
        let names: Vec<String> = symbols.iter().map(|(s, _)| s.clone()).collect();
        let runs: Vec<i64> = symbols
            .iter()
            .map(|(_, r)| i64::try_from(r.len()).unwrap_or(i64::MAX))
            .collect();
        let columns = columns
            .into_iter()
            .map(|c| match c {
                Column::F64(v) => PyArray1::from_vec(py, v).into_any(),
                Column::I64(v) => PyArray1::from_vec(py, v).into_any(),
            })
            .collect::<Vec<_>>();
        (
            names,
            PyArray1::from_vec(py, runs),
            PyArray1::from_vec(py, timestamp),
            columns,
        )
            .into_bound_py_any(py)
    }
}

/// One open database (klines and metrics) with its exporter.
#[derive(Debug)]
#[pyclass(module = "marketdb._native", frozen)]
pub struct Native {
    state: Mutex<State>,
    path: PathBuf,
    /// How it was opened: a forked child opens the file again with it.
    config: StoreConfig,
}

#[derive(Debug)]
struct State {
    /// `None` once closed.
    db: Option<AsyncMarketDB>,
    /// The process whose connections `db` holds.
    owner: u32,
}

impl Native {
    /// The open database of this process. In a child made by `fork`, the parent's pools
    /// (their connections, their runtime) are left alone, never used nor closed (SQLite
    /// forbids carrying a connection across a fork; closing it could fold the WAL under the
    /// parent), and the file is opened again for the child on its first call.
    fn db(&self, py: Python<'_>) -> PyResult<AsyncMarketDB> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| value_error("the database handle is poisoned"))?;
        if !runtime::is_this_process(state.owner) {
            let inherited = state.db.take();
            let was_open = inherited.is_some();
            std::mem::forget(inherited);
            state.owner = std::process::id();
            if was_open {
                let handle = runtime::handle()?;
                let config = self.config.clone();
                let db = py
                    .detach(|| handle.block_on(AsyncMarketDB::open_with(config)))
                    .map_err(|e| PyErr::from(Failure::from(e)))?;
                state.db = Some(db);
            }
        }
        state
            .db
            .clone()
            .ok_or_else(|| value_error(format!("the database {} is closed", self.path.display())))
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        let Ok(state) = self.state.get_mut() else {
            return;
        };
        let Some(db) = state.db.take() else {
            return;
        };
        if !runtime::is_this_process(state.owner) {
            // The parent's pools, inherited by a fork: see `db`.
            std::mem::forget(db);
            return;
        }
        // A MarketDB collected without close(): closing the pools (the writer may fold the
        // WAL) happens on the runtime's blocking threads, not with the GIL held.
        match runtime::handle() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(db))),
            Err(_) => drop(db),
        }
    }
}

#[pymethods]
impl Native {
    /// Opens (creating unless `read_only`) the database at `path` with the pool `pool`
    /// (`auto`, `bb8` or `builtin`) and, when given, SQLite's `mmap_size` in bytes.
    #[staticmethod]
    #[pyo3(signature = (path, pool, read_only, mmap_size, is_async))]
    fn open(
        py: Python<'_>,
        path: PathBuf,
        pool: &str,
        read_only: bool,
        mmap_size: Option<u64>,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let backend = pool.parse::<marketdb_pool::Backend>().map_err(|e| {
            value_error(format!(
                "pool {pool:?}: {e} (expected auto, bb8 or builtin)"
            ))
        })?;
        let mut config = if read_only {
            StoreConfig::read_only(path.clone())
        } else {
            StoreConfig::new(path.clone())
        };
        config.pool.backend = backend;
        if let Some(bytes) = mmap_size {
            config.pool.pragmas.mmap_size = bytes;
        }
        finish(py, is_async, async move {
            let db = AsyncMarketDB::open_with(config.clone()).await?;
            Ok(Native {
                state: Mutex::new(State {
                    db: Some(db),
                    owner: std::process::id(),
                }),
                path,
                config,
            })
        })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    #[getter]
    fn pool_kind(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.db(py)?.pool_kind().to_string())
    }

    #[getter]
    fn read_only(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.db(py)?.is_read_only())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.state.lock().map_or(true, |s| s.db.is_none())
    }

    /// Closes the pools; later calls fail. Closing twice is allowed.
    fn close(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let db = {
            let mut state = self
                .state
                .lock()
                .map_err(|_| value_error("the database handle is poisoned"))?;
            let db = state.db.take();
            if runtime::is_this_process(state.owner) {
                db
            } else {
                // Closing in a child closes only the child's own (none was opened yet).
                std::mem::forget(db);
                None
            }
        };
        finish(py, is_async, async move {
            if let Some(db) = db {
                db.close().await;
            }
            Ok(())
        })
    }

    /// Stores klines given as columns (see `args::klines`); returns the rows stored.
    fn store_klines(
        &self,
        py: Python<'_>,
        freq: &str,
        names: Vec<String>,
        codes: Bound<'_, PyAny>,
        columns: Vec<Option<Bound<'_, PyAny>>>,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let freq = args::freq(freq)?;
        let rows = args::klines(freq, &names, &codes, &columns)?;
        finish(
            py,
            is_async,
            async move { Ok(db.store_data(rows, freq).await?) },
        )
    }

    /// Bars of `symbols` (all when empty) in the range, as Arrow: `symbol`, `timestamp`
    /// (ms, UTC) and the features by short name.
    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        py: Python<'_>,
        start: TimeArg,
        end: TimeArg,
        freq: &str,
        symbols: Vec<String>,
        features: Option<Vec<String>>,
        by_timestamp: bool,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let (range, freq, features) = args::bars(&start, &end, by_timestamp, freq, features)?;
        finish(py, is_async, async move {
            let frame = db
                .read_data(range, freq, &symbols, &features, false)
                .await?;
            frame_stream(frame)
        })
    }

    /// [`Self::read`] batch by batch: an [`ArrowStream`] of at most `batch_rows` rows per
    /// batch, each read from SQLite when the consumer takes it. The first batch is read
    /// here, so a bad request fails at the call.
    #[allow(clippy::too_many_arguments)]
    fn read_batches(
        &self,
        py: Python<'_>,
        start: TimeArg,
        end: TimeArg,
        freq: &str,
        symbols: Vec<String>,
        features: Option<Vec<String>>,
        batch_rows: usize,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        if batch_rows == 0 {
            return Err(value_error("batch_rows 0: a batch holds at least one row"));
        }
        let (range, freq, features) = args::bars(&start, &end, false, freq, features)?;
        let shown = if features.is_empty() {
            Feature::KLINE.to_vec()
        } else {
            features.clone()
        };
        let schema = KlineFrame::empty(&shown).arrow_schema();
        finish(py, is_async, async move {
            let mut rest = db.scan_rows(range, freq, &symbols, &features, batch_rows, None);
            let first = rest.next().await.transpose()?;
            Ok(ArrowStream::scan(schema, first, rest))
        })
    }

    /// [`Self::read`] as NumPy columns (see `FrameColumns`): what `read_data` builds its
    /// frame from.
    #[allow(clippy::too_many_arguments)]
    fn read_columns(
        &self,
        py: Python<'_>,
        start: TimeArg,
        end: TimeArg,
        freq: &str,
        symbols: Vec<String>,
        features: Option<Vec<String>>,
        by_timestamp: bool,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let (range, freq, features) = args::bars(&start, &end, by_timestamp, freq, features)?;
        finish(py, is_async, async move {
            let frame = db
                .read_data(range, freq, &symbols, &features, false)
                .await?;
            Ok(FrameColumns(frame))
        })
    }

    /// Bars with metric features aligned as of each bar's close.
    #[allow(clippy::too_many_arguments)]
    fn combined(
        &self,
        py: Python<'_>,
        start: TimeArg,
        end: TimeArg,
        freq: &str,
        symbols: Vec<String>,
        features: Vec<String>,
        metric_period: &str,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let range = args::range(&start, &end, false)?;
        let freq = args::freq(freq)?;
        let features = args::features(Some(features))?;
        let period = args::freq(metric_period)?;
        finish(py, is_async, async move {
            let combined = db
                .read_combined(range, freq, &symbols, &features, period, false)
                .await?;
            frame_stream(combined.into_parts().0)
        })
    }

    fn summary(&self, py: Python<'_>, is_async: bool) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        finish(
            py,
            is_async,
            async move { json(&db.get_data_summary().await?) },
        )
    }

    #[pyo3(signature = (freq, is_async))]
    fn symbols(&self, py: Python<'_>, freq: Option<&str>, is_async: bool) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let freq = args::opt_freq(freq)?;
        finish(py, is_async, async move { Ok(db.get_symbols(freq).await?) })
    }

    /// The latest `limit` bars of each of `symbols` (all when empty) at `freq`, as
    /// [`Self::read_columns`] gives bars: ascending by (symbol, timestamp).
    fn latest(
        &self,
        py: Python<'_>,
        symbols: Vec<String>,
        freq: &str,
        limit: usize,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let freq = args::freq(freq)?;
        finish(py, is_async, async move {
            Ok(FrameColumns(db.get_latest(&symbols, freq, limit).await?))
        })
    }

    /// Whether `symbol` has a bar of `freq` in the range (the CLI's rules for the bounds).
    fn data_exists(
        &self,
        py: Python<'_>,
        symbol: String,
        start: TimeArg,
        end: TimeArg,
        freq: &str,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let (range, freq) = (args::range(&start, &end, false)?, args::freq(freq)?);
        finish(py, is_async, async move {
            Ok(db.data_exists(&symbol, range, freq).await?)
        })
    }

    /// The UTC dates (`YYYY-MM-DD`) with a bar of `symbol` at `freq`, ascending.
    fn available_dates(
        &self,
        py: Python<'_>,
        symbol: String,
        freq: &str,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let freq = args::freq(freq)?;
        finish(py, is_async, async move {
            Ok(db.get_available_dates(&symbol, freq).await?)
        })
    }

    /// Every interval of `symbol` (only `freq` when given) with its bar count and first and
    /// last open time, as JSON `{"frequency": the canonical name of freq or null,
    /// "ranges": [...]}`.
    #[pyo3(signature = (symbol, freq, is_async))]
    fn symbol_ranges(
        &self,
        py: Python<'_>,
        symbol: String,
        freq: Option<&str>,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let freq = args::opt_freq(freq)?;
        finish(py, is_async, async move {
            let mut ranges = db.get_symbol_data_range(&symbol).await?;
            ranges.retain(|r| freq.is_none_or(|f| r.freq == f));
            json(&serde_json::json!({
                "frequency": freq.map(|f| f.as_str()),
                "ranges": ranges,
            }))
        })
    }

    /// Stores metric records given as JSON (a list of objects with the model's fields);
    /// `kind` is `funding_rate`, `open_interest` or `long_short_ratio`.
    fn store_metrics(
        &self,
        py: Python<'_>,
        kind: &str,
        records: &str,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let bad = |e: serde_json::Error| value_error(format!("{kind} records: {e}"));
        match kind {
            "funding_rate" => {
                let v: Vec<FundingRate> = serde_json::from_str(records).map_err(bad)?;
                finish(
                    py,
                    is_async,
                    async move { Ok(db.store_funding_rate(v).await?) },
                )
            }
            "open_interest" => {
                let v: Vec<OpenInterest> = serde_json::from_str(records).map_err(bad)?;
                finish(
                    py,
                    is_async,
                    async move { Ok(db.store_open_interest(v).await?) },
                )
            }
            "long_short_ratio" => {
                let v: Vec<LongShortRatio> = serde_json::from_str(records).map_err(bad)?;
                finish(py, is_async, async move {
                    Ok(db.store_long_short_ratio(v).await?)
                })
            }
            other => Err(value_error(format!("unknown metric kind {other:?}"))),
        }
    }

    /// Metric records as JSON (a list of objects with the model's fields).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (kind, start, end, symbols, period, ratio_type, is_async))]
    fn read_metrics(
        &self,
        py: Python<'_>,
        kind: &str,
        start: TimeArg,
        end: TimeArg,
        symbols: Vec<String>,
        period: &str,
        ratio_type: &str,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let range = args::range(&start, &end, false)?;
        match kind {
            "funding_rate" => finish(py, is_async, async move {
                json(&db.read_funding_rate(range, &symbols, false).await?)
            }),
            "open_interest" => {
                let period = args::freq(period)?;
                finish(py, is_async, async move {
                    json(
                        &db.read_open_interest(range, &symbols, period, false)
                            .await?,
                    )
                })
            }
            "long_short_ratio" => {
                let (period, ratio) = (args::freq(period)?, args::ratio_type(ratio_type)?);
                finish(py, is_async, async move {
                    json(
                        &db.read_long_short_ratio(range, &symbols, period, ratio, false)
                            .await?,
                    )
                })
            }
            other => Err(value_error(format!("unknown metric kind {other:?}"))),
        }
    }

    fn check_completeness(
        &self,
        py: Python<'_>,
        start: TimeArg,
        end: TimeArg,
        freq: &str,
        symbols: Vec<String>,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let range = args::range(&start, &end, false)?;
        let freq = args::freq(freq)?;
        finish(py, is_async, async move {
            json(&db.check_completeness(range, freq, &symbols).await?)
        })
    }

    /// Resamples `from` bars to `to`; returns the bars and the counts as JSON. With
    /// `store` the result is also written to the database.
    #[allow(clippy::too_many_arguments)]
    fn resample(
        &self,
        py: Python<'_>,
        start: TimeArg,
        end: TimeArg,
        from_freq: &str,
        to_freq: &str,
        symbols: Vec<String>,
        drop_incomplete: bool,
        store: bool,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let range = args::range(&start, &end, false)?;
        let (from, to) = (args::freq(from_freq)?, args::freq(to_freq)?);
        let policy = if drop_incomplete {
            IncompletePolicy::Drop
        } else {
            IncompletePolicy::Keep
        };
        finish(py, is_async, async move {
            let r = if store {
                db.resample_and_store(range, from, to, &symbols, policy)
                    .await?
            } else {
                db.resample(range, from, to, &symbols, policy).await?
            };
            let counts = serde_json::json!({
                "buckets": r.buckets,
                "incomplete": r.incomplete,
                "dropped": r.dropped,
                "stored": r.stored,
            })
            .to_string();
            Ok((frame_stream(r.frame)?, counts))
        })
    }

    /// One export; `kind` is `numpy`, `files` (the 1.9 `export_to_files` layout), `csv`,
    /// `parquet` or `dataset`. Returns the report as JSON.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (kind, output, start, end, freq, symbols, features, target_freq, fill, compression, csv_part_rows, is_async))]
    fn export(
        &self,
        py: Python<'_>,
        kind: &str,
        output: PathBuf,
        start: Option<TimeArg>,
        end: Option<TimeArg>,
        freq: &str,
        symbols: Vec<String>,
        features: Option<Vec<String>>,
        target_freq: Option<&str>,
        fill: &str,
        compression: Option<&str>,
        csv_part_rows: Option<usize>,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let exporter = AsyncDataExporter::new(&db);
        let range = match (&start, &end) {
            (Some(s), Some(e)) => Some(args::range(s, e, false)?),
            (None, None) => None,
            _ => return Err(value_error("give both start and end, or neither")),
        };
        let freq = args::freq(freq)?;
        let compression = compression
            .map(|c| c.parse::<ParquetCompression>())
            .transpose()
            .map_err(Failure::from)?;
        if kind == "dataset" {
            let request = DatasetRequest {
                freqs: vec![freq],
                symbols,
                range,
                compression: compression.unwrap_or(ParquetCompression::Zstd),
                ..DatasetRequest::default()
            };
            return finish(py, is_async, async move {
                json(&marketdb_dataset::export_dataset(&db, &output, &request).await?)
            });
        }
        let range = range.ok_or_else(|| value_error(format!("a {kind} export needs a range")))?;
        let mut request = ExportRequest::new(symbols, range, freq);
        request.features = args::features(features)?;
        request.target_freq = args::opt_freq(target_freq)?;
        request.fill = fill.parse::<FillPolicy>().map_err(Failure::from)?;
        if let Some(c) = compression {
            request.compression = c;
        }
        request.csv_part_rows = csv_part_rows;
        match kind {
            "numpy" | "files" => finish(py, is_async, async move {
                json(&exporter.export_to_numpy(&request, output).await?)
            }),
            "csv" => finish(py, is_async, async move {
                json(&exporter.export_to_csv(&request, output).await?)
            }),
            "parquet" => finish(py, is_async, async move {
                json(&exporter.export_to_parquet(&request, output).await?)
            }),
            other => Err(value_error(format!(
                "unknown export {other:?} (numpy, files, csv, parquet, dataset)"
            ))),
        }
    }

    /// A download (`marketdb download`'s policy and arguments) into this database;
    /// returns the report as JSON.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (market, kind, symbols, freq, start, end, source, base_url, rest_url, jobs, retries, keep, recheck_days, reverify, quote, include_delisted, is_async))]
    fn download(
        &self,
        py: Python<'_>,
        market: &str,
        kind: &str,
        symbols: Vec<String>,
        freq: Option<&str>,
        start: TimeArg,
        end: TimeArg,
        source: &str,
        base_url: Option<String>,
        rest_url: Option<String>,
        jobs: u32,
        retries: u32,
        keep: Option<PathBuf>,
        recheck_days: i64,
        reverify: bool,
        quote: Option<String>,
        include_delisted: bool,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let set = marketdb_download::SymbolSet {
            items: symbols.clone(),
            quote,
            include_delisted,
        };
        let market = marketdb_fetch::Market::parse(market)
            .ok_or_else(|| value_error(format!("market {market:?}: expected spot, um or cm")))?;
        let kind = marketdb_ingest::FileKind::parse(kind)
            .map_err(|e| value_error(format!("kind {kind:?}: {e}")))?;
        let range = args::range(&start, &end, false)?;
        let mut req = marketdb_download::DownloadRequest::new(market, kind, symbols, range);
        req.freq = args::opt_freq(freq)?;
        req.source = marketdb_download::Source::parse(source).map_err(Failure::from)?;
        if let Some(url) = base_url {
            req.base_url = url;
        }
        req.rest_url = rest_url;
        req.jobs = jobs;
        req.retries = retries;
        req.keep = keep;
        req.recheck_days = recheck_days;
        req.reverify = reverify;
        req.check().map_err(Failure::from)?;
        finish(py, is_async, async move {
            // Names and sets (`all`, globs, `re:`) resolve against the catalog, as on the
            // command line.
            marketdb_download::symbols::apply(Some(&db), &mut req, &set).await?;
            json(&marketdb_download::download(&db, &req, &marketdb_download::ignore).await?)
        })
    }

    /// The archive catalog (`marketdb catalog`) as JSON rows.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (market, kind, freq, symbols, delisted, is_async))]
    fn catalog(
        &self,
        py: Python<'_>,
        market: Option<&str>,
        kind: Option<&str>,
        freq: Option<&str>,
        symbols: Vec<String>,
        delisted: bool,
        is_async: bool,
    ) -> PyResult<Py<PyAny>> {
        let db = self.db(py)?;
        let market = match market {
            None => None,
            Some(m) => Some(
                marketdb_fetch::Market::parse(m)
                    .ok_or_else(|| value_error(format!("market {m:?}: expected spot, um or cm")))?,
            ),
        };
        let kind = match kind {
            None => None,
            Some(k) => Some(
                marketdb_ingest::FileKind::parse(k)
                    .map_err(|e| value_error(format!("kind {k:?}: {e}")))?,
            ),
        };
        let query = marketdb_download::catalog::CatalogQuery {
            market,
            kind,
            freq: args::opt_freq(freq)?,
            symbols,
            delisted_only: delisted,
        };
        marketdb_download::symbols::Matcher::new(&query.symbols).map_err(Failure::from)?;
        finish(py, is_async, async move {
            json(&marketdb_download::catalog::list(&db, &query).await?)
        })
    }

    /// What the Python side shapes its arguments and frames with, taken from the model so
    /// that it is written once: `features` (short name, long name, and whether it is a
    /// stored kline column) in catalogue order, `kline_input` (the column order of
    /// `store_klines`), and `ratio_types` (marketdb's name, the spelling of cryptoservice
    /// 1.9, and the short name of its long/short ratio feature).
    /// Shuts the runtime down and joins its threads (the package's exit hook, after it has
    /// closed the open databases): no thread of ours outlives the interpreter.
    #[staticmethod]
    fn shutdown(py: Python<'_>) {
        py.detach(runtime::shutdown);
    }

    #[staticmethod]
    fn catalogue(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
        let features: Vec<(&str, &str, bool)> = Feature::ALL
            .iter()
            .map(|f| (f.short(), f.long(), f.kind() == FeatureKind::Column))
            .collect();
        let ratio_types: Vec<(&str, &str, &str)> = RatioType::ALL
            .iter()
            .filter_map(|r| {
                let feature = Feature::ALL
                    .iter()
                    .find(|f| f.kind() == FeatureKind::Metric(MetricFamily::LongShortRatio(*r)))?;
                Some((r.as_str(), r.legacy(), feature.short()))
            })
            .collect();
        let out = pyo3::types::PyDict::new(py);
        out.set_item("features", features)?;
        out.set_item("kline_input", args::KLINE_INPUT.to_vec())?;
        out.set_item("ratio_types", ratio_types)?;
        Ok(out)
    }
}
