//! [`ArrowStream`]: record batches waiting to be taken by Python through the Arrow
//! PyCapsule interface; [`BatchStream`]: a read whose batches are read when taken. `pyarrow.table(stream)`, `polars.from_arrow(stream)` or DuckDB read
//! it without copying the buffers; it can be taken once.

use std::sync::Mutex;

use arrow_array::{
    RecordBatch, RecordBatchIterator, RecordBatchReader, ffi_stream::FFI_ArrowArrayStream,
};
use arrow_schema::{ArrowError, SchemaRef};
use marketdb_store::{FrameStream, KlineFrame};
use pyo3::{prelude::*, types::PyCapsule};

use crate::error::value_error;

/// Arrow record batches exported through `__arrow_c_stream__`.
#[derive(Debug)]
#[pyclass(module = "marketdb._native", frozen)]
pub struct ArrowStream {
    schema: SchemaRef,
    batches: Mutex<Option<Vec<RecordBatch>>>,
    rows: usize,
}

impl ArrowStream {
    pub(crate) fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> ArrowStream {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        ArrowStream {
            schema,
            batches: Mutex::new(Some(batches)),
            rows,
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
        let batches = self
            .batches
            .lock()
            .map_err(|_| value_error("the arrow stream is poisoned"))?
            .take()
            .ok_or_else(|| value_error("this arrow stream was already consumed"))?;
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), self.schema.clone());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    /// Rows in the stream (also after it was taken).
    #[getter]
    fn num_rows(&self) -> usize {
        self.rows
    }

    fn __repr__(&self) -> String {
        format!("ArrowStream(rows={})", self.rows)
    }
}

/// A read handed to Python batch by batch: the store's bounded scan
/// ([`marketdb_store::FrameStream`]) behind the Arrow PyCapsule stream protocol. Each batch
/// is read from SQLite when the consumer asks for it, so memory stays bounded by a few
/// batches whatever the range. It can be taken once.
#[derive(Debug)]
#[pyclass(module = "marketdb._native", frozen)]
pub struct BatchStream {
    schema: SchemaRef,
    frames: Mutex<Option<FrameBatches>>,
}

impl BatchStream {
    /// `first` is the scan's first frame, already read (so that a bad request fails at the
    /// call, not at the first batch), `None` when the range has no bars.
    pub(crate) fn new(
        schema: SchemaRef,
        first: Option<KlineFrame>,
        rest: FrameStream,
    ) -> BatchStream {
        BatchStream {
            schema: schema.clone(),
            frames: Mutex::new(Some(FrameBatches {
                schema,
                first,
                rest: Some(rest),
            })),
        }
    }
}

#[pymethods]
impl BatchStream {
    /// The Arrow PyCapsule stream protocol (see [`ArrowStream`]).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let frames = self
            .frames
            .lock()
            .map_err(|_| value_error("the batch stream is poisoned"))?
            .take()
            .ok_or_else(|| value_error("this batch stream was already consumed"))?;
        let stream = FFI_ArrowArrayStream::new(Box::new(frames));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    fn __repr__(&self) -> String {
        format!("BatchStream(columns={})", self.schema.fields().len())
    }
}

/// The scan's frames as Arrow record batches, read when asked for.
#[derive(Debug)]
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
