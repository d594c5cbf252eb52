//! Whole metric tables as Arrow record batches, only with the `arrow` cargo feature: the
//! rows of the funding-rate, open-interest or long/short-ratio table in a time range, with
//! every stored column (nulls kept), ordered by symbol, time and the row's other key
//! columns. The dataset export publishes them as they are stored; the typed reads
//! (`read_open_interest`...) pick one interval or ratio type and cannot.
//!
//! Column names are the tables' (the Python v1.9 names, also those of 1.10+ tables);
//! `symbol` is `Dictionary(Int32, Utf8)`, `timestamp` is `Timestamp(Millisecond, "UTC")`,
//! and `ratio_type` is written in its canonical Binance spelling (`toptrader_account`...)
//! whichever spelling the file stores.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use marketdb_model::{RatioType, TimeRange};
use rusqlite::types::ValueRef;

use crate::arrow::{symbol_field, timestamp_array, timestamp_field};
use crate::metrics::symbols_of;
use crate::{AsyncMarketDB, Error, Result, Tables};

/// A metric table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricTable {
    FundingRate,
    OpenInterest,
    LongShortRatio,
}

/// The type of a column after `symbol` and `timestamp`.
#[derive(Clone, Copy)]
enum Kind {
    F64,
    I64,
    Text,
}

impl MetricTable {
    fn name(self, t: &Tables) -> &'static str {
        match self {
            MetricTable::FundingRate => t.funding,
            MetricTable::OpenInterest => t.open_interest,
            MetricTable::LongShortRatio => t.long_short_ratio,
        }
    }

    fn columns(self) -> &'static [(&'static str, Kind)] {
        match self {
            MetricTable::FundingRate => &[
                ("funding_rate", Kind::F64),
                ("funding_time", Kind::I64),
                ("mark_price", Kind::F64),
                ("index_price", Kind::F64),
            ],
            MetricTable::OpenInterest => &[
                ("interval", Kind::Text),
                ("open_interest", Kind::F64),
                ("open_interest_value", Kind::F64),
            ],
            MetricTable::LongShortRatio => &[
                ("period", Kind::Text),
                ("ratio_type", Kind::Text),
                ("long_short_ratio", Kind::F64),
                ("long_account", Kind::F64),
                ("short_account", Kind::F64),
            ],
        }
    }

    /// The Arrow schema of [`AsyncMarketDB::read_metric_batch`] for this table.
    pub fn schema(self) -> SchemaRef {
        let mut fields = vec![symbol_field(), timestamp_field()];
        for &(name, kind) in self.columns() {
            let dt = match kind {
                Kind::F64 => DataType::Float64,
                Kind::I64 => DataType::Int64,
                Kind::Text => DataType::Utf8,
            };
            fields.push(Field::new(name, dt, true));
        }
        Arc::new(Schema::new(fields))
    }
}

enum Builder {
    F64(Float64Builder),
    I64(Int64Builder),
    Text(StringBuilder),
}

impl AsyncMarketDB {
    /// Every symbol with a row in `table`, sorted (one index seek per symbol).
    pub async fn metric_symbols(&self, table: MetricTable) -> Result<Vec<String>> {
        self.read(move |c, t| {
            let name = table.name(t);
            if !crate::schema::table_exists(c, name)? {
                return Ok(Vec::new());
            }
            symbols_of(c, name, &[])
        })
        .await
    }

    /// The rows of `table` with `timestamp` in `range` for `symbols` (all when empty), as
    /// one batch ordered by symbol, time and the remaining key columns. Memory follows the
    /// rows asked for: callers ask a day or a month at a time.
    pub async fn read_metric_batch(
        &self,
        table: MetricTable,
        range: TimeRange,
        symbols: &[String],
    ) -> Result<RecordBatch> {
        let range = range.checked()?;
        let symbols = crate::db::check_symbols(symbols)?;
        self.read(move |c, t| read(c, t, table, range, &symbols))
            .await
    }
}

