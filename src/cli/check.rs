//! `check`: the completeness report, with `--fail-under` for scripts.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use marketdb_model::Freq;
use marketdb_model::time::format_rfc3339;

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
    drop(beat);
    db.close().await;
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
        v["coverage_unit"] = "percent".into();
        v["unknown_symbols"] = serde_json::json!(unknown);
        output::json(&v)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .symbols
            .iter()
            .map(|s| {
                vec![
                    s.symbol.clone(),
                    s.expected.to_string(),
                    s.present.to_string(),
                    format!("{:.2}%", s.coverage * 100.0),
                    s.missing.len().to_string(),
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
                "suspicious",
            ],
            &rows,
        );
        for s in &report.symbols {
            for run in &s.missing {
                outln!(
                    "{}: missing {} bar(s) from {} to {}",
                    s.symbol,
                    run.count,
                    format_rfc3339(run.start),
                    format_rfc3339(run.end)
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
