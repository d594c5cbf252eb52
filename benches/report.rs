//! Results: [`Timed`] (one run of one operation), [`Measured`] (the median of its
//! repetitions plus the phase's memory), [`Row`] (an operation with its ratios to the floor
//! and to the Python original, and the spec's targets), [`WorkloadReport`], and
//! [`anon_growth`], the anonymous peak of each operation at W3 over W2 (the spec's "flat in
//! data size"). Presentation is `render.rs`.
//!
//! Targets are information: a missed one is shown, never turned into an error or an exit
//! code (benchmarks are not tests).

use std::fmt;

use crate::{rss::Mem, workload::Workload};

/// One run of one operation: rows handled and the timed seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Timed {
    pub rows: u64,
    pub secs: f64,
    /// Free-form facts about the output (files, bytes...).
    pub detail: String,
}

impl Timed {
    pub fn new(rows: u64, secs: f64) -> Timed {
        Timed {
            rows,
            secs,
            detail: String::new(),
        }
    }

    pub fn with_detail(mut self, detail: String) -> Timed {
        self.detail = detail;
        self
    }
}

/// All repetitions of one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub rows: u64,
    /// Median of `all`.
    pub secs: f64,
    pub all: Vec<f64>,
    pub mem: Mem,
    pub detail: String,
}

impl Measured {
    pub fn from_runs(runs: Vec<Timed>, mem: Mem) -> Measured {
        let mut all: Vec<f64> = runs.iter().map(|r| r.secs).collect();
        let mut sorted = all.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let secs = match n {
            0 => 0.0,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        all.shrink_to_fit();
        let last = runs.last();
        Measured {
            rows: last.map_or(0, |r| r.rows),
            secs,
            all,
            mem,
            detail: last.map(|r| r.detail.clone()).unwrap_or_default(),
        }
    }

    pub fn rows_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.rows as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// A target on a ratio to the floor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Throughput ratio (rows/s of the API / rows/s of the floor) at least this.
    AtLeast(f64),
    /// Time ratio (seconds of the API / seconds of the floor) at most this.
    AtMost(f64),
}

impl Target {
    pub fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(t) => ratio >= t,
            Target::AtMost(t) => ratio <= t,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::AtLeast(t) => write!(f, ">= {t}"),
            Target::AtMost(t) => write!(f, "<= {t}x"),
        }
    }
}

/// How an operation compares with another operation of the same run (a floor, or the
/// Python original's counterpart).
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    pub value: f64,
    /// The key of the operation it is compared with.
    pub of: &'static str,
    /// `true`: a throughput ratio (higher is better); `false`: a time ratio.
    pub throughput: bool,
    pub target: Option<Target>,
}

impl Ratio {
    pub fn met(&self) -> Option<bool> {
        Some(self.target?.met(self.value))
    }
}

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The raw rusqlite floor.
    Floor,
    /// marketdb (its API or its command line).
    Marketdb,
    /// The Python original.
    Python,
    /// Another tool doing the same job (DuckDB loading the same files).
    Reference,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Floor => "floor",
            Role::Marketdb => "marketdb",
            Role::Python => "python",
            Role::Reference => "reference",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Stable machine name (`store_floor`, `read_api`...).
    pub key: &'static str,
    /// Human name.
    pub op: &'static str,
    pub role: Role,
    pub m: Measured,
    /// Against the floor.
    pub ratio: Option<Ratio>,
    /// Against the Python original (always a throughput ratio: how many times faster).
    pub python: Option<Ratio>,
    /// The spec's peak-RSS limit for this operation, if it has one.
    pub rss_limit_mib: Option<f64>,
    /// The spec's limit on the seconds of this operation, if it has one.
    pub secs_limit: Option<f64>,
}

impl Row {
    fn new(key: &'static str, op: &'static str, role: Role, m: Measured) -> Row {
        Row {
            key,
            op,
            role,
            m,
            ratio: None,
            python: None,
            rss_limit_mib: None,
            secs_limit: None,
        }
    }

    pub fn floor(key: &'static str, op: &'static str, m: Measured) -> Row {
        Row::new(key, op, Role::Floor, m)
    }

    /// A marketdb operation without a floor to compare with.
    pub fn marketdb(key: &'static str, op: &'static str, m: Measured) -> Row {
        Row::new(key, op, Role::Marketdb, m)
    }

    pub fn python(key: &'static str, op: &'static str, m: Measured) -> Row {
        Row::new(key, op, Role::Python, m)
    }

    pub fn reference(key: &'static str, op: &'static str, m: Measured) -> Row {
        Row::new(key, op, Role::Reference, m)
    }

