//! `check`: the completeness report, with `--fail-under` for scripts. Missing bars that
//! fall in a period `download` recorded are shown apart from real holes, by kind:
//! `unpublished` (Vision answered 404 after the file was due), `partial` (the exchange
//! published the period with bars missing) and `pending` (a failed answer or a file not
//! due yet: the next download asks again). The coverage still counts them as missing.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use marketdb_download::GapKind;
use marketdb_download::record::RecordedSpan;
use marketdb_model::Freq;
use marketdb_model::time::format_rfc3339;

use super::{Global, RangeArgs, SymbolArgs, args, output, progress};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub symbols: SymbolArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Interval (klines)
    #[arg(long, value_parser = args::freq, required_unless_present = "kind")]
    pub freq: Option<Freq>,
    /// What to check: klines (default, needs --freq) or funding rates (each symbol at its
    /// own interval, read from its payments: 1h, 2h, 4h or 8h)
    #[arg(long, value_enum)]
    pub kind: Option<CheckKind>,
    /// Exit 1 when any symbol's coverage (percent) is below this
    #[arg(long)]
    pub fail_under: Option<f64>,
}

/// `--kind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckKind {
    Klines,
    Funding,
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
    let freq = match (a.kind, a.freq) {
        (Some(CheckKind::Funding), None) => return funding(g, a).await,
        (Some(CheckKind::Funding), Some(_)) => {
            return Err(super::usage(
                "--freq applies to klines: funding is checked at each symbol's own interval",
            ));
        }
        (_, Some(freq)) => freq,
        (_, None) => return Err(super::usage("--kind klines needs --freq (such as 1m)")),
    };
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let (symbols, unknown) = a.symbols.resolve_noting(g, &db, freq).await?;
    let range = a.range.resolve(&db, freq, &symbols).await?;
    let beat = progress::heartbeat(g, "check");
    let mut report = db.check_completeness(range, freq, &symbols).await?;
    // A symbol is not missing before its first archive file or after its delisting.
    let lives = marketdb_download::catalog::kline_lives(&db, freq).await?;
    let not_listed = marketdb_download::catalog::cut_to_lives(&mut report, &lives);
    let recorded = marketdb_download::record::kline_spans(&db, freq).await?;
    drop(beat);
    db.close().await;
    // Per symbol and run: how many missing bars lie in recorded periods, by class.
    let unpublished: Vec<Vec<Counts>> = report
        .symbols
        .iter()
        .map(|s| {
            let spans = recorded.get(&s.symbol).map_or(&[][..], Vec::as_slice);
            s.missing
                .iter()
                .map(|run| counts(freq, spans, run.start, run.end))
                .collect()
        })
        .collect();
    if g.json {
        let mut v = json_in_percent(&report)?;
        if let Some(list) = v.get_mut("symbols").and_then(|s| s.as_array_mut()) {
            for (s, counts) in list.iter_mut().zip(&unpublished) {
                let total = sum(counts);
                s["unpublished_bars"] = serde_json::json!(total.unpublished);
                s["partial_bars"] = serde_json::json!(total.partial);
                s["pending_bars"] = serde_json::json!(total.pending);
                let name = s.get("symbol").and_then(|n| n.as_str()).unwrap_or_default();
                if let Some(n) = not_listed.get(name) {
                    s["not_listed_bars"] = serde_json::json!(n);
                }
                if let Some(runs) = s.get_mut("missing").and_then(|m| m.as_array_mut()) {
                    for (run, n) in runs.iter_mut().zip(counts) {
                        run["unpublished"] = serde_json::json!(n.unpublished);
                        run["partial"] = serde_json::json!(n.partial);
                        run["pending"] = serde_json::json!(n.pending);
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
                let total = sum(counts);
                vec![
                    s.symbol.clone(),
                    s.expected.to_string(),
                    s.present.to_string(),
                    format!("{:.2}%", s.coverage * 100.0),
                    s.missing.len().to_string(),
                    total.unpublished.to_string(),
                    total.partial.to_string(),
                    total.pending.to_string(),
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
                "partial",
                "pending",
                "suspicious",
            ],
            &rows,
        );
        for (s, counts) in report.symbols.iter().zip(&unpublished) {
            for (run, n) in s.missing.iter().zip(counts) {
                let (from, to) = (format_rfc3339(run.start), format_rfc3339(run.end));
                let mut why = Vec::new();
                for (k, what) in [
                    (n.unpublished, "not published by the exchange"),
                    (n.partial, "published incomplete by the exchange"),
                    (n.pending, "to be asked again by download"),
                ] {
                    if k > 0 {
                        why.push(format!("{k} {what}"));
                    }
                }
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", why.join(", "))
                };
                outln!(
                    "{}: missing {} bar(s) from {from} to {to}{why}",
                    s.symbol,
                    run.count
                );
            }
            for row in &s.suspicious {
                outln!(
                    "{}: suspicious row at {}: {}",
                    s.symbol,
                    format_rfc3339(row.timestamp),
                    row.reason
                );
            }
            if let Some(&n) = not_listed.get(&s.symbol).filter(|&&n| n > 0) {
                outln!(
                    "{}: {n} bar(s) outside its listed life in the archive catalog not counted",
                    s.symbol
                );
            }
        }
    }
    Ok(exit_status(a, &report))
}

/// Missing bars in recorded periods, by class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    unpublished: u64,
    partial: u64,
    pending: u64,
}

