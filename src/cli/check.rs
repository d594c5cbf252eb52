//! `check`: the completeness report, with `--fail-under` for scripts. Missing bars that
//! fall in a period `download` recorded as a source gap (the exchange does not publish
//! it, or publishes it incomplete) are shown apart from real holes: they are counted as
//! `unpublished`, and the coverage still counts them as missing.

use std::process::ExitCode;

use std::collections::HashMap;

use anyhow::Result;
use clap::Args;
use marketdb_fetch::Period;
use marketdb_model::Freq;
use marketdb_model::time::format_rfc3339;
use marketdb_store::GapFilter;

use super::{Global, RangeArgs, SymbolArgs, args, output, progress};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub symbols: SymbolArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Interval
    #[arg(long, value_parser = args::freq)]
    pub freq: Freq,
    /// Exit 1 when any symbol's coverage (percent) is below this
    #[arg(long)]
    pub fail_under: Option<f64>,
}

pub async fn run(g: &Global, a: &CheckArgs) -> Result<ExitCode> {
    if let Some(p) = a.fail_under
        && !(0.0..=100.0).contains(&p)
    {
        return Err(super::usage(format!(
            "--fail-under {p} is not a percentage between 0 and 100"
        )));
    }
    a.range.spec()?;
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let (symbols, unknown) = a.symbols.resolve_noting(g, &db, a.freq).await?;
    let range = a.range.resolve(&db, a.freq, &symbols).await?;
    let beat = progress::heartbeat(g, "check");
    let report = db.check_completeness(range, a.freq, &symbols).await?;
    let recorded = recorded_periods(&db, a.freq).await?;
    drop(beat);
    db.close().await;
    // Per symbol and run: how many missing bars lie in recorded source gaps.
    let unpublished: Vec<Vec<u64>> = report
        .symbols
        .iter()
        .map(|s| {
            let spans = recorded.get(&s.symbol).map_or(&[][..], Vec::as_slice);
            s.missing
                .iter()
                .map(|run| covered(a.freq, spans, run.start, run.end))
                .collect()
        })
        .collect();
    if g.json {
        // Coverage in percent, as --fail-under and the table give it.
        let mut v = serde_json::to_value(&report)?;
        if let Some(list) = v.get_mut("symbols").and_then(|s| s.as_array_mut()) {
            for s in list {
                if let Some(c) = s.get("coverage").and_then(serde_json::Value::as_f64) {
                    s["coverage"] = serde_json::json!(c * 100.0);
                }
            }
        }
        if let Some(list) = v.get_mut("symbols").and_then(|s| s.as_array_mut()) {
            for (s, counts) in list.iter_mut().zip(&unpublished) {
                s["unpublished_bars"] = serde_json::json!(counts.iter().sum::<u64>());
                if let Some(runs) = s.get_mut("missing").and_then(|m| m.as_array_mut()) {
                    for (run, n) in runs.iter_mut().zip(counts) {
                        run["unpublished"] = serde_json::json!(n);
                    }
                }
            }
        }
        v["coverage_unit"] = "percent".into();
        v["unknown_symbols"] = serde_json::json!(unknown);
        output::json(&v)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .symbols
            .iter()
            .zip(&unpublished)
            .map(|(s, counts)| {
                vec![
                    s.symbol.clone(),
                    s.expected.to_string(),
                    s.present.to_string(),
                    format!("{:.2}%", s.coverage * 100.0),
                    s.missing.len().to_string(),
                    counts.iter().sum::<u64>().to_string(),
                    s.suspicious.len().to_string(),
                ]
            })
            .collect();
        output::table(
            &[
                "symbol",
                "expected",
                "present",
                "coverage",
                "gaps",
                "unpublished",
                "suspicious",
            ],
            &rows,
        );
        for (s, counts) in report.symbols.iter().zip(&unpublished) {
            for (run, &n) in s.missing.iter().zip(counts) {
                let (from, to) = (format_rfc3339(run.start), format_rfc3339(run.end));
                if n >= run.count {
                    outln!(
                        "{}: {} bar(s) from {from} to {to} not published by the exchange (recorded by download)",
                        s.symbol,
                        run.count
                    );
                } else if n > 0 {
                    outln!(
                        "{}: missing {} bar(s) from {from} to {to} ({n} of them not published by the exchange)",
                        s.symbol,
                        run.count
                    );
                } else {
                    outln!(
                        "{}: missing {} bar(s) from {from} to {to}",
                        s.symbol,
                        run.count
                    );
                }
            }
            for row in &s.suspicious {
                outln!(
                    "{}: suspicious row at {}: {}",
                    s.symbol,
                    format_rfc3339(row.timestamp),
                    row.reason
                );
            }
        }
    }
    let below = a
        .fail_under
        .is_some_and(|p| report.symbols.iter().any(|s| s.coverage * 100.0 < p));
    Ok(if below {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The recorded klines source gaps of `freq`, by symbol, as merged `[start, end)` spans.
async fn recorded_periods(
    db: &marketdb_store::AsyncMarketDB,
    freq: Freq,
) -> Result<HashMap<String, Vec<(i64, i64)>>> {
    let gaps = db
        .source_gaps(GapFilter {
            kind: Some("klines".to_owned()),
            interval: Some(freq.as_str().to_owned()),
            ..GapFilter::default()
        })
        .await?;
    let mut by_symbol: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for g in gaps {
        if let Some(p) = Period::parse(&g.period) {
            by_symbol
                .entry(g.symbol)
                .or_default()
                .push((p.start_ms(), p.end_ms()));
        }
    }
    for spans in by_symbol.values_mut() {
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
        for &(lo, hi) in spans.iter() {
            match merged.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        *spans = merged;
    }
    Ok(by_symbol)
}

/// Bars of `freq` with open times in `first..=last` that lie in `spans`.
fn covered(freq: Freq, spans: &[(i64, i64)], first: i64, last: i64) -> u64 {
    spans
        .iter()
        .map(|&(lo, hi)| {
            let (a, b) = (lo.max(first), hi.min(last.saturating_add(1)));
            if a < b {
                freq.grid(a, b).count() as u64
            } else {
                0
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_counts_bars_inside_recorded_spans_only() {
        const H: i64 = 3_600_000;
        let spans = [(24 * H, 48 * H), (72 * H, 96 * H)];
        // A run of 3 days from hour 20 to hour 99: 24 + 24 hours are recorded.
        assert_eq!(covered(Freq::H1, &spans, 20 * H, 99 * H), 48);
        assert_eq!(covered(Freq::H1, &spans, 0, 10 * H), 0);
        assert_eq!(covered(Freq::H1, &spans, 30 * H, 30 * H), 1);
        assert_eq!(covered(Freq::H1, &spans, 47 * H, 72 * H), 2);
    }
}