    /// A marketdb operation compared with `floor` by throughput (`throughput`) or by time.
    pub fn versus(
        key: &'static str,
        op: &'static str,
        m: Measured,
        floor: &Row,
        throughput: bool,
        target: Option<Target>,
    ) -> Row {
        let value = if throughput {
            safe_div(m.rows_per_sec(), floor.m.rows_per_sec())
        } else {
            safe_div(m.secs, floor.m.secs)
        };
        Row {
            ratio: Some(Ratio {
                value,
                of: floor.key,
                throughput,
                target,
            }),
            ..Row::new(key, op, Role::Marketdb, m)
        }
    }

    /// Adds the throughput ratio to the Python original's `py` (when it ran).
    pub fn with_python(mut self, py: Option<&Row>, target: Option<Target>) -> Row {
        self.python = py.map(|py| Ratio {
            value: safe_div(self.m.rows_per_sec(), py.m.rows_per_sec()),
            of: py.key,
            throughput: true,
            target,
        });
        self
    }

    pub fn with_rss_limit(mut self, limit: Option<f64>) -> Row {
        self.rss_limit_mib = limit;
        self
    }

    pub fn with_secs_limit(mut self, limit: Option<f64>) -> Row {
        self.secs_limit = limit;
        self
    }

    pub fn target_met(&self) -> Option<bool> {
        self.ratio.as_ref()?.met()
    }

    pub fn python_met(&self) -> Option<bool> {
        self.python.as_ref()?.met()
    }

    pub fn rss_met(&self) -> Option<bool> {
        self.rss_limit_mib.map(|l| self.m.mem.peak_mib < l)
    }

    pub fn secs_met(&self) -> Option<bool> {
        self.secs_limit.map(|l| self.m.secs < l)
    }

    pub fn ratio_text(&self) -> String {
        match (&self.ratio, self.role) {
            (Some(r), _) => format!("{:.2}x {}", r.value, r.of),
            (None, Role::Marketdb) => "-".to_owned(),
            (None, role) => role.name().to_owned(),
        }
    }

    pub fn python_text(&self) -> String {
        self.python
            .as_ref()
            .map_or_else(|| "-".to_owned(), |r| format!("{:.1}x", r.value))
    }

