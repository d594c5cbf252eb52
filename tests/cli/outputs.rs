//! The hostile output matrix: every option that names a path the tool writes, found in the
//! CLI definition itself (the options `--help` lists under "Output:", for every command and
//! subcommand), run in every form that changes what it writes (CSV parts, gzip, ...) against
//! every hostile target kind: the database under three spellings, its `-wal`/`-shm`, a
//! device, a FIFO, a symlink to the database, a hardlink of it, another SQLite file,
//! `/proc/self/fd/1`; for folder outputs also those planted inside the folder at a path the
//! writer fills (a dataset partition, a NumPy day file, a kept download), and for CSV parts
//! at a part's name. Each run must fail with exit 1 and one `error:` line that names the
//! path, leave the target and the database as they were, and leave no temporary file.
//!
//! A writer the table below does not know makes the test fail, naming it: a new output
//! option is in the matrix from the day it is added.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Output,
    sync::{Arc, OnceLock},
};

use super::{bin, download, marketdb, ok, sha256_hex, stdout};

/// Where the hostile thing sits for one writer form.
#[derive(Clone, Debug)]
enum Shape {
    /// The option names a file.
    File,
    /// The option names a folder; the writer fills these paths inside it.
    Folder { inside: Vec<&'static str> },
    /// The option names a file split into parts; `sibling` is a part's name.
    Parts { sibling: &'static str },
}

/// One form of a writer: its arguments (without the output option), the output value's
/// file name when the form depends on it, and where hostile targets go.
#[derive(Clone, Debug)]
struct Form {
    label: String,
    args: Vec<String>,
    /// The output option's value for the non-direct kinds (a fresh name).
    out_name: &'static str,
    shape: Shape,
    /// Whether the command writes the database itself (demo, download): the database
    /// planted inside its output then changes legitimately, so that kind is not run.
    writes_db: bool,
}

/// The hostile kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hostile {
    Database,
    DatabaseDotSlash,
    DatabaseDotDot,
    Wal,
    Shm,
    Device,
    Fifo,
    LinkToDatabase,
    LinkToDevice,
    HardLink,
    OtherSqlite,
    ProcStdout,
}

const DIRECT_FILE: [Hostile; 11] = [
    Hostile::Database,
    Hostile::DatabaseDotSlash,
    Hostile::DatabaseDotDot,
    Hostile::Wal,
    Hostile::Shm,
    Hostile::Device,
    Hostile::Fifo,
    Hostile::LinkToDatabase,
    Hostile::HardLink,
    Hostile::OtherSqlite,
    Hostile::ProcStdout,
];
const DIRECT_FOLDER: [Hostile; 8] = [
    Hostile::Database,
    Hostile::DatabaseDotDot,
    Hostile::Device,
    Hostile::Fifo,
    Hostile::LinkToDatabase,
    Hostile::HardLink,
    Hostile::OtherSqlite,
    Hostile::ProcStdout,
];
/// Planted at a path the writer fills (inside a folder, or a part's name); `Database` here
/// means the database itself lives at that path.
const PLANTED: [Hostile; 6] = [
    Hostile::Database,
    Hostile::Fifo,
    Hostile::LinkToDatabase,
    Hostile::LinkToDevice,
    Hostile::HardLink,
    Hostile::OtherSqlite,
];

const DB: &str = "data/market.db";

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The sections of `--help` output: heading -> lines under it.
fn help_sections(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = line.trim_end_matches(':').to_owned();
        } else if !current.is_empty() && !line.trim().is_empty() {
            out.entry(current.clone())
                .or_default()
                .push(line.to_owned());
        }
    }
    out
}

fn help(cmd: &[String]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    args.push("--help");
    let o = marketdb(dir.path(), &args);
    ok(&o);
    stdout(&o)
}

/// Every (command path, output option) of the CLI, from `--help`.
fn output_options() -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let mut stack = vec![Vec::<String>::new()];
    while let Some(cmd) = stack.pop() {
        let sections = help_sections(&help(&cmd));
        for line in sections.get("Commands").into_iter().flatten() {
            // `  name  description`; wrapped description lines start deeper.
            if line.starts_with("   ") {
                continue;
            }
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.is_empty() || name == "help" {
                continue;
            }
            let mut sub = cmd.clone();
            sub.push(name.to_owned());
            stack.push(sub);
        }
        for line in sections.get("Output").into_iter().flatten() {
            if let Some(flag) = line
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .map(|w| w.trim_end_matches(','))
            {
                out.push((cmd.clone(), flag.to_owned()));
            }
        }
    }
    out.sort();
    out
}

fn export_base(format: &str) -> Vec<String> {
    strings(&[
        "export",
        format,
        "--symbols",
        "all",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-01",
        "--freq",
        "1m",
        "-q",
    ])
}

