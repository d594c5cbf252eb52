//! One measured operation per process. The harness re-runs its own executable with the
//! hidden `--child OP` arguments ([`run`]); the child ([`serve`]) performs that one
//! operation under a memory probe and prints one JSON line (rows, seconds, detail, memory).
//!
//! Why: memory a finished operation freed stays resident in the allocator's arenas, so
//! measuring in one long process inflates every later operation's peak RSS (observed:
//! the RSS at the start of a phase climbed from 40 to 250 MiB over a W2 run). A fresh
//! process per operation is also what a user of `marketdb export` gets. Setup that must
//! not be timed (creating the schema, listing files) happens in the child before the
//! probe starts.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use marketdb::export::ParquetCompression;
use serde_json::{Value, json};

use crate::{
    floor,
    ops::{self, Export, Mmap},
    report::Timed,
    rss::{Mem, Probe},
    workload::Workload,
};

/// What a child is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The operation key (`store_floor`, `read_api`...; see [`serve`]).
    pub op: &'static str,
    pub workload: Workload,
    /// The database to write or read.
    pub db: PathBuf,
    /// The export target, or the folder of Binance Vision files for `ingest`.
    pub path: Option<PathBuf>,
}

impl Job {
    pub fn new(op: &'static str, workload: Workload, db: &Path) -> Job {
        Job {
            op,
            workload,
            db: db.to_path_buf(),
            path: None,
        }
    }

    pub fn with_path(mut self, path: &Path) -> Job {
        self.path = Some(path.to_path_buf());
        self
    }
}

/// Runs `job` in a child process and returns what it measured.
pub fn run(job: &Job) -> Result<(Timed, Mem)> {
    let exe = std::env::current_exe().context("cannot find the harness executable")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "--child",
        job.op,
        "--workload",
        &job.workload.name().to_lowercase(),
    ])
    .arg("--db")
    .arg(&job.db);
    if let Some(p) = &job.path {
        cmd.arg("--path").arg(p);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start the child for {}", job.op))?;
    if !out.status.success() {
        bail!("the child for {} failed ({})", job.op, out.status);
    }
    parse_result(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("the child for {}", job.op))
}

/// Reads the result line of a measured process (the last line of `stdout` that starts with
/// `{`): `rows`, `secs`, `detail` and the `mem` object. The Python side prints the same
/// shape (`scripts/bench_python.py`).
pub fn parse_result(stdout: &str) -> Result<(Timed, Mem)> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("printed no result line")?;
    let v: Value = serde_json::from_str(line).with_context(|| format!("printed {line:?}"))?;
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let m = v.get("mem").cloned().unwrap_or(Value::Null);
    let rows = v
        .get("rows")
        .and_then(Value::as_u64)
        .with_context(|| format!("no row count in {line:?}"))?;
    let timed = Timed::new(rows, num(&v, "secs")).with_detail(
        v.get("detail")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    );
    let mem = Mem {
        base_mib: num(&m, "base_mib"),
        peak_mib: num(&m, "peak_mib"),
        anon_peak_mib: num(&m, "anon_peak_mib"),
        file_peak_mib: num(&m, "file_peak_mib"),
        reset: m.get("reset").and_then(Value::as_bool).unwrap_or(false),
        cpu_secs: num(&m, "cpu_secs"),
    };
    Ok((timed, mem))
}

/// The sorted `.csv` files of `dir`.
fn csv_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    Ok(files)
}

