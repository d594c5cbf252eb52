//! The public knobs of an export: [`ExportRequest`] (symbols, range, freq, target freq,
//! features, fill policy, Parquet compression, CSV part size, metric sampling period),
//! [`FillPolicy`], [`ParquetCompression`] and the [`ExportProgress`] observer. Plain data
//! with parsers and defaults; resolving a request against the feature catalogue happens in
//! `plan.rs`, not here.

use std::{fmt, str::FromStr};

use marketdb_model::{Feature, Freq, TimeRange};
use serde::Serialize;

use crate::{Error, Result};

/// What to export. Build it with [`ExportRequest::new`] and adjust the public fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportRequest {
    /// Symbols to export (upper-cased, validated, deduplicated and sorted by the exporter).
    /// Empty means every symbol stored at `freq`.
    pub symbols: Vec<String>,
    /// Bars whose open time lies in this half-open UTC range are exported.
    pub range: TimeRange,
    /// The stored interval to read.
    pub freq: Freq,
    /// Resample to this coarser interval before exporting (`None`: export `freq`).
    pub target_freq: Option<Freq>,
    /// Features in output order; empty means [`Feature::DEFAULT_EXPORT`].
    pub features: Vec<Feature>,
    /// What to do with holes in NumPy matrices.
    pub fill: FillPolicy,
    /// Parquet compression codec.
    pub compression: ParquetCompression,
    /// Split the CSV into `{stem}_part_{n}.csv` files of at most this many rows.
    pub csv_part_rows: Option<usize>,
    /// Gzip the CSV output (every part when split). Off by default; the CLI turns it on
    /// for `--compression gzip` and for a `.gz` output name.
    pub csv_gzip: bool,
    /// Sampling period of the open interest and long/short ratio series to align
    /// (`5m`, the Binance Vision metrics period, by default).
    pub metric_period: Freq,
}

impl ExportRequest {
    /// A request with the defaults: default features, no fill, zstd, one CSV file, 5m
    /// metric period, no resampling.
    pub fn new(symbols: Vec<String>, range: TimeRange, freq: Freq) -> ExportRequest {
        ExportRequest {
            symbols,
            range,
            freq,
            target_freq: None,
            features: Vec::new(),
            fill: FillPolicy::None,
            compression: ParquetCompression::Zstd,
            csv_part_rows: None,
            csv_gzip: false,
            metric_period: Freq::M5,
        }
    }
}

/// How holes (missing bars, unmatched metrics) are treated in NumPy matrices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FillPolicy {
    /// NaN stays NaN.
    #[default]
    None,
    /// Forward fill along time within a day: never across days, never before the first
    /// value of the row. `{metric}_ts` files are never filled.
    Ffill,
}

impl FillPolicy {
    /// The name used on the command line and in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            FillPolicy::None => "none",
            FillPolicy::Ffill => "ffill",
        }
    }
}

impl fmt::Display for FillPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FillPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(FillPolicy::None),
            "ffill" | "forward" | "pad" => Ok(FillPolicy::Ffill),
            _ => Err(Error::InvalidOption {
                what: "fill policy",
                input: s.to_owned(),
                accepted: "none ffill",
            }),
        }
    }
}

/// Parquet compression codec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    /// Zstandard level 1 (the default).
    #[default]
    Zstd,
    Snappy,
    /// Gzip at the default level (6).
    Gzip,
    /// LZ4 in Parquet's `LZ4_RAW` framing (the non-deprecated LZ4 codec).
    Lz4,
    /// Uncompressed.
    None,
}

impl ParquetCompression {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ParquetCompression::Zstd => "zstd",
            ParquetCompression::Snappy => "snappy",
            ParquetCompression::Gzip => "gzip",
            ParquetCompression::Lz4 => "lz4",
            ParquetCompression::None => "none",
        }
    }
}

impl fmt::Display for ParquetCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ParquetCompression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zstd" => Ok(ParquetCompression::Zstd),
            "snappy" => Ok(ParquetCompression::Snappy),
            "gzip" => Ok(ParquetCompression::Gzip),
            "lz4" | "lz4_raw" => Ok(ParquetCompression::Lz4),
            "none" | "uncompressed" => Ok(ParquetCompression::None),
            _ => Err(Error::InvalidOption {
                what: "parquet compression",
                input: s.to_owned(),
                accepted: "zstd snappy gzip lz4 none",
            }),
        }
    }
}

/// Observer of export progress. Every method has a no-op default. `total_days` counts the
/// UTC days the export walks (for CSV, Parquet and statistics, which go symbol by symbol,
/// it is days x symbols); `done` grows to `total_days`.
pub trait ExportProgress: Send + Sync {
    /// Called once before the first day is read.
    fn on_start(&self, total_days: u64) {
        let _ = total_days;
    }
    /// Called after each day's output is written, with the number of days done so far.
    fn on_day(&self, done: u64) {
        let _ = done;
    }
}

/// The default observer: ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl ExportProgress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_options() {
        assert_eq!("ffill".parse::<FillPolicy>().unwrap(), FillPolicy::Ffill);
        assert_eq!(" None ".parse::<FillPolicy>().unwrap(), FillPolicy::None);
        let e = "bfill".parse::<FillPolicy>().unwrap_err().to_string();
        assert!(e.contains("\"bfill\"") && e.contains("ffill"), "{e}");
        for c in [
            ParquetCompression::Zstd,
            ParquetCompression::Snappy,
            ParquetCompression::Gzip,
            ParquetCompression::Lz4,
            ParquetCompression::None,
        ] {
            assert_eq!(c.to_string().parse::<ParquetCompression>().unwrap(), c);
        }
        assert_eq!(
            "LZ4_RAW".parse::<ParquetCompression>().unwrap(),
            ParquetCompression::Lz4
        );
        let e = "brotli"
            .parse::<ParquetCompression>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"brotli\"") && e.contains("zstd"), "{e}");
    }

    #[test]
    fn request_defaults() {
        let r = ExportRequest::new(
            vec!["BTCUSDT".into()],
            TimeRange::new(0, 1).unwrap(),
            Freq::H1,
        );
        assert_eq!(r.fill, FillPolicy::None);
        assert_eq!(r.compression, ParquetCompression::Zstd);
        assert_eq!(r.metric_period, Freq::M5);
        assert!(r.features.is_empty() && r.target_freq.is_none() && r.csv_part_rows.is_none());
        NoProgress.on_start(3);
        NoProgress.on_day(1);
    }
}
