//! The NumPy export writer: turns one output day's [`Table`] into the day's file set under
//! `{out}/{freq}/`: one float64 `(K, T)` matrix per feature (NaN = no bar), one int64
//! `(K, T)` `{metric}_ts` matrix per metric feature (0 = no value, never filled), the
//! `timestamp` grid `(T,)` and the `symbols` list as JSON and `<U{n}`. K = the symbols with
//! at least one bar that day (the table's symbols, sorted); T = the full grid of the day
//! (`Freq::day_grid`; one slot for 1d and coarser). Fill policy `ffill` fills along time
//! within the day only. Every file goes through `atomic.rs` and stays under its temporary
//! name until the exporter renames them all after the last day, then writes the manifest.

use std::path::{Path, PathBuf};

use marketdb_model::time::yyyymmdd;
use marketdb_model::{Feature, Freq};
use serde::{Deserialize, Serialize};

use marketdb_output::OutputGate;

use crate::{
    Column, FillPolicy, Result,
    atomic::{FileRecord, PendingFile, write_pending},
    npy,
    plan::Plan,
    table::Table,
};

/// One exported day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayReport {
    /// `YYYYMMDD` (the file stem).
    pub date: String,
    /// Open time of the day, ms UTC.
    pub start: i64,
    /// Number of symbols (rows).
    pub k: usize,
    /// Number of grid slots (columns).
    pub t: usize,
    /// Bars exported (cells holding a bar).
    pub bars: usize,
}

/// The grid of an output day: every bucket opening that day for sub-day intervals, the
/// day's midnight for 1d and coarser (bars of those intervals only exist on days a bucket
/// opens).
pub(crate) fn day_grid(freq: Freq, day: i64) -> Vec<i64> {
    if freq.is_intraday() {
        freq.day_grid(day)
    } else {
        vec![day]
    }
}

/// Forward-fills each row of a row-major `(k, t)` matrix along time, never before the
/// first value of the row.
pub(crate) fn ffill_rows(data: &mut [f64], t: usize) {
    if t == 0 {
        return;
    }
    for row in data.chunks_mut(t) {
        let mut last = f64::NAN;
        for v in row.iter_mut() {
            if v.is_nan() {
                *v = last;
            } else {
                last = *v;
            }
        }
    }
}

/// The matrix cell (`row * t + column`) of every table row on the day's `grid`, or `None`
/// for a row off the grid; and how many were off it.
pub(crate) fn day_cells(table: &Table, grid: &[i64]) -> (Vec<Option<usize>>, u64) {
    let t = grid.len();
    let mut off = 0;
    let mut cells = Vec::with_capacity(table.len());
    for (r, (_, rows)) in table.symbols.iter().enumerate() {
        for row in rows.clone() {
            let cell = grid
                .binary_search(&table.timestamp[row])
                .ok()
                .map(|c| r * t + c);
            if cell.is_none() {
                off += 1;
            }
            cells.push(cell);
        }
    }
    (cells, off)
}

/// Fills the row-major `(k, t)` `matrix` with one feature column (NaN = no bar), then
/// forward-fills along time when the policy says so.
pub(crate) fn fill_matrix(
    matrix: &mut [f64],
    cells: &[Option<usize>],
    col: &Column,
    fill: FillPolicy,
    t: usize,
) {
    matrix.fill(f64::NAN);
    for (row, cell) in cells.iter().enumerate() {
        if let Some(c) = cell {
            matrix[*c] = match col {
                Column::F64(v) => v[row],
                Column::I64(v) => v[row] as f64,
            };
        }
    }
    if fill == FillPolicy::Ffill {
        ffill_rows(matrix, t);
    }
}

/// Fills the `(k, t)` `times` with one metric's value times (0 = none; never filled).
pub(crate) fn fill_times(times: &mut [i64], cells: &[Option<usize>], ts: &[i64]) {
    times.fill(0);
    for (row, cell) in cells.iter().enumerate() {
        if let Some(c) = cell {
            times[*c] = ts[row];
        }
    }
}

/// Writes day file sets for one export.
#[derive(Debug)]
pub(crate) struct NumpyWriter {
    gate: OutputGate,
    root: PathBuf,
    freq_dir: String,
    plan: Plan,
    fsync: bool,
    /// Every file written, in order.
    pub files: Vec<FileRecord>,
    /// The files written so far, under their temporary names: the export renames them all
    /// when it finishes, so a failed export leaves nothing under a final name.
    pub pending: Vec<PendingFile>,
    /// Every day written, in order.
    pub days: Vec<DayReport>,
    /// Folders that received files (synced before the manifest is written).
    pub dirs: Vec<PathBuf>,
    /// Rows whose open time is not on the day's grid (skipped).
    pub off_grid: u64,
    /// Reused encoding buffer (one matrix file).
    buf: Vec<u8>,
}

