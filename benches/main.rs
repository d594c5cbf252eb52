//! Benchmark harness for marketdb: runs the workloads of the quality spec (W1, W2) against
//! the raw rusqlite floor and the public async API, prints a table and writes
//! `{out}/report.md` and `{out}/report.json` (`docs/benchmarks.md` explains the figures).
//!
//! Usage: `marketdb-bench [--workload w1|w2|all] [--out target/bench] [--reps N]`
//! (normally through `cargo xtask bench`). Each workload runs in a fresh folder under
//! `{out}/tmp`, deleted afterwards; each measured run is a fresh child process of this
//! executable (`child.rs`), so one operation's leftovers never inflate the next one's peak
//! RSS. Floor and API runs alternate, repetition by repetition. Data generation and file
//! preparation are never timed.
//! It measures; it asserts nothing: a missed target is reported, never an exit code
//! (benchmarks are not tests).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod child;
mod floor;
mod ops;
mod report;
mod rss;
mod workload;

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use tokio::runtime::Runtime;

use child::Job;
use report::{Machine, Measured, Row, Target, Timed, WorkloadReport};
use rss::Mem;
use workload::{Scratch, Workload, thousands};

/// The spec's limit on the peak RSS of reading or exporting W2.
const W2_RSS_LIMIT_MIB: f64 = 250.0;

const USAGE: &str = "usage: marketdb-bench [--workload w1|w2|all] [--out DIR] [--reps N]

  --workload  which workload to run (default all): W1 = 50 symbols x 1 day of 1m,
              W2 = 100 symbols x 7 days of 1m
  --out       where report.md, report.json and the scratch folder go (default target/bench)
  --reps      repetitions per operation, median reported (default 5 for W1, 1 for W2)";

#[derive(Debug)]
struct Args {
    workloads: Vec<Workload>,
    out: PathBuf,
    reps: Option<usize>,
}

/// Parses the command line; `None` when help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>> {
    let mut parsed = Args {
        workloads: vec![Workload::W1, Workload::W2],
        out: PathBuf::from("target/bench"),
        reps: None,
    };
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
    let Some(args) = parse_args(raw.into_iter())? else {
        println!("{USAGE}");
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let machine = Machine::detect();
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run `cargo xtask bench` for meaningful figures");
    }
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let tmp = args.out.join("tmp");
    let mut reports = Vec::new();
    for &w in &args.workloads {
        let reps = args.reps.unwrap_or_else(|| w.default_reps());
        eprintln!(
            "{}: {} ({reps} run(s) per operation)",
            w.name(),
            w.describe()
        );
        let report = bench_workload(&rt, w, reps, &tmp)?;
        println!("\n{}", report::text_table(&report));
        reports.push(report);
    }
    let _ = fs::remove_dir(&tmp);
    let command = command_text(&args);
    let md = report::markdown(&machine, &command, &reports);
    let js = serde_json::to_string_pretty(&report::json(&machine, &command, &reports))?;
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
    if args.workloads.len() == 1 {
        s.push_str(&format!(
            " --workload {}",
            args.workloads[0].name().to_lowercase()
        ));
    }
    if args.out != Path::new("target/bench") {
        s.push_str(&format!(" --out {}", args.out.display()));
    }
    if let Some(r) = args.reps {
        s.push_str(&format!(" --reps {r}"));
    }
    s
}

/// One operation of a group: its label and one run (given the repetition number), which
/// returns the child's measurement.
type Op<'a> = (
    &'static str,
    Box<dyn FnMut(usize) -> Result<(Timed, Mem)> + 'a>,
);

/// Runs every operation of `ops` once per repetition, in turn (repetition 1 of each, then
/// repetition 2 of each...), so the floor and the API it is compared with see the same
/// machine conditions. Each run is its own process (see `child.rs`); the median time and
/// the largest peak are reported.
fn measure_group(reps: usize, mut ops: Vec<Op<'_>>) -> Result<Vec<Measured>> {
    let mut runs: Vec<Vec<Timed>> = vec![Vec::with_capacity(reps); ops.len()];
    let mut mems: Vec<Option<Mem>> = vec![None; ops.len()];
    for rep in 0..reps {
        for (i, (label, f)) in ops.iter_mut().enumerate() {
            let (t, mem) = f(rep).with_context(|| format!("{label} (run {})", rep + 1))?;
            eprintln!(
                "  {label:<36} run {}/{reps} {:>8.3} s {:>10} rows/s  CPU {:>6.2} s  peak RSS {:>4.0} MiB",
                rep + 1,
                t.secs,
                thousands(if t.secs > 0.0 {
                    (t.rows as f64 / t.secs) as u64
                } else {
                    0
                }),
                mem.cpu_secs,
                mem.peak_mib
            );
            runs[i].push(t);
            mems[i] = Some(mems[i].map_or(mem, |m| m.max(mem)));
        }
    }
    Ok(runs
        .into_iter()
        .zip(mems)
        .map(|(r, m)| Measured::from_runs(r, m.unwrap_or_default()))
        .collect())
}

