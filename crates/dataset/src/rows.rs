//! A partition's rows as the database holds them now: streamed from the store as record
//! batches of the kind's schema, in (symbol, time) order, for the symbols the partition
//! covers; and their digest ([`hash_rows`]), which does not depend on how the rows were
//! split into batches. The same digest is taken of a partition file's rows on import, so
//! "the database holds what the partition brought" is a comparison of two digests.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use marketdb_model::TimeRange;
use marketdb_store::{AsyncMarketDB, ScanChunk};
use sha2::{Digest, Sha256};

use crate::layout::{KLINE_FEATURES, Partition};
use crate::{Error, Result};

/// Rows per store read of a klines partition: small enough that the encoder starts early
/// and the store and the encoder overlap for most of a partition.
const READ_ROWS: usize = 16_384;

/// Symbols per store read of a metric partition.
const METRIC_SYMBOLS: usize = 16;

/// Feeds every row of `batch` to `h`, row by row, so the digest does not depend on how
/// the rows were split into batches. Per row and column: `0` for a null; otherwise `1`
/// then the value (a string as its length, u64 little-endian, and its bytes; an integer
/// or a timestamp as i64 little-endian; a float as its bits, little-endian). The bytes
/// of a batch are laid out in one buffer first: one hash call per batch rather than
/// several per value.
pub(crate) fn hash_rows(h: &mut Sha256, batch: &RecordBatch) {
    let cols: Vec<Column<'_>> = batch.columns().iter().map(Column::of).collect();
    let mut buf = Vec::with_capacity(batch.num_rows() * (1 + cols.len() * 9 + 16));
    for row in 0..batch.num_rows() {
        for col in &cols {
            col.put(row, &mut buf);
        }
    }
    h.update(&buf);
}

