//! Benchmark harness for marketdb: runs the workloads of the quality spec (W1, W2, W3)
//! against the raw rusqlite floor, the public async API, the `marketdb` command line and,
//! with `--python`, the Python original; prints a table and writes `{out}/report.md` and
//! `{out}/report.json` (`docs/benchmarks.md` explains the figures).
//!
//! Usage: see [`USAGE`] (normally through `cargo xtask bench`). Each workload runs in a
//! fresh folder under `{out}/tmp`, deleted afterwards (`suite.rs`); each measured run is a
//! fresh process (`child.rs`, `cli.rs`, `python.rs`), so one operation's leftovers never
//! inflate the next one's peak RSS. Floor and API runs alternate, repetition by repetition.
//! Data generation and file preparation are never timed.
//! It measures; it asserts nothing: a missed target is reported, never an exit code
//! (benchmarks are not tests).

#![allow(clippy::print_stdout, clippy::print_stderr)]
// A developer tool: it lays out its own work folders and fixtures directly (the output
// gate is for what marketdb writes for its users).
#![allow(clippy::disallowed_methods)]

mod child;
mod cli;
mod floor;
mod ops;
mod python;
mod render;
mod report;
mod rss;
mod stream;
mod suite;
mod w4;
mod workload;

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};

use report::Timed;
use suite::Tools;
use workload::Workload;

const USAGE: &str =
    "usage: marketdb-bench [--workload LIST] [--python[=LIST]] [--out DIR] [--reps N]
       marketdb-bench stream [--symbols N] [--seconds S] [--out DIR]   (see stream --help)
       marketdb-bench w4 [--symbols N] [--days N] [--out DIR]   (research scale, see w4 --help)

  --workload  workloads to run, joined by ',' or '+' (default all): W1 = 50 symbols x 1 day
              of 1m, W2 = 100 symbols x 7 days, W3 = 200 symbols x 30 days (8.64M bars,
              minutes and several GB of disk); all = w1,w2 (W3 only when named: all+w3)
  --python    also measure the Python original (cryptoservice 1.9.0) on the same files, for
              the run's workloads in LIST (default w1,w2: on W3 it would take most
              of an hour and about 9 GB of memory)
  --out       where report.md, report.json and the scratch folder go (default target/bench)
  --reps      repetitions per operation, median reported (default 5 for W1, 1 for W2 and
              W3; the Python store at most 3, its read and export 1)";

#[derive(Debug)]
struct Args {
    workloads: Vec<Workload>,
    /// Workloads the Python original runs on (a subset of `workloads`).
    python: Vec<Workload>,
    /// How `--python` was given, for the command line of the report.
    python_arg: Option<String>,
    out: PathBuf,
    reps: Option<usize>,
}

