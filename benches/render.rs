//! Presentation of the results: [`Machine`] (where and when it ran) and the three renderings
//! of the [`WorkloadReport`]s, the terminal table, `report.md` and `report.json`, each with
//! the W3-over-W2 anonymous peaks when both workloads ran ([`anon_growth`]).

use std::{process::Command, time::SystemTime};

use marketdb::model::time::format_rfc3339;
use serde_json::{Value, json};

use crate::report::{ANON_GROWTH_LIMIT, Growth, Row, WorkloadReport, anon_growth};

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

const HEADERS: [&str; 9] = [
    "operation",
    "rows",
    "seconds",
    "rows/s",
    "peak MiB (anon + file)",
    "vs floor",
    "vs Python",
    "target",
    "result",
];

/// Columns 1 to 6 hold numbers: right-aligned in the terminal.
const NUMERIC: std::ops::RangeInclusive<usize> = 1..=6;

fn cells(row: &Row) -> [String; 9] {
    let mem = &row.m.mem;
    [
        row.op.to_owned(),
        row.m.rows.to_string(),
        format!("{:.3}", row.m.secs),
        si(row.m.rows_per_sec()),
        format!(
            "{:.0} ({:.0} + {:.0})",
            mem.peak_mib, mem.anon_peak_mib, mem.file_peak_mib
        ),
        row.ratio_text(),
        row.python_text(),
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

const GROWTH_HEADERS: [&str; 7] = [
    "operation",
    "W2 anon MiB",
    "W3 anon MiB",
    "W3 - W2 MiB",
    "W3/W2",
    "target",
    "result",
];

const GROWTH_TITLE: &str = "Anonymous peak, W3 over W2 (flat in data size)";

/// The difference is shown beside the ratio: an operation whose W2 figure is a few MiB
/// gets a large ratio from a small, fixed growth.
fn growth_cells(g: &Growth) -> [String; 7] {
    [
        g.op.to_owned(),
        format!("{:.0}", g.small_mib),
        format!("{:.0}", g.big_mib),
        format!("{:+.0}", g.big_mib - g.small_mib),
        format!("{:.2}x", g.ratio),
        format!("<= {ANON_GROWTH_LIMIT}x"),
        if g.met() { "met" } else { "MISSED" }.to_owned(),
    ]
}

/// Aligns `rows` under `headers` for the terminal; `numeric` columns to the right.
fn aligned<const N: usize>(
    headers: [&str; N],
    rows: &[[String; N]],
    numeric: std::ops::RangeInclusive<usize>,
) -> String {
    let mut width = headers.map(str::len);
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.len());
        }
    }
    let line = |cols: &[String]| {
        cols.iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric.contains(&i) {
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
    let mut out = line(&headers.map(str::to_owned));
    out.push('\n');
    out.push_str(&"-".repeat(width.iter().sum::<usize>() + 2 * (N - 1)));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// The plain-text table of one workload for the terminal.
pub fn text_table(w: &WorkloadReport) -> String {
    let rows: Vec<[String; 9]> = w.rows.iter().map(cells).collect();
    let mut out = format!("{}\n", title(w));
    out.push_str(&aligned(HEADERS, &rows, NUMERIC));
    for n in &w.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The W3-over-W2 table for the terminal, when both ran.
pub fn text_growth(reports: &[WorkloadReport]) -> Option<String> {
    let g = anon_growth(reports)?;
    let rows: Vec<[String; 7]> = g.iter().map(growth_cells).collect();
    Some(format!(
        "{GROWTH_TITLE}\n{}",
        aligned(GROWTH_HEADERS, &rows, 1..=4)
    ))
}

fn md_table<const N: usize>(headers: [&str; N], rows: &[[String; N]]) -> String {
    let mut out = format!("| {} |\n|{}\n", headers.join(" | "), "---|".repeat(N));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
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
        "\n\"vs floor\" compares with the raw rusqlite floor measured in the same run \
         (throughput ratio for stores and reads, time ratio for exports); \"vs Python\" is \
         how many times the throughput of the Python original's counterpart on the same data \
         (`--python`). Peak is the whole process's VmHWM during the operation; anon and file \
         are the sampled peaks of its anonymous and file-backed (mmap) parts.\n",
    );
    for w in reports {
        out.push_str(&format!("\n## {}\n\n", title(w)));
        let rows: Vec<[String; 9]> = w.rows.iter().map(cells).collect();
        out.push_str(&md_table(HEADERS, &rows));
        out.push_str(
            "\nDetails: RSS at start / sampled peak anonymous / sampled peak file-backed \
             (MiB); the largest process CPU seconds of a run (all threads, 10 ms ticks; \
             includes untimed setup: opening the database, and generating the rows for the \
             stores); every run's seconds; output.\n\n",
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
    if let Some(g) = anon_growth(reports) {
        let rows: Vec<[String; 7]> = g.iter().map(growth_cells).collect();
        out.push_str(&format!(
            "\n## {GROWTH_TITLE}\n\n{}",
            md_table(GROWTH_HEADERS, &rows)
        ));
    }
    out
}

fn json_row(r: &Row) -> Value {
    let m = &r.m;
    json!({
        "key": r.key,
        "operation": r.op,
        "role": r.role.name(),
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
        "python_ratio": r.python.as_ref().map(|x| x.value),
        "python_ratio_of": r.python.as_ref().map(|x| x.of),
        "python_target": r.python.as_ref().and_then(|x| x.target).map(|t| format!("{t}x")),
        "python_target_met": r.python_met(),
        "rss_limit_mib": r.rss_limit_mib,
        "rss_met": r.rss_met(),
        "seconds_limit": r.secs_limit,
        "seconds_met": r.secs_met(),
        "detail": m.detail,
    })
}

/// The whole report as JSON.
pub fn json(machine: &Machine, command: &str, reports: &[WorkloadReport]) -> Value {
    let workloads: Vec<Value> = reports
        .iter()
        .map(|w| {
            json!({
                "workload": w.workload.name(),
                "description": w.workload.describe(),
                "repetitions": w.reps,
                "operations": w.rows.iter().map(json_row).collect::<Vec<_>>(),
                "notes": w.notes,
            })
        })
        .collect();
    let growth = anon_growth(reports).map(|g| {
        g.iter()
            .map(|g| {
                json!({
                    "key": g.key,
                    "operation": g.op,
                    "w2_anon_mib": g.small_mib,
                    "w3_anon_mib": g.big_mib,
                    "ratio": g.ratio,
                    "target": format!("<= {ANON_GROWTH_LIMIT}x"),
                    "met": g.met(),
                })
            })
            .collect::<Vec<_>>()
    });
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
        "anon_peak_w3_over_w2": growth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        report::{Measured, Timed},
        rss::Mem,
        workload::Workload,
    };

    #[test]
    fn tables_show_memory_split_and_python() {
        let mem = Mem {
            peak_mib: 229.0,
            anon_peak_mib: 94.0,
            file_peak_mib: 135.0,
            ..Mem::default()
        };
        let py = Row::python(
            "python_read",
            "python: read_data",
            Measured::from_runs(vec![Timed::new(1000, 10.0)], Mem::default()),
        );
        let read = Row::marketdb(
            "read_api",
            "read: read_data",
            Measured::from_runs(vec![Timed::new(1000, 1.0)], mem),
        )
        .with_python(Some(&py), None);
        let report = |w| WorkloadReport {
            workload: w,
            reps: 1,
            rows: vec![read.clone(), py.clone()],
            notes: vec!["a note".into()],
        };
        let text = text_table(&report(Workload::W1));
        assert!(text.contains("229 (94 + 135)"), "{text}");
        assert!(text.contains("10.0x"), "{text}");
        assert!(text.contains("note: a note"), "{text}");
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(48_500.0), "48.5k");
        let both = [report(Workload::W2), report(Workload::W3)];
        let growth = text_growth(&both).unwrap();
        assert!(
            growth.contains("1.00x") && growth.contains("met"),
            "{growth}"
        );
        assert!(text_growth(&both[..1]).is_none());
        let machine = Machine {
            nproc: 2,
            cpu: "cpu".into(),
            mem_total_mib: 1024,
            kernel: "6".into(),
            date: "2026-01-01T00:00:00Z".into(),
            git: "abc".into(),
            rustc: "rustc".into(),
            sqlite: "3".into(),
            profile: "release",
        };
        let md = markdown(&machine, "cargo xtask bench", &both);
        assert!(
            md.contains(GROWTH_TITLE) && md.contains("| read: read_data |"),
            "{md}"
        );
        let js = json(&machine, "cargo xtask bench", &both);
        assert_eq!(js["anon_peak_w3_over_w2"][0]["met"], true);
        assert_eq!(js["workloads"][0]["operations"][0]["python_ratio"], 10.0);
    }
}
