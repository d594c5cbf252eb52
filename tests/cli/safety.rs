//! Data safety of the CLI: output paths that must never be written (the database, SQLite
//! files, links, FIFOs, devices), `--out -`, demo's own database, read-only commands that
//! never take the write lock or change a file, interrupted and failed exports that leave no
//! temporary file, and `doctor` maintenance that says what it did.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use rusqlite::Connection;

use super::{
    JAN1, bin, dump_all, fails_cleanly, json, kline_line, marketdb, ok, sha256_hex, stderr, stdout,
};

/// A demo database at `data/market.db` (the helper's `MARKETDB_DB`) with 2 symbols x 1 day.
fn demo_db() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(&marketdb(
        dir.path(),
        &["demo", "--symbols", "2", "--days", "1", "-q", "--out", "np"],
    ));
    dir
}

fn export_args<'a>(format: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
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
        "--out",
        out,
        "-q",
    ]
}

fn stats_args(out: &str) -> Vec<&str> {
    vec![
        "stats",
        "--symbols",
        "all",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-01",
        "--freq",
        "1m",
        "--out",
        out,
    ]
}

/// Every file under `root`.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The hidden temporary files left anywhere under `root`.
fn temp_files(root: &Path) -> Vec<PathBuf> {
    files_under(root)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp-"))
        .collect()
}

#[test]
fn an_export_never_overwrites_the_database_or_any_sqlite_file() {
    let dir = demo_db();
    let db = dir.path().join("data/market.db");
    let before = dump_all(&db);
    let copy = dir.path().join("copy.sqlite");
    std::fs::copy(&db, &copy).unwrap();
    let copy_sum = sha256_hex(&copy);
    #[cfg(unix)]
    std::os::unix::fs::symlink("data/market.db", dir.path().join("link.csv")).unwrap();
    for out in [
        "data/market.db",
        "./data/../data/market.db",
        "data/market.db-wal",
        "link.csv",
    ] {
        for args in [
            export_args("csv", out),
            export_args("parquet", out),
            stats_args(out),
        ] {
            let o = marketdb(dir.path(), &args);
            fails_cleanly(&o, 1, &["is the open database"]);
        }
    }
    for args in [export_args("csv", "copy.sqlite"), stats_args("copy.sqlite")] {
        fails_cleanly(&marketdb(dir.path(), &args), 1, &["is a SQLite database"]);
    }
    fails_cleanly(
        &marketdb(dir.path(), &export_args("numpy", "data")),
        1,
        &["not a marketdb export"],
    );
    assert_eq!(dump_all(&db), before, "the database is unchanged");
    assert_eq!(sha256_hex(&copy), copy_sum);
    #[cfg(unix)]
    assert!(
        std::fs::symlink_metadata(dir.path().join("link.csv"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        temp_files(dir.path()).is_empty(),
        "{:?}",
        temp_files(dir.path())
    );
}

#[cfg(unix)]
#[test]
fn links_are_written_through_and_special_files_refused() {
    use std::os::unix::fs::FileTypeExt;
    let dir = demo_db();
    // A link to a regular file: the target gets the export, the link stays a link.
    std::fs::write(dir.path().join("target.csv"), "old\n").unwrap();
    std::os::unix::fs::symlink("target.csv", dir.path().join("link.csv")).unwrap();
    let o = marketdb(dir.path(), &export_args("csv", "link.csv"));
    ok(&o);
    assert!(
        stdout(&o).contains("replaced the existing file"),
        "{}",
        stdout(&o)
    );
    let link = std::fs::symlink_metadata(dir.path().join("link.csv")).unwrap();
    assert!(link.file_type().is_symlink());
    let text = std::fs::read_to_string(dir.path().join("target.csv")).unwrap();
    assert!(text.starts_with("symbol,timestamp,datetime,"), "{text}");
    assert_eq!(text.lines().count(), 1 + 2 * 1440);

    // A FIFO stays a FIFO (and nothing blocks on it).
    let fifo = dir.path().join("pipe.csv");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        fails_cleanly(
            &marketdb(dir.path(), &export_args("csv", "pipe.csv")),
            1,
            &["is a FIFO"],
        );
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );
    } else {
        eprintln!("mkfifo is not available: FIFO case skipped");
    }
    // A character device, as root or not.
    for args in [export_args("parquet", "/dev/null"), stats_args("/dev/null")] {
        fails_cleanly(
            &marketdb(dir.path(), &args),
            1,
            &["is a character device", "'-' for stdout"],
        );
    }
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // A folder where a file is expected.
    fails_cleanly(
        &marketdb(dir.path(), &export_args("csv", "np")),
        1,
        &["is a folder"],
    );
    // A numpy export over a file.
    fails_cleanly(
        &marketdb(dir.path(), &export_args("numpy", "target.csv")),
        1,
        &["is a regular file"],
    );
}

