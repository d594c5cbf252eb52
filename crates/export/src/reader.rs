//! [`NumpyExport`]: reads back the folder a NumPy export wrote, by the contract of
//! `docs/formats.md` ("NumPy layout"): `{freq}/{feature}/{YYYYMMDD}.npy` float64 `(K, T)`,
//! `{freq}/{metric}_ts/{YYYYMMDD}.npy` int64 `(K, T)`, `{freq}/timestamp/{YYYYMMDD}.npy`
//! int64 `(T,)`, `{freq}/symbols/{YYYYMMDD}.json` and `.npy`, and `manifest.json`.
//!
//! With a manifest, the manifest is the authority (a folder may hold older files it does
//! not list): its interval, features, metrics and days, and every file it lists must exist
//! with its listed size; [`NumpyExport::verify_checksums`] also checks their SHA-256.
//! Without one (an export that did not finish) the folders are listed instead. Every file
//! is checked when it is read: its dtype and rank, symbols sorted and the same in the JSON
//! and `.npy` lists, timestamps equal to the day's grid, matrices shaped (symbols,
//! timestamps) of that day. It does not write, cache or repair anything, and it never
//! allocates what a file's header claims before checking it against the file's length.

use std::{
    collections::BTreeSet,
    fs::{self, File},
    io::{self, Read},
    path::{Path, PathBuf},
};

use marketdb_model::{Feature, Freq, time::parse_ymd};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{
    DayReport, Error, FileRecord, MANIFEST_NAME, Result,
    npy_read::{NpyArray, NpyData, read_npy, shape_text},
    numpy::{day_grid, ts_name},
};

/// `manifest.json` of a NumPy export as read back (keys this reader does not use, such as
/// `request` and `layout`, are skipped).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ExportManifest {
    /// Export contract version (`1.0`); a reader accepts the same major version.
    pub contract_version: String,
    /// `ok` or `no_data`.
    pub status: String,
    /// Interval of the files (the `{freq}` folder).
    pub freq: String,
    /// Interval read from the store.
    pub source_freq: String,
    /// Feature short names, in file order.
    pub features: Vec<String>,
    /// The metric features and their timestamp folders.
    pub metrics: Vec<ManifestMetric>,
    /// `none` or `ffill`.
    pub fill: String,
    /// Every exported day with its K and T.
    pub days: Vec<DayReport>,
    /// Every file written except the manifest.
    pub files: Vec<FileRecord>,
    /// Contract 1.1: every interval folder of the export, each described as the export that
    /// wrote it (the top-level keys are the latest one). Empty in a 1.0 manifest.
    #[serde(default)]
    pub freqs: std::collections::BTreeMap<String, ManifestSection>,
}

/// One interval of a manifest's `freqs` (contract 1.1).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ManifestSection {
    /// `ok` or `no_data`.
    pub status: String,
    /// Interval of the files (the `{freq}` folder).
    pub freq: String,
    /// Interval read from the store.
    pub source_freq: String,
    /// Feature short names, in file order.
    pub features: Vec<String>,
    /// The metric features and their timestamp folders.
    pub metrics: Vec<ManifestMetric>,
    /// `none` or `ffill`.
    pub fill: String,
    /// Every exported day with its K and T.
    pub days: Vec<DayReport>,
    /// Every file of this interval.
    pub files: Vec<FileRecord>,
}

/// One metric feature of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ManifestMetric {
    /// Short name (`fr`, `oi`...).
    pub feature: String,
    /// Folder of its timestamps (`{feature}_ts`).
    pub timestamps: String,
    /// Long name.
    pub source: String,
    /// How old a value may be at a bar's close, ms.
    pub tolerance_ms: i64,
}

/// The values of a [`Matrix`], row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum MatrixData {
    /// A feature (NaN = no value).
    F64(Vec<f64>),
    /// Metric timestamps (0 = no value).
    I64(Vec<i64>),
}

/// One value of a [`Matrix`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    F64(f64),
    I64(i64),
}

/// A `(rows, cols)` day matrix: one row per symbol of the day, one column per timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: MatrixData,
}

impl Matrix {
    /// Rows (K, the day's symbols).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (T, the day's timestamps).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// All values, row-major.
    pub fn data(&self) -> &MatrixData {
        &self.data
    }

    /// The values, for a consumer that wants to own them.
    pub fn into_data(self) -> MatrixData {
        self.data
    }

    fn index(&self, row: usize, col: usize) -> Option<usize> {
        (row < self.rows && col < self.cols).then(|| row * self.cols + col)
    }