/// The child side: parses `--child OP --workload W --db PATH [--path PATH]`, performs the
/// operation, prints the JSON result line.
pub fn serve(args: &[String]) -> Result<()> {
    let mut it = args.iter();
    let (mut op, mut workload, mut db, mut path) = (None, None, None, None);
    while let Some(a) = it.next() {
        let v = it.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--child" => op = Some(v.clone()),
            "--workload" => workload = Workload::parse_list(v)?.first().copied(),
            "--db" => db = Some(PathBuf::from(v)),
            "--path" => path = Some(PathBuf::from(v)),
            other => bail!("unknown child argument {other:?}"),
        }
    }
    let (Some(op), Some(w), Some(db)) = (op, workload, db) else {
        bail!("a child needs --child, --workload and --db");
    };
    let spec = w.spec()?;
    let (range, want) = (spec.range, w.rows());
    let path = || path.clone().context("this operation needs --path");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    // Untimed setup, before the probe.
    let files = match op.as_str() {
        "store_floor" | "store_floor_fast" => {
            rt.block_on(ops::create_schema(&db))?;
            Vec::new()
        }
        "ingest" => csv_files(&path()?)?,
        _ => Vec::new(),
    };
    let probe = Probe::start();
    let export = |kind| rt.block_on(ops::export(&db, range, kind, &path()?, want));
    let timed = match op.as_str() {
        "store_floor" => floor::store(&db, &spec),
        "store_floor_fast" => floor::store_fast(&db, &spec),
        "store_api" => rt.block_on(ops::store(&db, &spec)),
        "ingest" => rt.block_on(ops::ingest(&files, &db, want)),
        "read_floor" => floor::read(&db),
        "read_api" => rt.block_on(ops::read(&db, range, want, Mmap::Default)),
        "read_api_mmap_off" => rt.block_on(ops::read(&db, range, want, Mmap::Off)),
        "summary_api" => rt.block_on(ops::summary(&db, want)),
        "check_api" => rt.block_on(ops::check(&db, range, want)),
        "resample_api" => rt.block_on(ops::resample(&db, range, want)),
        "scan_api" => rt.block_on(ops::scan_days(&db, range, want, Mmap::Default)),
        "scan_api_mmap_off" => rt.block_on(ops::scan_days(&db, range, want, Mmap::Off)),
        "numpy_floor" => floor::numpy(&db, &spec.symbols, range, &path()?),
        "numpy_api" => export(Export::Numpy { fsync: true }),
        "numpy_api_nofsync" => export(Export::Numpy { fsync: false }),
        "csv_api" => export(Export::Csv),
        "parquet_api" => export(Export::Parquet),
        "dataset_zstd" => export(Export::Dataset(ParquetCompression::Zstd)),
        "dataset_snappy" => export(Export::Dataset(ParquetCompression::Snappy)),
        "dataset_lz4" => export(Export::Dataset(ParquetCompression::Lz4)),
        other => bail!("unknown operation {other:?}"),
    }?;
    let mem = probe.finish();
    drop(rt);
    let line = json!({
        "rows": timed.rows,
        "secs": timed.secs,
        "detail": timed.detail,
        "mem": {
            "base_mib": mem.base_mib,
            "peak_mib": mem.peak_mib,
            "anon_peak_mib": mem.anon_peak_mib,
            "file_peak_mib": mem.file_peak_mib,
            "reset": mem.reset,
            "cpu_secs": mem.cpu_secs,
        },
    });
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines() {
        let out = "log line\n{\"rows\": 72000, \"secs\": 1.5, \"detail\": \"x\", \"mem\": \
                   {\"base_mib\": 60.0, \"peak_mib\": 120.5, \"anon_peak_mib\": 100.0, \
                   \"file_peak_mib\": 20.0, \"reset\": true, \"cpu_secs\": 1.4}}\n";
        let (t, m) = parse_result(out).unwrap();
        assert_eq!((t.rows, t.secs, t.detail.as_str()), (72_000, 1.5, "x"));
        assert_eq!(
            (m.peak_mib, m.anon_peak_mib, m.file_peak_mib),
            (120.5, 100.0, 20.0)
        );
        assert!(m.reset);
        assert!(parse_result("no json here\n").is_err());
        assert!(parse_result("{\"secs\": 1.0}").is_err());
        assert!(parse_result("{not json").is_err());
    }
}
