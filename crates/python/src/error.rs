//! Rust errors to Python exceptions: bad input is `ValueError`, everything the disk, SQLite
//! or a lock refuses is `StorageError` (an `OSError`). The message is the error's chain of
//! causes joined by ": ", the same text the command line prints.

use pyo3::{PyErr, create_exception, exceptions::PyOSError, exceptions::PyValueError};

create_exception!(
    marketdb,
    StorageError,
    PyOSError,
    "The database or an output file refused an operation (I/O, SQLite, a lock)."
);

/// The message of an error and its sources.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

pub(crate) fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

fn is_input_store(err: &marketdb_store::Error) -> bool {
    use marketdb_store::Error as E;
    matches!(
        err,
        E::Model(_)
            | E::Invalid(_)
            | E::Input(_)
            | E::NoData { .. }
            | E::InvalidFeature { .. }
            | E::InvalidArgument { .. }
    )
}

fn is_input_export(err: &marketdb_export::Error) -> bool {
    use marketdb_export::Error as E;
    match err {
        E::Store { source, .. } => is_input_store(source),
        E::Model(_)
        | E::InvalidRequest { .. }
        | E::InvalidOption { .. }
        | E::NotInExport { .. } => true,
        // An output path the gate refuses (the database, a device...) is a bad argument;
        // a write that failed is a storage error.
        E::Output(o) => matches!(o, marketdb_output::Error::Refused { .. }),
        _ => false,
    }
}

fn is_input_dataset(err: &marketdb_dataset::Error) -> bool {
    use marketdb_dataset::Error as E;
    match err {
        E::Model(_) | E::Request { .. } | E::InvalidDataset { .. } => true,
        E::Output(o) => matches!(o, marketdb_output::Error::Refused { .. }),
        _ => false,
    }
}

fn is_input_download(err: &marketdb_download::Error) -> bool {
    use marketdb_download::Error as E;
    match err {
        E::Invalid { .. } | E::Model(_) => true,
        E::Store(s) => is_input_store(s),
        E::Output(o) => matches!(o, marketdb_output::Error::Refused { .. }),
        _ => false,
    }
}

/// Any error of the crates this module calls.
#[derive(Debug)]
pub(crate) enum Failure {
    Store(marketdb_store::Error),
    Export(marketdb_export::Error),
    Dataset(marketdb_dataset::Error),
    Download(marketdb_download::Error),
    Model(marketdb_model::Error),
    Py(PyErr),
}

impl From<marketdb_store::Error> for Failure {
    fn from(e: marketdb_store::Error) -> Self {
        Failure::Store(e)
    }
}

impl From<marketdb_export::Error> for Failure {
    fn from(e: marketdb_export::Error) -> Self {
        Failure::Export(e)
    }
}

impl From<marketdb_dataset::Error> for Failure {
    fn from(e: marketdb_dataset::Error) -> Self {
        Failure::Dataset(e)
    }
}

impl From<marketdb_download::Error> for Failure {
    fn from(e: marketdb_download::Error) -> Self {
        Failure::Download(e)
    }
}

impl From<marketdb_model::Error> for Failure {
    fn from(e: marketdb_model::Error) -> Self {
        Failure::Model(e)
    }
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Failure::Py(e)
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        match f {
            Failure::Store(e) if is_input_store(&e) => value_error(chain(&e)),
            Failure::Store(e) => StorageError::new_err(chain(&e)),
            Failure::Export(e) if is_input_export(&e) => value_error(chain(&e)),
            Failure::Dataset(e) if is_input_dataset(&e) => value_error(chain(&e)),
            Failure::Dataset(e) => StorageError::new_err(chain(&e)),
            Failure::Download(e) if is_input_download(&e) => value_error(chain(&e)),
            Failure::Download(e) => StorageError::new_err(chain(&e)),
            Failure::Export(e) => StorageError::new_err(chain(&e)),
            Failure::Model(e) => value_error(chain(&e)),
            Failure::Py(e) => e,
        }
    }
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;