    /// The value at (`row`, `col`); `None` outside the matrix.
    pub fn get(&self, row: usize, col: usize) -> Option<Cell> {
        let i = self.index(row, col)?;
        match &self.data {
            MatrixData::F64(v) => v.get(i).copied().map(Cell::F64),
            MatrixData::I64(v) => v.get(i).copied().map(Cell::I64),
        }
    }

    /// The float value at (`row`, `col`); `None` outside the matrix or in an int64 one.
    pub fn get_f64(&self, row: usize, col: usize) -> Option<f64> {
        match self.get(row, col)? {
            Cell::F64(v) => Some(v),
            Cell::I64(_) => None,
        }
    }

    /// The int value at (`row`, `col`); `None` outside the matrix or in a float64 one.
    pub fn get_i64(&self, row: usize, col: usize) -> Option<i64> {
        match self.get(row, col)? {
            Cell::I64(v) => Some(v),
            Cell::F64(_) => None,
        }
    }

    /// Row `row` of a float64 matrix.
    pub fn row_f64(&self, row: usize) -> Option<&[f64]> {
        match &self.data {
            MatrixData::F64(v) if row < self.rows => v.get(row * self.cols..(row + 1) * self.cols),
            _ => None,
        }
    }

    /// Row `row` of an int64 matrix.
    pub fn row_i64(&self, row: usize) -> Option<&[i64]> {
        match &self.data {
            MatrixData::I64(v) if row < self.rows => v.get(row * self.cols..(row + 1) * self.cols),
            _ => None,
        }
    }
}

/// An exported day of one interval.
#[derive(Clone, Debug)]
struct Day {
    date: String,
    start: i64,
    /// K and T when a manifest states them.
    kt: Option<(usize, usize)>,
}

/// The files of one interval.
#[derive(Clone, Debug)]
struct FreqDir {
    freq: Freq,
    features: Vec<Feature>,
    metrics: Vec<Feature>,
    days: Vec<Day>,
}

/// A NumPy export folder opened for reading.
#[derive(Clone, Debug)]
pub struct NumpyExport {
    root: PathBuf,
    manifest: Option<ExportManifest>,
    freqs: Vec<FreqDir>,
}

fn read_err(path: &Path, source: io::Error) -> Error {
    Error::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidExport {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The interval a folder name spells exactly (`1h`, not `1H`).
fn freq_named(name: &str) -> Option<Freq> {
    Freq::parse(name).ok().filter(|f| f.as_str() == name)
}

/// The feature a short name spells exactly (`cls`, not `close_price` or `CLS`).
fn feature_named(name: &str) -> Option<Feature> {
    Feature::parse(name).ok().filter(|f| f.short() == name)
}

/// The UTC midnight of a `YYYYMMDD` stem.
fn day_start(date: &str) -> Option<i64> {
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| date.get(r).and_then(|s| s.parse::<u32>().ok());
    parse_ymd(i64::from(num(0..4)?), num(4..6)?, num(6..8)?)
}

/// Names of the visible entries of `dir` that are folders (`true`) or files (`false`).
fn list(dir: &Path, folders: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| read_err(&entry.path(), e))?
            .is_dir();
        // Hidden names are the writer's temporary files (`.{name}.tmp-{pid}-{n}`).
        match entry.file_name().into_string() {
            Ok(name) if is_dir == folders && !name.starts_with('.') => out.push(name),
            Ok(_) => {}
            Err(name) => tracing::debug!(?name, dir = %dir.display(), "skipping a non-UTF-8 name"),
        }
    }
    out.sort();
    Ok(out)
}

fn kind(a: &NpyArray) -> String {
    let dtype = match &a.data {
        NpyData::F64(_) => "'<f8'",
        NpyData::I64(_) => "'<i8'",
        NpyData::Str(_) => "'<U'",
    };
    format!("{dtype} {}", shape_text(&a.shape))
}

impl NumpyExport {
    /// Opens the folder an export wrote (its `--out`), from its manifest when it has one,
    /// else from its folders, and checks the manifest against the files present.
    pub fn open(dir: impl AsRef<Path>) -> Result<NumpyExport> {
        let root = dir.as_ref().to_path_buf();
        let meta = fs::metadata(&root).map_err(|e| read_err(&root, e))?;
        if !meta.is_dir() {
            return Err(invalid(&root, "not a folder"));
        }
        let path = root.join(MANIFEST_NAME);
        // A FIFO or device planted at the manifest's name is refused, never read.
        match marketdb_output::read_regular(&path, 1 << 30)? {
            Some(bytes) => {
                let manifest: ExportManifest =
                    serde_json::from_slice(&bytes).map_err(|source| Error::JsonRead {
                        path: path.clone(),
                        source,
                    })?;
                Self::from_manifest(root, manifest)
            }
            None => Self::from_listing(root),
        }
    }