#[test]
fn out_dash_streams_to_stdout_and_writes_no_file() {
    let dir = demo_db();
    let o = marketdb(dir.path(), &export_args("csv", "-"));
    ok(&o);
    let text = stdout(&o);
    assert!(
        text.starts_with("symbol,timestamp,datetime,opn,"),
        "{}",
        &text[..80.min(text.len())]
    );
    assert_eq!(text.lines().count(), 1 + 2 * 1440, "only the CSV on stdout");
    assert!(!dir.path().join("-").exists());

    let o = marketdb(dir.path(), &export_args("parquet", "-"));
    ok(&o);
    let bytes = &o.stdout;
    assert!(bytes.len() > 8 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    assert!(!dir.path().join("-").exists());

    let o = marketdb(dir.path(), &stats_args("-"));
    ok(&o);
    assert!(
        stdout(&o).starts_with("symbol,statistic,"),
        "{}",
        stdout(&o)
    );

    // A folder format and part files cannot go to stdout: usage errors.
    fails_cleanly(
        &marketdb(dir.path(), &export_args("numpy", "-")),
        2,
        &["stdout"],
    );
    let mut args = export_args("csv", "-");
    args.extend(["--part-rows", "10"]);
    fails_cleanly(&marketdb(dir.path(), &args), 2, &["--part-rows"]);
    assert!(!dir.path().join("-").exists());
}

#[test]
fn demo_keeps_away_from_real_data() {
    let dir = tempfile::tempdir().unwrap();
    // Real bars, ingested into the default database.
    let vision = dir.path().join("vision");
    std::fs::create_dir_all(&vision).unwrap();
    let rows: String = (0..60)
        .map(|i| kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false) + "\n")
        .collect();
    std::fs::write(vision.join("BTCUSDT-1m-2024-01-01.csv"), rows).unwrap();
    let plain = |args: &[&str]| {
        Command::new(bin())
            .current_dir(dir.path())
            .env_remove("MARKETDB_DB")
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .unwrap()
    };
    ok(&plain(&["ingest", "vision", "-q"]));
    let real = dir.path().join("data/market.db");
    let before = dump_all(&real);
    assert_eq!(before.len(), 60);

    // Pointed at the real database, demo refuses and names --force; nothing changes.
    let o = plain(&[
        "--db",
        "data/market.db",
        "demo",
        "--symbols",
        "2",
        "--days",
        "1",
        "-q",
    ]);
    fails_cleanly(
        &o,
        1,
        &["holds rows demo did not write", "BTCUSDT", "--force"],
    );
    assert_eq!(dump_all(&real), before);

    // By default it writes its own database and says which.
    let o = plain(&["demo", "--symbols", "2", "--days", "1", "--out", "np"]);
    ok(&o);
    assert!(stdout(&o).contains("data/demo/market.db"), "{}", stdout(&o));
    assert_eq!(
        dump_all(&real),
        before,
        "the default database is not demo's"
    );
    let demo = dir.path().join("data/demo/market.db");
    assert_eq!(
        super::count(&demo, "SELECT COUNT(*) FROM market_data"),
        2 * 1440
    );
    // Re-running demo on its own database is fine.
    ok(&plain(&[
        "demo",
        "--symbols",
        "2",
        "--days",
        "1",
        "--out",
        "np",
        "-q",
    ]));

    // --force adds the synthetic symbols beside the real ones without touching them.
    ok(&plain(&[
        "--db",
        "data/market.db",
        "demo",
        "--symbols",
        "1",
        "--days",
        "1",
        "--force",
        "-q",
        "--out",
        "np2",
    ]));
    let after = dump_all(&real);
    let count = |sql: &str| super::count(&real, sql);
    assert_eq!(
        count("SELECT COUNT(*) FROM market_data WHERE symbol = 'BTCUSDT'"),
        60
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM market_data WHERE symbol = 'SYN000USDT'"),
        1440
    );
    assert!(
        before.iter().all(|r| after.contains(r)),
        "real rows unchanged"
    );
}

