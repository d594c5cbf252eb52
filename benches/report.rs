//! Results and their presentation: [`Timed`] (one run of one operation), [`Measured`] (the
//! median of its repetitions plus the phase's memory), [`Row`] (an operation with its ratio
//! to the floor and the spec's target), [`Machine`] (where and when it ran), and the three
//! renderings: the terminal table, `report.md` and `report.json`.
//!
//! Targets are information: a missed one is shown, never turned into an error or an exit
//! code (benchmarks are not tests).

use std::{fmt, process::Command, time::SystemTime};

use marketdb::model::time::format_rfc3339;
use serde_json::{Value, json};

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

/// How an operation compares with a floor operation of the same run.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    pub value: f64,
    /// The floor operation it is compared with.
    pub of: &'static str,
    /// `true`: a throughput ratio (higher is better); `false`: a time ratio.
    pub throughput: bool,
    pub target: Option<Target>,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Stable machine name (`store_floor`, `read_api`...).
    pub key: &'static str,
    /// Human name.
    pub op: &'static str,
    pub m: Measured,
    pub ratio: Option<Ratio>,
    /// The spec's peak-RSS limit for this operation, if it has one.
    pub rss_limit_mib: Option<f64>,
}

impl Row {
    pub fn floor(key: &'static str, op: &'static str, m: Measured) -> Row {
        Row {
            key,
            op,
            m,
            ratio: None,
            rss_limit_mib: None,
        }
    }