    fn from_manifest(root: PathBuf, m: ExportManifest) -> Result<NumpyExport> {
        let path = root.join(MANIFEST_NAME);
        if m.contract_version.split('.').next() != Some("1") {
            return Err(invalid(
                &path,
                format!(
                    "contract version {:?} is not supported (this reader reads 1.x)",
                    m.contract_version
                ),
            ));
        }
        let top = ManifestSection {
            status: m.status.clone(),
            freq: m.freq.clone(),
            source_freq: m.source_freq.clone(),
            features: m.features.clone(),
            metrics: m.metrics.clone(),
            fill: m.fill.clone(),
            days: m.days.clone(),
            files: m.files.clone(),
        };
        let mut freqs = vec![Self::section_dir(&root, &top)?];
        for (name, section) in &m.freqs {
            if *name == m.freq {
                continue;
            }
            if section.freq != *name {
                return Err(invalid(
                    &path,
                    format!("freqs[{name:?}] describes interval {:?}", section.freq),
                ));
            }
            freqs.push(Self::section_dir(&root, section)?);
        }
        freqs.sort_by_key(|d| d.freq);
        Ok(NumpyExport {
            root,
            manifest: Some(m),
            freqs,
        })
    }

    /// Checks one interval of a manifest against the files present.
    fn section_dir(root: &Path, m: &ManifestSection) -> Result<FreqDir> {
        let path = root.join(MANIFEST_NAME);
        let bad = |reason: String| invalid(&path, reason);
        let freq = freq_named(&m.freq).ok_or_else(|| bad(format!("unknown freq {:?}", m.freq)))?;
        let mut features = Vec::new();
        for name in &m.features {
            let f = feature_named(name).ok_or_else(|| bad(format!("unknown feature {name:?}")))?;
            if features.contains(&f) {
                return Err(bad(format!("feature {name:?} is listed twice")));
            }
            features.push(f);
        }
        let mut metrics = Vec::new();
        for x in &m.metrics {
            let f = feature_named(&x.feature)
                .filter(|f| features.contains(f) && !metrics.contains(f))
                .ok_or_else(|| bad(format!("metric {:?} is not an exported feature", x.feature)))?;
            if x.timestamps != ts_name(f) {
                return Err(bad(format!(
                    "metric {:?} has timestamps {:?}, expected {:?}",
                    x.feature,
                    x.timestamps,
                    ts_name(f)
                )));
            }
            metrics.push(f);
        }
        let mut days: Vec<Day> = Vec::new();
        for d in &m.days {
            let start = day_start(&d.date)
                .filter(|s| *s == d.start)
                .ok_or_else(|| {
                    bad(format!(
                        "day {:?} (start {}) is not a UTC day",
                        d.date, d.start
                    ))
                })?;
            if days.last().is_some_and(|p| p.start >= start) {
                return Err(bad(format!("day {} is out of order", d.date)));
            }
            days.push(Day {
                date: d.date.clone(),
                start,
                kt: Some((d.k, d.t)),
            });
        }
        let expected_status = if days.is_empty() { "no_data" } else { "ok" };
        if m.status != expected_status {
            return Err(bad(format!(
                "status {:?} with {} day(s)",
                m.status,
                days.len()
            )));
        }
        let dir = FreqDir {
            freq,
            features,
            metrics,
            days,
        };
        // The manifest must list exactly the day file sets it describes; this also keeps
        // every path it names inside the export.
        let mut expected = BTreeSet::new();
        for d in &dir.days {
            for folder in folders(&dir) {
                expected.insert(format!("{}/{folder}/{}.npy", freq.as_str(), d.date));
            }
            expected.insert(format!("{}/symbols/{}.json", freq.as_str(), d.date));
        }
        let mut listed = BTreeSet::new();
        for f in &m.files {
            if !expected.contains(&f.path) {
                return Err(bad(format!(
                    "lists {:?}, which is not part of the layout",
                    f.path
                )));
            }
            if !listed.insert(f.path.as_str()) {
                return Err(bad(format!("lists {:?} twice", f.path)));
            }
            let file = root.join(&f.path);
            let len = fs::metadata(&file).map_err(|e| read_err(&file, e))?.len();
            if len != f.bytes {
                return Err(invalid(
                    &file,
                    format!("holds {len} bytes, {MANIFEST_NAME} says {}", f.bytes),
                ));
            }
        }
        if let Some(missing) = expected.iter().find(|p| !listed.contains(p.as_str())) {
            return Err(bad(format!("does not list {missing:?}")));
        }
        Ok(dir)
    }

