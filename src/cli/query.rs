//! `query`: prints bars as a table, CSV, a JSON array or JSON Lines. Rows stream from the
//! store in bounded frames and are written as they come, so memory does not follow the size
//! of the result; `--limit` is passed down to SQL, so a small limit reads little. Metric
//! features are aligned onto each frame by the store (`AsyncMarketDB::combine`), the rule
//! `read_combined` and the exporter use.

use std::{
    io::{BufWriter, Write},
    process::ExitCode,
};

use anyhow::Result;
use clap::{Args, ValueEnum};
use marketdb_model::time::format_rfc3339;
use marketdb_model::{FeatureKind, Freq};
use marketdb_store::{Column, CombinedFrame, KlineFrame};

use super::{Global, RangeArgs, SymbolArgs, args};

/// Rows per frame read from the store.
const FRAME_ROWS: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns (widths from the first rows)
    Table,
    /// CSV with a header
    Csv,
    /// One JSON array of row objects, written incrementally
    Json,
    /// One JSON object per line
    Jsonl,
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
    /// Features, short or long names (default: the 11 kline columns); metric features (fr,
    /// oi, oiv, lsr_ta, lsr_tp, lsr_ga, lsr_tv) get the latest value known at each bar's
    /// close (funding within 48 h, open interest and ratios within 6 h)
    #[arg(long, value_parser = args::features)]
    pub features: Option<args::FeatureList>,
    /// Period of the open interest and long/short ratios of metric features
    #[arg(long, value_parser = args::freq, default_value = "5m")]
    pub period: Freq,
    /// Output format (default table; json with --json)
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// At most this many rows (read from the database, not cut afterwards)
    #[arg(long)]
    pub limit: Option<u64>,
}

