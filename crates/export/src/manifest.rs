//! `manifest.json` of a NumPy export, contract version [`CONTRACT_VERSION`]: the request,
//! the output interval, features, fill policy, the time convention in words, the alignment
//! rule and tolerance of each metric, the per-day K and T, and the SHA-256 of every file
//! written (paths relative to the export root). It is written last, atomically, so its
//! presence means every file it lists is complete.
//!
//! One folder may hold exports of several intervals (`1m/`, `1h/`...): an export replaces
//! only its own interval folder, and the manifest's `freqs` describes every interval folder
//! present, each as the export that wrote it ([`earlier_sections`] reads them back from the
//! manifest being replaced). The top-level keys describe the latest export, as in 1.0.

use std::collections::BTreeMap;
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
pub const CONTRACT_VERSION: &str = "1.1";

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
    /// Every interval folder present, by name, each described as the export that wrote it.
    freqs: BTreeMap<String, serde_json::Value>,
}

/// One interval's description in `freqs`: the keys of a 1.0 manifest that are about the
/// files of one interval.
#[derive(Debug, Serialize)]
struct Section<'a> {
    request: &'a RequestView<'a>,
    freq: &'a str,
    source_freq: &'a str,
    features: &'a [&'static str],
    metrics: &'a [MetricView],
    fill: &'a str,
    status: &'static str,
    days: &'a [DayReport],
    files: &'a [FileRecord],
}

/// The keys of a section, copied from a 1.0 manifest's top level.
const SECTION_KEYS: [&str; 9] = [
    "request",
    "freq",
    "source_freq",
    "features",
    "metrics",
    "fill",
    "status",
    "days",
    "files",
];

/// The sections of the manifest at `root` for intervals other than `freq` whose folder is
/// still there: what a new export of `freq` keeps describing. A missing or unreadable
/// manifest gives none (its folders are then not described, as a folder without a manifest
/// never was).
pub(crate) fn earlier_sections(root: &Path, freq: &str) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    let Ok(Some(bytes)) = marketdb_output::read_regular(&root.join(MANIFEST_NAME), 1 << 30) else {
        return out;
    };
    let Ok(serde_json::Value::Object(old)) = serde_json::from_slice::<serde_json::Value>(&bytes)
    else {
        return out;
    };
    if let Some(serde_json::Value::Object(freqs)) = old.get("freqs") {
        for (k, v) in freqs {
            out.insert(k.clone(), v.clone());
        }
    } else if let Some(serde_json::Value::String(f)) = old.get("freq") {
        // A 1.0 manifest: its top level is its only section.
        let section: serde_json::Map<String, serde_json::Value> = SECTION_KEYS
            .iter()
            .filter_map(|k| old.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        out.insert(f.clone(), serde_json::Value::Object(section));
    }
    out.retain(|k, _| {
        k != freq && k.parse::<marketdb_model::Freq>().is_ok() && root.join(k).is_dir()
    });
    out
}

#[derive(Debug, Serialize)]
struct Layout {
    feature: &'static str,
    metric_timestamps: &'static str,
    timestamp: &'static str,
    symbols_json: &'static str,
    symbols_npy: &'static str,
}

/// What a manifest describes: the days and files of this export, and the sections of the
/// other intervals present ([`earlier_sections`]).
#[derive(Debug)]
pub(crate) struct Written<'a> {
    pub days: &'a [DayReport],
    pub files: &'a [FileRecord],
    pub earlier: BTreeMap<String, serde_json::Value>,
}

