//! The torture harness's bookkeeping and report: [`Tally`] counts every check run and
//! failed, the kills, signals and injected faults, and the failure totals that must stay
//! at zero (integrity failures, partial files, temporary files left, lost rows); it renders
//! them as a plain-text table for the terminal and as Markdown for `report.md`. It runs
//! nothing itself.

use std::fmt::Write as _;

/// One row of the report: a named check, how often it ran, how often it failed.
#[derive(Debug)]
struct Check {
    name: &'static str,
    runs: u64,
    failed: u64,
    note: String,
    /// Outcomes counted beside the runs (`label`, times).
    seen: Vec<(&'static str, u64)>,
}

/// Everything the harness counted.
#[derive(Debug, Default)]
pub struct Tally {
    checks: Vec<Check>,
    /// Where the harness is (`round 7`, `contention`), prefixed to failure details.
    pub context: String,
    pub rounds: u64,
    /// SIGKILLs sent, and how many of them hit a command still running.
    pub kills: u64,
    pub kills_landed: u64,
    /// SIGTERMs sent, and how many of them were answered with exit 143.
    pub sigterms: u64,
    pub sigterms_landed: u64,
    /// Injected faults (full disk, file-size limit).
    pub faults: u64,
    pub integrity_failures: u64,
    pub partial_files: u64,
    pub temps_left: u64,
    pub lost_rows: u64,
    /// Temporary files found right after a SIGKILL (allowed; swept by the next export).
    pub temps_after_kill: u64,
    /// Files an ingest stored before its disk was full (kept whole afterwards).
    pub loaded_before_full: u64,
    /// One line per failed check.
    pub failures: Vec<String>,
}

impl Tally {
    /// Records one run of the check `name`; it failed when `problems` is not empty.
    /// Returns whether it passed.
    pub fn check(&mut self, name: &'static str, problems: Vec<String>) -> bool {
        let ok = problems.is_empty();
        let context = self.context.clone();
        let c = self.row(name);
        c.runs += 1;
        if !ok {
            c.failed += 1;
        }
        for p in problems {
            self.failures.push(format!("{context}: {name}: {p}"));
        }
        ok
    }

    /// Sets the note shown beside a check's count.
    pub fn note(&mut self, name: &'static str, note: String) {
        self.row(name).note = note;
    }

    /// Counts an outcome of the check `name` (shown beside its count).
    pub fn saw(&mut self, name: &'static str, label: &'static str) {
        let c = self.row(name);
        match c.seen.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => c.seen.push((label, 1)),
        }
    }

    fn row(&mut self, name: &'static str) -> &mut Check {
        let i = match self.checks.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.checks.push(Check {
                    name,
                    runs: 0,
                    failed: 0,
                    note: String::new(),
                    seen: Vec::new(),
                });
                self.checks.len() - 1
            }
        };
        &mut self.checks[i]
    }

    /// Checks that failed at least once.
    pub fn failed_checks(&self) -> u64 {
        self.checks.iter().filter(|c| c.failed > 0).count() as u64
    }

    /// Whether anything failed.
    pub fn failed(&self) -> bool {
        self.failed_checks() > 0
            || self.integrity_failures > 0
            || self.partial_files > 0
            || self.temps_left > 0
            || self.lost_rows > 0
    }

    /// (check, count, result) rows, then the totals.
    fn rows(&self) -> (Vec<[String; 3]>, Vec<[String; 3]>) {
        let checks = self
            .checks
            .iter()
            .map(|c| {
                let mut notes: Vec<String> = c
                    .seen
                    .iter()
                    .map(|(label, n)| format!("{label}: {n}"))
                    .collect();
                if !c.note.is_empty() {
                    notes.insert(0, c.note.clone());
                }
                let count = if notes.is_empty() {
                    c.runs.to_string()
                } else {
                    format!("{} ({})", c.runs, notes.join("; "))
                };
                let result = if c.failed == 0 {
                    "ok".to_owned()
                } else {
                    format!("FAILED {}x", c.failed)
                };
                [c.name.to_owned(), count, result]
            })
            .collect();
        let zero = |n: u64| if n == 0 { "ok" } else { "FAILED" }.to_owned();
        let info = String::new;
        let totals = vec![
            ["rounds".to_owned(), self.rounds.to_string(), info()],
            [
                "kills (SIGKILL)".to_owned(),
                format!("{} ({} while running)", self.kills, self.kills_landed),
                info(),
            ],
            [
                "sigterms".to_owned(),
                format!("{} ({} answered 143)", self.sigterms, self.sigterms_landed),
                info(),
            ],
            ["faults".to_owned(), self.faults.to_string(), info()],
            [
                "temp files right after a SIGKILL (swept later)".to_owned(),
                self.temps_after_kill.to_string(),
                info(),
            ],
            [
                "files stored before the disk was full (kept)".to_owned(),
                self.loaded_before_full.to_string(),
                info(),
            ],
            [
                "integrity failures".to_owned(),
                self.integrity_failures.to_string(),
                zero(self.integrity_failures),
            ],
            [
                "partial files".to_owned(),
                self.partial_files.to_string(),
                zero(self.partial_files),
            ],
            [
                "temp files left".to_owned(),
                self.temps_left.to_string(),
                zero(self.temps_left),
            ],
            [
                "lost rows".to_owned(),
                self.lost_rows.to_string(),
                zero(self.lost_rows),
            ],
            [
                "failed checks".to_owned(),
                self.failed_checks().to_string(),
                zero(self.failed_checks()),
            ],
        ];
        (checks, totals)
    }

    /// The report as aligned plain text.
    pub fn text(&self) -> String {
        let (checks, totals) = self.rows();
        let mut widths = [5usize, 5, 6];
        for r in checks.iter().chain(&totals) {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |r: &[String; 3]| {
            format!(
                "{:<w0$}  {:>w1$}  {}\n",
                r[0],
                r[1],
                r[2],
                w0 = widths[0],
                w1 = widths[1]
            )
        };
        let rule = format!("{}\n", "-".repeat(widths[0] + widths[1] + widths[2] + 4));
        let mut out = line(&["check".into(), "count".into(), "result".into()]);
        out.push_str(&rule);
        checks.iter().for_each(|r| out.push_str(&line(r)));
        out.push_str(&rule);
        totals.iter().for_each(|r| out.push_str(&line(r)));
        out
    }

    /// The report as Markdown tables.
    pub fn markdown(&self) -> String {
        let (checks, totals) = self.rows();
        let mut out = String::from("| check | count | result |\n|---|---:|---|\n");
        for r in &checks {
            let _ = writeln!(out, "| {} | {} | {} |", r[0], r[1], r[2]);
        }
        out.push_str("\n| total | count | result |\n|---|---:|---|\n");
        for r in &totals {
            let _ = writeln!(out, "| {} | {} | {} |", r[0], r[1], r[2]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_anywhere_fails_the_tally() {
        let mut t = Tally {
            context: "round 1".into(),
            ..Tally::default()
        };
        assert!(t.check("a", vec![]));
        assert!(!t.failed());
        t.saw("a", "early");
        t.saw("a", "early");
        assert!(t.text().contains("1 (early: 2)"), "{}", t.text());
        assert!(!t.check("a", vec!["bad".into()]));
        assert!(t.failed());
        assert_eq!(t.failures, vec!["round 1: a: bad"]);
        assert!(t.text().contains("FAILED 1x"));
        assert!(t.markdown().contains("| a | 2 (early: 2) | FAILED 1x |"));

        let t = Tally {
            lost_rows: 3,
            ..Tally::default()
        };
        assert!(t.failed());
    }
}
