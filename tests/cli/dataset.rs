//! `export dataset` and `import dataset` end to end: a run killed at random points leaves
//! only whole partition files under their final names and a lock the next run names, a
//! re-run completes the dataset to what an uninterrupted run writes, and an import of it
//! reproduces the tables; an import stopped by SIGTERM leaves whole partitions only, and a
//! bad partition fails the run while the others are imported.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{json, marketdb, ok};

/// Every file below `root` with its path relative to it.
fn files(root: &Path) -> Vec<(String, std::path::PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, p));
            }
        }
    }
    out.sort();
    out
}

/// Whether a Parquet file is whole: magic at both ends and a footer that fits.
fn whole_parquet(path: &Path) -> bool {
    let b = std::fs::read(path).unwrap();
    if b.len() < 12 || &b[..4] != b"PAR1" || &b[b.len() - 4..] != b"PAR1" {
        return false;
    }
    let footer = u32::from_le_bytes(b[b.len() - 8..b.len() - 4].try_into().unwrap()) as usize;
    footer + 12 <= b.len()
}

#[test]
fn dataset_export_killed_midway_stays_readable_and_a_rerun_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&marketdb(
        d,
        &[
            "demo",
            "--symbols",
            "12",
            "--days",
            "12",
            "-q",
            "--out",
            "np",
        ],
    ));
    let reference = d.join("reference");
    ok(&marketdb(
        d,
        &[
            "export",
            "dataset",
            "--out",
            reference.to_str().unwrap(),
            "-q",
        ],
    ));
    // Without each partition's change-record print: it names the stamps of the database
    // that published it, so another node's prints differ for the same rows.
    let state = |root: &Path| -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("_marketdb/state.json")).unwrap())
                .unwrap();
        if let Some(parts) = v["partitions"].as_object_mut() {
            for p in parts.values_mut() {
                if let Some(p) = p.as_object_mut() {
                    p.remove("record");
                }
            }
        }
        v
    };
    let want = state(&reference)["partitions"].clone();
    // Eight days of klines, open interest and ratios, and funding months at least.
    let n = want.as_object().unwrap().len();
    assert!(n > 8 * 3, "{n} partitions");

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = seed | 1;
    for round in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = 20 + x % 400;
        let out = d.join(format!("ds{round}"));
        let mut child = Command::new(super::bin())
            .current_dir(d)
            .env("MARKETDB_DB", "data/market.db")
            .args(["export", "dataset", "--out", out.to_str().unwrap(), "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().unwrap();
        let context = format!("seed {seed}, round {round}, killed after {delay} ms");
        // Only whole files under final names; temporary names are hidden from readers.
        for (rel, path) in files(&out) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".parquet") {
                assert!(whole_parquet(&path), "{context}: {rel} is not whole");
                assert!(!name.starts_with('.'), "{context}: {rel}");
            } else {
                assert!(
                    name.starts_with('.')
                        || rel == "_marketdb/state.json"
                        || rel == "_marketdb/lock",
                    "{context}: unexpected {rel}"
                );
            }
        }
        // A lock left by the killed export is named; --break-lock removes it.
        let o = marketdb(
            d,
            &["export", "dataset", "--out", out.to_str().unwrap(), "-q"],
        );
        if !o.status.success() {
            let err = super::stderr(&o);
            assert!(
                err.contains("a lock left by an export that is no longer running")
                    && err.contains("--break-lock"),
                "{context}: {err}"
            );
            ok(&marketdb(
                d,
                &[
                    "export",
                    "dataset",
                    "--out",
                    out.to_str().unwrap(),
                    "-q",
                    "--break-lock",
                ],
            ));
        }
        assert_eq!(state(&out)["partitions"], want, "{context}");
        let temps: Vec<String> = files(&out)
            .into_iter()
            .map(|(rel, _)| rel)
            .filter(|rel| rel.rsplit('/').next().unwrap().starts_with('.'))
            .collect();
        assert!(temps.is_empty(), "{context}: {temps:?}");
    }

    // Import into an empty database, twice: the second changes nothing.
    let b = d.join("b.db");
    let import = |args: &[&str]| {
        Command::new(super::bin())
            .current_dir(d)
            .env("MARKETDB_DB", &b)
            .args(args)
            .output()
            .unwrap()
    };
    let o = import(&["import", "dataset", reference.to_str().unwrap(), "--json"]);
    ok(&o);
    assert_eq!(json(&o)["imported"].as_array().unwrap().len(), n);
    let o = import(&["import", "dataset", reference.to_str().unwrap(), "--json"]);
    ok(&o);
    assert_eq!(json(&o)["imported"].as_array().unwrap().len(), 0);
    let b_out = d.join("b_dataset");
    ok(&import(&[
        "export",
        "dataset",
        "--out",
        b_out.to_str().unwrap(),
        "-q",
    ]));
    assert_eq!(
        state(&b_out)["partitions"],
        want,
        "node B holds what node A published"
    );
}

/// Bars per (symbol, day) of the 1m table of `db`.
fn bars_per_symbol_day(db: &Path) -> Vec<i64> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut stmt = c
        .prepare(
            "SELECT COUNT(*) FROM market_data WHERE freq = '1m' \
             GROUP BY symbol, timestamp / 86400000",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn an_import_stopped_by_sigterm_leaves_whole_partitions_and_a_bad_one_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&marketdb(
        d,
        &[
            "demo",
            "--symbols",
            "20",
            "--days",
            "12",
            "-q",
            "--out",
            "np",
        ],
    ));
    ok(&marketdb(d, &["export", "dataset", "--out", "lake", "-q"]));
    let b = d.join("b.db");
    let import = |extra: &[&str]| {
        let mut args = vec!["import", "dataset", "lake"];
        args.extend_from_slice(extra);
        Command::new(super::bin())
            .current_dir(d)
            .env("MARKETDB_DB", &b)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = import(&["-q"]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (out, took) = super::terminate_and_wait(child, std::time::Duration::from_secs(60));
    let code = out.status.code();
    eprintln!("import ended {took:?} after SIGTERM, exit {code:?}");
    assert!(
        code == Some(143) || code == Some(0),
        "exit {code:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if code == Some(143) {
        // Whole partitions only: each symbol-day has all its bars or none.
        for n in bars_per_symbol_day(&b) {
            assert_eq!(n, 1440, "a partition was half imported");
        }
    }
    // The next run completes it.
    let o = import(&["--json"]).wait_with_output().unwrap();
    ok(&o);

    // A damaged partition among the others: it is named, the others are imported, exit 1.
    let lake = d.join("lake");
    let victim = lake.join("open_interest/date=2024-01-05/part-0.parquet");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 3]).unwrap();
    let c = d.join("c.db");
    let o = Command::new(super::bin())
        .current_dir(d)
        .env("MARKETDB_DB", &c)
        .args(["import", "dataset", "lake", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = json(&o);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["partition"], "open_interest/date=2024-01-05");
    let total = std::fs::read_dir(lake.join("klines/freq=1m"))
        .unwrap()
        .count();
    assert!(
        report["imported"].as_array().unwrap().len() > total,
        "{report}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("partition open_interest/date=2024-01-05 skipped"),
        "{err}"
    );
}