fn sum(list: &[Counts]) -> Counts {
    list.iter().fold(Counts::default(), |a, c| Counts {
        unpublished: a.unpublished + c.unpublished,
        partial: a.partial + c.partial,
        pending: a.pending + c.pending,
    })
}

/// Bars of `freq` with open times in `first..=last` that lie in the recorded `spans`
/// (which do not overlap), by class.
fn counts(freq: Freq, spans: &[RecordedSpan], first: i64, last: i64) -> Counts {
    let mut out = Counts::default();
    for s in spans {
        let (a, b) = (
            s.start.max(first),
            s.end_exclusive.min(last.saturating_add(1)),
        );
        if a >= b {
            continue;
        }
        let n = freq.grid(a, b).count() as u64;
        match s.kind {
            GapKind::NotPublished => out.unpublished += n,
            GapKind::Partial => out.partial += n,
            GapKind::Failed | GapKind::NotYetPublished => out.pending += n,
        }
    }
    out
}

/// `check --kind funding`: each symbol at its own interval, named in the report.
async fn funding(g: &Global, a: &CheckArgs) -> Result<ExitCode> {
    let range = match a.range.spec()? {
        args::RangeSpec::Fixed(r) => r,
        args::RangeSpec::FromFirst { .. } => {
            return Err(super::usage(
                "check --kind funding needs a start: give --start or --timerange",
            ));
        }
    };
    let parts = args::split_symbols(&a.symbols.symbols);
    let symbols = if parts.len() == 1 && parts[0].eq_ignore_ascii_case("all") {
        Vec::new()
    } else {
        args::parse_symbols(&parts)?
    };
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let checked = db.check_funding_completeness(range, &symbols).await;
    db.close().await;
    let checked = checked?;
    let named = |symbol: &str| -> String {
        let spans = checked.intervals.get(symbol).map_or(&[][..], Vec::as_slice);
        spans
            .iter()
            .enumerate()
            .map(|(i, s)| match i {
                0 => s.interval.to_string(),
                _ => format!("{} from {}", s.interval, format_rfc3339(s.from)),
            })
            .collect::<Vec<_>>()
            .join(", then ")
    };
    let report = &checked.report;
    if g.json {
        let mut v = json_in_percent(report)?;
        if let Some(list) = v.get_mut("symbols").and_then(|s| s.as_array_mut()) {
            for s in list {
                let name = s["symbol"].as_str().unwrap_or_default().to_owned();
                s["interval"] = serde_json::json!(named(&name));
                let spans: Vec<_> = checked
                    .intervals
                    .get(&name)
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .map(|x| serde_json::json!({"from": format_rfc3339(x.from), "interval": x.interval.to_string()}))
                    .collect();
                s["intervals"] = serde_json::json!(spans);
            }
        }
        v["kind"] = "funding".into();
        v["coverage_unit"] = "percent".into();
        output::json(&v)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .symbols
            .iter()
            .map(|s| {
                vec![
                    s.symbol.clone(),
                    named(&s.symbol),
                    s.expected.to_string(),
                    s.present.to_string(),
                    format!("{:.2}%", s.coverage * 100.0),
                    s.missing.len().to_string(),
                ]
            })
            .collect();
        output::table(
            &[
                "symbol", "interval", "expected", "present", "coverage", "gaps",
            ],
            &rows,
        );
        for s in &report.symbols {
            for run in &s.missing {
                outln!(
                    "{}: missing {} funding payment(s) from {} to {}",
                    s.symbol,
                    run.count,
                    format_rfc3339(run.start),
                    format_rfc3339(run.end)
                );
            }
        }
    }
    Ok(exit_status(a, report))
}

/// The report as JSON, coverage in percent (as `--fail-under` and the table give it).
fn json_in_percent(report: &marketdb_store::CompletenessReport) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(report)?;
    if let Some(list) = v.get_mut("symbols").and_then(|s| s.as_array_mut()) {
        for s in list {
            if let Some(c) = s.get("coverage").and_then(serde_json::Value::as_f64) {
                s["coverage"] = serde_json::json!(c * 100.0);
            }
        }
    }
    Ok(v)
}

/// 1 when a symbol's coverage is below `--fail-under`.
fn exit_status(a: &CheckArgs, report: &marketdb_store::CompletenessReport) -> ExitCode {
    let below = a
        .fail_under
        .is_some_and(|p| report.symbols.iter().any(|s| s.coverage * 100.0 < p));
    if below {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bars_inside_recorded_spans_only_by_class() {
        const H: i64 = 3_600_000;
        let span = |lo: i64, hi: i64, kind| RecordedSpan {
            start: lo * H,
            end_exclusive: hi * H,
            kind,
        };
        let spans = [
            span(24, 48, GapKind::NotPublished),
            span(72, 96, GapKind::Partial),
            span(96, 120, GapKind::Failed),
        ];
        // A run of 4 days from hour 20 to hour 99: 24 + 24 + 4 hours are recorded.
        let c = counts(Freq::H1, &spans, 20 * H, 99 * H);
        assert_eq!((c.unpublished, c.partial, c.pending), (24, 24, 4));
        assert_eq!(counts(Freq::H1, &spans, 0, 10 * H), Counts::default());
        assert_eq!(counts(Freq::H1, &spans, 30 * H, 30 * H).unpublished, 1);
        assert_eq!(counts(Freq::H1, &spans, 47 * H, 72 * H).partial, 1);
    }
}
