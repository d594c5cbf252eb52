//! Progress bars (indicatif) for long work. They draw only on a terminal, and never with
//! `-q` or `--json`, so pipes and scripts see clean output.

use std::{io::IsTerminal, sync::Arc};

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
