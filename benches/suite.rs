//! Every operation of one workload, in a fresh scratch folder: the writes (the floor,
//! `store_data`, the in-process ingest and `marketdb ingest` as a subprocess), the reads and
//! exports with their floors, the inspections (summary, completeness check, 1m -> 1h
//! resample), and with `--python` the Python original's store, read and NumPy export on the
//! same files. Each measured run is its own process ([`measure_group`]); operations of a
//! group alternate repetition by repetition so the floor and what is compared with it see
//! the same machine conditions.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use tokio::runtime::Runtime;

use crate::{
    child::{self, Job},
    cli, floor, ops,
    python::Python,
    report::{Measured, Row, Target, Timed, WorkloadReport},
    rss::Mem,
    workload::{self, Scratch, Workload, thousands},
};

/// The spec's limit on the peak RSS of reading or exporting W2.
const W2_RSS_LIMIT_MIB: f64 = 250.0;

/// The spec's limit on the seconds of the W3 data summary (O(series), not O(rows)).
const W3_SUMMARY_SECS: f64 = 0.2;

/// The spec's floor on `marketdb ingest` against the Python original's store workflow.
const PYTHON_INGEST_SPEEDUP: f64 = 10.0;

/// The Python store runs at most this many times: it is the slow side, and its ratio target
/// (10x) does not need a tight median.
const PYTHON_MAX_REPS: usize = 3;

/// What a workload run may use besides the harness itself.
#[derive(Debug)]
pub struct Tools {
    /// The release `marketdb` binary (for the CLI ingest), if found.
    pub marketdb: Option<PathBuf>,
    /// The Python original, when this workload measures it.
    pub python: Option<Python>,
}

/// One operation of a group: its label and one run (given the repetition number), which
/// returns the measurement.
type Op<'a> = (
    &'static str,
    Box<dyn FnMut(usize) -> Result<(Timed, Mem)> + 'a>,
);

