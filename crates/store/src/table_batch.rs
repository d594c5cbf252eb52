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
use arrow_array::{ArrayRef, RecordBatch};
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
    let order: Vec<&str> = cols
        .iter()
        .filter(|(_, k)| matches!(k, Kind::Text))
        .map(|(n, _)| *n)
        .collect();
    let sql = format!(
        "SELECT timestamp, {} FROM {name} WHERE symbol = ?1 AND timestamp >= ?2 \
         AND timestamp < ?3 ORDER BY timestamp{}",
        list.join(", "),
        order.iter().map(|c| format!(", {c}")).collect::<String>()
    );
    let tx = conn.unchecked_transaction()?;
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut sym = StringDictionaryBuilder::<Int32Type>::new();
    let mut ts = Vec::new();
    let mut builders: Vec<Builder> = cols
        .iter()
        .map(|(_, k)| match k {
            Kind::F64 => Builder::F64(Float64Builder::new()),
            Kind::I64 => Builder::I64(Int64Builder::new()),
            Kind::Text => Builder::Text(StringBuilder::new()),
        })
        .collect();
    for s in symbols_of(&tx, name, symbols)? {
        let mut rows = stmt.query(rusqlite::params![s, range.start, range.end_exclusive])?;
        while let Some(row) = rows.next()? {
            sym.append_value(&s);
            ts.push(row.get::<_, i64>(0)?);
            for (i, b) in builders.iter_mut().enumerate() {
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
                    Builder::Text(b) => {
                        let text = match v {
                            ValueRef::Text(x) => Some(String::from_utf8_lossy(x).into_owned()),
                            ValueRef::Null => None,
                            other => Some(format!("{other:?}")),
                        };
                        let canonical = match (cols[i].0, &text) {
                            ("ratio_type", Some(r)) => RatioType::parse(r)
                                .map(|r| r.as_str().to_owned())
                                .unwrap_or_else(|_| r.clone()),
                            _ => text.unwrap_or_default(),
                        };
                        if matches!(v, ValueRef::Null) {
                            b.append_null();
                        } else {
                            b.append_value(canonical);
                        }
                    }
                }
            }
        }
    }
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(sym.finish()), Arc::new(timestamp_array(ts))];
    for b in builders {
        arrays.push(match b {
            Builder::F64(mut b) => Arc::new(b.finish()),
            Builder::I64(mut b) => Arc::new(b.finish()),
            Builder::Text(mut b) => Arc::new(b.finish()),
        });
    }
    let rows = arrays[1].len();
    RecordBatch::try_new(table.schema(), arrays).map_err(|source| Error::Arrow { rows, source })
}
