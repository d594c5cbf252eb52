//! The streaming CSV loop shared by every file kind: reads records into one reused
//! `csv::ByteRecord`, decides whether the first line is a header, tracks 1-based physical
//! line numbers, applies the [`BadRows`] policy and reports progress. The per-kind column
//! logic lives behind [`RowParser`] (klines, funding, metrics modules).
//!
//! It does not open files or archives: it reads any `std::io::Read`.

use std::io::Read;
use std::path::Path;

use csv::ByteRecord;

use crate::field::{Fault, is_header_cell, trim};
use crate::{BadRows, Error, Result, RowError};

/// How often (in data lines) the progress callback is called.
const PROGRESS_EVERY: u64 = 16_384;

/// CSV read buffer size.
const BUFFER: usize = 256 * 1024;

/// The column logic of one file kind.
pub(crate) trait RowParser {
    /// Learns the column layout from the header row, or takes the default layout when the
    /// file has none. `Err` is the reason the header does not fit this kind.
    fn header(&mut self, header: Option<&ByteRecord>) -> std::result::Result<(), String>;

    /// Parses and validates one data line. On error nothing of the line is kept.
    fn row(&mut self, record: &ByteRecord) -> std::result::Result<(), Fault>;
}

/// A fault for a line with the wrong number of fields.
pub(crate) fn width_fault(record: &ByteRecord, expected: usize) -> Fault {
    Fault::new(
        "row",
        &record_bytes(record),
        format!("expected {expected} fields, got {}", record.len()),
    )
}

/// The record's fields joined by commas (for messages only).
fn record_bytes(record: &ByteRecord) -> Vec<u8> {
    let fields: Vec<&[u8]> = record.iter().map(trim).collect();
    fields.join(&b","[..])
}

/// Index of the first header cell equal (case-insensitively, spaces trimmed) to one of
/// `names`.
pub(crate) fn find_column(header: &ByteRecord, names: &[&str]) -> Option<usize> {
    header.iter().position(|cell| {
        names
            .iter()
            .any(|n| trim(cell).eq_ignore_ascii_case(n.as_bytes()))
    })
}

/// What the loop read.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Data lines read (header excluded), good and bad.
    pub lines: u64,
    /// Whether the first line was a header.
    pub had_header: bool,
    /// Refused lines (only in [`BadRows::Skip`] mode).
    pub rejected: Vec<RowError>,
}

/// Passes reads through and remembers when the input reported its end.
struct EofFlag<R> {
    inner: R,
    eof: bool,
}

impl<R: Read> Read for EofFlag<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

/// A CSV reader that skips blank lines and knows the physical line of each record.
///
/// Records end at `\n` only (a `\r` before it is trimmed with the last field's spaces), so
/// reading a record always consumes its own newline; the reader's line counter then says
/// where the record ended, and the record's first line follows from the newlines inside it.
struct Lines<R: Read> {
    reader: csv::Reader<EofFlag<R>>,
    /// The reader's line counter after the last record (1 + newlines consumed).
    end_line: u64,
    /// Whether the last record was ended by the end of input rather than a newline.
    at_eof: bool,
}

impl<R: Read> Lines<R> {
    fn new(input: R) -> Lines<R> {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(BUFFER)
            .from_reader(EofFlag {
                inner: input,
                eof: false,
            });
        Lines {
            reader,
            end_line: 1,
            at_eof: false,
        }
    }

    /// Reads the next non-blank record; `false` at the end.
    fn next(&mut self, record: &mut ByteRecord) -> csv::Result<bool> {
        loop {
            if !self.reader.read_byte_record(record)? {
                return Ok(false);
            }
            self.end_line = self.reader.position().line();
            self.at_eof = self.reader.get_ref().eof;
            let blank = record.len() == 1 && trim(&record[0]).is_empty();
            if !blank {
                return Ok(true);
            }
        }
    }

    /// The 1-based physical line on which the last record read starts.
    fn line(&self, record: &ByteRecord) -> u64 {
        let inside: usize = record
            .iter()
            .map(|f| f.iter().filter(|&&b| b == b'\n').count())
            .sum();
        let last = if self.at_eof {
            self.end_line
        } else {
            self.end_line.saturating_sub(1)
        };
        last.saturating_sub(inside as u64).max(1)
    }

    /// Lines fully read so far (for i/o error messages).
    fn lines_read(&self) -> u64 {
        self.end_line.saturating_sub(1)
    }
}

