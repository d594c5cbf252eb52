//! The Parquet export writer (the only Parquet user in the workspace). Schema:
//! `symbol` Dictionary(Int32, Utf8), `timestamp` Timestamp(Millisecond, "UTC"), then one
//! column per feature (Float64, nullable, null where the value is NaN; `tnum` Int64), built
//! with `marketdb_store::arrow` so it is the schema of `KlineFrame::to_record_batch`, then
//! one Int64 `{metric}_ts` column per metric feature (0 = no value). Compression per
//! [`ParquetCompression`] (LZ4 as `LZ4_RAW`), row groups of [`ROW_GROUP_ROWS`] rows,
//! key-value metadata `marketdb.freq`, `marketdb.source_freq`, `marketdb.start`,
//! `marketdb.end` (exclusive), `marketdb.features`, `marketdb.contract` and
//! `marketdb.version`. The file is written under a temporary name and renamed when closed.

use std::{path::PathBuf, sync::Arc};

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use marketdb_model::time::format_rfc3339;
use marketdb_store::arrow;
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, GzipLevel, ZstdLevel},
    file::{metadata::KeyValue, properties::WriterProperties},
    schema::types::ColumnPath,
};
use serde::Serialize;

use crate::{
    Error, ParquetCompression, Result,
    atomic::{AtomicFile, Dest},
    manifest::CONTRACT_VERSION,
    numpy::ts_name,
    plan::Plan,
    table::Table,
};

/// Rows per row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// What a Parquet export wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParquetReport {
    /// Whether an existing regular file was replaced.
    pub replaced: bool,
    /// The file written.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Row groups in the file.
    pub row_groups: usize,
    /// File size in bytes.
    pub bytes: u64,
    /// The codec used.
    pub compression: ParquetCompression,
}

/// The Arrow schema of an export: the store's frame schema (`symbol`, `timestamp`, the
/// features), so a `KlineFrame::to_record_batch` and an export agree, then the metric times.
pub(crate) fn schema(plan: &Plan) -> SchemaRef {
    let mut fields = arrow::kline_fields(&plan.features);
    for m in &plan.metrics {
        fields.push(Field::new(ts_name(*m), DataType::Int64, false));
    }
    Arc::new(Schema::new(fields))
}

/// The Parquet codec of `c` (also the dataset's).
pub fn codec(c: ParquetCompression) -> Compression {
    match c {
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
        ParquetCompression::Lz4 => Compression::LZ4_RAW,
        ParquetCompression::None => Compression::UNCOMPRESSED,
    }
}

/// Streams tables into one Parquet file.
pub(crate) struct ParquetWriter {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<AtomicFile>,
    compression: ParquetCompression,
    fsync: bool,
    rows: u64,
}

