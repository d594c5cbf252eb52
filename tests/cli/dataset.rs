//! `export dataset` and `import dataset` end to end: a run killed at random points leaves
//! only whole partition files under their final names, a re-run completes the dataset to
//! what an uninterrupted run writes, and an import of it reproduces the tables.

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
    let state = |root: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(root.join("_marketdb/state.json")).unwrap()).unwrap()
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
                    name.starts_with('.') || rel == "_marketdb/state.json",
                    "{context}: unexpected {rel}"
                );
            }
        }
        ok(&marketdb(
            d,
            &["export", "dataset", "--out", out.to_str().unwrap(), "-q"],
        ));
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
