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

/// Rows per store read of a klines partition.
const READ_ROWS: usize = 65_536;

/// Feeds every row of `batch` to `h`, row by row, so the digest does not depend on how
/// the rows were split into batches.
pub(crate) fn hash_rows(h: &mut Sha256, batch: &RecordBatch) {
    let cols = batch.columns();
    for row in 0..batch.num_rows() {
        for col in cols {
            if col.is_null(row) {
                h.update([0u8]);
                continue;
            }
            h.update([1u8]);
            match col.data_type() {
                DataType::Dictionary(..) => {
                    let d = col.as_dictionary::<Int32Type>();
                    let values = d.values().as_string::<i32>();
                    let s = values.value(d.keys().value(row) as usize);
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
                DataType::Utf8 => {
                    let s = col.as_string::<i32>().value(row);
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
                DataType::Timestamp(..) => h.update(
                    col.as_primitive::<TimestampMillisecondType>()
                        .value(row)
                        .to_le_bytes(),
                ),
                DataType::Int64 => {
                    h.update(col.as_primitive::<Int64Type>().value(row).to_le_bytes())
                }
                DataType::Float64 => h.update(
                    col.as_primitive::<Float64Type>()
                        .value(row)
                        .to_bits()
                        .to_le_bytes(),
                ),
                // The dataset schemas hold no other type.
                _ => {}
            }
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
    /// A metric partition is read in one batch (a day, or a month of funding).
    Metric {
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
            _ => Rows::Metric { done: false },
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
            Rows::Metric { done: true } => Ok(None),
            Rows::Metric { done } => {
                *done = true;
                let table = p
                    .kind
                    .metric()
                    .ok_or_else(|| Error::request("partition", &p.key, "has no metric table"))?;
                let batch = db
                    .read_metric_batch(table, TimeRange::new(p.start, p.end)?, &self.symbols)
                    .await
                    .map_err(|e| Error::read(format!("partition {}", p.key), e))?;
                if batch.num_rows() == 0 {
                    return Ok(None);
                }
                Ok(Some(to_dataset(&batch, &self.schema, &p.key)?))
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