/// The forms of each known writer; `None` for one this table does not know.
fn forms(cmd: &[String], option: &str, base_url: &str) -> Option<Vec<Form>> {
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let form = |label: &str, args: Vec<String>, out_name, shape, writes_db| Form {
        label: label.to_owned(),
        args,
        out_name,
        shape,
        writes_db,
    };
    let with = |mut base: Vec<String>, extra: &[&str]| {
        base.extend(strings(extra));
        base
    };
    Some(match (cmd.as_slice(), option) {
        (["export", "csv"], "--out") => vec![
            form("csv", export_base("csv"), "k.csv", Shape::File, false),
            form(
                "csv gzip",
                with(export_base("csv"), &["--compression", "gzip"]),
                "k.csv.gz",
                Shape::File,
                false,
            ),
            form(
                "csv parts",
                with(export_base("csv"), &["--part-rows", "1000"]),
                "k.csv",
                Shape::Parts {
                    sibling: "k_part_2.csv",
                },
                false,
            ),
            form(
                "csv gzip parts",
                with(export_base("csv"), &["--part-rows", "1000"]),
                "k.csv.gz",
                Shape::Parts {
                    sibling: "k_part_3.csv.gz",
                },
                false,
            ),
        ],
        (["export", "parquet"], "--out") => vec![
            form(
                "parquet",
                export_base("parquet"),
                "k.parquet",
                Shape::File,
                false,
            ),
            form(
                "parquet resampled",
                with(export_base("parquet"), &["--target-freq", "1h"]),
                "k.parquet",
                Shape::File,
                false,
            ),
        ],
        (["export", "hdf5"], "--out") => {
            vec![form(
                "hdf5",
                export_base("hdf5"),
                "k.h5",
                Shape::File,
                false,
            )]
        }
        (["export", "numpy"], "--out") => vec![form(
            "numpy",
            export_base("numpy"),
            "np",
            Shape::Folder {
                inside: vec!["1m/cls/20240101.npy", "manifest.json"],
            },
            false,
        )],
        (["export", "dataset"], "--out") => vec![
            form(
                "dataset",
                strings(&["export", "dataset", "-q"]),
                "lake",
                Shape::Folder {
                    inside: vec![
                        "klines/freq=1m/date=2024-01-01/part-0.parquet",
                        "_marketdb/state.json",
                    ],
                },
                false,
            ),
            form(
                "dataset klines 2024-01-01",
                strings(&[
                    "export",
                    "dataset",
                    "-q",
                    "--kinds",
                    "klines",
                    "--end",
                    "2024-01-01",
                ]),
                "lake",
                Shape::Folder {
                    inside: vec!["klines/freq=1m/date=2024-01-01/part-0.parquet"],
                },
                false,
            ),
        ],
        (["stats"], "--out") => vec![form(
            "stats",
            strings(&[
                "stats",
                "--symbols",
                "all",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-01",
                "--freq",
                "1m",
            ]),
            "s.csv",
            Shape::File,
            false,
        )],
        (["demo"], "--out") => vec![form(
            "demo",
            strings(&["demo", "--symbols", "1", "--days", "1", "-q"]),
            "np",
            Shape::Folder {
                inside: vec!["1m/cls/20240101.npy"],
            },
            true,
        )],
        (["download"], "--keep") => vec![form(
            "download",
            strings(&[
                "download",
                "--market",
                "spot",
                "--kind",
                "klines",
                "--symbols",
                "BTCUSDT",
                "--freq",
                "1h",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-01",
                "--source",
                "vision",
                "--retries",
                "0",
                "--backoff-ms",
                "5",
                "--timeout-secs",
                "5",
                "-q",
                "--base-url",
                base_url,
            ]),
            "kept",
            Shape::Folder {
                inside: vec!["data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01-01.zip"],
            },
            true,
        )],
        _ => return None,
    })
}

/// A demo database (2 symbols x 1 day of 1m) made once, copied into every case.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        ok(&marketdb(
            dir.path(),
            &["demo", "--symbols", "2", "--days", "1", "-q", "--out", "np"],
        ));
        let path = dir.path().join(DB);
        (dir, path)
    });
    path
}

/// What a path is, to tell whether a run touched it.
#[derive(Debug, PartialEq, Eq)]
enum Snapshot {
    Missing,
    Link(PathBuf),
    File(String),
    Folder,
    Other(String),
}

fn snapshot(p: &Path) -> Snapshot {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return Snapshot::Missing;
    };
    let t = m.file_type();
    if t.is_symlink() {
        Snapshot::Link(std::fs::read_link(p).unwrap())
    } else if t.is_file() {
        Snapshot::File(sha256_hex(p))
    } else if t.is_dir() {
        Snapshot::Folder
    } else {
        Snapshot::Other(format!("{t:?}"))
    }
}

