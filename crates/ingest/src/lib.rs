//! marketdb-ingest reads Binance Vision files (`data.binance.vision`) into the marketdb
//! model: klines, funding rates, and the metrics files (open interest and long/short
//! ratios). Main entry points: [`discover`] (files and folders to a sorted file list),
//! [`FileSpec::infer`] (kind, symbol and interval from a Binance file name, with
//! [`Overrides`]), [`parse_file`] / [`parse_file_with_progress`] (one `.csv` or `.zip` to a
//! [`ParsedFile`]) and [`verify_checksum`] (the sibling `.CHECKSUM`).
//!
//! Decisions callers can rely on:
//! - Streaming: a CSV (or the single `.csv` entry of a zip) is read through one reused
//!   `csv::ByteRecord`; numbers are parsed from the bytes, with no per-field allocation.
//! - Headers are detected, not assumed: the first line is a header when its first cell
//!   starts with a letter or `_` and is not a number (`NaN`, `inf` are data). Line numbers
//!   are 1-based physical lines of the CSV; a header is line 1.
//! - Timestamps above 1e14 are microseconds (Binance spot from 2025) and become ms; the
//!   metrics `create_time` text is UTC.
//! - Every record is validated with the model's validators (klines also need
//!   `close_time = open + interval - 1 ms`, which catches a wrong interval). A bad line is
//!   the file's error in [`BadRows::Fail`] mode (nothing of the file is returned), and a
//!   [`RowError`] in [`ParsedFile::rejected`] in [`BadRows::Skip`] mode. Both name the file,
//!   line, field (the file's column name), value and reason.
//! - An empty file, or one with only a header, is not an error: zero records (and a log
//!   warning). A truncated or corrupt zip, a zip without a CSV or with several, a checksum
//!   mismatch and an unreadable `.CHECKSUM` are errors naming the file.
//! - Metrics files: an empty `sum_open_interest` cell means no open-interest record for that
//!   line, an empty `sum_open_interest_value` leaves the value unset, and an empty ratio cell
//!   means no record of that ratio type; none of these is an error. Empty cells in kline and
//!   funding files are bad lines.
//!
//! It deliberately does not store anything (it depends on `marketdb-model` only; the
//! caller opens one transaction per [`ParsedFile`]), download files, or print.

mod checksum;
mod discover;
mod error;
mod field;
mod funding;
mod klines;
mod metrics;
mod parse;
mod reader;
mod spec;

pub use checksum::{checksum_path, hex_digest, parse_checksum, sha256_file, verify_checksum};
pub use discover::discover;
pub use error::{Error, Result, RowError};
pub use parse::{
    BadRows, FileReport, Parsed, ParsedFile, parse_file, parse_file_streaming,
    parse_file_with_progress, plausible_file_bytes,
};
pub use reader::{Limits, MAX_KEPT_REJECTED};
pub use spec::{FileKind, FileSpec, Overrides, name_period};
