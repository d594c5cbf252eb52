//! Arrow view of a [`KlineFrame`], only with the `arrow` cargo feature:
//! [`KlineFrame::to_record_batch`] (also `RecordBatch::try_from(&frame)`) builds one
//! [`RecordBatch`] with `symbol` as `Dictionary(Int32, Utf8)`, `timestamp` as
//! `Timestamp(Millisecond, "UTC")` (the bar open time), then one column per feature named by
//! its short name: `Int64` for counts (`tnum`, not null), `Float64` otherwise (nullable,
//! null where the frame holds NaN: a missing price of a foreign file, `vwap` with no
//! volume). These are the names and types of the Parquet export, which builds its schema
//! and arrays with the functions here, so a frame and a Parquet export of the same bars
//! agree. `symbol` is a dictionary because a frame holds each symbol once for a run of
//! rows: the batch keeps one string per symbol and a 4-byte key per row, and pandas reads
//! it as a category. It does not convert Arrow back into a frame or write files.

use std::{ops::Range, sync::Arc};

use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, types::Int32Type,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use marketdb_model::Feature;

use crate::{Column, Error, KlineFrame, Result};

/// The `symbol` field: `Dictionary(Int32, Utf8)`, not null.
pub fn symbol_field() -> Field {
    Field::new(
        "symbol",
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        false,
    )
}

/// The `timestamp` field: bar open time, `Timestamp(Millisecond, "UTC")`, not null.
pub fn timestamp_field() -> Field {
    Field::new(
        "timestamp",
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        false,
    )
}

/// The field of a feature: its short name, `Int64` (not null) for counts, else `Float64`
/// (nullable, null = NaN).
pub fn feature_field(feature: Feature) -> Field {
    if feature.is_integer() {
        Field::new(feature.short(), DataType::Int64, false)
    } else {
        Field::new(feature.short(), DataType::Float64, true)
    }
}

/// `symbol`, `timestamp`, then one field per feature, in order.
pub fn kline_fields(features: &[Feature]) -> Vec<Field> {
    let mut fields = vec![symbol_field(), timestamp_field()];
    fields.extend(features.iter().map(|f| feature_field(*f)));
    fields
}

/// The schema of [`kline_fields`].
pub fn kline_schema(features: &[Feature]) -> SchemaRef {
    Arc::new(Schema::new(kline_fields(features)))
}

/// The `symbol` column of rows grouped in runs: key `i` for every row of the `i`-th run.
/// Fails only with more runs than an `Int32` key can number.
pub fn symbol_array(
    symbols: &[(String, Range<usize>)],
) -> Result<DictionaryArray<Int32Type>, ArrowError> {
    let rows = symbols.last().map_or(0, |(_, r)| r.end);
    let mut keys = Vec::with_capacity(rows);
    for (i, (_, run)) in symbols.iter().enumerate() {
        let key = i32::try_from(i).map_err(|_| ArrowError::DictionaryKeyOverflowError)?;
        keys.extend(std::iter::repeat_n(key, run.len()));
    }
    let values = StringArray::from_iter_values(symbols.iter().map(|(s, _)| s.as_str()));
    DictionaryArray::try_new(Int32Array::from(keys), Arc::new(values))
}

/// The `timestamp` column from open times in ms.
pub fn timestamp_array(timestamp: Vec<i64>) -> TimestampMillisecondArray {
    TimestampMillisecondArray::from(timestamp).with_timezone("UTC")
}

/// A feature column: `Float64` with NaN as null, or `Int64`. Takes the vector so that a
/// column without NaN moves into Arrow without a copy.
pub fn column_array(column: Column) -> ArrayRef {
    match column {
        Column::F64(v) if !v.iter().any(|x| x.is_nan()) => Arc::new(Float64Array::from(v)),
        Column::F64(v) => Arc::new(
            v.into_iter()
                .map(|x| (!x.is_nan()).then_some(x))
                .collect::<Float64Array>(),
        ),
        Column::I64(v) => Arc::new(Int64Array::from(v)),
    }
}