    pub fn target_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.ratio.as_ref().and_then(|r| r.target) {
            parts.push(t.to_string());
        }
        if let Some(t) = self.python.as_ref().and_then(|r| r.target) {
            parts.push(format!("python {t}x"));
        }
        if let Some(l) = self.rss_limit_mib {
            parts.push(format!("RSS < {l:.0} MiB"));
        }
        if let Some(l) = self.secs_limit {
            parts.push(format!("< {l} s"));
        }
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join("; ")
        }
    }

    pub fn result_text(&self) -> String {
        let word = |m: bool| if m { "met" } else { "MISSED" };
        let mut parts = Vec::new();
        if let Some(m) = self.target_met() {
            parts.push(word(m).to_owned());
        }
        if let Some(m) = self.python_met() {
            parts.push(format!("python {}", word(m)));
        }
        if let Some(m) = self.rss_met() {
            parts.push(format!("RSS {}", word(m)));
        }
        if let Some(m) = self.secs_met() {
            parts.push(format!("time {}", word(m)));
        }
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

fn safe_div(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Everything measured for one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadReport {
    pub workload: Workload,
    pub reps: usize,
    pub rows: Vec<Row>,
    /// Observations made during the run (query plans, memory caveats...).
    pub notes: Vec<String>,
}

/// The spec's bound on an operation's anonymous peak at W3 over its W2 figure.
pub const ANON_GROWTH_LIMIT: f64 = 1.5;

/// One marketdb operation's anonymous peak in two workloads of the same invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Growth {
    pub key: &'static str,
    pub op: &'static str,
    /// Sampled anonymous peak (MiB) in the smaller workload.
    pub small_mib: f64,
    /// ... and in the larger one.
    pub big_mib: f64,
    pub ratio: f64,
}

impl Growth {
    pub fn met(&self) -> bool {
        self.ratio <= ANON_GROWTH_LIMIT
    }
}

/// The anonymous peak of every marketdb operation of W3 over the same operation's in W2,
/// when both ran in this invocation (`None` otherwise). Floors and the Python original are
/// left out: the target is about marketdb.
pub fn anon_growth(reports: &[WorkloadReport]) -> Option<Vec<Growth>> {
    let find = |w| reports.iter().find(|r| r.workload == w);
    let (small, big) = (find(Workload::W2)?, find(Workload::W3)?);
    Some(
        big.rows
            .iter()
            .filter(|r| r.role == Role::Marketdb)
            .filter_map(|b| {
                let s = small.rows.iter().find(|s| s.key == b.key)?;
                Some(Growth {
                    key: b.key,
                    op: b.op,
                    small_mib: s.m.mem.anon_peak_mib,
                    big_mib: b.m.mem.anon_peak_mib,
                    ratio: safe_div(b.m.mem.anon_peak_mib, s.m.mem.anon_peak_mib),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(secs: f64) -> Timed {
        Timed::new(100, secs)
    }

    fn measured(secs: f64, anon: f64) -> Measured {
        let mem = Mem {
            anon_peak_mib: anon,
            ..Mem::default()
        };
        Measured::from_runs(vec![timed(secs)], mem)
    }

    #[test]
    fn median_ratios_and_targets() {
        let floor = Row::floor(
            "store_floor",
            "store floor",
            Measured::from_runs(vec![timed(1.0), timed(3.0), timed(2.0)], Mem::default()),
        );
        assert_eq!(floor.m.secs, 2.0);
        assert_eq!(floor.m.rows_per_sec(), 50.0);
        assert_eq!(floor.ratio_text(), "floor");
        let api = Row::versus(
            "store_api",
            "store api",
            Measured::from_runs(vec![timed(4.0)], Mem::default()),
            &floor,
            true,
            Some(Target::AtLeast(0.85)),
        );
        assert_eq!(api.ratio.as_ref().map(|r| r.value), Some(0.5));
        assert_eq!(api.target_met(), Some(false));
        let export = Row::versus(
            "x",
            "x",
            api.m.clone(),
            &floor,
            false,
            Some(Target::AtMost(3.0)),
        )
        .with_rss_limit(Some(250.0));
        assert_eq!(export.target_met(), Some(true));
        assert_eq!(export.rss_met(), Some(true));
        assert_eq!(export.result_text(), "met, RSS met");
    }

    #[test]
    fn python_ratios_and_time_limits() {
        let py = Row::python("python_store", "python store", measured(12.0, 0.0));
        assert_eq!(py.ratio_text(), "python");
        let floor = Row::floor("store_floor", "floor", measured(1.0, 0.0));
        let cli = Row::versus("ingest_cli", "cli", measured(1.5, 0.0), &floor, true, None)
            .with_python(Some(&py), Some(Target::AtLeast(10.0)));
        // Same rows: 12 s against 1.5 s is 8 times the throughput.
        assert_eq!(cli.python.as_ref().map(|r| r.value), Some(8.0));
        assert_eq!(cli.python_text(), "8.0x");
        assert_eq!(cli.python_met(), Some(false));
        assert_eq!(cli.target_text(), "python >= 10x");
        assert_eq!(cli.result_text(), "python MISSED");
        let alone = Row::marketdb("read_api", "read", measured(1.0, 0.0)).with_python(None, None);
        assert_eq!(
            (alone.ratio_text(), alone.python_text()),
            ("-".into(), "-".into())
        );
        let summary =
            Row::marketdb("summary_api", "summary", measured(0.1, 0.0)).with_secs_limit(Some(0.2));
        assert_eq!(summary.target_text(), "< 0.2 s");
        assert_eq!(summary.result_text(), "time met");
    }

    #[test]
    fn anonymous_peaks_w3_over_w2() {
        let report = |w, rows| WorkloadReport {
            workload: w,
            reps: 1,
            rows,
            notes: Vec::new(),
        };
        let w2 = report(
            Workload::W2,
            vec![
                Row::floor("read_floor", "floor", measured(1.0, 90.0)),
                Row::marketdb("scan_api", "scan", measured(1.0, 20.0)),
                Row::marketdb("read_api", "read", measured(1.0, 100.0)),
            ],
        );
        let w3 = report(
            Workload::W3,
            vec![
                Row::floor("read_floor", "floor", measured(1.0, 800.0)),
                Row::marketdb("scan_api", "scan", measured(1.0, 25.0)),
                Row::marketdb("read_api", "read", measured(1.0, 800.0)),
                Row::marketdb("w3_only", "new", measured(1.0, 1.0)),
            ],
        );
        assert_eq!(anon_growth(std::slice::from_ref(&w3)), None);
        let g = anon_growth(&[w2, w3]).unwrap();
        let keys: Vec<_> = g.iter().map(|g| (g.key, g.ratio, g.met())).collect();
        assert_eq!(
            keys,
            vec![("scan_api", 1.25, true), ("read_api", 8.0, false)]
        );
    }
}
