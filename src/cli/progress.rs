//! Progress bars (indicatif) for long work. They draw only on a terminal, and never with
//! `-q` or `--json`, so pipes and scripts see clean output. Off a terminal, `-v` turns them
//! into a log line every few seconds instead ([`LOG_EVERY`]); [`heartbeat`] does the same
//! for work without a count (check, summary).

use std::{
    io::IsTerminal,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// How often progress is logged when no bar is drawn.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// Sleeps `LOG_EVERY` in short steps; `false` as soon as `stop` says so.
fn wait_or_stop(stop: &dyn Fn() -> bool) -> bool {
    let until = Instant::now() + LOG_EVERY;
    while Instant::now() < until {
        if stop() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    !stop()
}

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Global;

/// A bar with `total` steps (0 = unknown), hidden when progress output is off.
pub fn bar(g: &Global, total: u64, what: &str) -> ProgressBar {
    let visible = !g.quiet && !g.json && std::io::stderr().is_terminal();
    let pb = if total > 0 {
        ProgressBar::new(total)
    } else {
        ProgressBar::new_spinner()
    };
    if !visible {
        pb.set_draw_target(ProgressDrawTarget::hidden());
        if g.verbose > 0 && !g.quiet {
            let (watched, what) = (pb.clone(), what.to_owned());
            let started = Instant::now();
            std::thread::spawn(move || {
                while wait_or_stop(&|| watched.is_finished()) {
                    let (pos, len) = (watched.position(), watched.length().unwrap_or(0));
                    let secs = started.elapsed().as_secs();
                    match len {
                        0 => tracing::info!("{what}: {pos} done after {secs} s"),
                        len => tracing::info!("{what}: {pos}/{len} after {secs} s"),
                    }
                }
            });
        }
        return pb;
    }
    let template = if total > 0 {
        "{msg:>10} [{bar:30}] {pos}/{len} ({eta} left)"
    } else {
        "{msg:>10} {spinner} {pos}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

/// Adapts a bar to the exporter's progress observer.
#[derive(Debug)]
pub struct ExportBar(pub ProgressBar);

impl marketdb_export::ExportProgress for ExportBar {
    fn on_start(&self, total_days: u64) {
        self.0.set_length(total_days);
    }
    fn on_day(&self, done: u64) {
        self.0.set_position(done);
    }
}

pub fn export_observer(pb: &ProgressBar) -> Arc<ExportBar> {
    Arc::new(ExportBar(pb.clone()))
}

/// Logs "still working" every few seconds (with `-v`, off a terminal or on one) until
/// dropped.
#[derive(Debug)]
pub struct Heartbeat {
    done: Arc<AtomicBool>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

pub fn heartbeat(g: &Global, what: &str) -> Heartbeat {
    let done = Arc::new(AtomicBool::new(false));
    if g.verbose > 0 && !g.quiet {
        let (flag, what) = (Arc::clone(&done), what.to_owned());
        let started = Instant::now();
        std::thread::spawn(move || {
            while wait_or_stop(&|| flag.load(Ordering::Relaxed)) {
                tracing::info!(
                    "{what}: still working after {} s",
                    started.elapsed().as_secs()
                );
            }
        });
    }
    Heartbeat { done }
}
