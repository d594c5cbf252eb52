//! Peak memory of one benchmark phase, Linux only. [`Probe::start`] resets the kernel's
//! resident-set high-water mark (writing `5` to `/proc/self/clear_refs`), notes the current
//! RSS, and starts a sampler thread that polls `/proc/self/status` every few milliseconds
//! for the anonymous (heap) and file-backed (mmap of the database, binary) parts;
//! [`Probe::finish`] reads `VmHWM` and stops the sampler, giving a [`Mem`]. It also notes
//! the process's CPU time over the phase, to tell CPU-bound work from waiting. The same
//! readers work on another process's `/proc/PID` files ([`status_of`], [`cpu_secs_of`]),
//! for the commands the harness runs as subprocesses.
//!
//! `VmHWM` is exact but whole-process and undivided; the sampled split can miss a peak
//! shorter than the poll interval. When `clear_refs` cannot be written, the peak is the
//! process's peak since it started, and [`Mem::reset`] says so.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

/// How often the sampler reads `/proc/self/status`.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Values of `/proc/self/status`, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub hwm_kib: u64,
    pub rss_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
}

/// Reads the memory lines of `/proc/self/status`; `None` off Linux or on a parse failure.
pub fn status() -> Option<Status> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The memory lines of another process's `/proc/PID/status`; `None` once it has exited
/// (a zombie's status has no memory lines) or off Linux.
pub fn status_of(pid: u32) -> Option<Status> {
    parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Parses the text of a `/proc/*/status` file (values in kB).
pub fn parse_status(text: &str) -> Option<Status> {
    let mut s = Status::default();
    let mut seen = 0;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "VmHWM" => &mut s.hwm_kib,
            "VmRSS" => &mut s.rss_kib,
            "RssAnon" => &mut s.anon_kib,
            "RssFile" => &mut s.file_kib,
            _ => continue,
        };
        *slot = value.trim().trim_end_matches("kB").trim().parse().ok()?;
        seen += 1;
    }
    (seen >= 2).then_some(s)
}

/// CPU seconds (user + system, all threads) the process has used so far, from
/// `/proc/self/stat` (clock ticks of 1/100 s, Linux's `USER_HZ`).
pub fn cpu_secs() -> Option<f64> {
    parse_cpu_secs(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// [`cpu_secs`] of another process.
pub fn cpu_secs_of(pid: u32) -> Option<f64> {
    parse_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_cpu_secs(text: &str) -> Option<f64> {
    // Fields after the parenthesised command name start with field 3 (state).
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// Resets the high-water mark to the current RSS; `false` when the kernel refused.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Memory of one phase, in MiB (whole process).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Mem {
    /// RSS when the phase started.
    pub base_mib: f64,
    /// `VmHWM` at the end: the phase's peak RSS (the process's peak if `!reset`).
    pub peak_mib: f64,
    /// Largest sampled anonymous RSS (heap, stacks).
    pub anon_peak_mib: f64,
    /// Largest sampled file-backed RSS (memory-mapped database pages, the binary).
    pub file_peak_mib: f64,
    /// Whether the high-water mark could be reset before the phase.
    pub reset: bool,
    /// CPU seconds used by the whole process during the phase (all threads), 10 ms ticks.
    pub cpu_secs: f64,
}

impl Mem {
    /// The worst of two measurements of the same operation (repetitions).
    pub fn max(self, other: Mem) -> Mem {
        Mem {
            base_mib: self.base_mib.min(other.base_mib),
            peak_mib: self.peak_mib.max(other.peak_mib),
            anon_peak_mib: self.anon_peak_mib.max(other.anon_peak_mib),
            file_peak_mib: self.file_peak_mib.max(other.file_peak_mib),
            reset: self.reset && other.reset,
            cpu_secs: self.cpu_secs.max(other.cpu_secs),
        }
    }
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// An open measurement; see the module docs.
#[derive(Debug)]
pub struct Probe {
    reset: bool,
    cpu_start: f64,
    base_kib: u64,
    stop: Arc<AtomicBool>,
    anon: Arc<AtomicU64>,
    file: Arc<AtomicU64>,
    sampler: Option<JoinHandle<()>>,
}

impl Probe {
    /// Resets the high-water mark and starts sampling.
    pub fn start() -> Probe {
        let cpu_start = cpu_secs().unwrap_or(0.0);
        let reset = reset_peak();
        let now = status().unwrap_or_default();
        let stop = Arc::new(AtomicBool::new(false));
        let anon = Arc::new(AtomicU64::new(now.anon_kib));
        let file = Arc::new(AtomicU64::new(now.file_kib));
        let (s, a, f) = (Arc::clone(&stop), Arc::clone(&anon), Arc::clone(&file));
        let sampler = thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Some(st) = status() {
                        a.fetch_max(st.anon_kib, Ordering::Relaxed);
                        f.fetch_max(st.file_kib, Ordering::Relaxed);
                    }
                    thread::sleep(SAMPLE_EVERY);
                }
            })
            .ok();
        Probe {
            reset,
            cpu_start,
            base_kib: now.rss_kib,
            stop,
            anon,
            file,
            sampler,
        }
    }

    /// Stops sampling and reads the peak.
    pub fn finish(mut self) -> Mem {
        let end = status().unwrap_or_default();
        let cpu = cpu_secs().map_or(0.0, |c| c - self.cpu_start);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.sampler.take() {
            let _ = h.join();
        }
        self.anon.fetch_max(end.anon_kib, Ordering::Relaxed);
        self.file.fetch_max(end.file_kib, Ordering::Relaxed);
        Mem {
            base_mib: mib(self.base_kib),
            peak_mib: mib(end.hwm_kib),
            anon_peak_mib: mib(self.anon.load(Ordering::Relaxed)),
            file_peak_mib: mib(self.file.load(Ordering::Relaxed)),
            reset: self.reset,
            cpu_secs: cpu,
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let text = "Name:\tmarketdb\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n\
                    RssAnon:\t   51200 kB\nRssFile:\t   51200 kB\n";
        let s = parse_status(text).unwrap();
        assert_eq!(
            (s.hwm_kib, s.rss_kib, s.anon_kib),
            (204_800, 102_400, 51_200)
        );
        // A zombie's status has no memory lines.
        assert_eq!(parse_status("Name:\tx\nState:\tZ (zombie)\n"), None);
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0";
        assert_eq!(parse_cpu_secs(stat), Some(2.0));
        assert_eq!(mib(2048), 2.0);
    }
}
