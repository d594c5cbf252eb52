//! The streaming CSV loop shared by every file kind: reads records into one reused
//! `csv::ByteRecord`, decides whether the first line is a header, tracks 1-based physical
//! line numbers, applies the [`BadRows`] policy, hands records out in bounded chunks and
//! reports progress. The per-kind column logic lives behind [`RowParser`] (klines,
//! funding, metrics modules); [`Sequence`] is the time-order and file-date rule they share.
//!
//! Memory stays bounded whatever the input: a line longer than [`Limits::max_line`] and an
//! input longer than [`Limits::max_bytes`] stop the read with an error before they are
//! buffered, records leave in chunks of [`Limits::chunk_rows`], and at most
//! [`MAX_KEPT_REJECTED`] refused lines are kept in detail (all are counted).
//!
//! It does not open files or archives: it reads any `std::io::Read`.

use std::io::Read;
use std::path::Path;

use csv::ByteRecord;
use marketdb_model::TimeRange;
use marketdb_model::time::format_rfc3339;

use crate::field::{Fault, is_header_cell, trim};
use crate::{BadRows, Error, Parsed, Result, RowError};

/// Refused lines kept in detail in [`BadRows::Skip`] mode; the rest are only counted.
pub const MAX_KEPT_REJECTED: usize = 100;

/// Bounds of one read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted line in bytes (Binance lines are under 200).
    pub max_line: usize,
    /// Most bytes read from the input, when known to be implausible beyond.
    pub max_bytes: Option<u64>,
    /// Records per chunk handed to the consumer.
    pub chunk_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 4096,
            max_bytes: None,
            chunk_rows: 50_000,
        }
    }
}

/// Time order and the file's date: each record's time must lie in the period its file name
/// gives and be later than the previous record's.
#[derive(Debug, Default)]
pub(crate) struct Sequence {
    period: Option<TimeRange>,
    prev: Option<(i64, u64)>,
}

impl Sequence {
    pub(crate) fn new(period: Option<TimeRange>) -> Sequence {
        Sequence { period, prev: None }
    }

    /// Checks `t` (read from `cell` of `field` on `line`) and remembers it.
    pub(crate) fn check(
        &mut self,
        field: &'static str,
        cell: &[u8],
        t: i64,
        line: u64,
    ) -> std::result::Result<(), Fault> {
        if let Some(p) = self.period
            && !p.contains(t)
        {
            let reason = format!(
                "{} is outside {} to {}, the period of the date in the file name",
                format_rfc3339(t),
                format_rfc3339(p.start),
                format_rfc3339(p.end_exclusive)
            );
            return Err(Fault::new(field, cell, reason));
        }
        if let Some((prev, prev_line)) = self.prev {
            if t == prev {
                let reason = format!(
                    "{} repeats line {prev_line}: a file holds each time once",
                    format_rfc3339(t)
                );
                return Err(Fault::new(field, cell, reason));
            }
            if t < prev {
                let reason = format!(
                    "{} is before line {prev_line} ({}): rows must be in time order",
                    format_rfc3339(t),
                    format_rfc3339(prev)
                );
                return Err(Fault::new(field, cell, reason));
            }
        }
        self.prev = Some((t, line));
        Ok(())
    }
}

/// How often (in data lines) the progress callback is called.
const PROGRESS_EVERY: u64 = 16_384;

/// CSV read buffer size.
const BUFFER: usize = 256 * 1024;

/// The column logic of one file kind.
pub(crate) trait RowParser {
    /// Learns the column layout from the header row, or takes the default layout when the
    /// file has none. `Err` is the reason the header does not fit this kind.
    fn header(&mut self, header: Option<&ByteRecord>) -> std::result::Result<(), String>;

    /// Parses and validates one data line (`line` is its 1-based physical line). On error
    /// nothing of the line is kept.
    fn row(&mut self, record: &ByteRecord, line: u64) -> std::result::Result<(), Fault>;

    /// The records held so far when there are at least `at_least` of them (any, for 0).
    fn take(&mut self, at_least: usize) -> Option<Parsed>;
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
    /// The first [`MAX_KEPT_REJECTED`] refused lines (only in [`BadRows::Skip`] mode).
    pub rejected: Vec<RowError>,
    /// Every refused line.
    pub rejected_count: u64,
}