fn mkfifo(p: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", p.display());
}

/// Plants `kind` at `at` (relative to `dir`, its folders created); returns the database
/// path the command must use (the template's copy, or `at` itself for `Database`).
fn plant(dir: &Path, at: &str, kind: Hostile) -> String {
    let p = dir.join(at);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    match kind {
        Hostile::Database => {
            std::fs::rename(dir.join(DB), &p).unwrap();
            return at.to_owned();
        }
        Hostile::Fifo => mkfifo(&p),
        Hostile::LinkToDatabase => std::os::unix::fs::symlink(dir.join(DB), &p).unwrap(),
        Hostile::LinkToDevice => std::os::unix::fs::symlink("/dev/null", &p).unwrap(),
        Hostile::HardLink => std::fs::hard_link(dir.join(DB), &p).unwrap(),
        Hostile::OtherSqlite => {
            std::fs::copy(dir.join(DB), &p).unwrap();
        }
        other => panic!("{other:?} is not planted"),
    }
    DB.to_owned()
}

/// The output value and database of a direct kind (the option's value itself is hostile).
fn direct(dir: &Path, kind: Hostile) -> (String, String) {
    let out = match kind {
        Hostile::Database => DB.to_owned(),
        Hostile::DatabaseDotSlash => format!("./{DB}"),
        Hostile::DatabaseDotDot => format!("data/../{DB}"),
        Hostile::Wal => format!("{DB}-wal"),
        Hostile::Shm => format!("{DB}-shm"),
        Hostile::Device => "/dev/null".to_owned(),
        Hostile::ProcStdout => "/proc/self/fd/1".to_owned(),
        Hostile::Fifo | Hostile::LinkToDatabase | Hostile::HardLink | Hostile::OtherSqlite => {
            plant(dir, "target.out", kind);
            "target.out".to_owned()
        }
        Hostile::LinkToDevice => unreachable!("planted only"),
    };
    (out, DB.to_owned())
}

/// What is wrong with `o` as a refusal naming `name`: exit 1 and one `error:` line on
/// stderr that names it, no panic (the rules of `fails_cleanly`, as a list).
fn refusal_problems(o: &Output, name: &str) -> Vec<String> {
    let err = super::stderr(o);
    let mut wrong = Vec::new();
    if o.status.code() != Some(1) {
        wrong.push(format!(
            "exit {:?} (stdout {:?})",
            o.status.code(),
            stdout(o).lines().next().unwrap_or_default()
        ));
    }
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 || !lines[0].starts_with("error: ") || !err.contains(name) {
        wrong.push(format!(
            "stderr {err:?} is not one error line naming {name:?}"
        ));
    }
    if ["panicked", "backtrace"].iter().any(|b| err.contains(b)) {
        wrong.push(format!("stderr {err:?} shows a panic"));
    }
    wrong
}

/// Runs one case with stdout and stderr as pipes (so `/proc/self/fd/1` is a pipe); a run
/// that outlives [`CASE_LIMIT`] (a writer blocked on a FIFO) is killed and reported.
fn run(dir: &Path, form: &Form, option: &str, out: &str, db: &str) -> Result<Output, String> {
    use std::io::Read;
    use std::process::Stdio;
    let mut args: Vec<&str> = form.args.iter().map(String::as_str).collect();
    args.extend([option, out, "--db", db]);
    let mut child = std::process::Command::new(bin())
        .current_dir(dir)
        .env("TMPDIR", dir.join("tmp"))
        .env_remove("RUST_LOG")
        .env_remove("MARKETDB_DB")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out_reader = drain(Box::new(child.stdout.take().unwrap()));
    let err_reader = drain(Box::new(child.stderr.take().unwrap()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CASE_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`marketdb {}` still ran after {CASE_LIMIT:?} (killed)",
                args.join(" ")
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    })
}

/// Longest a refused run may take (each is refused before or at its first file).
const CASE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The temporary files left anywhere under `root`.
fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().contains(".tmp-") {
                out.push(p);
            }
        }
    }
    out
}

/// A Vision tree of one daily 1h file for `download`.
fn vision() -> String {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut tree = download::Tree::default();
        download::add_file(
            &mut tree,
            "BTCUSDT",
            "2024-01-01",
            "daily",
            super::JAN1,
            24,
            download::Route::default(),
            true,
        );
        download::serve(Arc::new(tree))
    })
    .clone()
}