/// Parses the command line; `None` when help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>> {
    let mut parsed = Args {
        workloads: vec![Workload::W1, Workload::W2],
        python: Vec::new(),
        python_arg: None,
        out: PathBuf::from("target/bench"),
        reps: None,
    };
    let mut python = None;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "-w" | "--workload" => parsed.workloads = Workload::parse_list(&value("--workload")?)?,
            // Its list only inline (`--python=w3`): a bare `--python` takes no value.
            "--python" => {
                let list = inline.clone().unwrap_or_else(|| "w1,w2".to_owned());
                python = Some(Workload::parse_list(&list)?);
                parsed.python_arg = Some(arg.clone());
            }
            "-o" | "--out" => parsed.out = PathBuf::from(value("--out")?),
            "--reps" => {
                let v = value("--reps")?;
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => parsed.reps = Some(n),
                    _ => bail!("--reps {v:?}: expected a positive number"),
                }
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if let Some(py) = python {
        parsed.python = parsed
            .workloads
            .iter()
            .copied()
            .filter(|w| py.contains(w))
            .collect();
    }
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<()> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().is_some_and(|a| a == "--child") {
        return child::serve(&raw);
    }
    if raw.first().is_some_and(|a| a == "stream") {
        return stream::main(&raw[1..]);
    }
    if raw.first().is_some_and(|a| a == "w4") {
        return w4::main(&raw[1..]);
    }
    let Some(args) = parse_args(raw.into_iter())? else {
        println!("{USAGE}");
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let machine = render::Machine::detect();
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run `cargo xtask bench` for meaningful figures");
    }
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let tmp = args.out.join("tmp");
    let marketdb = cli::find_marketdb();
    let python = if args.python.is_empty() {
        if let Some(arg) = &args.python_arg {
            eprintln!(
                "warning: {arg} names none of the run's workloads (Python on W3 is \
                 --python=w3): the Python original is not measured"
            );
        }
        None
    } else {
        Some(python::Python::locate()?)
    };
    let mut reports = Vec::new();
    for &w in &args.workloads {
        let reps = args.reps.unwrap_or_else(|| w.default_reps());
        eprintln!(
            "{}: {} ({reps} run(s) per operation)",
            w.name(),
            w.describe()
        );
        let tools = Tools {
            marketdb: marketdb.clone(),
            python: python.clone().filter(|_| args.python.contains(&w)),
        };
        let report = suite::bench_workload(&rt, w, reps, &tmp, &tools)?;
        println!("\n{}", render::text_table(&report));
        reports.push(report);
    }
    if let Some(growth) = render::text_growth(&reports) {
        println!("\n{growth}");
    }
    let _ = fs::remove_dir(&tmp);
    let command = command_text(&args);
    let md = render::markdown(&machine, &command, &reports);
    let js = serde_json::to_string_pretty(&render::json(&machine, &command, &reports))?;
    let (md_path, js_path) = (args.out.join("report.md"), args.out.join("report.json"));
    fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    fs::write(&js_path, js + "\n")
        .with_context(|| format!("cannot write {}", js_path.display()))?;
    println!("wrote {} and {}", md_path.display(), js_path.display());
    Ok(())
}

/// The command that reproduces this run.
fn command_text(args: &Args) -> String {
    let mut s = String::from("cargo xtask bench");
    if args.workloads != [Workload::W1, Workload::W2] {
        let names: Vec<String> = args
            .workloads
            .iter()
            .map(|w| w.name().to_lowercase())
            .collect();
        s.push_str(&format!(" --workload {}", names.join(",")));
    }
    if let Some(p) = &args.python_arg {
        s.push(' ');
        s.push_str(p);
    }
    if args.out != Path::new("target/bench") {
        s.push_str(&format!(" --out {}", args.out.display()));
    }
    if let Some(r) = args.reps {
        s.push_str(&format!(" --reps {r}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Args>> {
        parse_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn command_line() {
        let a = args(&[]).unwrap().unwrap();
        assert_eq!(a.workloads, vec![Workload::W1, Workload::W2]);
        assert_eq!(a.out, PathBuf::from("target/bench"));
        let a = args(&["--workload", "w2", "--out=x", "--reps", "2"])
            .unwrap()
            .unwrap();
        assert_eq!(a.workloads, vec![Workload::W2]);
        assert_eq!(
            command_text(&a),
            "cargo xtask bench --workload w2 --out x --reps 2"
        );
        assert!(args(&["--help"]).unwrap().is_none());
        let a = args(&["--workload", "all+w3", "--python"])
            .unwrap()
            .unwrap();
        assert_eq!(a.workloads, vec![Workload::W1, Workload::W2, Workload::W3]);
        // Python defaults to the small workloads.
        assert_eq!(a.python, vec![Workload::W1, Workload::W2]);
        assert_eq!(
            command_text(&a),
            "cargo xtask bench --workload w1,w2,w3 --python"
        );
        let a = args(&["-w", "w3", "--python=w2,w3"]).unwrap().unwrap();
        assert_eq!(a.python, vec![Workload::W3]);
        assert!(args(&["--python=w5"]).is_err());
        assert!(args(&["--reps", "0"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert!(args(&["--out"]).is_err());
    }
}
