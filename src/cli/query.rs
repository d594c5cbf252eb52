//! `query`: prints bars as a table, CSV or JSON.

use std::{io::Write, process::ExitCode};

use anyhow::Result;
use clap::{Args, ValueEnum};
use marketdb_model::{Freq, format_rfc3339};
use marketdb_store::{Column, KlineFrame};

use super::{Global, RangeArgs, SymbolArgs, args, output};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub symbols: SymbolArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Interval (1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M)
    #[arg(long, value_parser = args::freq)]
    pub freq: Freq,
    /// Features, short or long names (default: the 11 kline columns)
    #[arg(long, value_parser = args::features)]
    pub features: Option<args::FeatureList>,
    /// Output format (default table; json with --json)
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// At most this many rows
    #[arg(long)]
    pub limit: Option<usize>,
}

pub async fn run(g: &Global, a: &QueryArgs) -> Result<ExitCode> {
    let range = a.range.range()?;
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let symbols = a.symbols.resolve(&db, a.freq).await?;
    let features = args::feature_list(&a.features);
    let frame = db
        .read_data(range, a.freq, &symbols, &features, false)
        .await?;
    db.close().await;
    let format = a
        .format
        .unwrap_or(if g.json { Format::Json } else { Format::Table });
    let n = a.limit.unwrap_or(usize::MAX).min(frame.len());
    match format {
        Format::Csv => write_csv(&frame, n)?,
        Format::Json => output::json(&json_rows(&frame, n))?,
        Format::Table => {
            let mut header = vec!["symbol", "time"];
            header.extend(frame.features.iter().map(|f| f.short()));
            let rows: Vec<Vec<String>> = (0..n)
                .map(|r| {
                    let mut row = vec![
                        frame.symbol_of(r).unwrap_or("").to_owned(),
                        format_rfc3339(frame.timestamp[r]),
                    ];
                    row.extend(frame.columns.iter().map(|c| cell(c, r)));
                    row
                })
                .collect();
            output::table(&header, &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cell(c: &Column, row: usize) -> String {
    match c {
        Column::F64(v) if v[row].is_nan() => String::new(),
        Column::F64(v) => v[row].to_string(),
        Column::I64(v) => v[row].to_string(),
    }
}

fn write_csv(frame: &KlineFrame, n: usize) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write!(out, "symbol,timestamp,datetime")?;
    for f in &frame.features {
        write!(out, ",{}", f.short())?;
    }
    writeln!(out)?;
    for r in 0..n {
        write!(
            out,
            "{},{},{}",
            frame.symbol_of(r).unwrap_or(""),
            frame.timestamp[r],
            format_rfc3339(frame.timestamp[r])
        )?;
        for c in &frame.columns {
            write!(out, ",{}", cell(c, r))?;
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

fn json_rows(frame: &KlineFrame, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|r| {
            let mut obj = serde_json::Map::new();
            obj.insert("symbol".into(), frame.symbol_of(r).unwrap_or("").into());
            obj.insert("timestamp".into(), frame.timestamp[r].into());
            obj.insert("datetime".into(), format_rfc3339(frame.timestamp[r]).into());
            for (f, c) in frame.features.iter().zip(&frame.columns) {
                let v = match c {
                    Column::F64(v) if v[r].is_finite() => v[r].into(),
                    Column::F64(_) => serde_json::Value::Null,
                    Column::I64(v) => v[r].into(),
                };
                obj.insert(f.short().into(), v);
            }
            serde_json::Value::Object(obj)
        })
        .collect()
}