#[cfg(unix)]
#[test]
fn every_output_refuses_every_hostile_target() {
    let base_url = vision();
    let mut options = output_options();
    let expected = [
        ("export csv", "--out"),
        ("export dataset", "--out"),
        ("export numpy", "--out"),
        ("export parquet", "--out"),
        ("stats", "--out"),
        ("demo", "--out"),
        ("download", "--keep"),
    ];
    if options.is_empty() && std::env::var_os("MARKETDB_TEST_BIN").is_some() {
        // An older build whose help has no Output heading: run it over the known list.
        options = expected
            .iter()
            .map(|(c, o)| (strings(&c.split(' ').collect::<Vec<_>>()), (*o).to_owned()))
            .collect();
    }
    eprintln!("output options found in the CLI definition:");
    for (cmd, option) in &options {
        eprintln!("  marketdb {} {option}", cmd.join(" "));
    }
    for expected in expected {
        assert!(
            options
                .iter()
                .any(|(c, o)| c.join(" ") == expected.0 && o == expected.1),
            "the CLI no longer lists {expected:?} under Output"
        );
    }
    let mut runs = 0;
    let mut failures = Vec::new();
    for (cmd, option) in &options {
        let forms = forms(cmd, option, &base_url).unwrap_or_else(|| {
            panic!(
                "`marketdb {} {option}` writes files but this matrix does not know it: add \
                 its forms to `forms` in tests/cli/outputs.rs",
                cmd.join(" ")
            )
        });
        for form in &forms {
            let mut cases: Vec<(Hostile, Option<&str>)> = Vec::new();
            let direct_kinds: &[Hostile] = match form.shape {
                Shape::File | Shape::Parts { .. } => &DIRECT_FILE,
                Shape::Folder { .. } => &DIRECT_FOLDER,
            };
            cases.extend(direct_kinds.iter().map(|k| (*k, None)));
            let planted_at: Vec<&str> = match &form.shape {
                Shape::File => Vec::new(),
                Shape::Folder { inside } => inside.clone(),
                Shape::Parts { sibling } => vec![sibling],
            };
            for at in planted_at {
                for kind in PLANTED {
                    if kind == Hostile::Database && form.writes_db {
                        continue;
                    }
                    cases.push((kind, Some(at)));
                }
            }
            for (kind, at) in cases {
                let case = format!(
                    "marketdb {} {option} [{}], {kind:?}{}",
                    cmd.join(" "),
                    form.label,
                    at.map(|a| format!(" at {a}")).unwrap_or_default()
                );
                let dir = tempfile::tempdir().unwrap();
                std::fs::create_dir_all(dir.path().join("data")).unwrap();
                std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
                std::fs::copy(template(), dir.path().join(DB)).unwrap();
                let (out, db, target) = match at {
                    None => {
                        let (out, db) = direct(dir.path(), kind);
                        let target = if out.starts_with('/') {
                            PathBuf::from(&out)
                        } else {
                            dir.path().join(&out)
                        };
                        (out, db, target)
                    }
                    Some(at) => {
                        let rel = match form.shape {
                            Shape::Parts { .. } => at.to_owned(),
                            _ => format!("{}/{at}", form.out_name),
                        };
                        let db = plant(dir.path(), &rel, kind);
                        (form.out_name.to_owned(), db, dir.path().join(&rel))
                    }
                };
                let db_path = dir.path().join(&db);
                let (target_before, db_before) = (snapshot(&target), snapshot(&db_path));
                let o = run(dir.path(), form, option, &out, &db);
                let name = target.file_name().unwrap().to_string_lossy().into_owned();
                let mut wrong = Vec::new();
                match &o {
                    Err(e) => wrong.push(e.clone()),
                    Ok(o) => wrong.extend(refusal_problems(o, &name)),
                }
                if matches!(kind, Hostile::Wal | Hostile::Shm) {
                    // SQLite itself makes (and empties) these beside a WAL database it
                    // opens; the export must only never be written there.
                    let data = std::fs::read(&target).unwrap_or_default();
                    if data.starts_with(b"symbol") || data.starts_with(b"PAR1") {
                        wrong.push("export data in the target".to_owned());
                    }
                } else if kind == Hostile::HardLink && form.writes_db && at.is_some() {
                    // The planted target is a second name of the database, which this
                    // command writes (each write stamps the change record anew): only the
                    // refusal is checked.
                } else if snapshot(&target) != target_before {
                    wrong.push(format!(
                        "the target changed: {target_before:?} -> {:?}",
                        snapshot(&target)
                    ));
                }
                // Direct targets are checked before a command touches its database.
                if (!form.writes_db || at.is_none()) && snapshot(&db_path) != db_before {
                    wrong.push("the database changed".to_owned());
                }
                let temps = temp_files(dir.path());
                if !temps.is_empty() {
                    wrong.push(format!("temporary files left: {temps:?}"));
                }
                if !wrong.is_empty() {
                    failures.push(format!("{case}: {}", wrong.join("; ")));
                }
                runs += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} hostile runs went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{runs} hostile runs, every target untouched");
}