impl NumpyWriter {
    pub(crate) fn new(
        gate: &OutputGate,
        root: &Path,
        plan: &Plan,
        fsync: bool,
    ) -> Result<NumpyWriter> {
        let freq_dir = plan.out_freq.as_str().to_owned();
        let mut dirs = Vec::new();
        let mut names: Vec<String> = plan.features.iter().map(|f| f.short().to_owned()).collect();
        names.extend(plan.metrics.iter().map(|m| ts_name(*m)));
        names.push("timestamp".to_owned());
        names.push("symbols".to_owned());
        for n in names {
            let d = root.join(&freq_dir).join(n);
            dirs.push(d);
        }
        Ok(NumpyWriter {
            gate: gate.clone(),
            root: root.to_path_buf(),
            freq_dir,
            plan: plan.clone(),
            fsync,
            files: Vec::new(),
            pending: Vec::new(),
            days: Vec::new(),
            dirs,
            off_grid: 0,
            buf: Vec::new(),
        })
    }

    /// Creates the output folders (on the first day with data, so an empty export leaves
    /// none behind).
    fn ensure_dirs(&self) -> Result<()> {
        for d in &self.dirs {
            self.gate.create_dir_all(d)?;
        }
        Ok(())
    }

    fn put(&mut self, dir: &str, stem: &str, ext: &str, bytes: &[u8]) -> Result<()> {
        let rel = format!("{}/{dir}/{stem}.{ext}", self.freq_dir);
        let (pending, rec) = write_pending(&self.gate, &self.root, &rel, bytes, self.fsync)?;
        self.pending.push(pending);
        self.files.push(rec);
        Ok(())
    }

    /// Writes the reused buffer as `{dir}/{stem}.npy`.
    fn put_buf(&mut self, dir: &str, stem: &str) -> Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let res = self.put(dir, stem, "npy", &buf);
        self.buf = buf;
        res
    }

    /// Renames every file written so far to its final name.
    pub(crate) fn commit_pending(&mut self) -> Result<()> {
        for p in std::mem::take(&mut self.pending) {
            p.commit()?;
        }
        Ok(())
    }

    /// Writes the file set of the day starting at `day` from `table` (all rows of that day).
    pub(crate) fn write_day(&mut self, day: i64, table: &Table) -> Result<()> {
        if table.symbols.is_empty() {
            return Ok(());
        }
        if self.days.is_empty() {
            self.ensure_dirs()?;
        }
        let grid = day_grid(self.plan.out_freq, day);
        let (k, t) = (table.symbols.len(), grid.len());
        let (cells, off_grid) = day_cells(table, &grid);
        self.off_grid += off_grid;
        let stem = yyyymmdd(day);
        let mut matrix = vec![f64::NAN; k * t];
        for (f, col) in self.plan.features.clone().iter().zip(&table.columns) {
            fill_matrix(&mut matrix, &cells, col, self.plan.fill, t);
            npy::encode_f64_into(&mut self.buf, &[k, t], &matrix);
            self.put_buf(f.short(), &stem)?;
        }
        let mut times = vec![0i64; k * t];
        for (m, ts) in self.plan.metrics.clone().iter().zip(&table.metric_ts) {
            fill_times(&mut times, &cells, ts);
            self.put(
                &ts_name(*m),
                &stem,
                "npy",
                &npy::encode_i64(&[k, t], &times),
            )?;
        }
        self.put("timestamp", &stem, "npy", &npy::encode_i64(&[t], &grid))?;
        let symbols: Vec<String> = table.symbols.iter().map(|(s, _)| s.clone()).collect();
        let json = serde_json::to_vec(&symbols).map_err(|e| crate::Error::Json {
            path: self.root.join(&self.freq_dir).join("symbols"),
            source: e,
        })?;
        self.put("symbols", &stem, "json", &json)?;
        self.put("symbols", &stem, "npy", &npy::encode_str(&symbols))?;
        self.days.push(DayReport {
            date: stem,
            start: day,
            k,
            t,
            bars: cells.iter().filter(|c| c.is_some()).count(),
        });
        Ok(())
    }
}