impl KlineFrame {
    /// The Arrow schema of [`Self::to_record_batch`].
    pub fn arrow_schema(&self) -> SchemaRef {
        kline_schema(&self.features)
    }

    /// The frame as one Arrow record batch (copies the columns; see
    /// [`Self::into_record_batch`] to move them).
    pub fn to_record_batch(&self) -> Result<RecordBatch> {
        self.clone().into_record_batch()
    }

    /// The frame as one Arrow record batch, moving its vectors into Arrow.
    pub fn into_record_batch(self) -> Result<RecordBatch> {
        let rows = self.len();
        let err = |source| Error::Arrow { rows, source };
        let schema = self.arrow_schema();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(2 + self.columns.len());
        arrays.push(Arc::new(symbol_array(&self.symbols).map_err(err)?));
        arrays.push(Arc::new(timestamp_array(self.timestamp)));
        arrays.extend(self.columns.into_iter().map(column_array));
        RecordBatch::try_new(schema, arrays).map_err(err)
    }
}

impl TryFrom<&KlineFrame> for RecordBatch {
    type Error = Error;

    fn try_from(frame: &KlineFrame) -> Result<RecordBatch> {
        frame.to_record_batch()
    }
}

impl TryFrom<KlineFrame> for RecordBatch {
    type Error = Error;

    fn try_from(frame: KlineFrame) -> Result<RecordBatch> {
        frame.into_record_batch()
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, cast::AsArray, types::Float64Type};
    use marketdb_model::{Freq, Kline, TimeRange, time::parse_ymd};

    use super::*;
    use crate::AsyncMarketDB;

    /// The symbol of every row, decoded through the dictionary.
    fn symbols(batch: &RecordBatch) -> Vec<String> {
        let dict = batch.column(0).as_dictionary::<Int32Type>();
        let values = dict.values().as_string::<i32>();
        dict.keys()
            .values()
            .iter()
            .map(|k| values.value(usize::try_from(*k).unwrap()).to_owned())
            .collect()
    }

    fn times(batch: &RecordBatch) -> Vec<i64> {
        let ts = batch
            .column(1)
            .as_primitive::<arrow_array::types::TimestampMillisecondType>();
        assert_eq!(ts.timezone(), Some("UTC"));
        ts.values().to_vec()
    }

    /// A float column as options (None = null).
    fn floats(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>()
            .iter()
            .collect()
    }

    fn ints(batch: &RecordBatch, name: &str) -> Vec<i64> {
        let a = batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(a.null_count(), 0);
        a.values().to_vec()
    }