    fn from_listing(root: PathBuf) -> Result<NumpyExport> {
        let mut freqs = Vec::new();
        for name in list(&root, true)? {
            let Some(freq) = freq_named(&name) else {
                tracing::debug!(folder = %name, "not an interval folder, skipped");
                continue;
            };
            let dir = root.join(&name);
            let (mut features, mut metrics, mut has) = (Vec::new(), Vec::new(), [false; 2]);
            for sub in list(&dir, true)? {
                match sub.as_str() {
                    "timestamp" => has[0] = true,
                    "symbols" => has[1] = true,
                    _ => match sub.strip_suffix("_ts").map(feature_named) {
                        Some(Some(m)) => metrics.push(m),
                        _ => match feature_named(&sub) {
                            Some(f) => features.push(f),
                            None => tracing::debug!(folder = %sub, "not a feature folder, skipped"),
                        },
                    },
                }
            }
            for (present, folder) in has.iter().zip(["timestamp", "symbols"]) {
                if !present {
                    return Err(invalid(&dir, format!("has no {folder} folder")));
                }
            }
            features.sort();
            metrics.sort();
            let mut days = Vec::new();
            for file in list(&dir.join("timestamp"), false)? {
                let Some((date, start)) = file
                    .strip_suffix(".npy")
                    .and_then(|d| Some((d, day_start(d)?)))
                else {
                    tracing::debug!(file = %file, "not a day file, skipped");
                    continue;
                };
                days.push(Day {
                    date: date.to_owned(),
                    start,
                    kt: None,
                });
            }
            freqs.push(FreqDir {
                freq,
                features,
                metrics,
                days,
            });
        }
        if freqs.is_empty() {
            return Err(invalid(
                &root,
                format!("no {MANIFEST_NAME} and no interval folder: not a numpy export"),
            ));
        }
        Ok(NumpyExport {
            root,
            manifest: None,
            freqs,
        })
    }

    /// The export folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest; `None` for a folder without one (an export that did not finish).
    pub fn manifest(&self) -> Option<&ExportManifest> {
        self.manifest.as_ref()
    }

    /// The intervals present (every interval the manifest describes).
    pub fn freqs(&self) -> Vec<Freq> {
        self.freqs.iter().map(|d| d.freq).collect()
    }

    fn freq_dir(&self, freq: Freq) -> Result<&FreqDir> {
        self.freqs
            .iter()
            .find(|d| d.freq == freq)
            .ok_or_else(|| self.missing("freq", freq.as_str()))
    }

    fn missing(&self, what: &'static str, name: &str) -> Error {
        Error::NotInExport {
            root: self.root.clone(),
            what,
            name: name.to_owned(),
        }
    }

    /// The exported days of `freq` (`YYYYMMDD`), ascending.
    pub fn days(&self, freq: Freq) -> Result<Vec<&str>> {
        Ok(self
            .freq_dir(freq)?
            .days
            .iter()
            .map(|d| d.date.as_str())
            .collect())
    }

    /// The features of `freq`: in file order with a manifest, else in catalogue order.
    pub fn features(&self, freq: Freq) -> Result<&[Feature]> {
        Ok(&self.freq_dir(freq)?.features)
    }

    /// The metric features of `freq` that have a `{metric}_ts` folder.
    pub fn metrics(&self, freq: Freq) -> Result<&[Feature]> {
        Ok(&self.freq_dir(freq)?.metrics)
    }

    fn day(&self, freq: Freq, day: &str) -> Result<&Day> {
        self.freq_dir(freq)?
            .days
            .iter()
            .find(|d| d.date == day)
            .ok_or_else(|| self.missing("day", day))
    }

    fn file(&self, freq: Freq, folder: &str, day: &str, ext: &str) -> PathBuf {
        self.root
            .join(freq.as_str())
            .join(folder)
            .join(format!("{day}.{ext}"))
    }