/// Every read command on `db` (relative to `dir`), each writing its outputs under `dir`.
fn read_commands(db: &str) -> Vec<Vec<String>> {
    let range = [
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-01",
        "--freq",
        "1m",
    ];
    let mut cmds: Vec<Vec<&str>> = vec![
        vec!["summary"],
        vec!["symbols"],
        vec!["query", "--symbols", "SYN000USDT", "--limit", "5"],
        vec!["check", "--symbols", "all"],
        vec!["export", "csv", "--symbols", "all", "--out", "ro_out/k.csv"],
        vec![
            "export",
            "parquet",
            "--symbols",
            "all",
            "--out",
            "ro_out/k.parquet",
        ],
        vec!["export", "numpy", "--symbols", "all", "--out", "ro_out/np"],
        vec!["stats", "--symbols", "all", "--out", "ro_out/s.csv"],
        vec!["doctor"],
    ];
    for c in &mut cmds {
        if !matches!(c[0], "summary" | "symbols" | "doctor") {
            c.extend(range);
        }
    }
    // Reads with options of their own.
    cmds.push(vec!["catalog"]);
    cmds.push(vec!["catalog", "--symbols", "*USDT", "--csv"]);
    cmds.push(vec![
        "check",
        "--kind",
        "funding",
        "--symbols",
        "all",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-01",
    ]);
    cmds.push(vec!["gaps"]);
    cmds.into_iter()
        .map(|c| {
            let mut v: Vec<String> = vec!["--db".into(), db.into(), "-q".into()];
            v.extend(c.into_iter().map(String::from));
            v
        })
        .collect()
}

fn run_all(dir: &Path, cmds: &[Vec<String>], as_user: Option<&[&str]>) {
    for c in cmds {
        let mut cmd = match as_user {
            Some(prefix) => {
                let mut cmd = Command::new(prefix[0]);
                cmd.args(&prefix[1..]).arg(bin());
                cmd
            }
            None => Command::new(bin()),
        };
        let o = cmd
            .current_dir(dir)
            .env_remove("MARKETDB_DB")
            .env_remove("RUST_LOG")
            .args(c)
            .output()
            .unwrap();
        ok(&o);
        assert!(!stderr(&o).contains("locked"), "{c:?}: {}", stderr(&o));
    }
}

#[test]
fn reads_do_not_wait_for_a_held_write_lock() {
    let dir = demo_db();
    let db = dir.path().join("data/market.db");
    // Another connection holds the write lock for the whole test: a command that needed
    // it would fail with "database is locked" after its busy timeout.
    let holder = Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    run_all(dir.path(), &read_commands("data/market.db"), None);
    eprintln!(
        "{} read commands under a held write lock took {:?}",
        9,
        started.elapsed()
    );
    // A write still waits and fails cleanly.
    let o = marketdb(
        dir.path(),
        &[
            "delete",
            "--symbols",
            "SYN000USDT",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01",
            "--freq",
            "1m",
            "--yes",
        ],
    );
    fails_cleanly(&o, 1, &["locked"]);
    holder.execute_batch("ROLLBACK").unwrap();
}