/// Why [`Guarded`] stopped the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Over {
    Line { line: u64 },
    Bytes,
}

/// Passes reads through, remembers when the input reported its end, and refuses a line
/// longer than `max_line` or more than `max_bytes` in all, before the CSV reader buffers
/// them.
struct Guarded<R> {
    inner: R,
    eof: bool,
    max_line: usize,
    max_bytes: Option<u64>,
    line_bytes: usize,
    newlines: u64,
    total: u64,
    over: Option<Over>,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        self.total += n as u64;
        if self.max_bytes.is_some_and(|max| self.total > max) {
            self.over = Some(Over::Bytes);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "input larger than plausible",
            ));
        }
        for chunk in buf[..n].split_inclusive(|b| *b == b'\n') {
            let ends = chunk.last() == Some(&b'\n');
            self.line_bytes += chunk.len() - usize::from(ends);
            if self.line_bytes > self.max_line {
                self.over = Some(Over::Line {
                    line: self.newlines + 1,
                });
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "line too long",
                ));
            }
            if ends {
                self.newlines += 1;
                self.line_bytes = 0;
            }
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
    reader: csv::Reader<Guarded<R>>,
    /// The reader's line counter after the last record (1 + newlines consumed).
    end_line: u64,
    /// Whether the last record was ended by the end of input rather than a newline.
    at_eof: bool,
}

