//! W4, research scale (opt-in, `marketdb-bench w4`): a demo database of S symbols x D days
//! of 1m bars with funding, open interest and long/short ratios (300 x 60 by default:
//! 25.9M bars and 26M metric rows), then the commands a daily publication job runs, each
//! as a user runs it (the release binary as a subprocess, wall clock from spawn to exit):
//! `summary`, `check` of every symbol, `export parquet` of the klines, `export dataset`
//! (first run, nothing changed, after one new day), and `import dataset` into a new file.
//!
//! It measures; it asserts nothing. Results go to `{out}/w4.md` and `{out}/w4.json`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cli;

const USAGE: &str = "usage: marketdb-bench w4 [--symbols N] [--days N] [--out DIR]

  --symbols  symbols of the demo database (default 300)
  --days     days of 1m bars and metrics (default 60)
  --out      where w4.md, w4.json and the scratch folder go (default target/bench)";

/// One measured command.
struct Step {
    name: &'static str,
    secs: f64,
    /// Rows the command handled, when it says.
    rows: Option<u64>,
    note: String,
}

/// Runs `bin args...`, returns (seconds, stdout); fails on a non-zero exit.
fn timed(bin: &Path, args: &[&str]) -> Result<(f64, String)> {
    let start = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("marketdb {} failed ({})", args.join(" "), out.status);
    }
    Ok((secs, String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn json_of(text: &str) -> Result<Value> {
    serde_json::from_str(text.trim()).context("the command's --json output is not JSON")
}

fn rows_of(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

pub fn main(raw: &[String]) -> Result<()> {
    let (mut symbols, mut days, mut out) = (300u32, 60u32, PathBuf::from("target/bench"));
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--symbols" => symbols = value()?.parse().context("--symbols: a number")?,
            "--days" => days = value()?.parse().context("--days: a number")?,
            "--out" => out = PathBuf::from(value()?),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if days == 0 || symbols == 0 {
        bail!("--symbols and --days must be at least 1");
    }
    let bin = cli::find_marketdb().context(
        "no marketdb binary: run through `cargo xtask bench w4` (or set MARKETDB_BENCH_BIN)",
    )?;
    let tmp = out.join("tmp").join("w4");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = measure(&bin, symbols, days, &tmp);
    let _ = fs::remove_dir_all(&tmp);
    let (steps, notes) = result?;
    report(&out, symbols, days, &steps, &notes)
}

fn measure(bin: &Path, symbols: u32, days: u32, tmp: &Path) -> Result<(Vec<Step>, Vec<String>)> {
    let db = tmp.join("market.db");
    let db = db.to_str().context("a non-UTF-8 scratch path")?.to_owned();
    let path = |name: &str| tmp.join(name).display().to_string();
    let (s, d) = (symbols.to_string(), days.to_string());
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    eprintln!("w4: building the demo database ({symbols} symbols x {days} days)");
    let (bars, _) = demo(
        bin,
        &db,
        &s,
        &d,
        "2024-01-01",
        &path("np"),
        &mut steps,
        "demo: store bars and metrics, summary, NumPy export",
    )?;
    let bars = Some(bars);
    let _ = fs::remove_dir_all(tmp.join("np"));
    let size = fs::metadata(&db).map_or(0, |m| m.len());
    notes.push(format!("database file: {:.1} MB", size as f64 / 1e6));
    for run in ["cold", "warm"] {
        let (secs, _) = timed(bin, &["--db", &db, "summary"])?;
        steps.push(Step {
            name: if run == "cold" {
                "summary (first run)"
            } else {
                "summary (again)"
            },
            secs,
            rows: None,
            note: String::new(),
        });
    }
    // The demo's days from 2024-01-01, every one included.
    let range = format!("20240101-{}", day_after(days - 1).replace('-', ""));
    let (secs, _) = timed(
        bin,
        &[
            "--db",
            &db,
            "-q",
            "check",
            "--symbols",
            "all",
            "--freq",
            "1m",
            "--timerange",
            &range,
        ],
    )?;
    steps.push(Step {
        name: "check: every symbol, 1m, whole range",
        secs,
        rows: bars,
        note: String::new(),
    });
    let (secs, _) = timed(
        bin,
        &[
            "--db",
            &db,
            "-q",
            "export",
            "parquet",
            "--symbols",
            "all",
            "--freq",
            "1m",
            "--timerange",
            &range,
            "--out",
            &path("k.parquet"),
        ],
    )?;
    steps.push(Step {
        name: "export parquet: 1m klines (zstd)",
        secs,
        rows: bars,
        note: String::new(),
    });
    let _ = fs::remove_file(tmp.join("k.parquet"));
    let ds = path("dataset");
    dataset(
        bin,
        &db,
        &ds,
        &mut steps,
        "export dataset: first publication (every kind)",
    )?;
    dataset(bin, &db, &ds, &mut steps, "export dataset: nothing changed")?;
    // One new day for every symbol, as a daily job would add it.
    demo(
        bin,
        &db,
        &s,
        "1",
        &day_after(days),
        &path("np-new"),
        &mut steps,
        "demo: one new day for every symbol",
    )?;
    let _ = fs::remove_dir_all(tmp.join("np-new"));
    dataset(
        bin,
        &db,
        &ds,
        &mut steps,
        "export dataset: after one new day",
    )?;
    let copy = path("imported.db");
    let (secs, text) = timed(
        bin,
        &["--db", &copy, "-q", "--json", "import", "dataset", &ds],
    )?;
    let v = json_of(&text)?;
    steps.push(Step {
        name: "import dataset: into a new file",
        secs,
        rows: rows_of(&v, "rows"),
        note: String::new(),
    });
    Ok((steps, notes))
}

/// Runs `demo` into `db` (`symbols` x `days` from `start`, its export in `out`) and records
/// it as `name`; returns the bars and metric rows it stored.
#[allow(clippy::too_many_arguments)]
fn demo(
    bin: &Path,
    db: &str,
    symbols: &str,
    days: &str,
    start: &str,
    out: &str,
    steps: &mut Vec<Step>,
    name: &'static str,
) -> Result<(u64, u64)> {
    let (secs, text) = timed(
        bin,
        &[
            "--db",
            db,
            "-q",
            "--json",
            "demo",
            "--symbols",
            symbols,
            "--days",
            days,
            "--start",
            start,
            "--out",
            out,
        ],
    )?;
    let v = json_of(&text)?;
    let bars = rows_of(&v, "bars_stored").unwrap_or(0);
    let metrics = rows_of(&v, "metric_rows_stored").unwrap_or(0);
    steps.push(Step {
        name,
        secs,
        rows: Some(bars + metrics),
        note: format!("{bars} bars, {metrics} metric rows"),
    });
    Ok((bars, metrics))
}

/// Runs `export dataset` of `db` into `ds` and records it as `name`.
fn dataset(
    bin: &Path,
    db: &str,
    ds: &str,
    steps: &mut Vec<Step>,
    name: &'static str,
) -> Result<()> {
    let (secs, text) = timed(
        bin,
        &["--db", db, "-q", "--json", "export", "dataset", "--out", ds],
    )?;
    let v = json_of(&text)?;
    steps.push(Step {
        name,
        secs,
        rows: rows_of(&v, "rows"),
        note: format!(
            "{} written, {} unchanged, {} compared by rows",
            v.get("written")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            rows_of(&v, "unchanged").unwrap_or(0),
            rows_of(&v, "compared_by_rows").unwrap_or(0)
        ),
    });
    Ok(())
}

/// 2024-01-01T00:00:00Z, the demo's first day.
const JAN1: i64 = 1_704_067_200_000;

/// `YYYY-MM-DD` of the day after the demo's `days` days from 2024-01-01.
fn day_after(days: u32) -> String {
    marketdb::model::time::date_string(JAN1 + i64::from(days) * marketdb::model::time::DAY_MS)
}

fn report(out: &Path, symbols: u32, days: u32, steps: &[Step], notes: &[String]) -> Result<()> {
    let mut md = format!(
        "# W4: {symbols} symbols x {days} days of 1m with metrics\n\n\
         | command | seconds | rows | rows/s | note |\n|---|---|---|---|---|\n"
    );
    let mut rows_json = Vec::new();
    for s in steps {
        let rate = s.rows.filter(|_| s.secs > 0.0).map(|r| r as f64 / s.secs);
        md.push_str(&format!(
            "| {} | {:.3} | {} | {} | {} |\n",
            s.name,
            s.secs,
            s.rows.map_or("-".to_owned(), |r| r.to_string()),
            rate.map_or("-".to_owned(), |r| format!("{:.0}", r)),
            s.note
        ));
        rows_json.push(json!({
            "command": s.name, "secs": s.secs, "rows": s.rows, "rows_per_sec": rate,
            "note": s.note,
        }));
    }
    for n in notes {
        md.push_str(&format!("\nnote: {n}\n"));
    }
    print!("{md}");
    fs::create_dir_all(out)?;
    fs::write(out.join("w4.md"), &md)?;
    fs::write(
        out.join("w4.json"),
        serde_json::to_vec_pretty(&json!({
            "symbols": symbols, "days": days, "steps": rows_json, "notes": notes,
        }))?,
    )?;
    eprintln!(
        "wrote {} and {}",
        out.join("w4.md").display(),
        out.join("w4.json").display()
    );
    Ok(())
}