/// A database in the Python v1.9 layout, as cryptoservice writes it: rollback journal,
/// `user_version` 0, rowid tables with their indexes, a few rows.
fn python_layout_db(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(&marketdb_store::bench::Layout::Python.ddl())
        .unwrap();
    let mut st = c
        .prepare(
            "INSERT INTO market_data VALUES (?1, ?2, '1m', 100.0, 101.0, 99.0, 100.5, 10.0, \
             1000.0, 7, 4.0, 400.0, 6.0, 600.0)",
        )
        .unwrap();
    for sym in ["SYN000USDT", "SYN001USDT"] {
        for i in 0..1440 {
            st.execute(rusqlite::params![sym, JAN1 + i * 60_000])
                .unwrap();
        }
    }
    drop(st);
    c.execute(
        "INSERT INTO funding_rate VALUES ('SYN000USDT', ?1, 0.0001, ?1, NULL, NULL)",
        [JAN1],
    )
    .unwrap();
}

#[test]
fn reads_leave_a_cryptoservice_file_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("py.db");
    python_layout_db(&db);
    let sum = sha256_hex(&db);
    run_all(dir.path(), &read_commands("py.db"), None);
    assert_eq!(sha256_hex(&db), sum, "a read changed the file");
    for side in ["py.db-wal", "py.db-shm", "py.db-journal"] {
        assert!(!dir.path().join(side).exists(), "{side} was created");
    }
    let c = Connection::open(&db).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    let mode: String = c
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!((v, mode.as_str()), (0, "delete"));
}

/// Runs as `nobody` through `setpriv` when this process is root (root ignores 0444).
fn unprivileged_prefix() -> Option<Vec<&'static str>> {
    let root = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        return Some(Vec::new());
    }
    let probe = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .status();
    match probe {
        Ok(s) if s.success() => Some(vec![
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]),
        _ => None,
    }
}

