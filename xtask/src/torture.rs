//! `cargo xtask torture [--rounds N] [--contend-secs S]`: the reliability harness. It
//! builds the `marketdb` CLI (debug), writes Binance Vision kline files of its own, and
//! drives the binary through `std::process` only: each round SIGKILLs an ingest, an export
//! and a resample at random points, SIGTERMs an export, injects full-disk and file-size
//! faults, and checks after each what must hold (SQLite integrity, whole files only, no
//! partial output under a final name, no temporary file left, no committed row lost); then
//! a writer and a reader run against the same database at once. Kill delays come from a
//! SplitMix64 seeded by the round number, so a run is repeatable in what it attempts (not
//! in where the kernel stops a process); two extra kills per round wait for windows too
//! short for random delays (a new database's tables being committed, a NumPy export's
//! manifest being written). It exits
//! non-zero when any check failed and writes the report to `target/torture/report.md`.
//! `TORTURE_BIN` points it at another binary instead of building one. It never touches a
//! database outside `target/torture/`, and it asserts nothing about timing.

mod contend;
mod faults;
mod json;
mod klines;
mod report;
mod rounds;
mod verify;

use std::{
    env, fs,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use self::{json::Json, report::Tally};

/// Symbols (one file each) and bars per file.
pub(crate) const SYMBOLS: usize = 40;
pub(crate) const BARS: u64 = 1440;
/// 2024-01-01T00:00:00Z in ms.
const JAN1: i64 = 1_704_067_200_000;
const DAY: &str = "20240101-20240101";
/// What a read-only open says about a file without the tables.
const NO_SCHEMA: &str = "no table market_data";

/// A small seeded PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5EED_0F70_27A5_1C3D)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }

    /// A kill delay between 2 ms and `full` (the time the whole command takes).
    fn delay(&mut self, full: Duration) -> Duration {
        let full = u64::try_from(full.as_millis()).unwrap_or(u64::MAX).max(3);
        Duration::from_millis(self.range(2, full))
    }

    /// `k` distinct symbol indexes.
    pub(crate) fn pick(&mut self, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..SYMBOLS).collect();
        for i in 0..k.min(SYMBOLS) {
            let j = i + (self.next() % (SYMBOLS - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(k.min(SYMBOLS));
        all.sort_unstable();
        all
    }
}

pub(crate) fn symbol(i: usize) -> String {
    format!("T{i:02}USDT")
}

pub(crate) fn all_symbols() -> String {
    (0..SYMBOLS).map(symbol).collect::<Vec<_>>().join(",")
}

/// The export formats, and where each writes in an output folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Numpy,
    Csv,
    Parquet,
}

impl Format {
    const ALL: [Format; 3] = [Format::Numpy, Format::Csv, Format::Parquet];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Numpy => "numpy",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    pub(crate) fn target(self, out: &Path) -> PathBuf {
        match self {
            Format::Numpy => out.join("np"),
            Format::Csv => out.join("k.csv"),
            Format::Parquet => out.join("k.parquet"),
        }
    }

    /// Problems of a complete export at `target` (it must exist and be whole).
    fn complete(self, target: &Path) -> Vec<String> {
        let res = match self {
            Format::Csv => verify::csv_whole(target, SYMBOLS * BARS as usize),
            Format::Parquet => verify::parquet_whole(target),
            Format::Numpy => {
                let t = verify::numpy_tree(target);
                if !t.partial.is_empty() {
                    return t.partial;
                }
                match (t.manifest, t.npy) {
                    (false, n) => Err(format!("no manifest.json ({n} .npy files)")),
                    (true, 0) => Err("a manifest but no .npy file".to_owned()),
                    _ => Ok(()),
                }
            }
        };
        res.err()
            .map(|e| vec![format!("{}: {e}", target.display())])
            .unwrap_or_default()
    }
}

/// How long each whole command takes here (measured once; scales the kill delays).
#[derive(Debug, Default)]
pub(crate) struct Timing {
    ingest: Duration,
    resample: Duration,
    export: [Duration; 3],
}

/// Paths and the binary.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub bin: PathBuf,
    pub work: PathBuf,
    /// The generated kline files.
    pub vision: PathBuf,
    pub round: PathBuf,
    pub db: PathBuf,
    /// Export outputs of the rounds: `np/`, `k.csv`, `k.parquet`.
    pub out: PathBuf,
    pub timing: Timing,
}