/// Writes `root/manifest.json` atomically; returns its record.
pub(crate) fn write_manifest(
    gate: &marketdb_output::OutputGate,
    root: &Path,
    plan: &Plan,
    target_freq: Option<&str>,
    written: Written<'_>,
    fsync: bool,
) -> Result<FileRecord> {
    let Written {
        days,
        files,
        earlier,
    } = written;
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
        .collect::<Vec<_>>();
    let status = if days.is_empty() { "no_data" } else { "ok" };
    let request = RequestView {
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
    };
    let features = short(&plan.features);
    let path = root.join(MANIFEST_NAME);
    let json_err = |e| Error::Json {
        path: path.clone(),
        source: e,
    };
    let mut freqs = earlier;
    let section = Section {
        request: &request,
        freq: plan.out_freq.as_str(),
        source_freq: plan.source_freq.as_str(),
        features: &features,
        metrics: &metrics,
        fill: plan.fill.as_str(),
        status,
        days,
        files,
    };
    freqs.insert(
        plan.out_freq.as_str().to_owned(),
        serde_json::to_value(&section).map_err(json_err)?,
    );
    let manifest = Manifest {
        contract_version: CONTRACT_VERSION,
        tool: env!("CARGO_PKG_NAME"),
        tool_version: env!("CARGO_PKG_VERSION"),
        status,
        request,
        freq: plan.out_freq.as_str(),
        source_freq: plan.source_freq.as_str(),
        features,
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
        freqs,
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(json_err)?;
    bytes.push(b'\n');
    write_atomic(gate, root, MANIFEST_NAME, &bytes, fsync)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use crate::table::tests::plan;

    #[test]
    fn manifest_says_no_data_and_lists_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(vec![Feature::Close, Feature::FundingRate]);
        write_manifest(
            &marketdb_output::OutputGate::new(),
            dir.path(),
            &p,
            None,
            Written {
                days: &[],
                files: &[],
                earlier: BTreeMap::new(),
            },
            false,
        )
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(MANIFEST_NAME)).unwrap())
                .unwrap();
        assert_eq!(v["status"], "no_data");
        assert_eq!(v["contract_version"], "1.1");
        assert_eq!(v["freqs"]["1h"]["status"], "no_data");
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
        write_manifest(
            &marketdb_output::OutputGate::new(),
            dir.path(),
            &p,
            Some("1h"),
            Written {
                days: &[day],
                files: &[file],
                earlier: BTreeMap::new(),
            },
            false,
        )
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(MANIFEST_NAME)).unwrap())
                .unwrap();
        assert_eq!(v["status"], "ok");
        assert_eq!(v["days"][0]["k"], 1);
        assert_eq!(v["files"][0]["path"], "1h/cls/20240101.npy");
        assert_eq!(v["request"]["target_freq"], "1h");
    }

    #[test]
    fn other_intervals_are_kept_from_the_manifest_being_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let p = plan(vec![Feature::Close]);
        let this = p.out_freq.as_str();
        // A 1.0 manifest of another interval whose folder is there: its top level is kept
        // as that interval's section.
        let other = if this == "1h" { "1d" } else { "1h" };
        std::fs::create_dir_all(root.join(other)).unwrap();
        let old = serde_json::json!({
            "contract_version": "1.0", "status": "ok", "freq": other, "source_freq": "1m",
            "features": ["cls"], "metrics": [], "fill": "none", "days": [], "files": [],
            "request": {"symbols": []}, "layout": {}
        });
        std::fs::write(root.join(MANIFEST_NAME), old.to_string()).unwrap();
        let earlier = earlier_sections(root, this);
        assert_eq!(earlier.keys().collect::<Vec<_>>(), [other]);
        assert_eq!(earlier[other]["freq"], other);
        assert!(earlier[other].get("layout").is_none());
        write_manifest(
            &marketdb_output::OutputGate::new(),
            root,
            &p,
            None,
            Written {
                days: &[],
                files: &[],
                earlier,
            },
            false,
        )
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join(MANIFEST_NAME)).unwrap()).unwrap();
        assert_eq!(v["freq"], this);
        assert_eq!(v["freqs"][other]["freq"], other);
        assert_eq!(v["freqs"][this]["freq"], this);
        // A section whose folder is gone is dropped; this interval's own is replaced.
        std::fs::remove_dir(root.join(other)).unwrap();
        assert!(earlier_sections(root, this).is_empty());
    }
}