impl<R: Read> Lines<R> {
    fn new(input: R, limits: &Limits) -> Lines<R> {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(BUFFER)
            .from_reader(Guarded {
                inner: input,
                eof: false,
                max_line: limits.max_line,
                max_bytes: limits.max_bytes,
                line_bytes: 0,
                newlines: 0,
                total: 0,
                over: None,
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

/// Reads every record of `input` through `parser`, handing records to `on_chunk` in chunks
/// of `limits.chunk_rows`. In [`BadRows::Fail`] mode the first bad line is returned as
/// [`Error::Row`] (chunks already handed out belong to the failed file: the consumer must
/// discard them, as one transaction does); in [`BadRows::Skip`] mode bad lines are counted
/// and the first [`MAX_KEPT_REJECTED`] kept. Blank (or whitespace-only) lines are skipped
/// and not counted.
pub(crate) fn run<R: Read>(
    input: R,
    file: &Path,
    parser: &mut dyn RowParser,
    mode: BadRows,
    limits: &Limits,
    on_chunk: &mut dyn FnMut(Parsed) -> Result<()>,
    on_rows: &mut dyn FnMut(u64),
) -> Result<Outcome> {
    let mut lines = Lines::new(input, limits);
    let mut record = ByteRecord::new();
    let mut out = Outcome::default();
    let read_error = |lines: &Lines<R>, source: csv::Error| match lines.reader.get_ref().over {
        Some(Over::Line { line }) => Error::LineTooLong {
            file: file.to_path_buf(),
            line,
            limit: limits.max_line,
        },
        Some(Over::Bytes) => Error::TooLarge {
            file: file.to_path_buf(),
            limit: limits.max_bytes.unwrap_or_default(),
        },
        None => Error::Read {
            file: file.to_path_buf(),
            line: lines.lines_read(),
            source,
        },
    };
    let header_error = |reason: String| Error::Header {
        file: file.to_path_buf(),
        reason,
    };

    let first = match lines.next(&mut record) {
        Ok(first) => first,
        Err(e) => return Err(read_error(&lines, e)),
    };
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
    let chunk_rows = limits.chunk_rows.max(1);

    loop {
        if !pending {
            match lines.next(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(read_error(&lines, e)),
            }
        }
        pending = false;
        out.lines += 1;
        let line = lines.line(&record);
        if let Err(fault) = parser.row(&record, line) {
            let err = RowError {
                file: file.to_path_buf(),
                line,
                field: fault.field,
                value: fault.value,
                reason: fault.reason,
            };
            match mode {
                BadRows::Fail => return Err(err.into()),
                BadRows::Skip => {
                    tracing::debug!(%err, "skipping bad row");
                    out.rejected_count += 1;
                    if out.rejected.len() < MAX_KEPT_REJECTED {
                        out.rejected.push(err);
                    }
                }
            }
        }
        if let Some(chunk) = parser.take(chunk_rows) {
            on_chunk(chunk)?;
        }
        if out.lines % PROGRESS_EVERY == 0 {
            on_rows(out.lines);
        }
    }
    if let Some(chunk) = parser.take(0) {
        on_chunk(chunk)?;
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
        fn row(&mut self, record: &ByteRecord, _line: u64) -> std::result::Result<(), Fault> {
            let text = record_text(record);
            if text.contains("bad") {
                return Err(Fault::new("c0", &record[0], "bad row"));
            }
            self.rows.push(text);
            Ok(())
        }
        fn take(&mut self, _at_least: usize) -> Option<Parsed> {
            None
        }
    }

    fn read(text: &str, mode: BadRows) -> (Probe, Result<Outcome>) {
        read_with(text, mode, &Limits::default())
    }

    fn read_with(text: &str, mode: BadRows, limits: &Limits) -> (Probe, Result<Outcome>) {
        let mut probe = Probe::default();
        let mut seen = Vec::new();
        let res = run(
            text.as_bytes(),
            Path::new("f.csv"),
            &mut probe,
            mode,
            limits,
            &mut |_| Ok(()),
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
    fn long_lines_and_large_inputs_stop_before_they_are_buffered() {
        let limits = Limits {
            max_line: 16,
            max_bytes: Some(64),
            chunk_rows: 10,
        };
        let (_, out) = read_with("1,2\n3,4\n0123456789,0123456789\n", BadRows::Skip, &limits);
        let err = out.unwrap_err();
        assert!(
            matches!(
                err,
                Error::LineTooLong {
                    line: 3,
                    limit: 16,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.to_string(), "f.csv:3: line is longer than 16 bytes");
        // One endless line: refused after the limit, whatever follows.
        let endless = "9".repeat(1 << 20);
        let no_total = Limits {
            max_bytes: None,
            ..limits
        };
        let (_, out) = read_with(&endless, BadRows::Skip, &no_total);
        assert!(matches!(
            out.unwrap_err(),
            Error::LineTooLong { line: 1, .. }
        ));
        let many = "1,2\n".repeat(100);
        let (_, out) = read_with(&many, BadRows::Skip, &limits);
        let err = out.unwrap_err().to_string();
        assert!(err.contains("more than 64 bytes"), "{err}");
        // The line limit counts bytes between newlines, also across read buffers.
        let ok = "1234567890,12345\n".repeat(3);
        let (probe, out) = read_with(
            &ok,
            BadRows::Fail,
            &Limits {
                max_bytes: None,
                ..limits
            },
        );
        assert_eq!(out.unwrap().lines, 3);
        assert_eq!(probe.rows.len(), 3);
    }

    #[test]
    fn rejected_lines_are_counted_and_kept_up_to_a_bound() {
        let text = "1bad\n".repeat(MAX_KEPT_REJECTED + 50);
        let (_, out) = read(&text, BadRows::Skip);
        let out = out.unwrap();
        assert_eq!(out.rejected_count, (MAX_KEPT_REJECTED + 50) as u64);
        assert_eq!(out.rejected.len(), MAX_KEPT_REJECTED);
    }

    #[test]
    fn sequence_rules() {
        let day = TimeRange::new(1_704_067_200_000, 1_704_153_600_000).unwrap();
        let mut s = Sequence::new(Some(day));
        s.check("t", b"a", day.start, 1).unwrap();
        let f = s.check("t", b"b", day.start, 2).unwrap_err();
        assert!(f.reason.contains("repeats line 1"), "{}", f.reason);
        let f = s.check("t", b"c", day.start - 1, 3).unwrap_err();
        assert!(
            f.reason.contains("outside 2024-01-01T00:00:00Z"),
            "{}",
            f.reason
        );
        s.check("t", b"d", day.start + 60_000, 4).unwrap();
        let f = s.check("t", b"e", day.start + 30_000, 5).unwrap_err();
        assert!(f.reason.contains("before line 4"), "{}", f.reason);
        let f = s.check("t", b"f", day.end_exclusive, 6).unwrap_err();
        assert!(
            f.reason.contains("the date in the file name"),
            "{}",
            f.reason
        );
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
