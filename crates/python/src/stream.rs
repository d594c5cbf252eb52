//! [`ArrowStream`]: record batches taken by Python through the Arrow PyCapsule interface
//! (`__arrow_c_stream__`), either already read ([`ArrowStream::new`]) or read from the store
//! when the consumer asks for them ([`ArrowStream::scan`]). `pyarrow`, `polars.from_arrow`
//! or DuckDB take it without copying the buffers; it can be taken once.

use std::sync::Mutex;

use arrow_array::{
    RecordBatch, RecordBatchIterator, RecordBatchReader, ffi_stream::FFI_ArrowArrayStream,
};
use arrow_schema::{ArrowError, SchemaRef};
use marketdb_store::{FrameStream, KlineFrame};
use pyo3::{prelude::*, types::PyCapsule};

use crate::error::value_error;

type Reader = Box<dyn RecordBatchReader + Send>;

/// Arrow record batches exported through `__arrow_c_stream__`.
#[pyclass(module = "marketdb._native", frozen)]
pub struct ArrowStream {
    reader: Mutex<Option<Reader>>,
    /// The rows, when they are known before the stream is taken.
    rows: Option<usize>,
}

impl std::fmt::Debug for ArrowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrowStream")
            .field("rows", &self.rows)
            .finish()
    }
}

impl ArrowStream {
    /// Batches already read.
    pub(crate) fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> ArrowStream {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        ArrowStream {
            reader: Mutex::new(Some(Box::new(RecordBatchIterator::new(
                batches.into_iter().map(Ok),
                schema,
            )))),
            rows: Some(rows),
        }
    }

    /// A scan of the store, read batch by batch when taken. `first` is its first frame,
    /// already read (so that a bad request fails at the call, not at the first batch),
    /// `None` when the range has no bars.
    pub(crate) fn scan(
        schema: SchemaRef,
        first: Option<KlineFrame>,
        rest: FrameStream,
    ) -> ArrowStream {
        ArrowStream {
            reader: Mutex::new(Some(Box::new(FrameBatches {
                schema,
                first,
                rest: Some(rest),
            }))),
            rows: None,
        }
    }
}

#[pymethods]
impl ArrowStream {
    /// The Arrow PyCapsule stream protocol. A requested schema is not honoured (the data
    /// keeps its own types); consumers cast afterwards.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader = self
            .reader
            .lock()
            .map_err(|_| value_error("the arrow stream is poisoned"))?
            .take()
            .ok_or_else(|| value_error("this arrow stream was already consumed"))?;
        let stream = FFI_ArrowArrayStream::new(reader);
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    /// Rows in the stream (also after it was taken); `None` for a scan, whose rows are
    /// counted only as they are read.
    #[getter]
    fn num_rows(&self) -> Option<usize> {
        self.rows
    }

    fn __repr__(&self) -> String {
        match self.rows {
            Some(rows) => format!("ArrowStream(rows={rows})"),
            None => "ArrowStream(scan)".to_owned(),
        }
    }
}

/// A scan's frames as Arrow record batches, read when asked for.
struct FrameBatches {
    schema: SchemaRef,
    first: Option<KlineFrame>,
    rest: Option<FrameStream>,
}

impl Iterator for FrameBatches {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let frame = match self.first.take() {
            Some(frame) => Ok(frame),
            None => self.rest.as_mut()?.blocking_next()?,
        };
        let batch = frame.and_then(KlineFrame::into_record_batch);
        if batch.is_err() {
            // An error ends the stream.
            self.rest = None;
        }
        Some(batch.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl RecordBatchReader for FrameBatches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