    /// An API operation compared with `floor` by throughput (`throughput`) or by time.
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
            key,
            op,
            m,
            ratio: Some(Ratio {
                value,
                of: floor.key,
                throughput,
                target,
            }),
            rss_limit_mib: None,
        }
    }

    pub fn with_rss_limit(mut self, limit: Option<f64>) -> Row {
        self.rss_limit_mib = limit;
        self
    }

    pub fn target_met(&self) -> Option<bool> {
        let r = self.ratio.as_ref()?;
        Some(r.target?.met(r.value))
    }

    pub fn rss_met(&self) -> Option<bool> {
        self.rss_limit_mib.map(|l| self.m.mem.peak_mib < l)
    }

    fn ratio_text(&self) -> String {
        match &self.ratio {
            Some(r) => format!("{:.2}x {}", r.value, r.of),
            None => "floor".to_owned(),
        }
    }

    fn target_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.ratio.as_ref().and_then(|r| r.target) {
            parts.push(t.to_string());
        }
        if let Some(l) = self.rss_limit_mib {
            parts.push(format!("RSS < {l:.0} MiB"));
        }
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join("; ")
        }
    }

    fn result_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.target_met() {
            parts.push(if m { "met" } else { "MISSED" }.to_owned());
        }
        if let Some(m) = self.rss_met() {
            parts.push(format!("RSS {}", if m { "met" } else { "MISSED" }));
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

/// Where and when the benchmark ran.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub mem_total_mib: u64,
    pub kernel: String,
    pub date: String,
    pub git: String,
    pub rustc: String,
    pub sqlite: String,
    pub profile: &'static str,
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let nproc = std::thread::available_parallelism().map_or(cores, usize::from);
        let mem_total_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let date = format_rfc3339(now_ms - now_ms % 1000);
        let git = match command_line("git", &["rev-parse", "--short", "HEAD"]) {
            Some(rev) => {
                let dirty = command_line("git", &["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|s| !s.is_empty());
                if dirty { format!("{rev}-dirty") } else { rev }
            }
            None => "unknown".to_owned(),
        };
        Machine {
            nproc,
            cpu,
            mem_total_mib,
            kernel,
            date,
            git,
            rustc: command_line("rustc", &["-V"]).unwrap_or_else(|| "unknown".to_owned()),
            sqlite: rusqlite::version().to_owned(),
            profile: if cfg!(debug_assertions) {
                "debug (figures meaningless: use --release)"
            } else {
                "release"
            },
        }
    }

    fn lines(&self) -> Vec<String> {
        vec![
            format!("date: {}", self.date),
            format!("git commit: {}", self.git),
            format!(
                "machine: {} cores ({}), {} MiB RAM, Linux {}",
                self.nproc, self.cpu, self.mem_total_mib, self.kernel
            ),
            format!(
                "build: {} ({}), SQLite {}",
                self.profile, self.rustc, self.sqlite
            ),
        ]
    }
}

/// `1234567.0` as `1.23M`, `48500.0` as `48.5k`.
fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

const HEADERS: [&str; 8] = [
    "operation",
    "rows",
    "seconds",
    "rows/s",
    "peak RSS MiB",
    "ratio",
    "target",
    "result",
];

fn cells(row: &Row) -> [String; 8] {
    [
        row.op.to_owned(),
        row.m.rows.to_string(),
        format!("{:.3}", row.m.secs),
        si(row.m.rows_per_sec()),
        format!("{:.0}", row.m.mem.peak_mib),
        row.ratio_text(),
        row.target_text(),
        row.result_text(),
    ]
}

fn title(w: &WorkloadReport) -> String {
    format!(
        "{}: {} ({})",
        w.workload.name(),
        w.workload.describe(),
        if w.reps == 1 {
            "one run".to_owned()
        } else {
            format!("median of {} runs", w.reps)
        }
    )
}

/// The plain-text table for the terminal.
pub fn text_table(w: &WorkloadReport) -> String {
    let rows: Vec<[String; 8]> = w.rows.iter().map(cells).collect();
    let mut width = HEADERS.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.len());
        }
    }
    let line = |cols: &[String]| {
        cols.iter()
            .enumerate()
            .map(|(i, c)| {
                if (1..=5).contains(&i) {
                    format!("{c:>w$}", w = width[i])
                } else {
                    format!("{c:<w$}", w = width[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = format!("{}\n", title(w));
    out.push_str(&line(&HEADERS.map(str::to_owned)));
    out.push('\n');
    out.push_str(&"-".repeat(width.iter().sum::<usize>() + 2 * (width.len() - 1)));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    for n in &w.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The whole report as Markdown.
pub fn markdown(machine: &Machine, command: &str, reports: &[WorkloadReport]) -> String {
    let mut out = String::from("# marketdb benchmark report\n\n");
    out.push_str(&format!("Command: `{command}`\n\n"));
    for l in machine.lines() {
        out.push_str(&format!("- {l}\n"));
    }
    out.push_str(
        "\nRatios compare with the raw rusqlite floor measured in the same run \
         (throughput ratio for stores and reads, time ratio for exports). Peak RSS is the \
         whole process's VmHWM during the operation.\n",
    );
    for w in reports {
        out.push_str(&format!("\n## {}\n\n", title(w)));
        out.push_str(&format!("| {} |\n", HEADERS.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(HEADERS.len())));
        for r in &w.rows {
            out.push_str(&format!("| {} |\n", cells(r).join(" | ")));
        }
        out.push_str(
            "\nDetails: RSS at start / sampled peak anonymous / sampled peak file-backed \
             (MiB); the largest process CPU seconds of a run (all threads, 10 ms ticks; includes \
             untimed setup: opening the database, and generating the rows for the stores); every run's seconds; output.\n\n",
        );
        for r in &w.rows {
            let m = &r.m.mem;
            out.push_str(&format!(
                "- {}: {:.0} / {:.0} / {:.0} MiB; CPU {:.2} s; runs {}{}\n",
                r.op,
                m.base_mib,
                m.anon_peak_mib,
                m.file_peak_mib,
                m.cpu_secs,
                r.m.all
                    .iter()
                    .map(|s| format!("{s:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if r.m.detail.is_empty() {
                    String::new()
                } else {
                    format!("; {}", r.m.detail)
                }
            ));
        }
        if !w.notes.is_empty() {
            out.push('\n');
            for n in &w.notes {
                out.push_str(&format!("- note: {n}\n"));
            }
        }
    }
    out
}

/// The whole report as JSON.
pub fn json(machine: &Machine, command: &str, reports: &[WorkloadReport]) -> Value {
    let workloads: Vec<Value> = reports
        .iter()
        .map(|w| {
            let rows: Vec<Value> = w
                .rows
                .iter()
                .map(|r| {
                    let m = &r.m;
                    json!({
                        "key": r.key,
                        "operation": r.op,
                        "rows": m.rows,
                        "seconds": m.secs,
                        "seconds_all_runs": m.all,
                        "rows_per_second": m.rows_per_sec(),
                        "peak_rss_mib": m.mem.peak_mib,
                        "start_rss_mib": m.mem.base_mib,
                        "sampled_peak_anon_mib": m.mem.anon_peak_mib,
                        "sampled_peak_file_mib": m.mem.file_peak_mib,
                        "peak_rss_reset": m.mem.reset,
                        "cpu_seconds_max_run": m.mem.cpu_secs,
                        "ratio": r.ratio.as_ref().map(|x| x.value),
                        "ratio_of": r.ratio.as_ref().map(|x| x.of),
                        "ratio_kind": r.ratio.as_ref().map(|x| if x.throughput { "throughput" } else { "time" }),
                        "target": r.ratio.as_ref().and_then(|x| x.target).map(|t| t.to_string()),
                        "target_met": r.target_met(),
                        "rss_limit_mib": r.rss_limit_mib,
                        "rss_met": r.rss_met(),
                        "detail": m.detail,
                    })
                })
                .collect();
            json!({
                "workload": w.workload.name(),
                "description": w.workload.describe(),
                "repetitions": w.reps,
                "operations": rows,
                "notes": w.notes,
            })
        })
        .collect();
    json!({
        "command": command,
        "machine": {
            "nproc": machine.nproc,
            "cpu_model": machine.cpu,
            "mem_total_mib": machine.mem_total_mib,
            "kernel": machine.kernel,
            "date": machine.date,
            "git_commit": machine.git,
            "rustc": machine.rustc,
            "sqlite": machine.sqlite,
            "profile": machine.profile,
        },
        "workloads": workloads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(secs: f64) -> Timed {
        Timed::new(100, secs)
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
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(48_500.0), "48.5k");
    }
}