fn check_rows(what: &str, m: &Measured, want: u64) -> Result<()> {
    if m.rows != want {
        bail!("{what}: {} rows, expected {want}", m.rows);
    }
    Ok(())
}

/// Takes the next result of a group.
fn next(it: &mut impl Iterator<Item = Measured>) -> Result<Measured> {
    it.next()
        .context("a benchmark group returned fewer results than operations")
}

/// Every operation of one workload, in a fresh scratch folder.
fn bench_workload(rt: &Runtime, w: Workload, reps: usize, tmp: &Path) -> Result<WorkloadReport> {
    let spec = w.spec()?;
    let want = w.rows();
    let scratch = Scratch::new(tmp, &w.name().to_lowercase())?;
    let rss_limit = (w == Workload::W2).then_some(W2_RSS_LIMIT_MIB);
    let mut notes = Vec::new();

    // Writes: the floor and store_data into fresh files with marketdb's schema, and the
    // ingest of Binance Vision daily files (written first, untimed).
    let vision = scratch.join("vision");
    let files = workload::write_vision_csvs(&spec, &vision)?;
    let csv_bytes: u64 = files
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    notes.push(format!(
        "ingest input: {} Binance Vision daily CSV files, {:.1} MB",
        files.len(),
        csv_bytes as f64 / 1e6
    ));
    let db_of = |stem: &str, rep: usize| scratch.join(&format!("{stem}-{rep}.db"));
    let mut writes = measure_group(
        reps,
        vec![
            (
                "store: floor",
                Box::new(|i| {
                    let db = db_of("floor", i);
                    let t = child::run(&Job::new("store_floor", w, &db));
                    remove_db(&db);
                    t
                }),
            ),
            (
                "store: store_data",
                Box::new(|i| {
                    let db = db_of("api", i);
                    let t = child::run(&Job::new("store_api", w, &db));
                    if i > 0 {
                        remove_db(&db);
                    }
                    t
                }),
            ),
            (
                "ingest: parse_file + store_data",
                Box::new(|i| {
                    let db = db_of("ingest", i);
                    let t = child::run(&Job::new("ingest", w, &db).with_path(&vision));
                    remove_db(&db);
                    t
                }),
            ),
        ],
    )?
    .into_iter();
    let m = next(&mut writes)?;
    check_rows("floor store", &m, want)?;
    let store_floor = Row::floor("store_floor", "store: raw rusqlite floor", m);
    let m = next(&mut writes)?;
    check_rows("store_data", &m, want)?;
    let store_api = Row::versus(
        "store_api",
        "store: store_data (1 call/symbol)",
        m,
        &store_floor,
        true,
        Some(Target::AtLeast(0.85)),
    );
    let ingest_api = Row::versus(
        "ingest_api",
        "ingest: parse_file + store_data",
        next(&mut writes)?,
        &store_floor,
        true,
        Some(Target::AtLeast(0.6)),
    );
    remove_path(&vision);

    // Reads and exports all use the file store_data wrote, checkpointed.
    let db = db_of("api", 0);
    rt.block_on(ops::checkpoint(&db))?;
    let plan = floor::read_plan(&db)?;
    if plan.contains("TEMP B-TREE") {
        eprintln!("warning: the floor read sorts ({plan}): its figure is too low");
    }
    notes.push(format!("floor read query plan: {plan}"));
    let db_mb = fs::metadata(&db).map_or(0.0, |m| m.len() as f64 / 1e6);
    notes.push(format!("database file read and exported: {db_mb:.1} MB"));
    let out = scratch.join("out");
    let db = db.as_path();
    let job = |op: &'static str, output: Option<&str>| job(op, w, db, output.map(|o| out.join(o)));

    // Reads, and the CSV and Parquet exports (compared with the floor's read).
    let mut reads = measure_group(
        reps,
        vec![
            ("read: floor", job("read_floor", None)),
            ("read: read_data", job("read_api", None)),
            ("read: scan (day chunks)", job("scan_api", None)),
            ("csv: export_to_csv", job("csv_api", Some("a.csv"))),
            (
                "parquet: export_to_parquet",
                job("parquet_api", Some("a.parquet")),
            ),
            ("read: read_data, mmap off", job("read_api_mmap_off", None)),
            (
                "read: scan (day chunks), mmap off",
                job("scan_api_mmap_off", None),
            ),
        ],
    )?
    .into_iter();
    let m = next(&mut reads)?;
    check_rows("floor read", &m, want)?;
    let read_floor = Row::floor("read_floor", "read: raw rusqlite floor", m);
    let read_target = Some(Target::AtLeast(0.85));
    let export_target = Some(Target::AtMost(3.0));
    let mut read_row = |key, op, target, throughput| -> Result<Row> {
        Ok(
            Row::versus(key, op, next(&mut reads)?, &read_floor, throughput, target)
                .with_rss_limit(rss_limit),
        )
    };
    let read_api = read_row("read_api", "read: read_data (all)", read_target, true)?;
    let scan_api = read_row("scan_api", "read: scan(ScanChunk::Day)", read_target, true)?;
    let csv_api = read_row("csv_api", "csv: export_to_csv", export_target, false)?;
    let parquet_api = read_row(
        "parquet_api",
        "parquet: export_to_parquet (zstd)",
        export_target,
        false,
    )?;
    let read_nommap = read_row(
        "read_api_mmap_off",
        "read: read_data, mmap_size=0",
        read_target,
        true,
    )?;
    let scan_nommap = read_row(
        "scan_api_mmap_off",
        "read: scan(Day), mmap_size=0",
        read_target,
        true,
    )?;

    // NumPy: the floor's hand-written export against export_to_numpy.
    let mut numpy = measure_group(
        reps,
        vec![
            ("numpy: floor", job("numpy_floor", Some("floor-npy"))),
            ("numpy: export_to_numpy", job("numpy_api", Some("npy"))),
            (
                "numpy: export_to_numpy, no fsync",
                job("numpy_api_nofsync", Some("npy")),
            ),
        ],
    )?
    .into_iter();
    let m = next(&mut numpy)?;
    check_rows("floor numpy", &m, want)?;
    let numpy_floor = Row::floor("numpy_floor", "numpy: floor read + write .npy", m);
    let numpy_target = Some(Target::AtMost(1.5));
    let numpy_api = Row::versus(
        "numpy_api",
        "numpy: export_to_numpy (default, fsync)",
        next(&mut numpy)?,
        &numpy_floor,
        false,
        numpy_target,
    )
    .with_rss_limit(rss_limit);
    let numpy_nosync = Row::versus(
        "numpy_api_nofsync",
        "numpy: export_to_numpy, with_fsync(false)",
        next(&mut numpy)?,
        &numpy_floor,
        false,
        numpy_target,
    )
    .with_rss_limit(rss_limit);

    let rows = vec![
        store_floor,
        store_api,
        ingest_api,
        read_floor,
        read_api,
        scan_api,
        read_nommap,
        scan_nommap,
        numpy_floor,
        numpy_api,
        numpy_nosync,
        csv_api,
        parquet_api,
    ];
    if rows.iter().any(|r| !r.m.mem.reset) {
        notes.push(
            "/proc/self/clear_refs could not be written: peak RSS figures are the process's \
             peak so far, not per operation"
                .to_owned(),
        );
    }
    drop(scratch);
    Ok(WorkloadReport {
        workload: w,
        reps,
        rows,
        notes,
    })
}

/// Removes a file or a folder, if present.
fn remove_path(p: &Path) {
    let _ = fs::remove_dir_all(p);
    let _ = fs::remove_file(p);
}

/// A run of child operation `op` on `db`, writing to `output` (cleared before and removed
/// after, so each run starts fresh and the disk does not fill up).
fn job<'a>(
    op: &'static str,
    w: Workload,
    db: &'a Path,
    output: Option<PathBuf>,
) -> Box<dyn FnMut(usize) -> Result<(Timed, Mem)> + 'a> {
    Box::new(move |_| {
        let mut j = Job::new(op, w, db);
        if let Some(o) = &output {
            remove_path(o);
            j = j.with_path(o);
        }
        let r = child::run(&j);
        if let Some(o) = &output {
            remove_path(o);
        }
        r
    })
}

/// Removes a database file and its WAL/SHM companions (ignoring absent ones).
fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = fs::remove_file(PathBuf::from(p));
    }
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
        assert!(args(&["--reps", "0"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert!(args(&["--out"]).is_err());
    }
}
