//! `manifest.json` of a NumPy export, contract version [`CONTRACT_VERSION`]: the request,
//! the output interval, features, fill policy, the time convention in words, the alignment
//! rule and tolerance of each metric, the per-day K and T, and the SHA-256 of every file
//! written (paths relative to the export root). It is written last, atomically, so its
//! presence means every file it lists is complete. It describes; it reads nothing.

use std::path::Path;

use marketdb_model::time::format_rfc3339;
use marketdb_model::{Feature, FeatureKind};
use serde::Serialize;

use crate::{
    Error, Result,
    atomic::{FileRecord, write_atomic},
    numpy::{DayReport, ts_name},
    plan::Plan,
};

/// Version of the export contract described in `docs/formats.md`.
pub const CONTRACT_VERSION: &str = "1.0";

/// The manifest's file name in the export root.
pub const MANIFEST_NAME: &str = "manifest.json";

/// How times are labelled, in words (repeated in every manifest).
pub const TIME_CONVENTION: &str = "times are integer milliseconds since the Unix epoch, UTC; \
a bar is labelled by its open time and covers [open, next_open); close_time = next_open - 1 ms; \
files are split by the UTC day of the bar open time; timestamp/{day}.npy holds the open time of \
every column; a metric value in column t is the latest value of the same symbol whose time is \
<= the bar's close_time and > close_time - tolerance, and {metric}_ts holds that time (0 = none)";

#[derive(Debug, Serialize)]
struct RequestView<'a> {
    symbols: &'a [String],
    start: String,
    end_exclusive: String,
    start_ms: i64,
    end_exclusive_ms: i64,
    freq: &'a str,
    target_freq: Option<&'a str>,
    features: Vec<&'static str>,
    fill: &'a str,
    metric_period: &'a str,
}

#[derive(Debug, Serialize)]
struct MetricView {
    feature: &'static str,
    timestamps: String,
    source: &'static str,
    tolerance_ms: i64,
}

#[derive(Debug, Serialize)]
struct Manifest<'a> {
    contract_version: &'static str,
    tool: &'static str,
    tool_version: &'static str,
    status: &'static str,
    request: RequestView<'a>,
    freq: &'a str,
    source_freq: &'a str,
    features: Vec<&'static str>,
    metrics: Vec<MetricView>,
    fill: &'a str,
    time_convention: &'static str,
    layout: Layout,
    days: &'a [DayReport],
    files: &'a [FileRecord],
}

#[derive(Debug, Serialize)]
struct Layout {
    feature: &'static str,
    metric_timestamps: &'static str,
    timestamp: &'static str,
    symbols_json: &'static str,
    symbols_npy: &'static str,
}

/// Writes `root/manifest.json` atomically; returns its record.
pub(crate) fn write_manifest(
    root: &Path,
    plan: &Plan,
    target_freq: Option<&str>,
    days: &[DayReport],
    files: &[FileRecord],
    fsync: bool,
) -> Result<FileRecord> {
    let short = |fs: &[Feature]| fs.iter().map(|f| f.short()).collect::<Vec<_>>();
    let metrics = plan
        .metrics
        .iter()
        .filter_map(|m| match m.kind() {
            FeatureKind::Metric(fam) => Some(MetricView {
                feature: m.short(),
                timestamps: ts_name(*m),
                source: m.long(),
                tolerance_ms: fam.tolerance_ms(),
            }),
            _ => None,
        })
        .collect();
    let manifest = Manifest {
        contract_version: CONTRACT_VERSION,
        tool: env!("CARGO_PKG_NAME"),
        tool_version: env!("CARGO_PKG_VERSION"),
        status: if days.is_empty() { "no_data" } else { "ok" },
        request: RequestView {
            symbols: &plan.symbols,
            start: format_rfc3339(plan.range.start),
            end_exclusive: format_rfc3339(plan.range.end_exclusive),
            start_ms: plan.range.start,
            end_exclusive_ms: plan.range.end_exclusive,
            freq: plan.source_freq.as_str(),
            target_freq,
            features: short(&plan.features),
            fill: plan.fill.as_str(),
            metric_period: plan.metric_period.as_str(),
        },
        freq: plan.out_freq.as_str(),
        source_freq: plan.source_freq.as_str(),
        features: short(&plan.features),
        metrics,
        fill: plan.fill.as_str(),
        time_convention: TIME_CONVENTION,
        layout: Layout {
            feature: "{freq}/{feature}/{YYYYMMDD}.npy float64 (K, T), NaN = no bar",
            metric_timestamps: "{freq}/{metric}_ts/{YYYYMMDD}.npy int64 (K, T), 0 = no value",
            timestamp: "{freq}/timestamp/{YYYYMMDD}.npy int64 (T,) open times",
            symbols_json: "{freq}/symbols/{YYYYMMDD}.json JSON array of the K symbols",
            symbols_npy: "{freq}/symbols/{YYYYMMDD}.npy <U{n} (K,)",
        },
        days,
        files,
    };
    let path = root.join(MANIFEST_NAME);
    let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Json {
        path: path.clone(),
        source: e,
    })?;
    bytes.push(b'\n');
    write_atomic(root, MANIFEST_NAME, &bytes, fsync)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tests::plan;

    #[test]
    fn manifest_says_no_data_and_lists_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(vec![Feature::Close, Feature::FundingRate]);
        write_manifest(dir.path(), &p, None, &[], &[], false).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(MANIFEST_NAME)).unwrap())
                .unwrap();
        assert_eq!(v["status"], "no_data");
        assert_eq!(v["contract_version"], "1.0");
        assert_eq!(v["days"], serde_json::json!([]));
        assert_eq!(v["features"], serde_json::json!(["cls", "fr"]));
        assert_eq!(v["metrics"][0]["timestamps"], "fr_ts");
        assert_eq!(v["metrics"][0]["tolerance_ms"], 172_800_000);
        assert_eq!(v["request"]["start"], "1970-01-01T00:00:00Z");
        assert_eq!(v["fill"], "none");

        let day = DayReport {
            date: "20240101".into(),
            start: 0,
            k: 1,
            t: 24,
            bars: 3,
        };
        let file = FileRecord {
            path: "1h/cls/20240101.npy".into(),
            sha256: "ab".into(),
            bytes: 9,
        };
        write_manifest(dir.path(), &p, Some("1h"), &[day], &[file], false).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(MANIFEST_NAME)).unwrap())
                .unwrap();
        assert_eq!(v["status"], "ok");
        assert_eq!(v["days"][0]["k"], 1);
        assert_eq!(v["files"][0]["path"], "1h/cls/20240101.npy");
        assert_eq!(v["request"]["target_freq"], "1h");
    }
}