/// A column of a dataset schema, typed once per batch rather than once per value.
enum Column<'a> {
    Dictionary {
        array: &'a dyn Array,
        keys: &'a arrow_array::PrimitiveArray<Int32Type>,
        values: &'a arrow_array::StringArray,
    },
    Text(&'a arrow_array::StringArray),
    Time(&'a arrow_array::PrimitiveArray<TimestampMillisecondType>),
    Integer(&'a arrow_array::PrimitiveArray<Int64Type>),
    Float(&'a arrow_array::PrimitiveArray<Float64Type>),
    /// The dataset schemas hold no other type: only its nulls count.
    Other(&'a dyn Array),
}

impl<'a> Column<'a> {
    fn of(col: &'a arrow_array::ArrayRef) -> Column<'a> {
        match col.data_type() {
            DataType::Dictionary(..) => {
                let d = col.as_dictionary::<Int32Type>();
                Column::Dictionary {
                    array: col.as_ref(),
                    keys: d.keys(),
                    values: d.values().as_string::<i32>(),
                }
            }
            DataType::Utf8 => Column::Text(col.as_string::<i32>()),
            DataType::Timestamp(..) => Column::Time(col.as_primitive::<TimestampMillisecondType>()),
            DataType::Int64 => Column::Integer(col.as_primitive::<Int64Type>()),
            DataType::Float64 => Column::Float(col.as_primitive::<Float64Type>()),
            _ => Column::Other(col.as_ref()),
        }
    }

    fn put(&self, row: usize, buf: &mut Vec<u8>) {
        let array: &dyn Array = match self {
            Column::Dictionary { array, .. } => *array,
            Column::Text(a) => *a,
            Column::Time(a) => *a,
            Column::Integer(a) => *a,
            Column::Float(a) => *a,
            Column::Other(a) => *a,
        };
        if array.is_null(row) {
            buf.push(0);
            return;
        }
        buf.push(1);
        let text = |buf: &mut Vec<u8>, s: &str| {
            buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        };
        match self {
            Column::Dictionary { keys, values, .. } => {
                text(buf, values.value(keys.value(row) as usize))
            }
            Column::Text(a) => text(buf, a.value(row)),
            Column::Time(a) => buf.extend_from_slice(&a.value(row).to_le_bytes()),
            Column::Integer(a) => buf.extend_from_slice(&a.value(row).to_le_bytes()),
            Column::Float(a) => buf.extend_from_slice(&a.value(row).to_bits().to_le_bytes()),
            Column::Other(_) => {}
        }
    }
}

/// `batch` (from the store, `symbol` a dictionary) in the dataset schema `schema`.
fn to_dataset(batch: &RecordBatch, schema: &SchemaRef, key: &str) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    if let Some(d) = columns[0].as_dictionary_opt::<Int32Type>() {
        let values = d.values().as_string::<i32>();
        let plain: arrow_array::StringArray = d
            .keys()
            .iter()
            .map(|k| k.map(|k| values.value(k as usize)))
            .collect();
        columns[0] = Arc::new(plain);
    }
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|source| Error::Arrow {
        path: PathBuf::from(key),
        source,
    })
}

/// Streams a partition's rows as batches of its schema, in (symbol, time) order.
pub(crate) struct PartitionRows {
    inner: Rows,
    schema: SchemaRef,
    symbols: Vec<String>,
    partition: Partition,
}

enum Rows {
    Klines(marketdb_store::FrameStream),
    /// A metric partition is read [`METRIC_SYMBOLS`] symbols at a time, so the encoder
    /// works on one group while the store reads the next.
    Metric {
        /// Symbols not read yet, in order.
        left: std::collections::VecDeque<String>,
        done: bool,
    },
}

impl PartitionRows {
    /// The rows of `p` for `symbols` (the symbols it covers).
    pub(crate) fn open(
        db: &AsyncMarketDB,
        p: &Partition,
        symbols: &[String],
    ) -> Result<PartitionRows> {
        let range = TimeRange::new(p.start, p.end)?;
        let inner = match (p.kind.metric(), p.freq) {
            (None, Some(freq)) => Rows::Klines(db.scan(
                range,
                freq,
                symbols,
                &KLINE_FEATURES,
                ScanChunk::Rows(READ_ROWS),
            )),
            _ => {
                // In the order one read of all of them gives (the store sorts them), so
                // the rows and their digest do not depend on how they are grouped.
                let mut left: Vec<String> = symbols.to_vec();
                left.sort_unstable();
                left.dedup();
                Rows::Metric {
                    left: left.into(),
                    done: false,
                }
            }
        };
        Ok(PartitionRows {
            inner,
            schema: p.kind.schema(),
            symbols: symbols.to_vec(),
            partition: p.clone(),
        })
    }

    /// The next batch, or `None` at the end.
    pub(crate) async fn next(&mut self, db: &AsyncMarketDB) -> Result<Option<RecordBatch>> {
        let p = &self.partition;
        match &mut self.inner {
            Rows::Klines(stream) => match stream.next().await {
                None => Ok(None),
                Some(Err(e)) => Err(Error::read(format!("partition {}", p.key), e)),
                Some(Ok(frame)) => {
                    let batch = frame
                        .into_record_batch()
                        .map_err(|e| Error::read(format!("partition {}", p.key), e))?;
                    Ok(Some(to_dataset(&batch, &self.schema, &p.key)?))
                }
            },
            Rows::Metric { done: true, .. } => Ok(None),
            Rows::Metric { left, done } => {
                let table = p
                    .kind
                    .metric()
                    .ok_or_else(|| Error::request("partition", &p.key, "has no metric table"))?;
                let range = TimeRange::new(p.start, p.end)?;
                loop {
                    // No symbols means every symbol: one read.
                    let group: Vec<String> = if left.is_empty() {
                        *done = true;
                        if !self.symbols.is_empty() {
                            return Ok(None);
                        }
                        Vec::new()
                    } else {
                        let n = left.len().min(METRIC_SYMBOLS);
                        left.drain(..n).collect()
                    };
                    let batch = db
                        .read_metric_batch(table, range, &group)
                        .await
                        .map_err(|e| Error::read(format!("partition {}", p.key), e))?;
                    if batch.num_rows() > 0 {
                        return Ok(Some(to_dataset(&batch, &self.schema, &p.key)?));
                    }
                    if *done {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// The digest and row count of a partition's rows of `symbols` as stored now.
pub(crate) async fn digest(
    db: &AsyncMarketDB,
    p: &Partition,
    symbols: &[String],
) -> Result<(String, u64)> {
    let mut rows = PartitionRows::open(db, p, symbols)?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(batch) = rows.next(db).await? {
        n += batch.num_rows() as u64;
        hash_rows(&mut h, &batch);
    }
    Ok((marketdb_output::hex(&h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        ArrayRef, DictionaryArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };

    fn batch() -> RecordBatch {
        let symbols: DictionaryArray<Int32Type> =
            vec![Some("BTCUSDT"), Some("BTCUSDT"), None, Some("ETHUSDT")]
                .into_iter()
                .collect();
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("symbol", Arc::new(symbols)),
            (
                "time",
                Arc::new(TimestampMillisecondArray::from(vec![1, 2, 3, -4])),
            ),
            (
                "kind",
                Arc::new(StringArray::from(vec![
                    Some("5m"),
                    None,
                    Some(""),
                    Some("1h"),
                ])),
            ),
            (
                "trades",
                Arc::new(Int64Array::from(vec![
                    Some(7),
                    Some(-1),
                    None,
                    Some(i64::MAX),
                ])),
            ),
            (
                "close",
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    Some(f64::NAN),
                    Some(-0.0),
                    None,
                ])),
            ),
        ];
        RecordBatch::try_from_iter(cols).expect("batch")
    }

    /// The bytes the digest is documented to cover, laid out by hand: the digests in
    /// published states were taken of exactly these, so a faster hash must keep them.
    fn by_hand() -> Vec<u8> {
        let text = |out: &mut Vec<u8>, s: &str| {
            out.push(1);
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        };
        let int = |out: &mut Vec<u8>, v: i64| {
            out.push(1);
            out.extend(v.to_le_bytes());
        };
        let float = |out: &mut Vec<u8>, v: f64| {
            out.push(1);
            out.extend(v.to_bits().to_le_bytes());
        };
        let mut out = Vec::new();
        text(&mut out, "BTCUSDT");
        int(&mut out, 1);
        text(&mut out, "5m");
        int(&mut out, 7);
        float(&mut out, 1.5);

        text(&mut out, "BTCUSDT");
        int(&mut out, 2);
        out.push(0);
        int(&mut out, -1);
        float(&mut out, f64::NAN);

        out.push(0);
        int(&mut out, 3);
        text(&mut out, "");
        out.push(0);
        float(&mut out, -0.0);

        text(&mut out, "ETHUSDT");
        int(&mut out, -4);
        text(&mut out, "1h");
        int(&mut out, i64::MAX);
        out.push(0);
        out
    }

    #[test]
    fn the_digest_covers_the_documented_bytes_of_every_row() {
        let mut h = Sha256::new();
        hash_rows(&mut h, &batch());
        assert_eq!(h.finalize(), Sha256::digest(by_hand()));
    }

    #[tokio::test]
    async fn a_metric_partition_digest_does_not_depend_on_the_order_of_its_symbols() {
        use marketdb_model::{Freq, OpenInterest};
        let dir = tempfile::tempdir().expect("dir");
        let db = AsyncMarketDB::open(dir.path().join("m.db"))
            .await
            .expect("db");
        let t0 = 1_704_067_200_000; // 2024-01-01
        // More symbols than one store read takes, so the partition is read in groups.
        let symbols: Vec<String> = (0..40).map(|i| format!("S{i:02}USDT")).collect();
        let rows = symbols
            .iter()
            .flat_map(|s| {
                (0..3).map(move |m| OpenInterest {
                    symbol: s.clone(),
                    time: t0 + m * 300_000,
                    interval: Freq::M5,
                    open_interest: m as f64,
                    open_interest_value: None,
                })
            })
            .collect();
        db.store_open_interest(rows).await.expect("store");
        let p = Partition::parse("open_interest/date=2024-01-01").expect("partition");
        let sorted = digest(&db, &p, &symbols).await.expect("digest");
        assert_eq!(sorted.1, 120);
        // A state written by another program may list them in any order, twice even.
        let mut shuffled: Vec<String> = symbols.iter().rev().cloned().collect();
        shuffled.push(symbols[3].clone());
        assert_eq!(digest(&db, &p, &shuffled).await.expect("digest"), sorted);
        // And the same as one read of every symbol.
        assert_eq!(digest(&db, &p, &[]).await.expect("digest"), sorted);
        db.close().await;
    }

    #[test]
    fn the_digest_does_not_depend_on_how_rows_are_split_into_batches() {
        let b = batch();
        let mut whole = Sha256::new();
        hash_rows(&mut whole, &b);
        for cut in 0..=b.num_rows() {
            let mut parts = Sha256::new();
            hash_rows(&mut parts, &b.slice(0, cut));
            hash_rows(&mut parts, &b.slice(cut, b.num_rows() - cut));
            assert_eq!(parts.finalize(), whole.clone().finalize(), "cut at {cut}");
        }
    }
}
