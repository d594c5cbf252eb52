//! `summary` and `symbols`: what the database holds.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use marketdb_model::Freq;
use marketdb_model::time::format_rfc3339;
use serde_json::Value;

use super::{Global, args, output, progress};

#[derive(Debug, Args)]
pub struct SymbolsArgs {
    /// Only symbols stored at this interval
    #[arg(long, value_parser = args::freq)]
    pub freq: Option<Freq>,
}

pub async fn summary(g: &Global) -> Result<ExitCode> {
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let beat = progress::heartbeat(g, "summary");
    let summary = serde_json::to_value(db.get_data_summary().await?)?;
    drop(beat);
    db.close().await;
    if g.json {
        output::json(&summary)?;
    } else {
        print_summary(&summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the summary as one table: table, series (freq / interval / period+type), rows,
/// symbols, first and last time.
pub fn print_summary(summary: &Value) {
    let mut rows = Vec::new();
    for (table, key) in [
        ("market_data", "freq"),
        ("funding_rate", ""),
        ("open_interest", "interval"),
        ("long_short_ratio", "period"),
    ] {
        let entries: Vec<&Value> = match summary.get(table) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(obj @ Value::Object(_)) => vec![obj],
            _ => Vec::new(),
        };
        for e in entries {
            let count = e.get("record_count").and_then(Value::as_u64).unwrap_or(0);
            if count == 0 {
                continue;
            }
            let mut series = e.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
            if let Some(rt) = e.get("ratio_type").and_then(Value::as_str) {
                series = format!("{series} {rt}");
            }
            let time = |k: &str| {
                e.get(k)
                    .and_then(Value::as_i64)
                    .map(format_rfc3339)
                    .unwrap_or_default()
            };
            rows.push(vec![
                table.to_owned(),
                series,
                count.to_string(),
                e.get("unique_symbols")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .to_string(),
                time("earliest_timestamp"),
                time("latest_timestamp"),
            ]);
        }
    }
    if rows.is_empty() {
        outln!("the database is empty");
        return;
    }
    output::table(
        &["table", "series", "rows", "symbols", "first", "last"],
        &rows,
    );
}

pub async fn symbols(g: &Global, a: &SymbolsArgs) -> Result<ExitCode> {
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let symbols = db.get_symbols(a.freq).await?;
    db.close().await;
    if g.json {
        output::json(&symbols)?;
    } else {
        for s in symbols {
            outln!("{s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