pub(crate) fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit code and the error line on stderr (else its first line), for failure details.
pub(crate) fn brief(o: &Output) -> String {
    let err = text(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .or_else(|| err.lines().next())
        .unwrap_or("");
    format!("exit {}: {}", code(o.status), line.trim())
}

pub(crate) fn code(st: ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => c.to_string(),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => "?".to_owned(),
    }
}

impl Ctx {
    /// `marketdb --db DB -q ARGS`, run in the work folder without the caller's
    /// `MARKETDB_DB` and `RUST_LOG`.
    pub(crate) fn command(&self, db: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.current_dir(&self.work)
            .env_remove("MARKETDB_DB")
            .env_remove("RUST_LOG")
            .arg("--db")
            .arg(db)
            .arg("-q")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub(crate) fn run(&self, db: &Path, args: &[&str]) -> Result<Output> {
        self.command(db, args)
            .output()
            .with_context(|| format!("cannot run {}", self.bin.display()))
    }

    fn export_args(&self, f: Format, target: &Path) -> Vec<String> {
        let mut v: Vec<String> = [
            "export",
            f.name(),
            "--symbols",
            "all",
            "--timerange",
            DAY,
            "--freq",
            "1m",
            "--out",
        ]
        .map(String::from)
        .to_vec();
        v.push(s(target));
        v
    }

    /// `PRAGMA integrity_check` through `doctor --json`; `None` when `db` does not exist
    /// or has no tables yet (a command killed before its schema was committed; a read-only
    /// open then refuses it and creates nothing).
    pub(crate) fn integrity(&self, db: &Path) -> Result<Option<String>> {
        if !db.exists() {
            return Ok(None);
        }
        let o = self.run(db, &["doctor", "--json"])?;
        if !o.status.success() {
            if text(&o.stderr).contains(NO_SCHEMA) {
                return Ok(None);
            }
            return Ok(Some(format!("doctor failed: {}", brief(&o))));
        }
        let j = Json::parse(&text(&o.stdout)).context("doctor --json")?;
        Ok(Some(
            j.get("integrity_check")
                .as_str()
                .unwrap_or("no integrity_check in doctor --json")
                .to_owned(),
        ))
    }

    /// Bars present per symbol (all [`SYMBOLS`], in order) at `freq` on the test day,
    /// from `check --json`; `None` when `db` does not exist or has no tables yet.
    pub(crate) fn present(&self, db: &Path, freq: &str) -> Result<Option<Vec<u64>>> {
        if !db.exists() {
            return Ok(None);
        }
        let syms = all_symbols();
        let args = [
            "check",
            "--symbols",
            &syms,
            "--timerange",
            DAY,
            "--freq",
            freq,
            "--json",
        ];
        let o = self.run(db, &args)?;
        if !o.status.success() {
            if text(&o.stderr).contains(NO_SCHEMA) {
                return Ok(None);
            }
            bail!("marketdb check failed: {}", brief(&o));
        }
        parse_present(&text(&o.stdout)).map(Some)
    }

    /// [`Ctx::present`] for a check: no database or no tables count as no bars; an error
    /// (a malformed file, say) becomes one of the check's `problems` and gives `None`.
    pub(crate) fn counts(
        &self,
        db: &Path,
        freq: &str,
        problems: &mut Vec<String>,
    ) -> Option<Vec<u64>> {
        match self.present(db, freq) {
            Ok(c) => Some(c.unwrap_or_else(|| vec![0; SYMBOLS])),
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        }
    }

    /// The CSV export of the first complete ingest: every later export of the whole day
    /// must be byte-identical (no row lost, none added, no value changed).
    pub(crate) fn reference(&self) -> PathBuf {
        self.work.join("reference.csv")
    }

    /// Compares a fresh `export csv --out -` of the database with [`Ctx::reference`].
    pub(crate) fn same_data(&self, problems: &mut Vec<String>) -> Result<()> {
        let args = self.export_args(Format::Csv, Path::new("-"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = self.run(&self.db, &args)?;
        let want = fs::read(self.reference())?;
        if !o.status.success() {
            problems.push(format!("export csv --out -: {}", brief(&o)));
        } else if o.stdout != want {
            let line = o
                .stdout
                .split(|&b| b == b'\n')
                .zip(want.split(|&b| b == b'\n'))
                .position(|(a, b)| a != b)
                .map_or("the end".to_owned(), |i| format!("line {}", i + 1));
            problems.push(format!(
                "the stored bars differ from the first ingest's (CSV export, {} bytes vs {}, \
                 first difference at {line})",
                o.stdout.len(),
                want.len()
            ));
        }
        Ok(())
    }

    /// Integrity must be "ok" (counted as an integrity failure otherwise).
    fn check_integrity(&self, tally: &mut Tally, name: &'static str, db: &Path) -> Result<()> {
        let mut problems = Vec::new();
        judge_integrity(tally, self.integrity(db)?, false, &mut problems);
        tally.check(name, problems);
        Ok(())
    }
}

/// Judges what [`Ctx::integrity`] found; `None` (no file, no tables) passes unless
/// `required`. An integrity failure is a result other than "ok" or a file SQLite calls
/// malformed; a `doctor` that cannot open the file for another reason fails the check
/// without counting as one.
pub(crate) fn judge_integrity(
    tally: &mut Tally,
    got: Option<String>,
    required: bool,
    problems: &mut Vec<String>,
) {
    match got {
        Some(s) if s == "ok" => {}
        None if !required => {}
        None => problems.push("no database with tables to check".to_owned()),
        Some(s) => {
            let broken = !s.starts_with("doctor failed")
                || ["malformed", "not a database", "corrupt"]
                    .iter()
                    .any(|w| s.contains(w));
            if broken {
                tally.integrity_failures += 1;
            }
            problems.push(format!("integrity_check: {s}"));
        }
    }
}

/// Per-symbol `present` counts of `check --json`, in [`SYMBOLS`] order (0 when absent).
pub(crate) fn parse_present(stdout: &str) -> Result<Vec<u64>> {
    let j = Json::parse(stdout).context("check --json")?;
    let mut counts = vec![0u64; SYMBOLS];
    for e in j.get("symbols").items() {
        let (Some(sym), Some(n)) = (e.get("symbol").as_str(), e.get("present").as_u64()) else {
            bail!("check --json: an entry without symbol or present");
        };
        match (0..SYMBOLS).find(|&i| symbol(i) == sym) {
            Some(i) => counts[i] = n,
            None => bail!("check --json: unexpected symbol {sym}"),
        }
    }
    Ok(counts)
}

/// Options of `cargo xtask torture`.
#[derive(Debug)]
struct Options {
    rounds: u64,
    contend_secs: u64,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            rounds: 50,
            contend_secs: 60,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| -> Result<u64> {
                let v = it.next().with_context(|| format!("{name} needs a value"))?;
                v.parse()
                    .with_context(|| format!("{name} {v:?} is not a number"))
            };
            match a.as_str() {
                "--rounds" => o.rounds = value("--rounds")?,
                "--contend-secs" => o.contend_secs = value("--contend-secs")?,
                other => bail!(
                    "unknown torture option {other:?} (usage: cargo xtask torture \
                     [--rounds N] [--contend-secs S])"
                ),
            }
        }
        Ok(o)
    }
}

/// Runs the harness; an error when any check failed.
#[allow(clippy::print_stdout)]
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let started = Instant::now();
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    // TORTURE_BIN runs the harness against another binary (a release build, an older
    // version, a deliberately broken wrapper that shows the checks can fail).
    let bin = match env::var_os("TORTURE_BIN") {
        Some(b) => PathBuf::from(b),
        None => {
            super::cargo(root, &["build", "--bin", "marketdb"])?;
            target.join("debug/marketdb")
        }
    };
    if !bin.exists() {
        bail!("{} is missing", bin.display());
    }
    let work = target.join("torture");
    if work.exists() {
        faults::unmount_leftovers(&work);
        fs::remove_dir_all(&work).with_context(|| format!("cannot wipe {}", work.display()))?;
    }
    let round = work.join("round");
    let mut ctx = Ctx {
        bin,
        vision: work.join("vision"),
        db: round.join("market.db"),
        out: round.join("out"),
        round,
        work,
        timing: Timing::default(),
    };
    fs::create_dir_all(&ctx.out)?;
    klines::write(&ctx.vision)?;
    measure(&mut ctx)?;
    println!(
        "torture: {} rounds, {} s of contention; a full ingest takes {} ms, a resample {} ms, \
         exports {} ms (numpy), {} ms (csv), {} ms (parquet)",
        opts.rounds,
        opts.contend_secs,
        ctx.timing.ingest.as_millis(),
        ctx.timing.resample.as_millis(),
        ctx.timing.export[0].as_millis(),
        ctx.timing.export[1].as_millis(),
        ctx.timing.export[2].as_millis()
    );
    let mut tally = Tally::default();
    for r in 0..opts.rounds {
        tally.context = format!("round {r}");
        // A step that cannot go on (a command that cannot even be started, a database
        // that no longer opens) ends its round as a failure; the next round goes on.
        let ran = rounds::round(&ctx, &mut tally, r).map_err(|e| format!("{e:#}"));
        tally.check(STEPS_RAN, ran.err().into_iter().collect());
        tally.rounds += 1;
        println!(
            "round {r}: done, {} failure(s) so far, {:.0?} elapsed",
            tally.failures.len(),
            started.elapsed()
        );
    }
    tally.context = "contention".to_owned();
    let ran = contend::run(&ctx, &mut tally, Duration::from_secs(opts.contend_secs))
        .map_err(|e| format!("{e:#}"));
    tally.check(STEPS_RAN, ran.err().into_iter().collect());
    minimum_landed(&mut tally);
    let wall = started.elapsed();
    let head = format!(
        "cargo xtask torture --rounds {} --contend-secs {}\nbinary {}\ncommit {}, {}, wall time {:.1} s",
        opts.rounds,
        opts.contend_secs,
        ctx.bin.display(),
        commit(root),
        shell(root, "date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        wall.as_secs_f64()
    );
    println!("\n{head}\n\n{}", tally.text());
    for f in tally.failures.iter().take(30) {
        println!("FAILED {f}");
    }
    let md = format!(
        "# torture report\n\n```\n{head}\n```\n\n{}{}",
        tally.markdown(),
        tally
            .failures
            .iter()
            .map(|f| format!("\n- FAILED {f}"))
            .collect::<String>()
    );
    let report = ctx.work.join("report.md");
    fs::write(&report, md).with_context(|| format!("cannot write {}", report.display()))?;
    println!("report: {}", report.display());
    if tally.failed() {
        bail!(
            "torture failed: {} failed check(s), {} failure(s)",
            tally.failed_checks(),
            tally.failures.len()
        );
    }
    Ok(())
}

/// The check that every round (and the contention) ran to its end.
const STEPS_RAN: &str = "every step ran to its end";

/// A harness whose kills never hit a running command tests nothing: with enough attempts,
/// at least one must land.
fn minimum_landed(tally: &mut Tally) {
    let mut problems = Vec::new();
    if tally.kills >= 5 && tally.kills_landed == 0 {
        problems.push(format!(
            "none of {} SIGKILLs hit a running command",
            tally.kills
        ));
    }
    if tally.sigterms >= 5 && tally.sigterms_landed == 0 {
        problems.push(format!(
            "none of {} SIGTERMs hit a running export",
            tally.sigterms
        ));
    }
    tally.context = "whole run".to_owned();
    tally.check("kills and signals hit running commands", problems);
}

/// The short commit hash, with `+dirty` when tracked files have changes.
fn commit(root: &Path) -> String {
    let hash = shell(root, "git", &["rev-parse", "--short", "HEAD"]);
    let dirty = shell(
        root,
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
    );
    if dirty.is_empty() || dirty == "?" {
        hash
    } else {
        format!("{hash}+dirty")
    }
}

/// One line of a command's stdout, or `?`.
fn shell(root: &Path, cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| text(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".to_owned())
}

/// Runs `args` to completion and times it; it must succeed.
fn timed(ctx: &Ctx, args: &[&str]) -> Result<Duration> {
    let t = Instant::now();
    let o = ctx.run(&ctx.db, args)?;
    if !o.status.success() {
        bail!("setup: marketdb {} failed: {}", args.join(" "), brief(&o));
    }
    Ok(t.elapsed())
}

/// Builds the round database once (a full ingest, a resample, one export of each format)
/// and times each step to scale the kill delays.
fn measure(ctx: &mut Ctx) -> Result<()> {
    let vision = s(&ctx.vision);
    ctx.timing.ingest = timed(ctx, &["ingest", &vision])?;
    let got = ctx.present(&ctx.db, "1m")?.unwrap_or_default();
    if got.iter().any(|&n| n != BARS) {
        bail!("setup: the first ingest stored {got:?} bars per symbol, expected {BARS} each");
    }
    ctx.timing.resample = timed(ctx, &rounds::resample_args())?;
    for (i, f) in Format::ALL.into_iter().enumerate() {
        let args = ctx.export_args(f, &f.target(&ctx.out));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctx.timing.export[i] = timed(ctx, &args)?;
        let problems = f.complete(&f.target(&ctx.out));
        if !problems.is_empty() {
            bail!(
                "setup: the first {} export is not whole: {problems:?}",
                f.name()
            );
        }
    }
    fs::copy(Format::Csv.target(&ctx.out), ctx.reference())
        .context("setup: cannot keep the reference CSV")?;
    Ok(())
}

/// Symbols with a partial file (neither 0 nor `BARS` bars).
pub(crate) fn partial_symbols(counts: &[u64]) -> Vec<String> {
    counts
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n != 0 && n != BARS)
        .map(|(i, n)| format!("{} has {n} bars: part of a file", symbol(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prng_is_seeded_and_spread() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r = Rng::new(1);
        let picks = r.pick(5);
        assert_eq!(picks.len(), 5);
        assert!(picks.windows(2).all(|w| w[0] < w[1]));
        for _ in 0..1000 {
            let d = r.delay(Duration::from_millis(40));
            assert!((2..=40).contains(&d.as_millis()), "{d:?}");
        }
    }

    #[test]
    fn check_output_is_read_per_symbol() {
        let out = r#"{"symbols": [{"symbol": "T01USDT", "present": 1440},
                                  {"symbol": "T03USDT", "present": 7}]}"#;
        let c = parse_present(out).unwrap();
        assert_eq!((c[0], c[1], c[3]), (0, 1440, 7));
        assert_eq!(
            partial_symbols(&c),
            vec!["T03USDT has 7 bars: part of a file"]
        );
        assert!(parse_present(r#"{"symbols": [{"symbol": "X", "present": 1}]}"#).is_err());
    }
}