/// The folder of a metric's timestamps: `{short}_ts`.
pub(crate) fn ts_name(metric: Feature) -> String {
    format!("{}_ts", metric.short())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use marketdb_model::time::{DAY_MS, parse_ymd};

    use super::*;
    use crate::npy_read::{NpyArray, NpyData, read_npy};
    use crate::table::tests::{frame, plan};

    const H: i64 = 3_600_000;

    /// The shape and values of a float64 file.
    fn read_f64(path: &Path) -> (Vec<usize>, Vec<f64>) {
        match read_npy(path).unwrap() {
            NpyArray {
                shape,
                data: NpyData::F64(v),
            } => (shape, v),
            other => panic!("not float64: {other:?}"),
        }
    }

    #[test]
    fn ffill_stays_in_row_and_after_first_value() {
        let n = f64::NAN;
        let mut m = vec![n, 1.0, n, 2.0, n, n, n, 5.0];
        ffill_rows(&mut m, 4);
        assert!(m[0].is_nan());
        assert_eq!(&m[1..4], &[1.0, 1.0, 2.0]);
        assert!(
            m[4].is_nan() && m[5].is_nan() && m[6].is_nan(),
            "row 2 never sees row 1"
        );
        assert_eq!(m[7], 5.0);
    }

    #[test]
    fn grids() {
        let d = parse_ymd(2024, 1, 1).unwrap();
        assert_eq!(day_grid(Freq::H1, d).len(), 24);
        assert_eq!(day_grid(Freq::M5, d).len(), 288);
        assert_eq!(day_grid(Freq::D3, d + DAY_MS), vec![d + DAY_MS]);
        assert_eq!(day_grid(Freq::W1, d), vec![d]);
    }

    #[test]
    fn writes_a_day_with_holes_and_fill() {
        let dir = tempfile::tempdir().unwrap();
        let d = parse_ymd(2024, 1, 1).unwrap();
        let mut rows = vec![];
        for h in [0, 1, 5] {
            rows.push(("AAA", d + h * H, 10.0, 11.0 + h as f64, 1.0, 11.0, 3));
        }
        rows.push(("BBB", d + 23 * H, 10.0, 12.0, 0.0, 0.0, 0));
        let mut p = plan(vec![
            Feature::Close,
            Feature::Vwap,
            Feature::TradesCount,
            Feature::OpenInterest,
        ]);
        let mut t = Table::from_frame(&p, frame(&rows));
        t.metric_ts[0] = vec![d + 1, 0, d + 5 * H, d + 23 * H];
        let mut w = NumpyWriter::new(&OutputGate::new(), dir.path(), &p, false).unwrap();
        w.write_day(d, &t).unwrap();
        assert!(
            !dir.path().join("1h/cls/20240101.npy").exists(),
            "nothing under a final name before the commit"
        );
        w.commit_pending().unwrap();
        let (shape, cls) = read_f64(&dir.path().join("1h/cls/20240101.npy"));
        assert_eq!(shape, [2, 24]);
        assert_eq!(cls[0], 11.0);
        assert_eq!(cls[5], 16.0);
        assert_eq!(cls.iter().filter(|v| v.is_nan()).count(), 48 - 4);
        assert_eq!(cls[24 + 23], 12.0);
        let (_, vwap) = read_f64(&dir.path().join("1h/vwap/20240101.npy"));
        assert!(vwap[24 + 23].is_nan(), "vol 0");
        let ts = fs::read(dir.path().join("1h/oi_ts/20240101.npy")).unwrap();
        assert_eq!(ts.len(), 128 + 48 * 8);
        assert_eq!(
            fs::read_to_string(dir.path().join("1h/symbols/20240101.json")).unwrap(),
            "[\"AAA\",\"BBB\"]"
        );
        assert_eq!(w.files.len(), 4 + 1 + 1 + 2);
        assert_eq!(
            w.days,
            vec![DayReport {
                date: "20240101".into(),
                start: d,
                k: 2,
                t: 24,
                bars: 4
            }]
        );

        p.fill = FillPolicy::Ffill;
        let mut w = NumpyWriter::new(&OutputGate::new(), dir.path(), &p, false).unwrap();
        w.write_day(d, &t).unwrap();
        w.commit_pending().unwrap();
        let (_, cls) = read_f64(&dir.path().join("1h/cls/20240101.npy"));
        assert_eq!(&cls[0..7], &[11.0, 12.0, 12.0, 12.0, 12.0, 16.0, 16.0]);
        assert!(
            cls[24..24 + 23].iter().all(|v| v.is_nan()),
            "never before the first value"
        );
        let NpyData::I64(times) = read_npy(&dir.path().join("1h/oi_ts/20240101.npy"))
            .unwrap()
            .data
        else {
            panic!("oi_ts is int64")
        };
        assert_eq!(times[0], d + 1);
        assert_eq!(times[2], 0, "timestamps are never filled");
    }
}