pub async fn run(g: &Global, a: &QueryArgs) -> Result<ExitCode> {
    a.range.spec()?;
    let db = args::open_db(g, args::Access::ReadOnly).await?;
    let symbols = a.symbols.resolve(g, &db, a.freq).await?;
    let range = a.range.resolve(&db, a.freq, &symbols).await?;
    let features = args::feature_list(&a.features);
    let format = a
        .format
        .unwrap_or(if g.json { Format::Json } else { Format::Table });
    let metrics = features
        .iter()
        .any(|f| matches!(f.kind(), FeatureKind::Metric(_)));
    let read = CombinedFrame::bar_features(&features);
    let mut stream = db.scan_rows(range, a.freq, &symbols, &read, FRAME_ROWS, a.limit);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut writer = RowWriter::new(format);
    let mut rows = 0u64;
    while let Some(frame) = stream.next().await {
        let mut frame = frame?;
        if metrics {
            // Each frame gets its metrics by the store's alignment rule, chunk by chunk.
            frame = db
                .combine(frame, a.freq, &features, a.period)
                .await?
                .into_parts()
                .0;
        }
        rows += frame.len() as u64;
        writer.frame(&mut out, &frame)?;
    }
    writer.finish(&mut out, &features)?;
    out.flush()?;
    drop(out);
    db.close().await;
    if rows == 0 {
        args::warn(
            g,
            &format!(
                "no {} bars of {} in the range",
                a.freq,
                if symbols.is_empty() {
                    "any symbol".to_owned()
                } else {
                    symbols.join(",")
                }
            ),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes frames in one format; remembers what it has written so far.
struct RowWriter {
    format: Format,
    started: bool,
    widths: Vec<usize>,
    line: Vec<u8>,
}

impl RowWriter {
    fn new(format: Format) -> RowWriter {
        RowWriter {
            format,
            started: false,
            widths: Vec::new(),
            line: Vec::new(),
        }
    }

    fn header(frame_features: &[marketdb_model::Feature]) -> Vec<String> {
        let mut h = vec!["symbol".to_owned(), "time".to_owned()];
        h.extend(frame_features.iter().map(|f| f.short().to_owned()));
        h
    }

    fn frame(&mut self, out: &mut impl Write, frame: &KlineFrame) -> Result<()> {
        match self.format {
            Format::Csv => {
                if !self.started {
                    write!(out, "symbol,timestamp,datetime")?;
                    for f in frame.features() {
                        write!(out, ",{}", f.short())?;
                    }
                    writeln!(out)?;
                }
                for r in 0..frame.len() {
                    write!(
                        out,
                        "{},{},{}",
                        frame.symbol_of(r).unwrap_or(""),
                        frame.timestamp()[r],
                        format_rfc3339(frame.timestamp()[r])
                    )?;
                    for c in frame.columns() {
                        write!(out, ",{}", cell(c, r))?;
                    }
                    writeln!(out)?;
                }
            }
            Format::Json | Format::Jsonl => {
                for r in 0..frame.len() {
                    self.line.clear();
                    if self.format == Format::Json {
                        self.line
                            .extend_from_slice(if self.started { b",\n" } else { b"[\n" });
                    }
                    serde_json::to_writer(&mut self.line, &row_object(frame, r))?;
                    if self.format == Format::Jsonl {
                        self.line.push(b'\n');
                    }
                    out.write_all(&self.line)?;
                    self.started = true;
                }
                return Ok(());
            }
            Format::Table => {
                if !self.started {
                    let header = RowWriter::header(frame.features());
                    self.widths = header.iter().map(String::len).collect();
                    for r in 0..frame.len() {
                        for (w, c) in self.widths.iter_mut().zip(table_row(frame, r)) {
                            *w = (*w).max(c.len());
                        }
                    }
                    self.table_line(out, &header)?;
                }
                for r in 0..frame.len() {
                    let row = table_row(frame, r);
                    self.table_line(out, &row)?;
                }
            }
        }
        self.started = true;
        Ok(())
    }

    fn table_line(&self, out: &mut impl Write, cells: &[String]) -> Result<()> {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let w = self.widths.get(i).copied().unwrap_or(0);
            line.push_str(&format!("{c:<w$}"));
        }
        writeln!(out, "{}", line.trim_end())?;
        Ok(())
    }

    /// Closes the output: the JSON array's bracket, or a header when no row came.
    fn finish(&mut self, out: &mut impl Write, features: &[marketdb_model::Feature]) -> Result<()> {
        match (self.format, self.started) {
            (Format::Json, true) => writeln!(out, "\n]")?,
            (Format::Json, false) => writeln!(out, "[]")?,
            (Format::Jsonl, _) | (_, true) => {}
            (Format::Csv, false) => {
                let features = if features.is_empty() {
                    marketdb_model::Feature::KLINE.to_vec()
                } else {
                    features.to_vec()
                };
                write!(out, "symbol,timestamp,datetime")?;
                for f in &features {
                    write!(out, ",{}", f.short())?;
                }
                writeln!(out)?;
            }
            (Format::Table, false) => {
                let features = if features.is_empty() {
                    marketdb_model::Feature::KLINE.to_vec()
                } else {
                    features.to_vec()
                };
                let header = RowWriter::header(&features);
                self.widths = header.iter().map(String::len).collect();
                self.table_line(out, &header)?;
            }
        }
        Ok(())
    }
}

fn table_row(frame: &KlineFrame, r: usize) -> Vec<String> {
    let mut row = vec![
        frame.symbol_of(r).unwrap_or("").to_owned(),
        format_rfc3339(frame.timestamp()[r]),
    ];
    row.extend(frame.columns().iter().map(|c| cell(c, r)));
    row
}

fn cell(c: &Column, row: usize) -> String {
    match c {
        Column::F64(v) if v[row].is_nan() => String::new(),
        Column::F64(v) => v[row].to_string(),
        Column::I64(v) => v[row].to_string(),
    }
}

fn row_object(frame: &KlineFrame, r: usize) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("symbol".into(), frame.symbol_of(r).unwrap_or("").into());
    obj.insert("timestamp".into(), frame.timestamp()[r].into());
    obj.insert(
        "datetime".into(),
        format_rfc3339(frame.timestamp()[r]).into(),
    );
    for (f, c) in frame.features().iter().zip(frame.columns()) {
        let v = match c {
            Column::F64(v) if v[r].is_finite() => v[r].into(),
            Column::F64(_) => serde_json::Value::Null,
            Column::I64(v) => v[r].into(),
        };
        obj.insert(f.short().into(), v);
    }
    serde_json::Value::Object(obj)
}