    /// The K symbols of a day, in row order (checked: sorted, unique, the same in the
    /// `.json` and `.npy` lists, and K as the manifest says).
    pub fn symbols(&self, freq: Freq, day: &str) -> Result<Vec<String>> {
        let d = self.day(freq, day)?;
        let json = self.file(freq, "symbols", day, "json");
        let bytes = fs::read(&json).map_err(|e| read_err(&json, e))?;
        let symbols: Vec<String> =
            serde_json::from_slice(&bytes).map_err(|source| Error::JsonRead {
                path: json.clone(),
                source,
            })?;
        if symbols.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(&json, "symbols are not sorted and unique"));
        }
        if let Some((k, _)) = d.kt
            && k != symbols.len()
        {
            return Err(invalid(
                &json,
                format!("{} symbols, {MANIFEST_NAME} says k = {k}", symbols.len()),
            ));
        }
        let npy = self.file(freq, "symbols", day, "npy");
        let a = read_npy(&npy)?;
        let description = kind(&a);
        match a.data {
            NpyData::Str(list) if a.shape.len() == 1 => {
                if list != symbols {
                    return Err(invalid(&npy, format!("symbols differ from {day}.json")));
                }
            }
            _ => {
                return Err(invalid(
                    &npy,
                    format!("expected a '<U' (K,) symbol list, found {description}"),
                ));
            }
        }
        Ok(symbols)
    }

    /// The T open times (ms UTC) of a day's columns (checked: the day's full grid).
    pub fn timestamps(&self, freq: Freq, day: &str) -> Result<Vec<i64>> {
        let d = self.day(freq, day)?;
        let path = self.file(freq, "timestamp", day, "npy");
        let a = read_npy(&path)?;
        let description = kind(&a);
        let times = match a.data {
            NpyData::I64(v) if a.shape.len() == 1 => v,
            _ => {
                return Err(invalid(
                    &path,
                    format!("expected an '<i8' (T,) array, found {description}"),
                ));
            }
        };
        if times != day_grid(freq, d.start) {
            return Err(invalid(
                &path,
                format!("the open times are not the {} grid of {day}", freq.as_str()),
            ));
        }
        if let Some((_, t)) = d.kt
            && t != times.len()
        {
            return Err(invalid(
                &path,
                format!("{} open times, {MANIFEST_NAME} says t = {t}", times.len()),
            ));
        }
        Ok(times)
    }

    fn read_matrix(&self, freq: Freq, folder: &str, day: &str, float: bool) -> Result<Matrix> {
        let rows = self.symbols(freq, day)?.len();
        let cols = self.timestamps(freq, day)?.len();
        let path = self.file(freq, folder, day, "npy");
        let a = read_npy(&path)?;
        let description = kind(&a);
        let data = match a.data {
            NpyData::F64(v) if float && a.shape == [rows, cols] => MatrixData::F64(v),
            NpyData::I64(v) if !float && a.shape == [rows, cols] => MatrixData::I64(v),
            _ => {
                return Err(invalid(
                    &path,
                    format!(
                        "expected {} {} (symbols x timestamps of {day}), found {description}",
                        if float { "'<f8'" } else { "'<i8'" },
                        shape_text(&[rows, cols])
                    ),
                ));
            }
        };
        Ok(Matrix { rows, cols, data })
    }

    /// A feature's `(K, T)` float64 matrix of a day (NaN = no value).
    pub fn matrix(&self, freq: Freq, feature: Feature, day: &str) -> Result<Matrix> {
        if !self.freq_dir(freq)?.features.contains(&feature) {
            return Err(self.missing("feature", feature.short()));
        }
        self.read_matrix(freq, feature.short(), day, true)
    }

    /// A metric's `(K, T)` int64 matrix of matched value times (0 = no value).
    pub fn metric_times(&self, freq: Freq, metric: Feature, day: &str) -> Result<Matrix> {
        if !self.freq_dir(freq)?.metrics.contains(&metric) {
            return Err(self.missing("metric", &ts_name(metric)));
        }
        self.read_matrix(freq, &ts_name(metric), day, false)
    }

    /// Checks the SHA-256 of every file the manifest lists; returns how many were checked.
    pub fn verify_checksums(&self) -> Result<usize> {
        let m = self
            .manifest
            .as_ref()
            .ok_or_else(|| self.missing("file", MANIFEST_NAME))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut all: Vec<&FileRecord> = m.files.iter().collect();
        for (name, section) in &m.freqs {
            if *name != m.freq {
                all.extend(&section.files);
            }
        }
        for f in &all {
            let path = self.root.join(&f.path);
            let mut file = File::open(&path).map_err(|e| read_err(&path, e))?;
            let mut hasher = Sha256::new();
            loop {
                let n = file.read(&mut buf).map_err(|e| read_err(&path, e))?;
                let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                    break;
                };
                hasher.update(chunk);
            }
            let got = crate::atomic::hex(&hasher.finalize());
            if got != f.sha256 {
                return Err(invalid(
                    &path,
                    format!("sha-256 {got} differs from {MANIFEST_NAME} ({})", f.sha256),
                ));
            }
        }
        Ok(all.len())
    }
}

