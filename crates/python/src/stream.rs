//! [`ArrowStream`]: record batches waiting to be taken by Python through the Arrow
//! PyCapsule interface. `pyarrow.table(stream)`, `polars.from_arrow(stream)` or DuckDB read
//! it without copying the buffers; it can be taken once.

use std::sync::Mutex;

use arrow_array::{RecordBatch, RecordBatchIterator, ffi_stream::FFI_ArrowArrayStream};
use arrow_schema::SchemaRef;
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
