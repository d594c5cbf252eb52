//! The crate's error type, [`Error`], the [`Result`] alias, and [`RowError`]: one refused
//! CSV line (file, 1-based line, field, value, reason), which is either the error of a file
//! ([`crate::BadRows::Fail`]) or an entry in [`crate::ParsedFile::rejected`]
//! ([`crate::BadRows::Skip`]). Every message is lowercase and names the file at fault; the
//! underlying cause, when there is one, is the error's `source()`, not part of the message.

use std::fmt;
use std::path::{Path, PathBuf};

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while finding, verifying and parsing Binance Vision files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be opened, listed or read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The path exists but is not a regular file (for example a folder).
    #[error("{} is not a file", path.display())]
    NotAFile {
        /// The path at fault.
        path: PathBuf,
    },
    /// The file name does not tell what the file holds and no override fills the gap.
    #[error("cannot understand the file name {}: {reason}; pass {hint}", file.display())]
    UnknownName {
        /// The file.
        file: PathBuf,
        /// What is wrong with the name.
        reason: String,
        /// The flags that would fill the gap, e.g. `--kind, --symbol and --freq`.
        hint: String,
    },
    /// A `--kind` value that is not one of `klines`, `funding`, `metrics`.
    #[error("invalid file kind {input:?}: expected klines, funding or metrics")]
    InvalidKind {
        /// The rejected value.
        input: String,
    },
    /// The symbol (from the file name or the override) is not a valid symbol.
    #[error("invalid symbol for {}", file.display())]
    InvalidSymbol {
        /// The file.
        file: PathBuf,
        /// The model's reason (boxed: the model error is large).
        #[source]
        source: Box<marketdb_model::Error>,
    },
    /// The sibling `.CHECKSUM` file exists but cannot be understood.
    #[error("cannot use checksum file {}: {reason}", file.display())]
    BadChecksumFile {
        /// The `.CHECKSUM` file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file's SHA-256 digest differs from the one in its `.CHECKSUM` sibling.
    #[error(
        "checksum mismatch for {}: expected sha256 {expected}, got {actual}",
        file.display()
    )]
    ChecksumMismatch {
        /// The data file.
        file: PathBuf,
        /// The digest from the `.CHECKSUM` file (lowercase hex).
        expected: String,
        /// The digest of the file as it is (lowercase hex).
        actual: String,
    },
    /// The file is not a readable zip archive (truncated download, corruption, not a zip).
    #[error("{} is not a readable zip archive (truncated or corrupt)", file.display())]
    Zip {
        /// The archive.
        file: PathBuf,
        /// What the zip reader reported.
        #[source]
        source: zip::result::ZipError,
    },
    /// The zip archive holds no `.csv` entry.
    #[error("zip archive {} holds no csv file", file.display())]
    NoCsvInZip {
        /// The archive.
        file: PathBuf,
    },
    /// The zip archive holds more than one `.csv` entry.
    #[error("zip archive {} holds {count} csv files; expected exactly one", file.display())]
    ManyCsvInZip {
        /// The archive.
        file: PathBuf,
        /// How many csv entries it holds.
        count: usize,
    },
    /// Reading the CSV stream failed mid-way (i/o error, corrupt compressed data, CRC
    /// mismatch inside a zip).
    #[error("cannot read {} after line {line}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The last line read successfully (0 if none).
        line: u64,
        /// What the CSV reader reported.
        #[source]
        source: csv::Error,
    },
    /// A line is longer than any Binance Vision line could be (reading stopped there, before
    /// buffering it).
    #[error("{}:{line}: line is longer than {limit} bytes", file.display())]
    LineTooLong {
        /// The file.
        file: PathBuf,
        /// 1-based physical line.
        line: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// The (uncompressed) content is larger than the rows the file can hold could take.
    #[error(
        "{}: content is more than {limit} bytes, implausible for the rows its name allows",
        file.display()
    )]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// The consumer of the records stopped taking them (its own error is the real cause).
    #[error("{}: the store stopped taking records", file.display())]
    Stopped {
        /// The file.
        file: PathBuf,
    },
    /// The header row does not fit the file kind.
    #[error("unexpected header in {}: {reason}", file.display())]
    Header {
        /// The file.
        file: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// A data line could not be parsed or failed validation (in [`crate::BadRows::Fail`]
    /// mode). Same fields as [`RowError`].
    #[error("{}:{line}: field {field} = {value:?}: {reason}", file.display())]
    Row {
        /// The file.
        file: PathBuf,
        /// 1-based physical line of the CSV (the header, when present, is line 1).
        line: u64,
        /// The column at fault (Binance column name), or `row` for the whole line.
        field: &'static str,
        /// The offending text as found in the file (shortened when very long).
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// One refused CSV line: where it is, which field, what it held and why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// The file.
    pub file: PathBuf,
    /// 1-based physical line of the CSV (the header, when present, is line 1). For a zip,
    /// the line inside its csv entry.
    pub line: u64,
    /// The column at fault (Binance column name such as `high` or `create_time`), or `row`
    /// when the line as a whole is wrong (column count).
    pub field: &'static str,
    /// The offending text as found in the file (shortened when very long).
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: field {} = {:?}: {}",
            self.file.display(),
            self.line,
            self.field,
            self.value,
            self.reason
        )
    }
}

impl std::error::Error for RowError {}

impl From<RowError> for Error {
    fn from(e: RowError) -> Error {
        Error::Row {
            file: e.file,
            line: e.line,
            field: e.field,
            value: e.value,
            reason: e.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_error_message_names_file_line_field_value_reason() {
        let row = RowError {
            file: PathBuf::from("BTCUSDT-1m-2024-01-01.csv"),
            line: 17,
            field: "high",
            value: "abc".into(),
            reason: "not a number".into(),
        };
        let expected = r#"BTCUSDT-1m-2024-01-01.csv:17: field high = "abc": not a number"#;
        assert_eq!(row.to_string(), expected);
        assert_eq!(Error::from(row).to_string(), expected);
    }
}