    #[test]
    fn a_hand_built_frame_converts_row_by_row() {
        let t0 = 1_704_067_200_000;
        let frame = KlineFrame::new(
            vec![("AAAUSDT".into(), 0..2), ("BBBUSDT".into(), 2..3)],
            vec![t0, t0 + 60_000, t0],
            vec![Feature::Open, Feature::TradesCount, Feature::Vwap],
            vec![
                Column::F64(vec![1.0, 2.5, -0.0]),
                Column::I64(vec![4, 0, 6]),
                Column::F64(vec![1.5, f64::NAN, 2.0]),
            ],
        )
        .unwrap();
        let batch = frame.to_record_batch().unwrap();
        assert_eq!(batch.num_rows(), 3);
        let schema = batch.schema();
        let described: Vec<(&str, &DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
            .collect();
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        assert_eq!(
            described,
            [
                ("symbol", &dict, false),
                ("timestamp", &ts, false),
                ("opn", &DataType::Float64, true),
                ("tnum", &DataType::Int64, false),
                ("vwap", &DataType::Float64, true),
            ]
        );
        assert_eq!(symbols(&batch), ["AAAUSDT", "AAAUSDT", "BBBUSDT"]);
        let dict = batch.column(0).as_dictionary::<Int32Type>();
        assert_eq!(dict.values().len(), 2, "one dictionary entry per symbol");
        assert_eq!(times(&batch), [t0, t0 + 60_000, t0]);
        assert_eq!(floats(&batch, "opn"), [Some(1.0), Some(2.5), Some(-0.0)]);
        assert_eq!(ints(&batch, "tnum"), [4, 0, 6]);
        assert_eq!(
            floats(&batch, "vwap"),
            [Some(1.5), None, Some(2.0)],
            "NaN is null"
        );

        // The other spellings give the same batch; an empty frame keeps its schema.
        assert_eq!(RecordBatch::try_from(&frame).unwrap(), batch);
        assert_eq!(RecordBatch::try_from(frame.clone()).unwrap(), batch);
        let empty = KlineFrame::empty(&[Feature::Close, Feature::TradesCount])
            .to_record_batch()
            .unwrap();
        assert_eq!(empty.num_rows(), 0);
        assert_eq!(
            empty.schema(),
            kline_schema(&[Feature::Close, Feature::TradesCount])
        );
    }

    #[test]
    fn run_lengths_that_disagree_with_the_rows_are_an_error() {
        // Only reachable through the public helpers, never through a checked frame.
        let keys = symbol_array(&[("A".into(), 0..2)]).unwrap();
        let err = RecordBatch::try_new(
            kline_schema(&[]),
            vec![Arc::new(keys), Arc::new(timestamp_array(vec![1, 2, 3]))],
        )
        .unwrap_err();
        assert!(err.to_string().contains("length"), "{err}");
    }

    #[tokio::test]
    async fn a_store_read_converts_with_the_stored_values() {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncMarketDB::open(dir.path().join("m.db")).await.unwrap();
        let t0 = parse_ymd(2024, 1, 1).unwrap();
        let k = |symbol: &str, open_time: i64, open: f64, close: f64, volume: f64, trades| Kline {
            symbol: symbol.into(),
            open_time,
            open,
            high: open.max(close) + 1.0,
            low: open.min(close) - 1.0,
            close,
            volume,
            close_time: Freq::M1.close_time(open_time),
            quote_volume: volume * 3.0,
            trades_count: trades,
            taker_buy_volume: volume / 2.0,
            taker_buy_quote_volume: volume,
        };
        let bars = vec![
            k("BBBUSDT", t0, 20.0, 21.0, 4.0, 8),
            k("AAAUSDT", t0 + 60_000, 10.0, 12.0, 0.0, 0),
            k("AAAUSDT", t0, 11.0, 10.0, 2.0, 5),
        ];
        db.store_data(bars, Freq::M1).await.unwrap();
        let features = [
            Feature::Open,
            Feature::Close,
            Feature::TradesCount,
            Feature::Vwap,
        ];
        let range = TimeRange::new(t0, t0 + 120_000).unwrap();
        let frame = db
            .read_data(range, Freq::M1, &[], &features, true)
            .await
            .unwrap();
        let batch = frame.to_record_batch().unwrap();
        // Rows in (symbol, time) order, whatever order they were stored in.
        assert_eq!(symbols(&batch), ["AAAUSDT", "AAAUSDT", "BBBUSDT"]);
        assert_eq!(times(&batch), [t0, t0 + 60_000, t0]);
        assert_eq!(floats(&batch, "opn"), [Some(11.0), Some(10.0), Some(20.0)]);
        assert_eq!(floats(&batch, "cls"), [Some(10.0), Some(12.0), Some(21.0)]);
        assert_eq!(ints(&batch, "tnum"), [5, 0, 8]);
        // vwap = quote volume / volume = 3, null where the volume is 0.
        assert_eq!(floats(&batch, "vwap"), [Some(3.0), None, Some(3.0)]);
        db.close().await;
    }
}