/// The `.npy` folders of every day of `dir`: features, metric timestamps, timestamp,
/// symbols.
fn folders(dir: &FreqDir) -> Vec<String> {
    let mut out: Vec<String> = dir.features.iter().map(|f| f.short().to_owned()).collect();
    out.extend(dir.metrics.iter().map(|m| ts_name(*m)));
    out.push("timestamp".to_owned());
    out.push("symbols".to_owned());
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use marketdb_model::time::parse_ymd;

    use super::*;
    use crate::{
        manifest::write_manifest,
        npy,
        numpy::NumpyWriter,
        table::{
            Table,
            tests::{frame, plan},
        },
    };

    const H: i64 = 3_600_000;

    fn d() -> i64 {
        parse_ymd(2024, 1, 1).unwrap()
    }

    /// Writes one hourly day: AAA at 00:00 (close 11, vol 1, amt 11, 3 trades) and 01:00
    /// (close 12, vol 2, amt 23, 4 trades), BBB at 23:00 (close 12, no volume); `oi` matched
    /// at 00:00 (time d + 1) and 23:00 only. With `manifest`, the manifest too.
    fn write_export(root: &Path, manifest: bool) {
        let rows = [
            ("AAA", d(), 10.0, 11.0, 1.0, 11.0, 3),
            ("AAA", d() + H, 10.0, 12.0, 2.0, 23.0, 4),
            ("BBB", d() + 23 * H, 10.0, 12.0, 0.0, 0.0, 0),
        ];
        let p = plan(vec![
            Feature::Close,
            Feature::Vwap,
            Feature::TradesCount,
            Feature::OpenInterest,
        ]);
        let mut t = Table::from_frame(&p, frame(&rows));
        t.metric_ts[0] = vec![d() + 1, 0, d() + 23 * H];
        let mut w = NumpyWriter::new(&marketdb_output::OutputGate::new(), root, &p, false).unwrap();
        w.write_day(d(), &t).unwrap();
        w.commit_pending().unwrap();
        if manifest {
            write_manifest(
                &marketdb_output::OutputGate::new(),
                root,
                &p,
                None,
                crate::manifest::Written {
                    days: &w.days,
                    files: &w.files,
                    earlier: Default::default(),
                },
                false,
            )
            .unwrap();
        }
    }

    fn check_values(ex: &NumpyExport) {
        assert_eq!(ex.freqs(), vec![Freq::H1]);
        assert_eq!(ex.days(Freq::H1).unwrap(), vec!["20240101"]);
        assert_eq!(ex.metrics(Freq::H1).unwrap(), &[Feature::OpenInterest]);
        assert_eq!(ex.symbols(Freq::H1, "20240101").unwrap(), ["AAA", "BBB"]);
        let hours: Vec<i64> = (0..24).map(|h| d() + h * H).collect();
        assert_eq!(ex.timestamps(Freq::H1, "20240101").unwrap(), hours);

        let cls = ex.matrix(Freq::H1, Feature::Close, "20240101").unwrap();
        assert_eq!((cls.rows(), cls.cols()), (2, 24));
        let aaa = cls.row_f64(0).unwrap();
        assert_eq!(&aaa[..2], &[11.0, 12.0]);
        assert!(aaa[2..].iter().all(|v| v.is_nan()));
        let bbb = cls.row_f64(1).unwrap();
        assert!(bbb[..23].iter().all(|v| v.is_nan()));
        assert_eq!(cls.get(1, 23), Some(Cell::F64(12.0)));
        let vwap = ex.matrix(Freq::H1, Feature::Vwap, "20240101").unwrap();
        assert_eq!(vwap.get_f64(0, 0), Some(11.0));
        assert_eq!(vwap.get_f64(0, 1), Some(11.5));
        assert!(vwap.get_f64(1, 23).unwrap().is_nan(), "no volume");
        let tnum = ex
            .matrix(Freq::H1, Feature::TradesCount, "20240101")
            .unwrap();
        assert_eq!(
            (tnum.get_f64(0, 0), tnum.get_f64(0, 1)),
            (Some(3.0), Some(4.0))
        );
        let oi_ts = ex
            .metric_times(Freq::H1, Feature::OpenInterest, "20240101")
            .unwrap();
        assert_eq!(oi_ts.get_i64(0, 0), Some(d() + 1));
        assert_eq!(oi_ts.get_i64(1, 23), Some(d() + 23 * H));
        let MatrixData::I64(all) = oi_ts.data() else {
            panic!("int64 expected")
        };
        assert_eq!(all.iter().filter(|v| **v != 0).count(), 2);
    }

    #[test]
    fn reads_an_export_with_and_without_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        write_export(dir.path(), false);
        let listed = NumpyExport::open(dir.path()).unwrap();
        assert!(listed.manifest().is_none());
        // Without a manifest, features come in catalogue order.
        assert_eq!(
            listed.features(Freq::H1).unwrap(),
            &[
                Feature::Close,
                Feature::TradesCount,
                Feature::Vwap,
                Feature::OpenInterest
            ]
        );
        check_values(&listed);
        assert!(
            listed.verify_checksums().is_err(),
            "nothing to verify against"
        );

        write_export(dir.path(), true);
        let ex = NumpyExport::open(dir.path()).unwrap();
        let m = ex.manifest().unwrap();
        assert_eq!((m.status.as_str(), m.freq.as_str()), ("ok", "1h"));
        assert_eq!(m.days[0].k, 2);
        // With one, in the manifest's (the request's) order.
        assert_eq!(
            ex.features(Freq::H1).unwrap(),
            &[
                Feature::Close,
                Feature::Vwap,
                Feature::TradesCount,
                Feature::OpenInterest
            ]
        );
        check_values(&ex);
        assert_eq!(ex.verify_checksums().unwrap(), 4 + 1 + 1 + 2);
    }

    #[test]
    fn lookups_outside_the_export_name_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        write_export(dir.path(), true);
        let ex = NumpyExport::open(dir.path()).unwrap();
        let cases = [
            ex.days(Freq::M1).map(|_| ()),
            ex.symbols(Freq::H1, "20240102").map(|_| ()),
            ex.matrix(Freq::H1, Feature::Open, "20240101").map(|_| ()),
            ex.metric_times(Freq::H1, Feature::FundingRate, "20240101")
                .map(|_| ()),
            ex.metric_times(Freq::H1, Feature::Close, "20240101")
                .map(|_| ()),
        ];
        let names = [
            "freq \"1m\"",
            "day \"20240102\"",
            "feature \"opn\"",
            "\"fr_ts\"",
            "\"cls_ts\"",
        ];
        for (res, name) in cases.into_iter().zip(names) {
            let e = res.unwrap_err();
            assert!(matches!(e, Error::NotInExport { .. }), "{e:?}");
            assert!(e.to_string().contains(name), "{e}");
        }
        let m = ex.matrix(Freq::H1, Feature::Close, "20240101").unwrap();
        assert_eq!(
            (m.get(2, 0), m.get(0, 24), m.row_f64(2)),
            (None, None, None)
        );
        assert_eq!(
            (m.get_i64(0, 0), m.row_i64(0)),
            (None, None),
            "a float matrix"
        );

        let file = dir.path().join(MANIFEST_NAME);
        let e = NumpyExport::open(&file).unwrap_err().to_string();
        assert!(
            e.contains("not a folder") && e.contains(MANIFEST_NAME),
            "{e}"
        );
        let empty = tempfile::tempdir().unwrap();
        let e = NumpyExport::open(empty.path()).unwrap_err().to_string();
        assert!(e.contains("not a numpy export"), "{e}");
        let e = NumpyExport::open(empty.path().join("nope")).unwrap_err();
        assert!(matches!(e, Error::Read { .. }), "{e:?}");
    }

    /// Rewrites the manifest through `edit` and returns the error of opening the export.
    fn open_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let dir = tempfile::tempdir().unwrap();
        write_export(dir.path(), true);
        let path = dir.path().join(MANIFEST_NAME);
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        edit(&mut v);
        fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        NumpyExport::open(dir.path()).unwrap_err().to_string()
    }

    type Edit = fn(&mut serde_json::Value);

    #[test]
    fn manifests_that_disagree_with_the_files_are_refused() {
        let cases: [(&str, Edit); 10] = [
            ("contract version \"2.0\"", |v| {
                v["contract_version"] = "2.0".into()
            }),
            ("unknown freq \"1H\"", |v| v["freq"] = "1H".into()),
            ("unknown feature \"close_price\"", |v| {
                v["features"][0] = "close_price".into()
            }),
            ("status \"no_data\" with 1 day", |v| {
                v["status"] = "no_data".into()
            }),
            ("\"19700101\" (start 1704067200000) is not a UTC day", |v| {
                v["days"][0]["date"] = "19700101".into()
            }),
            ("timestamps \"oi_x\"", |v| {
                v["metrics"][0]["timestamps"] = "oi_x".into()
            }),
            (
                "\"../../etc/passwd\", which is not part of the layout",
                |v| v["files"][0]["path"] = "../../etc/passwd".into(),
            ),
            ("does not list \"1h/cls/20240101.npy\"", |v| {
                v["files"].as_array_mut().unwrap().remove(0);
            }),
            ("says 7", |v| v["files"][0]["bytes"] = 7.into()),
            ("cannot decode json", |v| v["days"] = "x".into()),
        ];
        for (want, edit) in cases {
            let e = open_with(edit);
            assert!(e.contains(want), "want {want:?} in: {e}");
        }
        let e = open_with(|v| {
            let f = v["files"][0].clone();
            v["files"].as_array_mut().unwrap().push(f);
        });
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn damaged_day_files_are_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        write_export(dir.path(), false);
        let ex = NumpyExport::open(dir.path()).unwrap();
        let day = dir.path().join("1h");
        let put = |rel: &str, bytes: &[u8]| fs::write(day.join(rel), bytes).unwrap();
        let err = |res: Result<Matrix>| res.unwrap_err().to_string();
        let cls = || ex.matrix(Freq::H1, Feature::Close, "20240101");

        // Wrong dtype, wrong shape (three rows for two symbols), wrong rank.
        put("cls/20240101.npy", &npy::encode_i64(&[2, 24], &[0; 48]));
        let e = err(cls());
        assert!(
            e.contains("cls/20240101.npy")
                && e.contains("expected '<f8' (2, 24)")
                && e.contains("found '<i8' (2, 24)"),
            "{e}"
        );
        put("cls/20240101.npy", &npy::encode_f64(&[3, 24], &[0.0; 72]));
        let e = err(cls());
        assert!(e.contains("found '<f8' (3, 24)"), "{e}");
        put("oi_ts/20240101.npy", &npy::encode_i64(&[3, 24], &[0; 72]));
        let e = err(ex.metric_times(Freq::H1, Feature::OpenInterest, "20240101"));
        assert!(
            e.contains("oi_ts/20240101.npy") && e.contains("found '<i8' (3, 24)"),
            "{e}"
        );
        put("oi_ts/20240101.npy", &npy::encode_i64(&[48], &[0; 48]));
        let e = err(ex.metric_times(Freq::H1, Feature::OpenInterest, "20240101"));
        assert!(e.contains("found '<i8' (48,)"), "{e}");
        put("vwap/20240101.npy", b"\x93NUMPY\x01\x00");
        let e = err(ex.matrix(Freq::H1, Feature::Vwap, "20240101"));
        assert!(
            e.contains("vwap/20240101.npy") && e.contains("too short"),
            "{e}"
        );

        // The timestamps must be the day's grid, the symbols the same in both lists.
        let mut hours: Vec<i64> = (0..24).map(|h| d() + h * H).collect();
        hours[5] += 1;
        put("timestamp/20240101.npy", &npy::encode_i64(&[24], &hours));
        let e = ex.timestamps(Freq::H1, "20240101").unwrap_err().to_string();
        assert!(
            e.contains("timestamp/20240101.npy") && e.contains("not the 1h grid"),
            "{e}"
        );
        let e = err(ex.matrix(Freq::H1, Feature::TradesCount, "20240101"));
        assert!(
            e.contains("not the 1h grid"),
            "a matrix read checks its day: {e}"
        );
        put(
            "symbols/20240101.npy",
            &npy::encode_str(&["AAA".into(), "CCC".into()]),
        );
        let e = ex.symbols(Freq::H1, "20240101").unwrap_err().to_string();
        assert!(
            e.contains("symbols/20240101.npy") && e.contains("differ"),
            "{e}"
        );
        put("symbols/20240101.json", b"[\"BBB\",\"AAA\"]");
        let e = ex.symbols(Freq::H1, "20240101").unwrap_err().to_string();
        assert!(
            e.contains("symbols/20240101.json") && e.contains("not sorted"),
            "{e}"
        );
        put("symbols/20240101.json", b"{");
        let e = ex.symbols(Freq::H1, "20240101").unwrap_err();
        assert!(matches!(e, Error::JsonRead { .. }), "{e:?}");
    }
}