fn read(
    conn: &rusqlite::Connection,
    t: &Tables,
    table: MetricTable,
    range: TimeRange,
    symbols: &[String],
) -> Result<RecordBatch> {
    let name = table.name(t);
    if !crate::schema::table_exists(conn, name)? {
        return Ok(RecordBatch::new_empty(table.schema()));
    }
    let cols = table.columns();
    let list: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let keys: Vec<&str> = cols
        .iter()
        .filter(|(_, k)| matches!(k, Kind::Text))
        .map(|(n, _)| *n)
        .collect();
    let select = format!(
        "SELECT timestamp, {} FROM {name} WHERE symbol = ?1",
        list.join(", ")
    );
    let range_sql = "timestamp >= ?2 AND timestamp < ?3";
    // The whole symbol's rows in the wanted order: the primary key (symbol, keys...,
    // timestamp) cannot serve a time range across keys, so SQLite reads all of the
    // symbol's history and sorts. Only used when the keys cannot be listed.
    let whole = format!(
        "{select} AND {range_sql} ORDER BY timestamp{}",
        keys.iter().map(|c| format!(", {c}")).collect::<String>()
    );
    // One key's rows: a range of the primary key.
    let one_key = format!(
        "{select}{} AND {range_sql} ORDER BY timestamp",
        keys.iter()
            .enumerate()
            .map(|(i, c)| format!(" AND {c} = ?{}", i + 4))
            .collect::<String>()
    );
    let tx = conn.unchecked_transaction()?;
    let mut out = Columns::new(cols);
    let mut order: Vec<usize> = Vec::new();
    let mut reordered = false;
    for s in symbols_of(&tx, name, symbols)? {
        let from = out.ts.len();
        // Funding has no key columns: its rows are one range already.
        let values = match keys.is_empty() {
            true => None,
            false => crate::key_skip::key_values(&tx, name, &keys, &s)?,
        };
        match values {
            Some(values) => {
                let mut stmt = tx.prepare_cached(&one_key)?;
                for value in &values {
                    let mut params: Vec<&dyn rusqlite::ToSql> =
                        vec![&s, &range.start, &range.end_exclusive];
                    params.extend(value.iter().map(|v| v as &dyn rusqlite::ToSql));
                    let mut rows = stmt.query(params.as_slice())?;
                    while let Some(row) = rows.next()? {
                        out.push(&s, row)?;
                    }
                }
                // Each key's rows are in time order and the keys in the primary key's
                // order: a stable sort by time gives ORDER BY timestamp, keys...
                let mut seg: Vec<usize> = (from..out.ts.len()).collect();
                if values.len() > 1 {
                    seg.sort_by_key(|&i| out.ts[i]);
                    reordered = true;
                }
                order.extend(seg);
            }
            _ => {
                let mut stmt = tx.prepare_cached(&whole)?;
                let mut rows =
                    stmt.query(rusqlite::params![s, range.start, range.end_exclusive])?;
                while let Some(row) = rows.next()? {
                    out.push(&s, row)?;
                }
                order.extend(from..out.ts.len());
            }
        }
    }
    out.finish(table, reordered.then_some(&order))
}

/// The batch being built.
struct Columns {
    names: &'static [(&'static str, Kind)],
    sym: StringDictionaryBuilder<Int32Type>,
    ts: Vec<i64>,
    builders: Vec<Builder>,
}

