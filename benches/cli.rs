//! The `marketdb` command line measured as a user runs it: `marketdb --db FILE -q ingest DIR`
//! as a subprocess of the harness, on the same Binance Vision files as the in-process
//! ingest. The time is the wall clock from spawning to reaping it (start-up, file discovery,
//! opening the database and the final checkpoint included); memory comes from polling its
//! `/proc/PID/status` until it exits.
//!
//! Why polling: std offers no child rusage, and `VmHWM` is the kernel's own high-water
//! mark, so a poll a few milliseconds before the exit still reads the true peak of
//! everything up to then (only the anonymous/file split is sampled). The release binary is
//! found through `MARKETDB_BENCH_BIN` (set by `cargo xtask bench`, which builds it first) or
//! next to the harness's own executable.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    floor,
    report::Timed,
    rss::{Mem, cpu_secs_of, mib, status_of},
};

/// The environment variable naming the `marketdb` binary to measure.
pub const BIN_ENV: &str = "MARKETDB_BENCH_BIN";

/// How often the subprocess's `/proc` files are read.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// The `marketdb` binary: `$MARKETDB_BENCH_BIN`, else `marketdb` beside this executable
/// (both are in `target/release` after `cargo xtask bench`).
pub fn find_marketdb() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(BIN_ENV) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("marketdb")).filter(|p| p.is_file())
}

/// Runs `bin --db db -q ingest dir`, then counts the stored bars (untimed) and fails unless
/// they are `want`.
pub fn ingest(bin: &Path, db: &Path, dir: &Path, want: u64) -> Result<(Timed, Mem)> {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg("--db")
        .arg(db)
        .args(["-q", "ingest"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id();
    let mut peak = Peak::default();
    let status = loop {
        peak.sample(pid);
        if let Some(status) = child.try_wait().context("cannot wait for marketdb")? {
            break status;
        }
        thread::sleep(POLL_EVERY);
    };
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("`marketdb ingest` failed ({status})");
    }
    let rows = floor::count_rows(db)?;
    if rows != want {
        bail!("`marketdb ingest` stored {rows} rows, expected {want}");
    }
    Ok((
        Timed::new(rows, secs).with_detail(format!("{} samples of /proc", peak.samples)),
        peak.mem(),
    ))
}

/// What the polls saw, in KiB.
#[derive(Debug, Default)]
struct Peak {
    first_rss: Option<u64>,
    hwm: u64,
    anon: u64,
    file: u64,
    cpu: f64,
    samples: u64,
}

impl Peak {
    fn sample(&mut self, pid: u32) {
        // Reads that fail (the process is starting or already a zombie) are skipped.
        if let Some(s) = status_of(pid) {
            self.first_rss.get_or_insert(s.rss_kib);
            self.hwm = self.hwm.max(s.hwm_kib).max(s.rss_kib);
            self.anon = self.anon.max(s.anon_kib);
            self.file = self.file.max(s.file_kib);
            self.samples += 1;
        }
        if let Some(c) = cpu_secs_of(pid) {
            self.cpu = self.cpu.max(c);
        }
    }

    fn mem(&self) -> Mem {
        Mem {
            base_mib: mib(self.first_rss.unwrap_or(0)),
            peak_mib: mib(self.hwm),
            anon_peak_mib: mib(self.anon),
            file_peak_mib: mib(self.file),
            // A fresh process: its high-water mark is its own from the start.
            reset: true,
            cpu_secs: self.cpu,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_keeps_the_largest_sample() {
        let mut p = Peak::default();
        // This process stands in for the subprocess.
        p.sample(std::process::id());
        p.sample(std::process::id());
        let m = p.mem();
        assert_eq!(p.samples, 2);
        assert!(m.peak_mib > 0.0 && m.peak_mib >= m.anon_peak_mib);
        assert!(m.base_mib > 0.0);
    }
}