#[cfg(unix)]
#[test]
fn reads_work_on_a_write_protected_file() {
    use std::os::unix::fs::PermissionsExt;
    let Some(prefix) = unprivileged_prefix() else {
        eprintln!("!!!!!!!! cannot drop root (no setpriv): 0444 read test SKIPPED !!!!!!!!");
        return;
    };
    let dir = demo_db();
    // Everything the unprivileged user needs: a folder it may write (for outputs), a 0444
    // database in it.
    let work = dir.path().join("ro");
    std::fs::create_dir(&work).unwrap();
    let db = work.join("m.db");
    std::fs::copy(dir.path().join("data/market.db"), &db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    for p in [dir.path(), work.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let sum = sha256_hex(&db);
    let prefix = if prefix.is_empty() {
        None
    } else {
        Some(prefix.as_slice())
    };
    run_all(&work, &read_commands("m.db"), prefix);
    assert_eq!(sha256_hex(&db), sum);
    // A write is refused with a clear error, not a crash.
    if let Some(p) = prefix {
        let o = Command::new(p[0])
            .args(&p[1..])
            .arg(bin())
            .current_dir(&work)
            .args(["--db", "m.db", "doctor", "--checkpoint"])
            .output()
            .unwrap();
        fails_cleanly(&o, 1, &["m.db"]);
    }
}

/// Mounts `src` read-only at `dst` (a bind mount), when this machine lets the test.
fn bind_read_only(src: &Path, dst: &Path) -> bool {
    let bind = Command::new("mount")
        .arg("--bind")
        .arg(src)
        .arg(dst)
        .output();
    if !bind.is_ok_and(|o| o.status.success()) {
        return false;
    }
    let ro = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(dst)
        .output();
    if ro.is_ok_and(|o| o.status.success()) {
        return true;
    }
    let _ = Command::new("umount").arg(dst).status();
    false
}

#[test]
fn reads_work_on_a_read_only_mount() {
    let dir = demo_db();
    let src = dir.path().join("src");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::copy(dir.path().join("data/market.db"), src.join("m.db")).unwrap();
    if !bind_read_only(&src, &mnt) {
        eprintln!("!!!!!!!! cannot make a read-only bind mount here: mount test SKIPPED !!!!!!!!");
        return;
    }
    let sum = sha256_hex(&src.join("m.db"));
    // Outputs go to the writable folder; the database is on the read-only mount.
    let result = std::panic::catch_unwind(|| {
        run_all(dir.path(), &read_commands("mnt/m.db"), None);
    });
    let _ = Command::new("umount").arg(&mnt).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert_eq!(sha256_hex(&src.join("m.db")), sum);
}

fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    Command::new(bin())
        .current_dir(dir)
        .env("MARKETDB_DB", "data/market.db")
        .env_remove("RUST_LOG")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a temporary file appears under `root` (or the child exits).
fn wait_for_temp(child: &mut std::process::Child, root: &Path) -> bool {
    for _ in 0..20_000 {
        if !temp_files(root).is_empty() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    false
}

#[cfg(unix)]
#[test]
fn interrupted_exports_remove_their_temp_files_and_keep_the_earlier_export() {
    let dir = tempfile::tempdir().unwrap();
    ok(&marketdb(
        dir.path(),
        &[
            "demo",
            "--symbols",
            "20",
            "--days",
            "2",
            "-q",
            "--out",
            "first",
        ],
    ));
    let numpy = [
        "export",
        "numpy",
        "--symbols",
        "all",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-02",
        "--freq",
        "1m",
        "--features",
        "opn,hgh,low,cls,vol,amt,tnum,vwap,ret,fr,oi",
        "--out",
        "np",
        "-q",
    ];
    ok(&marketdb(dir.path(), &numpy));
    let manifest = std::fs::read(dir.path().join("np/manifest.json")).unwrap();
    let csv = [
        "export",
        "csv",
        "--symbols",
        "all",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-02",
        "--freq",
        "1m",
        "--out",
        "k.csv",
        "-q",
    ];
    let mut landed = 0;
    for (signal, code) in [("INT", 130), ("TERM", 143), ("INT", 130), ("TERM", 143)] {
        for args in [&numpy[..], &csv[..]] {
            let mut child = spawn(dir.path(), args);
            let caught = wait_for_temp(&mut child, dir.path());
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status();
            let out = child.wait_with_output().unwrap();
            if caught && out.status.code() == Some(code) {
                landed += 1;
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains(&format!("interrupted by SIG{signal}")),
                    "{err}"
                );
            }
            assert!(
                temp_files(dir.path()).is_empty(),
                "{:?}",
                temp_files(dir.path())
            );
            // A signal during the final rename may let it finish: then the file is whole.
            if let Ok(text) = std::fs::read_to_string(dir.path().join("k.csv")) {
                assert_eq!(text.lines().count(), 1 + 20 * 2 * 1440);
            }
            // The earlier export is whole, manifest and all.
            assert_eq!(
                std::fs::read(dir.path().join("np/manifest.json")).unwrap(),
                manifest
            );
            super::export_tree_is_consistent(&dir.path().join("np"));
        }
    }
    assert!(landed > 0, "no signal landed while an export was writing");
}

#[test]
fn a_killed_export_leaves_temp_files_that_the_next_export_removes() {
    let dir = tempfile::tempdir().unwrap();
    ok(&marketdb(
        dir.path(),
        &[
            "demo",
            "--symbols",
            "20",
            "--days",
            "2",
            "-q",
            "--out",
            "first",
        ],
    ));
    let numpy = [
        "export",
        "numpy",
        "--symbols",
        "all",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-02",
        "--freq",
        "1m",
        "--out",
        "np",
        "-q",
    ];
    let mut left = 0;
    for _ in 0..5 {
        let mut child = spawn(dir.path(), &numpy);
        wait_for_temp(&mut child, &dir.path().join("np"));
        let _ = child.kill(); // SIGKILL: nothing can clean up
        let _ = child.wait();
        left += temp_files(dir.path()).len();
        assert!(!dir.path().join("np/manifest.json").exists() || temp_files(dir.path()).is_empty());
    }
    assert!(left > 0, "no kill left a temporary file behind");
    // A CSV temp left by a dead process, beside the target.
    let stale = dir.path().join(".k.csv.tmp-999999999-0");
    std::fs::write(&stale, "partial").unwrap();
    ok(&marketdb(dir.path(), &numpy));
    ok(&marketdb(dir.path(), &export_args("csv", "k.csv")));
    assert!(
        temp_files(dir.path()).is_empty(),
        "{:?}",
        temp_files(dir.path())
    );
    super::export_tree_is_consistent(&dir.path().join("np"));
}

/// Runs `marketdb` under `sh` with a file-size limit, so a write past `kib` KiB fails like
/// a full disk (EFBIG; SIGXFSZ ignored).
fn with_file_limit(dir: &Path, kib: u64, args: &[&str]) -> std::process::Output {
    let script = format!("ulimit -f {}; trap '' XFSZ; exec \"$0\" \"$@\"", kib);
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(bin())
        .args(args)
        .current_dir(dir)
        .env("MARKETDB_DB", "data/market.db")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn a_write_that_cannot_complete_leaves_nothing_behind() {
    // A rollback-journal database: read-only opens create no -shm that the limit could hit.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    python_layout_db(&dir.path().join("data/market.db"));
    let before = dump_all(&dir.path().join("data/market.db"));
    // At most 8 KiB per file (4 KiB in shells counting 512-byte blocks): every file of
    // these exports is larger.
    for (args, root) in [
        (export_args("numpy", "full_np"), "full_np"),
        (export_args("csv", "full.csv"), "."),
        (export_args("parquet", "full.parquet"), "."),
    ] {
        let o = with_file_limit(dir.path(), 8, &args);
        fails_cleanly(&o, 1, &["File too large"]);
        assert!(temp_files(&dir.path().join(root)).is_empty());
    }
    assert!(!dir.path().join("full.csv").exists() && !dir.path().join("full.parquet").exists());
    let np = files_under(&dir.path().join("full_np"));
    assert!(np.is_empty(), "nothing under a final name: {np:?}");
    assert_eq!(dump_all(&dir.path().join("data/market.db")), before);
}

/// Mounts a tmpfs of `kib` KiB at `dst` when this machine lets the test.
fn small_tmpfs(dst: &Path, kib: u64) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
        .arg(dst)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_full_disk_fails_cleanly_and_frees_what_it_took() {
    let dir = demo_db();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    if !small_tmpfs(&mnt, 128) {
        eprintln!("!!!!!!!! cannot mount a small tmpfs here: full-disk test SKIPPED !!!!!!!!");
        return;
    }
    let result = std::panic::catch_unwind(|| {
        let mut args = export_args("numpy", "small/np");
        args.extend(["--features", "opn,hgh,low,cls,vol,amt,tnum,vwap,ret"]);
        let o = marketdb(dir.path(), &args);
        fails_cleanly(&o, 1, &["No space left on device"]);
        assert!(temp_files(&mnt).is_empty());
        let o = marketdb(dir.path(), &export_args("csv", "small/k.csv"));
        fails_cleanly(&o, 1, &["No space left on device"]);
        assert!(temp_files(&mnt).is_empty() && !mnt.join("k.csv").exists());
        let df = Command::new("df")
            .arg("--output=used")
            .arg(&mnt)
            .output()
            .unwrap();
        let used: u64 = stdout(&df).lines().nth(1).unwrap().trim().parse().unwrap();
        assert!(used < 32, "the failed exports still hold {used} KiB");
    });
    let _ = Command::new("umount").arg(&mnt).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn doctor_vacuum_folds_the_wal_and_says_what_it_did() {
    let dir = demo_db();
    // A connection kept open here keeps SQLite from removing the WAL when marketdb closes,
    // so the delete below leaves its frames in the WAL for doctor to fold.
    let db = dir.path().join("data/market.db");
    let keeper = Connection::open(&db).unwrap();
    let _: i64 = keeper
        .query_row("SELECT COUNT(*) FROM market_data", [], |r| r.get(0))
        .unwrap();
    let wal_size =
        || std::fs::metadata(dir.path().join("data/market.db-wal")).map_or(0, |m| m.len());
    let flag_sets: [&[&str]; 3] = [
        &["--vacuum"],
        &["--vacuum", "--checkpoint"],
        &["--checkpoint"],
    ];
    for (hour, flags) in flag_sets.into_iter().enumerate() {
        let (start, end) = (
            format!("2024-01-01 0{hour}:00"),
            format!("2024-01-01 0{hour}:09"),
        );
        ok(&marketdb(
            dir.path(),
            &[
                "delete",
                "--symbols",
                "SYN000USDT",
                "--start",
                &start,
                "--end",
                &end,
                "--freq",
                "1m",
                "--yes",
            ],
        ));
        assert!(wal_size() > 0, "the test needs a wal with frames");
        let mut args = vec!["doctor"];
        args.extend_from_slice(flags);
        let o = marketdb(dir.path(), &args);
        ok(&o);
        let text = stdout(&o);
        let what = if flags.contains(&"--vacuum") {
            "vacuum"
        } else {
            "checkpoint"
        };
        assert!(text.contains(&format!("{what:<15} done: file ")), "{text}");
        assert!(text.contains("wal folded and truncated"), "{text}");
        assert_eq!(
            wal_size(),
            0,
            "the wal is folded back after doctor {flags:?}"
        );
    }
    let j = json(&marketdb(dir.path(), &["doctor", "--checkpoint", "--json"]));
    assert_eq!(j["wal_bytes"], 0);
    assert_eq!(j["actions"][0]["action"], "checkpoint");
    let n: i64 = keeper
        .query_row("SELECT COUNT(*) FROM market_data", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2 * 1440 - 30);
}

#[test]
fn demo_knows_its_rows_by_its_marker_not_by_their_names() {
    let dir = tempfile::tempdir().unwrap();
    // Real bars stored under a name that looks synthetic.
    let vision = dir.path().join("vision");
    std::fs::create_dir_all(&vision).unwrap();
    let rows: String = (0..60)
        .map(|i| kline_line(JAN1 + i as i64 * 60_000, 60_000, i, false) + "\n")
        .collect();
    std::fs::write(vision.join("SYN000USDT-1m-2024-01-01.csv"), rows).unwrap();
    ok(&marketdb(dir.path(), &["ingest", "vision", "-q"]));
    let db = dir.path().join("data/market.db");
    let before = dump_all(&db);
    assert_eq!(before.len(), 60);
    let demo = |extra: &[&str]| {
        let mut args = vec!["demo", "--symbols", "2", "--days", "1", "-q", "--out", "np"];
        args.extend_from_slice(extra);
        marketdb(dir.path(), &args)
    };
    // Its name looks like demo's, but demo never wrote it: refused, named.
    fails_cleanly(
        &demo(&[]),
        1,
        &["holds rows demo did not write", "SYN000USDT"],
    );
    // Even --force never writes over rows demo did not write.
    fails_cleanly(
        &demo(&["--force"]),
        1,
        &["SYN000USDT", "demo never replaces them"],
    );
    assert_eq!(dump_all(&db), before, "the real rows are untouched");
    assert!(!dir.path().join("np").exists(), "nothing exported either");

    // Demo's own database carries its marker: a second run is welcome, and a symbol it
    // wrote is its own to replace.
    let own = |extra: &[&str]| {
        let mut args = vec![
            "--db",
            "data/demo.db",
            "demo",
            "--symbols",
            "2",
            "--days",
            "1",
            "-q",
            "--out",
            "np",
        ];
        args.extend_from_slice(extra);
        marketdb(dir.path(), &args)
    };
    ok(&own(&[]));
    ok(&own(&[]));
    let marker: String = Connection::open(dir.path().join("data/demo.db"))
        .unwrap()
        .query_row(
            "SELECT value FROM marketdb_meta WHERE key = 'demo.symbols'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(marker, r#"["SYN000USDT","SYN001USDT"]"#);
}

#[test]
fn check_never_counts_the_bar_still_open_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let minute = now / 60_000 * 60_000;
    // The last 30 closed 1m bars, in one file per UTC day.
    let first = minute - 30 * 60_000;
    let vision = dir.path().join("vision");
    std::fs::create_dir_all(&vision).unwrap();
    let mut days: std::collections::BTreeMap<i64, String> = Default::default();
    for i in 0..30 {
        let t = first + i * 60_000;
        days.entry(t / 86_400_000)
            .or_default()
            .push_str(&(kline_line(t, 60_000, i as usize, false) + "\n"));
    }
    for (day, rows) in &days {
        let name = format!(
            "BTCUSDT-1m-{}.csv",
            marketdb_model::time::date_string(day * 86_400_000)
        );
        std::fs::write(vision.join(name), rows).unwrap();
    }
    ok(&marketdb(dir.path(), &["ingest", "vision", "-q"]));
    // From the first bar to now: the bar opened at `minute` is still open.
    let start = marketdb_model::time::format_rfc3339(first);
    let end = marketdb_model::time::format_rfc3339(now);
    let o = marketdb(
        dir.path(),
        &[
            "check",
            "--symbols",
            "BTCUSDT",
            "--freq",
            "1m",
            "--start",
            &start,
            "--end",
            &end,
            "--json",
        ],
    );
    ok(&o);
    let report = json(&o);
    let sym = &report["symbols"][0];
    assert_eq!(sym["expected"], 30, "{report}");
    assert_eq!(sym["present"], 30, "{report}");
    assert_eq!(sym["missing"], serde_json::json!([]), "{report}");
}

#[test]
fn a_read_behind_a_rollback_journal_writer_says_why_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("py.db");
    python_layout_db(&db);
    let query = || {
        marketdb(
            dir.path(),
            &[
                "--db",
                "py.db",
                "query",
                "--symbols",
                "SYN000USDT",
                "--freq",
                "1m",
                "--start",
                "2024-01-01",
                "--end",
                "2024-01-01",
                "--limit",
                "1",
            ],
        )
    };
    ok(&query());
    // Another program (the Python original) in the middle of a write: it holds the
    // exclusive lock of a rollback-journal file.
    let holder = Connection::open(&db).unwrap();
    holder
        .execute_batch("BEGIN EXCLUSIVE; UPDATE market_data SET close_price = close_price")
        .unwrap();
    fails_cleanly(
        &query(),
        1,
        &[
            "rollback journal",
            "marketdb doctor --wal",
            "cryptoservice 1.9",
        ],
    );
    holder.execute_batch("ROLLBACK").unwrap();
    // Converted once, the same file lets readers in while a writer holds its lock.
    let o = marketdb(dir.path(), &["--db", "py.db", "doctor", "--wal"]);
    ok(&o);
    assert!(
        stdout(&o).contains("converted: rollback journal -> wal"),
        "{}",
        stdout(&o)
    );
    let holder = Connection::open(&db).unwrap();
    holder
        .execute_batch("BEGIN IMMEDIATE; UPDATE market_data SET close_price = close_price")
        .unwrap();
    ok(&query());
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    let o = marketdb(dir.path(), &["--db", "py.db", "doctor", "--wal"]);
    ok(&o);
    assert!(stdout(&o).contains("already wal"), "{}", stdout(&o));
}

#[test]
fn csv_parts_of_an_earlier_export_are_retired_and_strangers_refused() {
    let dir = demo_db();
    let parts = |rows: &str| {
        let mut args = export_args("csv", "k.csv");
        args.extend(["--part-rows", rows]);
        marketdb(dir.path(), &args)
    };
    let names = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("k"))
            .collect();
        v.sort();
        v
    };
    // 2 x 1440 rows: 5 parts of 600, then 2 of 1440.
    let o = parts("600");
    ok(&o);
    assert!(stdout(&o).contains("(5 parts)"), "{}", stdout(&o));
    let o = parts("1440");
    ok(&o);
    assert_eq!(
        names(),
        ["k.csv.parts.json", "k_part_1.csv", "k_part_2.csv"]
    );
    assert!(
        stdout(&o).contains("removed k_part_5.csv (a part of the earlier export)"),
        "{}",
        stdout(&o)
    );
    // A file named like a part that no listing names is not marketdb's to replace.
    std::fs::write(dir.path().join("k_part_3.csv"), "mine\n").unwrap();
    fails_cleanly(&parts("600"), 1, &["k_part_3.csv", "move or delete them"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("k_part_3.csv")).unwrap(),
        "mine\n"
    );
    std::fs::remove_file(dir.path().join("k_part_3.csv")).unwrap();
    // A single file of the same name retires the parts and their listing.
    ok(&marketdb(dir.path(), &export_args("csv", "k.csv")));
    assert_eq!(names(), ["k.csv"]);
}