impl std::fmt::Debug for ParquetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl ParquetWriter {
    pub(crate) fn new(
        dest: Dest,
        plan: &Plan,
        compression: ParquetCompression,
        fsync: bool,
    ) -> Result<ParquetWriter> {
        let path = dest.label();
        let schema = schema(plan);
        let kv = |k: &str, v: String| KeyValue::new(k.to_owned(), v);
        let features: Vec<&str> = plan.features.iter().map(|f| f.short()).collect();
        let props = WriterProperties::builder()
            .set_compression(codec(compression))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            // Prices and volumes rarely repeat: dictionary pages only cost time there.
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled(ColumnPath::from("symbol"), true)
            .set_created_by(format!("marketdb-export {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                kv("marketdb.freq", plan.out_freq.as_str().to_owned()),
                kv("marketdb.source_freq", plan.source_freq.as_str().to_owned()),
                kv("marketdb.start", format_rfc3339(plan.range.start)),
                kv("marketdb.end", format_rfc3339(plan.range.end_exclusive)),
                kv("marketdb.features", features.join(",")),
                kv("marketdb.contract", CONTRACT_VERSION.to_owned()),
                kv("marketdb.version", env!("CARGO_PKG_VERSION").to_owned()),
            ]))
            .build();
        let file = dest.open()?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| {
            Error::Parquet {
                path: path.clone(),
                source: e,
            }
        })?;
        Ok(ParquetWriter {
            path,
            schema,
            writer,
            compression,
            fsync,
            rows: 0,
        })
    }

    fn batch(&self, t: Table) -> Result<RecordBatch> {
        let symbol = arrow::symbol_array(&t.symbols).map_err(|e| self.arrow(e))?;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(symbol),
            Arc::new(arrow::timestamp_array(t.timestamp)),
        ];
        cols.extend(t.columns.into_iter().map(arrow::column_array));
        for ts in t.metric_ts {
            cols.push(Arc::new(Int64Array::from(ts)));
        }
        RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| self.arrow(e))
    }

    fn arrow(&self, source: arrow_schema::ArrowError) -> Error {
        Error::Arrow {
            path: self.path.clone(),
            source,
        }
    }

    fn parquet(&self, source: parquet::errors::ParquetError) -> Error {
        Error::Parquet {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends the table's rows.
    pub(crate) fn write_table(&mut self, t: Table) -> Result<()> {
        if t.len() == 0 {
            return Ok(());
        }
        self.rows += t.len() as u64;
        let batch = self.batch(t)?;
        self.writer.write(&batch).map_err(|e| self.parquet(e))
    }

    /// Writes the footer, syncs and renames the file to its final name.
    pub(crate) fn finish(mut self) -> Result<ParquetReport> {
        let path = self.path.clone();
        let err = |e| Error::Parquet {
            path: path.clone(),
            source: e,
        };
        // Close the last row group so it is counted, then write the footer.
        self.writer.flush().map_err(err)?;
        let row_groups = self.writer.flushed_row_groups().len();
        let file = self.writer.into_inner().map_err(err)?;
        let (_, bytes) = file.commit(self.fsync)?;
        Ok(ParquetReport {
            replaced: false,
            path: self.path,
            rows: self.rows,
            row_groups,
            bytes,
            compression: self.compression,
        })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use marketdb_output::OutputGate;
    use std::fs;

    use marketdb_model::Feature;
    use marketdb_model::time::parse_ymd;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;
    use crate::table::tests::{frame, plan};

    #[test]
    fn writes_schema_metadata_and_codec() {
        let dir = tempfile::tempdir().unwrap();
        let d = parse_ymd(2024, 1, 1).unwrap();
        let rows = [
            ("AAA", d, 1.0, 2.0, 0.0, 0.0, 3),
            ("BBB", d, 1.0, 2.0, 1.0, 2.0, 4),
        ];
        let p = plan(vec![
            Feature::Close,
            Feature::TradesCount,
            Feature::Vwap,
            Feature::OpenInterest,
        ]);
        let t = Table::from_frame(&p, frame(&rows));
        let path = dir.path().join("k.parquet");
        for c in [
            ParquetCompression::Zstd,
            ParquetCompression::Lz4,
            ParquetCompression::None,
        ] {
            let mut w =
                ParquetWriter::new(Dest::File(OutputGate::new(), path.clone()), &p, c, false)
                    .unwrap();
            w.write_table(t.clone()).unwrap();
            let rep = w.finish().unwrap();
            assert_eq!(rep.rows, 2);
            assert_eq!(rep.bytes, fs::metadata(&path).unwrap().len());
            let r = SerializedFileReader::new(fs::File::open(&path).unwrap()).unwrap();
            let md = r.metadata();
            assert_eq!(md.file_metadata().num_rows(), 2);
            assert_eq!(md.num_row_groups(), 1);
            assert_eq!(md.row_group(0).column(0).compression(), codec(c));
            let kv = md.file_metadata().key_value_metadata().unwrap();
            let get = |k: &str| kv.iter().find(|x| x.key == k).and_then(|x| x.value.clone());
            assert_eq!(get("marketdb.freq").as_deref(), Some("1h"));
            assert_eq!(get("marketdb.end").as_deref(), Some("1970-01-02T00:00:00Z"));
            assert!(get("ARROW:schema").is_some());
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        let s = schema(&p);
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            ["symbol", "timestamp", "cls", "tnum", "vwap", "oi", "oi_ts"]
        );
        assert_eq!(s.field(3).data_type(), &DataType::Int64);
    }
}
