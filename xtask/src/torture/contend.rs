//! Read/write contention for the torture harness: for a fixed time, a writer loop (full
//! ingests, and `delete` of a few symbols followed by their re-ingest) and a reader loop
//! (`check --json`, `query --format csv`, `export csv --out -`) run against the same
//! database at once, each one command at a time. Every command must exit 0, no reader may
//! print "database is locked", and every read must see whole files only: each symbol has
//! 0 or 1440 bars in what it printed. Afterwards all rows must be there. It measures no
//! latency.

use std::{
    collections::BTreeMap,
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{
    BARS, Ctx, DAY, Rng, SYMBOLS, all_symbols, brief, parse_present, partial_symbols,
    report::Tally, s, symbol, text,
};

/// What one side counted.
#[derive(Debug, Default)]
struct Side {
    commands: u64,
    failures: Vec<String>,
    locked: u64,
    partial: u64,
}

const READER: &str = "contention: every read ok, whole files only";
const WRITER: &str = "contention: every write ok";

/// Runs the writer and the reader for `secs`, then checks the database.
pub fn run(ctx: &Ctx, tally: &mut Tally, secs: Duration) -> Result<()> {
    let deadline = Instant::now() + secs;
    let (w, r) = thread::scope(|scope| {
        let w = scope.spawn(|| writer(ctx, deadline));
        let r = scope.spawn(|| reader(ctx, deadline));
        (w.join(), r.join())
    });
    let (Ok(w), Ok(r)) = (w, r) else {
        anyhow::bail!("a contention thread panicked");
    };
    let (w, r) = (w?, r?);
    tally.partial_files += r.partial;
    tally.check(READER, r.failures);
    tally.note(
        READER,
        format!("{} reads, {} saw a lock", r.commands, r.locked),
    );
    tally.check(WRITER, w.failures);
    tally.note(WRITER, format!("{} writes", w.commands));

    ctx.check_integrity(tally, "contention: integrity ok after", &ctx.db)?;
    let mut problems = Vec::new();
    let counts = ctx.counts(&ctx.db, "1m", &mut problems).unwrap_or_default();
    for (i, &n) in counts.iter().enumerate() {
        if n != BARS {
            tally.lost_rows += BARS.saturating_sub(n);
            problems.push(format!(
                "{} has {n} bars after the writer's last ingest",
                symbol(i)
            ));
        }
    }
    ctx.same_data(&mut problems)?;
    tally.check("contention: all rows after, same data", problems);
    Ok(())
}

fn writer(ctx: &Ctx, deadline: Instant) -> Result<Side> {
    let mut side = Side::default();
    let mut rng = Rng::new(0xC0_27E2D);
    let vision = s(&ctx.vision);
    let mut i = 0u64;
    while Instant::now() < deadline {
        // Each iteration ends with every symbol stored.
        let steps: Vec<Vec<String>> = if i.is_multiple_of(2) {
            vec![vec!["ingest".into(), vision.clone()]]
        } else {
            let k = rng.range(1, 5) as usize;
            let picked = rng.pick(k);
            let list: Vec<String> = picked.iter().map(|&k| symbol(k)).collect();
            let delete: Vec<String> = [
                "delete",
                "--symbols",
                &list.join(","),
                "--timerange",
                DAY,
                "--freq",
                "1m",
                "--yes",
            ]
            .map(String::from)
            .to_vec();
            let mut ingest = vec!["ingest".to_owned()];
            ingest.extend(
                picked
                    .iter()
                    .map(|&k| s(&ctx.vision.join(format!("{}-1m-2024-01-01.csv", symbol(k))))),
            );
            vec![delete, ingest]
        };
        for step in steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            let o = ctx.run(&ctx.db, &args)?;
            side.commands += 1;
            if !o.status.success() {
                side.failures
                    .push(format!("marketdb {}: {}", step[0], brief(&o)));
            }
        }
        i += 1;
    }
    Ok(side)
}

/// Bars per symbol in CSV text whose first column is the symbol (header skipped).
fn csv_counts(stdout: &str) -> Vec<u64> {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for line in stdout.lines().skip(1) {
        let sym = line.split(',').next().unwrap_or("");
        *by.entry(sym).or_default() += 1;
    }
    (0..SYMBOLS)
        .map(|i| by.get(symbol(i).as_str()).copied().unwrap_or(0))
        .collect()
}

fn reader(ctx: &Ctx, deadline: Instant) -> Result<Side> {
    let mut side = Side::default();
    let mut rng = Rng::new(0x2EAD);
    let all = all_symbols();
    let mut j = 0u64;
    while Instant::now() < deadline {
        let two = rng.pick(2);
        let pair = format!("{},{}", symbol(two[0]), symbol(two[1]));
        let args: Vec<&str> = match j % 3 {
            0 => vec![
                "check",
                "--symbols",
                &all,
                "--timerange",
                DAY,
                "--freq",
                "1m",
                "--json",
            ],
            1 => vec![
                "query",
                "--symbols",
                &pair,
                "--timerange",
                DAY,
                "--freq",
                "1m",
                "--format",
                "csv",
            ],
            _ => vec![
                "export",
                "csv",
                "--symbols",
                "all",
                "--timerange",
                DAY,
                "--freq",
                "1m",
                "--out",
                "-",
            ],
        };
        let o = ctx.run(&ctx.db, &args)?;
        side.commands += 1;
        j += 1;
        let err = text(&o.stderr);
        if err.contains("locked") {
            side.locked += 1;
            side.failures
                .push(format!("marketdb {}: {}", args[0], err.trim()));
        }
        if !o.status.success() {
            side.failures
                .push(format!("marketdb {}: {}", args[0], brief(&o)));
            continue;
        }
        let out = text(&o.stdout);
        let counts = if args[0] == "check" {
            match parse_present(&out) {
                Ok(c) => c,
                Err(e) => {
                    side.failures.push(format!("{e:#}"));
                    continue;
                }
            }
        } else {
            csv_counts(&out)
        };
        let partial = partial_symbols(&counts);
        side.partial += partial.len() as u64;
        side.failures.extend(
            partial
                .into_iter()
                .map(|p| format!("marketdb {} saw {p}", args[0])),
        );
    }
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_counted_per_symbol() {
        let c = csv_counts("symbol,timestamp\nT01USDT,1\nT01USDT,2\nT05USDT,1\n");
        assert_eq!((c[0], c[1], c[5]), (0, 2, 1));
        assert_eq!(partial_symbols(&c).len(), 2);
    }
}
