//! The HDF5 export (cargo feature `hdf5`, over the system HDF5 library): one file holding
//! the NumPy layout. For each output day `YYYYMMDD`:
//! - `/{feature}/{YYYYMMDD}`: float64 `(K, T)`, NaN where there is no bar;
//! - `/{metric}_ts/{YYYYMMDD}`: int64 `(K, T)`, the time of each metric value used
//!   (0 = none);
//! - `/timestamp/{YYYYMMDD}`: int64 `(T,)`, the grid's open times (ms UTC);
//! - `/symbols/{YYYYMMDD}`: `(K,)` UTF-8 strings, the rows in order.
//!
//! The root attributes are `freq`, `source_freq`, `features` (comma-separated), `contract`
//! and `marketdb_version`. The file is written under a temporary name and renamed when
//! complete; a failed export removes it.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use marketdb_model::time::yyyymmdd;
use serde::Serialize;

use crate::manifest::CONTRACT_VERSION;
use crate::numpy::{DayReport, day_cells, day_grid, fill_matrix, fill_times, ts_name};
use crate::plan::Plan;
use crate::table::Table;
use crate::{Error, Result};
use marketdb_output::{AtomicFile, OutputGate};

/// What an HDF5 export wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hdf5Report {
    pub path: PathBuf,
    /// Whether an existing file was replaced.
    pub replaced: bool,
    pub days: Vec<DayReport>,
    /// Bars exported (cells holding a bar).
    pub bars: u64,
    /// File size.
    pub bytes: u64,
}

/// Writes one HDF5 file.
pub(crate) struct Hdf5Writer {
    file: Option<hdf5::File>,
    /// The gate's temporary file, which the HDF5 library rewrites by path; dropping it
    /// unfinished removes it.
    out: Option<AtomicFile>,
    target: PathBuf,
    plan: Plan,
    days: Vec<DayReport>,
    pub(crate) off_grid: u64,
}

fn text(s: &str, path: &Path) -> Result<VarLenUnicode> {
    s.parse::<VarLenUnicode>().map_err(|e| Error::Hdf5 {
        path: path.to_path_buf(),
        reason: format!("cannot store {s:?}: {e}"),
    })
}

impl Hdf5Writer {
    pub(crate) fn new(gate: &OutputGate, target: &Path, plan: &Plan) -> Result<Hdf5Writer> {
        let out = gate.create(target)?;
        let err = |e: hdf5::Error| Error::Hdf5 {
            path: target.to_path_buf(),
            reason: e.to_string(),
        };
        let temp = out.temp_path().ok_or_else(|| Error::WriterStopped {
            path: target.to_path_buf(),
        })?;
        let file = hdf5::File::create(temp).map_err(err)?;
        let mut w = Hdf5Writer {
            file: Some(file),
            out: Some(out),
            target: target.to_path_buf(),
            plan: plan.clone(),
            days: Vec::new(),
            off_grid: 0,
        };
        let features: Vec<&str> = plan.features.iter().map(|f| f.short()).collect();
        for (name, value) in [
            ("freq", plan.out_freq.as_str().to_owned()),
            ("source_freq", plan.source_freq.as_str().to_owned()),
            ("features", features.join(",")),
            ("contract", CONTRACT_VERSION.to_owned()),
            ("marketdb_version", env!("CARGO_PKG_VERSION").to_owned()),
        ] {
            let v = text(&value, target)?;
            let f = w.file()?;
            f.new_attr::<VarLenUnicode>()
                .create(name)
                .and_then(|a| a.write_scalar(&v))
                .map_err(err)?;
        }
        Ok(w)
    }

    fn file(&mut self) -> Result<&hdf5::File> {
        self.file.as_ref().ok_or_else(|| Error::WriterStopped {
            path: self.target.clone(),
        })
    }

    fn err(&self, e: hdf5::Error) -> Error {
        Error::Hdf5 {
            path: self.target.clone(),
            reason: e.to_string(),
        }
    }

    /// The group `name`, created on first use.
    fn group(&mut self, name: &str) -> Result<hdf5::Group> {
        let target = self.target.clone();
        let file = self.file()?;
        let g = match file.group(name) {
            Ok(g) => g,
            Err(_) => file.create_group(name).map_err(|e| Error::Hdf5 {
                path: target,
                reason: e.to_string(),
            })?,
        };
        Ok(g)
    }

    pub(crate) fn write_day(&mut self, day: i64, table: &Table) -> Result<()> {
        if table.symbols.is_empty() {
            return Ok(());
        }
        let grid = day_grid(self.plan.out_freq, day);
        let (k, t) = (table.symbols.len(), grid.len());
        let (cells, off) = day_cells(table, &grid);
        self.off_grid += off;
        let stem = yyyymmdd(day);
        let mut matrix = vec![f64::NAN; k * t];
        let features = self.plan.features.clone();
        for (f, col) in features.iter().zip(&table.columns) {
            fill_matrix(&mut matrix, &cells, col, self.plan.fill, t);
            let g = self.group(f.short())?;
            g.new_dataset::<f64>()
                .shape((k, t))
                .create(stem.as_str())
                .and_then(|d| d.write_raw(&matrix))
                .map_err(|e| self.err(e))?;
        }
        let mut times = vec![0i64; k * t];
        let metrics = self.plan.metrics.clone();
        for (m, ts) in metrics.iter().zip(&table.metric_ts) {
            fill_times(&mut times, &cells, ts);
            let g = self.group(&ts_name(*m))?;
            g.new_dataset::<i64>()
                .shape((k, t))
                .create(stem.as_str())
                .and_then(|d| d.write_raw(&times))
                .map_err(|e| self.err(e))?;
        }
        let g = self.group("timestamp")?;
        g.new_dataset::<i64>()
            .shape(t)
            .create(stem.as_str())
            .and_then(|d| d.write_raw(&grid))
            .map_err(|e| self.err(e))?;
        let symbols = table
            .symbols
            .iter()
            .map(|(s, _)| text(s, &self.target))
            .collect::<Result<Vec<_>>>()?;
        let g = self.group("symbols")?;
        g.new_dataset::<VarLenUnicode>()
            .shape(k)
            .create(stem.as_str())
            .and_then(|d| d.write_raw(&symbols))
            .map_err(|e| self.err(e))?;
        self.days.push(DayReport {
            date: stem,
            start: day,
            k,
            t,
            bars: cells.iter().filter(|c| c.is_some()).count(),
        });
        Ok(())
    }

    /// Closes the file and renames it to its final name.
    pub(crate) fn finish(mut self) -> Result<Hdf5Report> {
        if let Some(f) = self.file.take() {
            f.close().map_err(|e| self.err(e))?;
        }
        if self.off_grid > 0 {
            tracing::warn!(
                rows = self.off_grid,
                "bars off the interval grid were not exported"
            );
        }
        let out = self.out.take().ok_or_else(|| Error::WriterStopped {
            path: self.target.clone(),
        })?;
        let bytes = out.commit(true)?.bytes;
        Ok(Hdf5Report {
            path: self.target.clone(),
            replaced: false,
            bars: self.days.iter().map(|d| d.bars as u64).sum(),
            days: std::mem::take(&mut self.days),
            bytes,
        })
    }
}

impl Drop for Hdf5Writer {
    fn drop(&mut self) {
        // Still open: the export did not finish; close the library's handle first, then
        // dropping `out` removes the temporary file.
        drop(self.file.take());
        drop(self.out.take());
    }
}