/// Reads every record of `input` through `parser`. In [`BadRows::Fail`] mode the first bad
/// line is returned as [`Error::Row`]; in [`BadRows::Skip`] mode bad lines are collected.
/// Blank (or whitespace-only) lines are skipped and not counted.
pub(crate) fn run<R: Read>(
    input: R,
    file: &Path,
    parser: &mut dyn RowParser,
    mode: BadRows,
    on_rows: &mut dyn FnMut(u64),
) -> Result<Outcome> {
    let mut lines = Lines::new(input);
    let mut record = ByteRecord::new();
    let mut out = Outcome::default();
    let read_error = |line: u64, source: csv::Error| Error::Read {
        file: file.to_path_buf(),
        line,
        source,
    };
    let header_error = |reason: String| Error::Header {
        file: file.to_path_buf(),
        reason,
    };

    let first = lines
        .next(&mut record)
        .map_err(|e| read_error(lines.lines_read(), e))?;
    if !first {
        parser.header(None).map_err(header_error)?;
        on_rows(0);
        return Ok(out);
    }
    out.had_header = record.get(0).is_some_and(is_header_cell);
    parser
        .header(out.had_header.then_some(&record))
        .map_err(header_error)?;
    let mut pending = !out.had_header;

    loop {
        if !pending {
            let more = lines
                .next(&mut record)
                .map_err(|e| read_error(lines.lines_read(), e))?;
            if !more {
                break;
            }
        }
        pending = false;
        out.lines += 1;
        if let Err(fault) = parser.row(&record) {
            let err = RowError {
                file: file.to_path_buf(),
                line: lines.line(&record),
                field: fault.field,
                value: fault.value,
                reason: fault.reason,
            };
            match mode {
                BadRows::Fail => return Err(err.into()),
                BadRows::Skip => {
                    tracing::debug!(%err, "skipping bad row");
                    out.rejected.push(err);
                }
            }
        }
        if out.lines % PROGRESS_EVERY == 0 {
            on_rows(out.lines);
        }
    }
    on_rows(out.lines);
    Ok(out)
}

/// The whole record as text, for a message.
#[cfg(test)]
pub(crate) fn record_text(record: &ByteRecord) -> String {
    crate::field::shown(&record_bytes(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every data line it sees with its line number; refuses lines starting "bad".
    #[derive(Default)]
    struct Probe {
        header: Option<String>,
        rows: Vec<String>,
    }

    impl RowParser for Probe {
        fn header(&mut self, header: Option<&ByteRecord>) -> std::result::Result<(), String> {
            self.header = header.map(record_text);
            Ok(())
        }
        fn row(&mut self, record: &ByteRecord) -> std::result::Result<(), Fault> {
            let text = record_text(record);
            if text.contains("bad") {
                return Err(Fault::new("c0", &record[0], "bad row"));
            }
            self.rows.push(text);
            Ok(())
        }
    }

    fn read(text: &str, mode: BadRows) -> (Probe, Result<Outcome>) {
        let mut probe = Probe::default();
        let mut seen = Vec::new();
        let res = run(
            text.as_bytes(),
            Path::new("f.csv"),
            &mut probe,
            mode,
            &mut |n| seen.push(n),
        );
        if let Ok(out) = &res {
            assert_eq!(seen.last(), Some(&out.lines), "final progress call");
        }
        (probe, res)
    }

    #[test]
    fn header_is_detected_and_line_numbers_are_physical() {
        let (probe, out) = read("a,b\n1,2\nbad,3\n\n4,5\r\n6,7", BadRows::Skip);
        let out = out.unwrap();
        assert!(out.had_header);
        assert_eq!(probe.header.as_deref(), Some("a,b"));
        assert_eq!(probe.rows, ["1,2", "4,5", "6,7"]);
        assert_eq!(out.lines, 4);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].line, 3);
        assert_eq!(
            out.rejected[0].to_string(),
            r#"f.csv:3: field c0 = "bad": bad row"#
        );
    }

    #[test]
    fn without_header_the_first_line_is_data() {
        let (probe, out) = read("1,2\n3,4\nbad\n", BadRows::Fail);
        assert_eq!(probe.header, None);
        assert_eq!(probe.rows, ["1,2", "3,4"]);
        let err = out.unwrap_err().to_string();
        assert_eq!(err, r#"f.csv:3: field c0 = "bad": bad row"#);
    }

    /// The line of the first bad row of `text`.
    fn bad_line(text: &str) -> u64 {
        let (_, out) = read(text, BadRows::Skip);
        out.unwrap().rejected[0].line
    }

    #[test]
    fn line_numbers_with_blank_lines_crlf_and_quotes() {
        for (text, line) in [
            ("1bad", 1),
            ("1bad\n", 1),
            ("x\n1\n\n\nbad\n", 5),
            ("x\n1\n\n\nbad", 5),
            ("\n\n1bad\n", 3),
            ("x\r\nbad\r\n", 2),
            ("x\r\n\r\n  \r\nbad\r\n1\r\n", 4),
            ("x\r\n\r\n\r\nbad", 4),
            ("\"a\nb\",c\nbad,d\n", 3),
            ("1\nbad,\"x\ny\"\n", 2),
        ] {
            assert_eq!(bad_line(text), line, "{text:?}");
        }
        // Blank lines are not data lines; a CR before the newline is not part of the data.
        let (probe, out) = read("1,2\r\n\r\n3,4\r\n", BadRows::Fail);
        assert_eq!(out.unwrap().lines, 2);
        assert_eq!(probe.rows, ["1,2", "3,4"]);
    }

    #[test]
    fn empty_input_is_zero_lines() {
        for text in ["", "\n\n", "a,b\n", "\r\n \r\n", "a,b\r\n\r\n"] {
            let (probe, out) = read(text, BadRows::Fail);
            assert_eq!(out.unwrap().lines, 0, "{text:?}");
            assert!(probe.rows.is_empty());
        }
    }
}