/// Runs every operation of `ops` once per repetition, in turn (repetition 1 of each, then
/// repetition 2 of each...). The median time and the largest peak are reported.
fn measure_group(reps: usize, mut ops: Vec<Op<'_>>) -> Result<Vec<Measured>> {
    let mut runs: Vec<Vec<Timed>> = vec![Vec::with_capacity(reps); ops.len()];
    let mut mems: Vec<Option<Mem>> = vec![None; ops.len()];
    for rep in 0..reps {
        for (i, (label, f)) in ops.iter_mut().enumerate() {
            let (t, mem) = f(rep).with_context(|| format!("{label} (run {})", rep + 1))?;
            eprintln!(
                "  {label:<36} run {}/{reps} {:>8.3} s {:>10} rows/s  CPU {:>6.2} s  \
                 peak {:>4.0} MiB (anon {:.0}, file {:.0})",
                rep + 1,
                t.secs,
                thousands(if t.secs > 0.0 {
                    (t.rows as f64 / t.secs) as u64
                } else {
                    0
                }),
                mem.cpu_secs,
                mem.peak_mib,
                mem.anon_peak_mib,
                mem.file_peak_mib,
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

/// The results of a group, taken in order and checked against the workload's rows.
struct Results {
    it: std::vec::IntoIter<Measured>,
    want: u64,
}

impl Results {
    fn new(measured: Vec<Measured>, want: u64) -> Results {
        Results {
            it: measured.into_iter(),
            want,
        }
    }

    fn next(&mut self, what: &str) -> Result<Measured> {
        let m = self
            .it
            .next()
            .context("a benchmark group returned fewer results than operations")?;
        if m.rows != self.want {
            bail!("{what}: {} rows, expected {}", m.rows, self.want);
        }
        Ok(m)
    }
}

/// Every operation of workload `w`.
pub fn bench_workload(
    rt: &Runtime,
    w: Workload,
    reps: usize,
    tmp: &Path,
    tools: &Tools,
) -> Result<WorkloadReport> {
    let spec = w.spec()?;
    let want = w.rows();
    let scratch = Scratch::new(tmp, &w.name().to_lowercase())?;
    let rss_limit = (w == Workload::W2).then_some(W2_RSS_LIMIT_MIB);
    let variants = w.with_variants();
    let mut notes = Vec::new();
    let mut rows = Vec::new();

    // Writes: the floor and store_data into fresh files with marketdb's schema, and the
    // ingests of Binance Vision daily files (written first, untimed).
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
    let mut writes: Vec<Op<'_>> = vec![
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
            "store: fastest floor",
            Box::new(|i| {
                let db = db_of("floor-fast", i);
                let t = child::run(&Job::new("store_floor_fast", w, &db));
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
    ];
    match &tools.marketdb {
        Some(bin) => writes.push((
            "ingest: marketdb ingest (CLI)",
            Box::new(|i| {
                let db = db_of("cli", i);
                let t = cli::ingest(bin, &db, &vision, want);
                remove_db(&db);
                t
            }),
        )),
        None => {
            eprintln!(
                "warning: no marketdb binary (set {} or build it with `cargo build --release \
                 -p marketdb`): the CLI ingest is not measured",
                cli::BIN_ENV
            );
            notes.push("the CLI ingest was not measured: no marketdb binary found".to_owned());
        }
    }
    let mut writes = Results::new(measure_group(reps, writes)?, want);
    let store_floor = Row::floor(
        "store_floor",
        "store: raw rusqlite floor",
        writes.next("floor store")?,
    );
    let store_fast = Row::floor(
        "store_floor_fast",
        "store: fastest SQLite floor (100-row statements, one transaction)",
        writes.next("fastest floor store")?,
    );
    let store_target = Some(Target::AtLeast(0.85));
    let store_api = Row::versus(
        "store_api",
        "store: store_data (1 call/symbol)",
        writes.next("store_data")?,
        &store_floor,
        true,
        store_target,
    );
    let ingest_api = Row::versus(
        "ingest_api",
        "ingest: parse_file + store_data",
        writes.next("ingest")?,
        &store_floor,
        true,
        Some(Target::AtLeast(0.6)),
    );
    // The CLI against the fastest floor: a user loading files compares marketdb with
    // the fastest SQLite load there is (and with DuckDB, below).
    let ingest_cli = match tools.marketdb {
        Some(_) => Some(Row::versus(
            "ingest_cli",
            "ingest: marketdb ingest (CLI)",
            writes.next("marketdb ingest")?,
            &store_fast,
            true,
            Some(Target::AtLeast(0.9)),
        )),
        None => None,
    };

    // The Python original on the same files: its store into its own file (1.9 schema),
    // then its read and export of that file.
    let python = match &tools.python {
        Some(py) => {
            let py_reps = reps.min(PYTHON_MAX_REPS);
            let py_db = db_of("python", 0);
            let out = scratch.join("python-npy");
            let stores: Vec<Op<'_>> = vec![(
                "python: csv + MarketDB.store_data",
                Box::new(|i| {
                    let db = db_of("python", i);
                    remove_db(&db);
                    let t = py.run("store", w, &db, Some(("--vision", &vision)));
                    if i > 0 {
                        remove_db(&db);
                    }
                    t
                }),
            )];
            let mut r = Results::new(measure_group(py_reps, stores)?, want);
            let store = Row::python(
                "python_store",
                "python: csv + MarketDB.store_data",
                r.next("python store")?,
            );
            // One run each of the rest: no target rides on them, and every Python process
            // spends seconds importing pandas, which would keep W1 from staying short.
            let rest: Vec<Op<'_>> = vec![
                (
                    "python: MarketDB.read_data",
                    Box::new(|_| py.run("read", w, &py_db, None)),
                ),
                (
                    "python: MarketDB.export_to_files",
                    Box::new(|_| {
                        remove_path(&out);
                        let t = py.run("numpy", w, &py_db, Some(("--out", &out)));
                        remove_path(&out);
                        t
                    }),
                ),
            ];
            let mut r = Results::new(measure_group(1, rest)?, want);
            let duck_db = scratch.join("duckdb.duckdb");
            let duck: Vec<Op<'_>> = vec![(
                "duckdb: CREATE TABLE AS SELECT * FROM read_csv(...)",
                Box::new(|i| {
                    remove_path(&duck_db);
                    let t = py.run("duckdb", w, &duck_db, Some(("--vision", &vision)));
                    if i + 1 < py_reps {
                        remove_path(&duck_db);
                    }
                    t
                }),
            )];
            let mut d = Results::new(measure_group(py_reps, duck)?, want);
            let duckdb = Row::reference(
                "duckdb_read_csv",
                "duckdb: read_csv of the same files into a table",
                d.next("duckdb read_csv")?,
            );
            remove_path(&duck_db);
            let read = Row::python(
                "python_read",
                "python: MarketDB.read_data",
                r.next("python read")?,
            );
            let numpy = Row::python(
                "python_numpy",
                "python: MarketDB.export_to_files",
                r.next("python numpy")?,
            );
            // The script ends each detail with the versions it ran with.
            let versions = numpy.m.detail.rsplit_once("; ").map_or("", |(_, v)| v);
            notes.push(format!(
                "python: cryptoservice 1.9.0 (store {py_reps} run(s), read and export 1; \
                 {versions}) \
                 writes its own file with its own schema (rowid table, 4 secondary indexes), \
                 then reads and exports that file"
            ));
            remove_db(&py_db);
            Some([store, read, numpy, duckdb])
        }
        None => None,
    };
    let py_row = |key: &str| python.iter().flatten().find(|r| r.key == key);
    if let (Some(cli), Some(duck), Some(py)) = (
        ingest_cli.as_ref(),
        py_row("duckdb_read_csv"),
        py_row("python_store"),
    ) {
        let r = |a: &Row, b: &Row| safe_ratio(a.m.rows_per_sec(), b.m.rows_per_sec());
        notes.push(format!(
            "ingest of the same files, throughput ratios: marketdb ingest / DuckDB read_csv = \
             {:.2}; marketdb ingest / Python original = {:.1}; fastest SQLite floor / DuckDB = \
             {:.2}",
            r(cli, duck),
            r(cli, py),
            r(&store_fast, duck)
        ));
    }
    rows.push(store_floor);
    rows.push(store_fast);
    rows.push(store_api.with_python(py_row("python_store"), None));
    rows.push(ingest_api.with_python(py_row("python_store"), None));
    if let Some(cli) = ingest_cli {
        rows.push(cli.with_python(
            py_row("python_store"),
            Some(Target::AtLeast(PYTHON_INGEST_SPEEDUP)),
        ));
    }
    remove_path(&vision);

    // Reads, inspections and exports all use the file store_data wrote, checkpointed.
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
    let mut group: Vec<Op<'_>> = vec![
        ("read: floor", job("read_floor", None)),
        ("read: read_data", job("read_api", None)),
        ("read: scan (day chunks)", job("scan_api", None)),
        (
            "parquet: export_to_parquet",
            job("parquet_api", Some("a.parquet")),
        ),
    ];
    if variants {
        group.extend([
            ("csv: export_to_csv", job("csv_api", Some("a.csv"))),
            ("read: read_data, mmap off", job("read_api_mmap_off", None)),
            (
                "read: scan (day chunks), mmap off",
                job("scan_api_mmap_off", None),
            ),
            ("dataset: zstd", job("dataset_zstd", Some("ds-zstd"))),
            ("dataset: snappy", job("dataset_snappy", Some("ds-snappy"))),
            ("dataset: lz4", job("dataset_lz4", Some("ds-lz4"))),
        ] as [Op<'_>; 6]);
    }
    let mut reads = Results::new(measure_group(reps, group)?, want);
    let read_floor = Row::floor(
        "read_floor",
        "read: raw rusqlite floor",
        reads.next("floor read")?,
    );
    let read_target = Some(Target::AtLeast(0.85));
    let export_target = Some(Target::AtMost(3.0));
    let mut read_row = |key, op, target, throughput| -> Result<Row> {
        Ok(
            Row::versus(key, op, reads.next(op)?, &read_floor, throughput, target)
                .with_rss_limit(rss_limit),
        )
    };
    let read_api = read_row("read_api", "read: read_data (all)", read_target, true)?
        .with_python(py_row("python_read"), None);
    let scan_api = read_row("scan_api", "read: scan(ScanChunk::Day)", read_target, true)?;
    let parquet_api = read_row(
        "parquet_api",
        "parquet: export_to_parquet (zstd)",
        export_target,
        false,
    )?;
    let mut read_variants = Vec::new();
    let mut csv_api = None;
    if variants {
        csv_api = Some(read_row(
            "csv_api",
            "csv: export_to_csv",
            export_target,
            false,
        )?);
        read_variants.push(read_row(
            "read_api_mmap_off",
            "read: read_data, mmap_size=0",
            read_target,
            true,
        )?);
        read_variants.push(read_row(
            "scan_api_mmap_off",
            "read: scan(Day), mmap_size=0",
            read_target,
            true,
        )?);
        for (key, op) in [
            ("dataset_zstd", "dataset: export_dataset klines (zstd)"),
            ("dataset_snappy", "dataset: export_dataset klines (snappy)"),
            ("dataset_lz4", "dataset: export_dataset klines (lz4)"),
        ] {
            read_variants.push(read_row(key, op, None, false)?);
        }
    }
    rows.extend([read_floor, read_api, scan_api]);
    rows.extend(read_variants);

    // Inspections: no floor; the spec bounds W3's summary in seconds.
    let group: Vec<Op<'_>> = vec![
        ("summary: get_data_summary", job("summary_api", None)),
        ("check: check_completeness", job("check_api", None)),
        ("resample: 1m -> 1h", job("resample_api", None)),
    ];
    let mut inspect = Results::new(measure_group(reps, group)?, want);
    let summary_limit = (w == Workload::W3).then_some(W3_SUMMARY_SECS);
    rows.push(
        Row::marketdb(
            "summary_api",
            "summary: get_data_summary",
            inspect.next("summary")?,
        )
        .with_secs_limit(summary_limit),
    );
    rows.push(Row::marketdb(
        "check_api",
        "check: check_completeness (all)",
        inspect.next("check")?,
    ));
    rows.push(Row::marketdb(
        "resample_api",
        "resample: 1m -> 1h (all)",
        inspect.next("resample")?,
    ));

    // NumPy: the floor's hand-written export against export_to_numpy.
    let mut group: Vec<Op<'_>> = vec![
        ("numpy: floor", job("numpy_floor", Some("floor-npy"))),
        ("numpy: export_to_numpy", job("numpy_api", Some("npy"))),
    ];
    if variants {
        group.push((
            "numpy: export_to_numpy, no fsync",
            job("numpy_api_nofsync", Some("npy")),
        ));
    }
    let mut numpy = Results::new(measure_group(reps, group)?, want);
    let numpy_floor = Row::floor(
        "numpy_floor",
        "numpy: floor read + write .npy",
        numpy.next("floor numpy")?,
    );
    let numpy_target = Some(Target::AtMost(1.5));
    let numpy_api = Row::versus(
        "numpy_api",
        "numpy: export_to_numpy (default, fsync)",
        numpy.next("export_to_numpy")?,
        &numpy_floor,
        false,
        numpy_target,
    )
    .with_rss_limit(rss_limit)
    .with_python(py_row("python_numpy"), None);
    rows.extend([numpy_floor.clone(), numpy_api]);
    if variants {
        rows.push(
            Row::versus(
                "numpy_api_nofsync",
                "numpy: export_to_numpy, with_fsync(false)",
                numpy.next("export_to_numpy without fsync")?,
                &numpy_floor,
                false,
                numpy_target,
            )
            .with_rss_limit(rss_limit),
        );
    }
    rows.extend(csv_api);
    rows.push(parquet_api);
    rows.extend(python.into_iter().flatten());

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

/// `a / b`, 0 when `b` is 0.
fn safe_ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}