impl Columns {
    fn new(cols: &'static [(&'static str, Kind)]) -> Columns {
        Columns {
            names: cols,
            sym: StringDictionaryBuilder::<Int32Type>::new(),
            ts: Vec::new(),
            builders: cols
                .iter()
                .map(|(_, k)| match k {
                    Kind::F64 => Builder::F64(Float64Builder::new()),
                    Kind::I64 => Builder::I64(Int64Builder::new()),
                    Kind::Text => Builder::Text(StringBuilder::new()),
                })
                .collect(),
        }
    }

    /// Appends a row of `SELECT timestamp, columns...`.
    fn push(&mut self, symbol: &str, row: &rusqlite::Row<'_>) -> Result<()> {
        self.sym.append_value(symbol);
        self.ts.push(row.get::<_, i64>(0)?);
        for (i, b) in self.builders.iter_mut().enumerate() {
            let v = row.get_ref(i + 1)?;
            match b {
                Builder::F64(b) => b.append_option(match v {
                    ValueRef::Null => None,
                    ValueRef::Integer(x) => Some(x as f64),
                    ValueRef::Real(x) => Some(x),
                    ValueRef::Text(x) => std::str::from_utf8(x)
                        .ok()
                        .and_then(|s| s.trim().parse().ok()),
                    ValueRef::Blob(_) => None,
                }),
                Builder::I64(b) => b.append_option(match v {
                    ValueRef::Integer(x) => Some(x),
                    ValueRef::Real(x) if x.fract() == 0.0 => Some(x as i64),
                    _ => None,
                }),
                Builder::Text(b) => match v {
                    ValueRef::Null => b.append_null(),
                    ValueRef::Text(x) => {
                        let text = String::from_utf8_lossy(x);
                        match self.names[i].0 {
                            "ratio_type" => match RatioType::parse(&text) {
                                Ok(r) => b.append_value(r.as_str()),
                                Err(_) => b.append_value(&text),
                            },
                            _ => b.append_value(&text),
                        }
                    }
                    other => {
                        let text = format!("{other:?}");
                        match (self.names[i].0, RatioType::parse(&text)) {
                            ("ratio_type", Ok(r)) => b.append_value(r.as_str()),
                            _ => b.append_value(&text),
                        }
                    }
                },
            }
        }
        Ok(())
    }

    /// The batch, its rows put in `order` (row indices) when given.
    fn finish(self, table: MetricTable, order: Option<&Vec<usize>>) -> Result<RecordBatch> {
        let ts = match order {
            Some(o) => o.iter().map(|&i| self.ts[i]).collect(),
            None => self.ts,
        };
        let mut sym = self.sym;
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(sym.finish()), Arc::new(timestamp_array(ts))];
        for b in self.builders {
            arrays.push(match (b, order) {
                (Builder::F64(mut b), None) => Arc::new(b.finish()),
                (Builder::I64(mut b), None) => Arc::new(b.finish()),
                (Builder::Text(mut b), None) => Arc::new(b.finish()),
                // A symbol's rows stay within its own segment: the symbol column needs
                // no reordering.
                (Builder::F64(mut b), Some(o)) => {
                    let a = b.finish();
                    Arc::new(
                        o.iter()
                            .map(|&i| a.is_valid(i).then(|| a.value(i)))
                            .collect::<Float64Array>(),
                    )
                }
                (Builder::I64(mut b), Some(o)) => {
                    let a = b.finish();
                    Arc::new(
                        o.iter()
                            .map(|&i| a.is_valid(i).then(|| a.value(i)))
                            .collect::<Int64Array>(),
                    )
                }
                (Builder::Text(mut b), Some(o)) => {
                    let a = b.finish();
                    Arc::new(
                        o.iter()
                            .map(|&i| a.is_valid(i).then(|| a.value(i)))
                            .collect::<StringArray>(),
                    )
                }
            });
        }
        let rows = arrays[1].len();
        RecordBatch::try_new(table.schema(), arrays).map_err(|source| Error::Arrow { rows, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, TimestampMillisecondType};
    use marketdb_model::{Freq, LongShortRatio, OpenInterest};

    const DAY: i64 = 86_400_000;

    /// (symbol, time, text keys, first value) of a batch, row by row.
    type Row = (String, i64, Vec<Option<String>>, Option<f64>);

    fn rows_of(batch: &RecordBatch, keys: &[&str], value: &str) -> Vec<Row> {
        let sym = batch.column(0).as_dictionary::<Int32Type>();
        let names = sym.values().as_string::<i32>();
        let ts = batch.column(1).as_primitive::<TimestampMillisecondType>();
        let v = batch
            .column_by_name(value)
            .unwrap()
            .as_primitive::<Float64Type>();
        (0..batch.num_rows())
            .map(|i| {
                let k = keys
                    .iter()
                    .map(|c| {
                        let a = batch.column_by_name(c).unwrap().as_string::<i32>();
                        a.is_valid(i).then(|| a.value(i).to_owned())
                    })
                    .collect();
                (
                    names.value(sym.keys().value(i) as usize).to_owned(),
                    ts.value(i),
                    k,
                    v.is_valid(i).then(|| v.value(i)),
                )
            })
            .collect()
    }

    /// The same rows by one plain query: ORDER BY symbol, time and the keys.
    fn by_sql(path: &std::path::Path, sql: &str, keys: usize, range: TimeRange) -> Vec<Row> {
        let c = rusqlite::Connection::open(path).unwrap();
        let mut stmt = c.prepare(sql).unwrap();
        let rows = stmt
            .query_map(rusqlite::params![range.start, range.end_exclusive], |r| {
                let mut k = Vec::new();
                for i in 0..keys {
                    // A key stored as another type reads as its debug spelling.
                    let v = match r.get_ref(2 + i)? {
                        ValueRef::Null => None,
                        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                        other => Some(format!("{other:?}")),
                    };
                    // The batch spells ratio types the canonical way.
                    k.push(v.map(|v| match RatioType::parse(&v) {
                        Ok(t) if i == 1 => t.as_str().to_owned(),
                        _ => v,
                    }));
                }
                Ok((r.get(0)?, r.get(1)?, k, r.get(2 + keys)?))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[tokio::test]
    async fn metric_rows_of_every_key_come_in_time_then_key_order_odd_keys_included() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let db = AsyncMarketDB::open(&path).await.unwrap();
        let t0 = 1_704_067_200_000; // 2024-01-01
        let mut lsr = Vec::new();
        let mut oi = Vec::new();
        let mut n = 0.0;
        for symbol in ["AAAUSDT", "BBBUSDT"] {
            for day in 0..3 {
                for (period, step) in [(Freq::M5, 5), (Freq::H1, 60)] {
                    for m in (0..180).step_by(step) {
                        let timestamp = t0 + day * DAY + m * 60_000;
                        for ratio_type in [
                            RatioType::TakerVol,
                            RatioType::GlobalAccount,
                            RatioType::TopTraderPosition,
                        ] {
                            n += 1.0;
                            lsr.push(LongShortRatio {
                                symbol: symbol.into(),
                                timestamp,
                                period,
                                ratio_type,
                                long_short_ratio: n,
                                long_account: None,
                                short_account: Some(n),
                            });
                        }
                        n += 1.0;
                        oi.push(OpenInterest {
                            symbol: symbol.into(),
                            time: timestamp,
                            interval: period,
                            open_interest: n,
                            open_interest_value: None,
                        });
                    }
                }
            }
        }
        db.store_long_short_ratio(lsr).await.unwrap();
        db.store_open_interest(oi).await.unwrap();
        db.close().await;
        // Another program's rows: keys given as numbers (stored as text by the columns'
        // affinity) and as a blob, which sorts after every text (the primary key
        // columns cannot be NULL).
        {
            use rusqlite::types::Value;
            let c = rusqlite::Connection::open(&path).unwrap();
            let text = |s: &str| Value::Text(s.to_owned());
            for (sym, ts, period, ratio) in [
                (
                    "AAAUSDT",
                    t0 + DAY + 60_000,
                    Value::Integer(5),
                    text("global"),
                ),
                ("ODDUSDT", t0 + DAY, text("5m"), Value::Integer(7)),
                ("ODDUSDT", t0 + DAY, text("5m"), text("taker")),
                ("ODDUSDT", t0 + DAY + 1, Value::Blob(vec![1]), text("taker")),
            ] {
                c.execute(
                    "INSERT INTO long_short_ratio (symbol, timestamp, period, ratio_type, \
                     long_short_ratio) VALUES (?1, ?2, ?3, ?4, 0.5)",
                    rusqlite::params![sym, ts, period, ratio],
                )
                .unwrap();
            }
            c.execute(
                "INSERT INTO open_interest (symbol, timestamp, interval, open_interest) \
                 VALUES ('BBBUSDT', ?1, 15, 0.25)",
                [t0 + DAY + 300_000],
            )
            .unwrap();
        }
        let db = AsyncMarketDB::open(&path).await.unwrap();
        // The middle day: rows before and after it are stored but not read.
        let range = TimeRange::new(t0 + DAY, t0 + 2 * DAY).unwrap();
        let got = db
            .read_metric_batch(MetricTable::LongShortRatio, range, &[])
            .await
            .unwrap();
        let want = by_sql(
            &path,
            "SELECT symbol, timestamp, period, ratio_type, long_short_ratio FROM \
             long_short_ratio WHERE timestamp >= ?1 AND timestamp < ?2 \
             ORDER BY symbol, timestamp, period, ratio_type",
            2,
            range,
        );
        assert_eq!(want.len(), 2 * (36 + 3) * 3 + 4);
        assert_eq!(
            rows_of(&got, &["period", "ratio_type"], "long_short_ratio"),
            want
        );
        let got = db
            .read_metric_batch(MetricTable::OpenInterest, range, &[])
            .await
            .unwrap();
        let want = by_sql(
            &path,
            "SELECT symbol, timestamp, interval, open_interest FROM open_interest \
             WHERE timestamp >= ?1 AND timestamp < ?2 ORDER BY symbol, timestamp, interval",
            1,
            range,
        );
        assert_eq!(want.len(), 2 * (36 + 3) + 1);
        assert_eq!(rows_of(&got, &["interval"], "open_interest"), want);
        db.close().await;
    }
}
