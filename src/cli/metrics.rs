//! `metrics funding|open-interest|long-short-ratio`: prints stored metric records as they
//! are (no alignment to bars), as a table, CSV, a JSON array or JSON Lines. Long/short ratios
//! are read under either spelling of the ratio type.

use std::{
    io::{BufWriter, Write},
    process::ExitCode,
};

use anyhow::Result;
use clap::{Args, ValueEnum};
use marketdb_model::time::format_rfc3339;
use marketdb_model::{EARLIEST_MARKET_MS, Freq, RatioType, TimeRange};
use serde_json::{Value, json};

use super::{Global, RangeArgs, SymbolArgs, args, output, query::Format};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricKind {
    /// Funding-rate events
    Funding,
    /// Open interest samples
    OpenInterest,
    /// Long/short ratios of one type
    LongShortRatio,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Which metric
    #[arg(value_enum)]
    pub kind: MetricKind,
    #[command(flatten)]
    pub symbols: SymbolArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Open interest interval or long/short ratio period
    #[arg(long, value_parser = args::freq, default_value = "5m")]
    pub period: Freq,
    /// Long/short ratio type: toptrader_account (alias account), toptrader_position
    /// (position), global_account (global), taker_vol (taker)
    #[arg(long, default_value = "toptrader_account")]
    pub ratio_type: String,
    /// Output format (default table; json with --json)
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// Parses the ratio type, a usage error naming the accepted values otherwise.
fn ratio_type(text: &str) -> Result<RatioType> {
    RatioType::parse(text).map_err(|e| super::usage(e.to_string()))
}

pub async fn run(g: &Global, a: &MetricsArgs) -> Result<ExitCode> {
    let spec = a.range.spec()?;
    let ratio = ratio_type(&a.ratio_type)?;
    let parts = args::split_symbols(&a.symbols.symbols);
    let symbols = if parts.len() == 1 && parts[0].eq_ignore_ascii_case("all") {
        Vec::new()
    } else {
        args::parse_symbols(&parts)?
    };
    // An open start means from the first record there can be.
    let range = match spec {
        args::RangeSpec::Fixed(r) => r,
        args::RangeSpec::FromFirst { end_exclusive } => {
            TimeRange::new(EARLIEST_MARKET_MS.min(end_exclusive), end_exclusive)?
        }
    };
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let rows: Vec<Value> = match a.kind {
        MetricKind::Funding => db
            .read_funding_rate(range, &symbols, false)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "symbol": r.symbol, "timestamp": r.funding_time,
                    "datetime": format_rfc3339(r.funding_time), "funding_rate": r.funding_rate,
                    "mark_price": r.mark_price, "index_price": r.index_price,
                })
            })
            .collect(),
        MetricKind::OpenInterest => db
            .read_open_interest(range, &symbols, a.period, false)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "symbol": r.symbol, "timestamp": r.time, "datetime": format_rfc3339(r.time),
                    "interval": r.interval, "open_interest": r.open_interest,
                    "open_interest_value": r.open_interest_value,
                })
            })
            .collect(),
        MetricKind::LongShortRatio => db
            .read_long_short_ratio(range, &symbols, a.period, ratio, false)
            .await?
            .into_iter()
            .map(|r| {
                json!({
                    "symbol": r.symbol, "timestamp": r.timestamp,
                    "datetime": format_rfc3339(r.timestamp), "period": r.period,
                    "ratio_type": r.ratio_type, "long_short_ratio": r.long_short_ratio,
                    "long_account": r.long_account, "short_account": r.short_account,
                })
            })
            .collect(),
    };
    db.close().await;
    if rows.is_empty() {
        args::warn(
            g,
            &format!("no {:?} records in the range", a.kind).to_lowercase(),
        );
    }
    let columns: Vec<&str> = match a.kind {
        MetricKind::Funding => vec![
            "symbol",
            "timestamp",
            "datetime",
            "funding_rate",
            "mark_price",
            "index_price",
        ],
        MetricKind::OpenInterest => vec![
            "symbol",
            "timestamp",
            "datetime",
            "interval",
            "open_interest",
            "open_interest_value",
        ],
        MetricKind::LongShortRatio => vec![
            "symbol",
            "timestamp",
            "datetime",
            "period",
            "ratio_type",
            "long_short_ratio",
            "long_account",
            "short_account",
        ],
    };
    let format = a
        .format
        .unwrap_or(if g.json { Format::Json } else { Format::Table });
    let cell = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match format {
        Format::Json => output::json(&rows)?,
        Format::Jsonl => {
            for r in &rows {
                serde_json::to_writer(&mut out, r)?;
                writeln!(out)?;
            }
        }
        Format::Csv => {
            writeln!(out, "{}", columns.join(","))?;
            for r in &rows {
                let line: Vec<String> = columns.iter().map(|c| cell(&r[*c])).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
        Format::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| columns.iter().map(|c| cell(&r[*c])).collect())
                .collect();
            output::table(&columns, &table);
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
