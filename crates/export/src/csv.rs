//! The CSV export writer: header `symbol,timestamp,datetime,<features>[,<metric>_ts...]`,
//! `timestamp` in epoch ms, `datetime` in RFC 3339 UTC (`2024-01-01T00:00:00Z`), floats in
//! the shortest decimal form that parses back to the same f64 (always with a `.`, so pandas
//! reads float columns as float), NaN as an empty field, counts and metric times as
//! integers. With a part size, rows go to `{stem}_part_{n}.{ext}` (n from 1), each with the
//! header, published as one [`FileSet`] with its listing `{name}.parts.json`: parts of an
//! earlier export that this one does not produce are removed, and files named like parts that
//! no listing names are refused. With gzip on, every file is a gzip stream (`pd.read_csv`
//! reads it by its `.gz` name). Every file is written under a temporary name and all of them
//! are renamed only when the export finishes, so a failed export leaves no final-named CSV
//! behind.

use std::{io::Write as _, path::PathBuf};

use marketdb_output::FileSet;

use marketdb_model::time::push_rfc3339;
use serde::Serialize;

use flate2::{Compression, write::GzEncoder};

use crate::{
    Column, Result,
    atomic::{AtomicFile, Dest, PendingFile, Stream},
    numpy::ts_name,
    plan::Plan,
    table::Table,
};

/// What a CSV export wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CsvReport {
    /// Whether an existing regular file was replaced.
    pub replaced: bool,
    /// The files written, in row order (one unless split into parts).
    pub files: Vec<PathBuf>,
    /// Parts of an earlier export of the same name that this one did not produce, removed.
    pub removed: Vec<PathBuf>,
    /// Data rows written (headers excluded).
    pub rows: u64,
    /// Total bytes written.
    pub bytes: u64,
}

/// Appends `v` so that it parses back to the same f64, as a plain decimal: the shortest
/// round-trip digits (Ryu, through serde_json, with Rust's `Display` for the rare values
/// Ryu would print with an exponent), always with a `.`; nothing for NaN; `inf`/`-inf`.
pub(crate) fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    let start = out.len();
    // Ryu prints plain decimals for magnitudes in [1e-5, 1e16); only check outside a safe
    // margin of that band.
    let plain = v == 0.0 || (1e-4..1e15).contains(&v.abs());
    if serde_json::to_writer(&mut *out, &v).is_ok() && (plain || !out[start..].contains(&b'e')) {
        return;
    }
    out.truncate(start);
    let _ = write!(out, "{v}");
    if !out[start..].contains(&b'.') {
        out.extend_from_slice(b".0");
    }
}

/// Appends an integer.
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if serde_json::to_writer(&mut *out, &v).is_err() {
        let _ = write!(out, "{v}");
    }
}

/// Streams tables into one CSV file or numbered parts.
/// One output file, gzipped or not (one per export at a time: its size does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Out {
    Plain(AtomicFile),
    Gzip(GzEncoder<AtomicFile>),
}

impl Out {
    fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        match self {
            Out::Plain(f) => f.write_all(buf),
            Out::Gzip(z) => z
                .write_all(buf)
                .map_err(|e| crate::Error::io(z.get_ref().target(), e)),
        }
    }

    fn finish(self, fsync: bool) -> Result<PendingFile> {
        match self {
            Out::Plain(f) => f.finish(fsync),
            Out::Gzip(z) => {
                let target = z.get_ref().target().to_path_buf();
                z.finish()
                    .map_err(|e| crate::Error::io(target, e))?
                    .finish(fsync)
            }
        }
    }
}

/// The part names of `target`: `{stem}_part_` and `.{ext}`; a `.gz` name keeps its inner
/// extension (`k.csv.gz` gives `k_part_1.csv.gz`).
fn part_affixes(target: &std::path::Path) -> (String, String) {
    let name = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (base, gz) = match name.strip_suffix(".gz") {
        Some(base) => (base.to_owned(), ".gz"),
        None => (name, ""),
    };
    let (stem, ext) = match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), ext.to_owned()),
        _ => (base, "csv".to_owned()),
    };
    (format!("{stem}_part_"), format!(".{ext}{gz}"))
}

#[derive(Debug)]
pub(crate) struct CsvWriter {
    target: PathBuf,
    /// The caller's stream, taken by the first (only) file.
    stream: Option<Stream>,
    /// The parts (or, for a single file, the earlier parts to retire); none for a stream.
    set: Option<FileSet>,
    gate: Option<marketdb_output::OutputGate>,
    gzip: bool,
    part_rows: Option<usize>,
    fsync: bool,
    header: Vec<u8>,
    buf: Vec<u8>,
    current: Option<Out>,
    rows_in_part: usize,
    pending: Vec<PendingFile>,
    rows: u64,
}

impl CsvWriter {
    pub(crate) fn new(
        dest: Dest,
        plan: &Plan,
        part_rows: Option<usize>,
        gzip: bool,
        fsync: bool,
    ) -> Result<CsvWriter> {
        let target = dest.label();
        let (stream, set) = match dest {
            Dest::Stream(s) => (Some(s), None),
            Dest::File(gate, path) => {
                let (prefix, suffix) = part_affixes(&path);
                let set = FileSet::open(&gate, &path, &prefix, &suffix, part_rows.is_some())?;
                (None, Some((set, gate)))
            }
        };
        let (set, gate) = match set {
            Some((set, gate)) => (Some(set), Some(gate)),
            None => (None, None),
        };
        let mut header = b"symbol,timestamp,datetime".to_vec();
        for f in &plan.features {
            header.push(b',');
            header.extend_from_slice(f.short().as_bytes());
        }
        for m in &plan.metrics {
            header.push(b',');
            header.extend_from_slice(ts_name(*m).as_bytes());
        }
        header.push(b'\n');
        Ok(CsvWriter {
            target,
            stream,
            set,
            gate,
            gzip,
            part_rows,
            fsync,
            header,
            buf: Vec::with_capacity(1 << 20),
            current: None,
            rows_in_part: 0,
            pending: Vec::new(),
            rows: 0,
        })
    }

    /// Starts the next file (the single file, or the next part).
    fn open_next(&mut self) -> Result<()> {
        self.close_current()?;
        let file = match (self.stream.take(), self.part_rows, &self.set, &self.gate) {
            (Some(stream), ..) => AtomicFile::stream(stream),
            (None, Some(_), Some(set), Some(gate)) => {
                AtomicFile::create_unhashed(gate, &set.member_path(self.pending.len() + 1))?
            }
            (None, None, _, Some(gate)) => AtomicFile::create_unhashed(gate, &self.target)?,
            _ => {
                return Err(crate::Error::WriterStopped {
                    path: self.target.clone(),
                });
            }
        };
        let mut f = match self.gzip {
            true => Out::Gzip(GzEncoder::new(file, Compression::default())),
            false => Out::Plain(file),
        };
        f.write_all(&self.header)?;
        self.current = Some(f);
        self.rows_in_part = 0;
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<()> {
        if let Some(f) = self.current.as_mut() {
            f.write_all(&self.buf)?;
        }
        self.buf.clear();
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        self.flush_buf()?;
        if let Some(f) = self.current.take() {
            self.pending.push(f.finish(self.fsync)?);
        }
        Ok(())
    }

    /// Appends the table's rows.
    pub(crate) fn write_table(&mut self, t: &Table) -> Result<()> {
        if self.current.is_none() {
            self.open_next()?;
        }
        for (sym, rows) in &t.symbols {
            for row in rows.clone() {
                if let Some(n) = self.part_rows
                    && self.rows_in_part >= n
                {
                    self.open_next()?;
                }
                let b = &mut self.buf;
                b.extend_from_slice(sym.as_bytes());
                b.push(b',');
                push_i64(b, t.timestamp[row]);
                b.push(b',');
                push_rfc3339(b, t.timestamp[row]);
                for col in &t.columns {
                    b.push(b',');
                    match col {
                        Column::F64(v) => push_f64(b, v[row]),
                        Column::I64(v) => push_i64(b, v[row]),
                    }
                }
                for ts in &t.metric_ts {
                    b.push(b',');
                    push_i64(b, ts[row]);
                }
                b.push(b'\n');
                self.rows_in_part += 1;
                self.rows += 1;
                if self.buf.len() >= 1 << 20 {
                    self.flush_buf()?;
                }
            }
        }
        Ok(())
    }

    /// Closes the last file and renames every file to its final name.
    pub(crate) fn finish(mut self) -> Result<CsvReport> {
        if self.current.is_none() && self.pending.is_empty() {
            // No rows at all: still a valid CSV with its header.
            self.open_next()?;
        }
        self.close_current()?;
        let mut report = CsvReport {
            replaced: false,
            files: Vec::new(),
            removed: Vec::new(),
            rows: self.rows,
            bytes: 0,
        };
        let pending = std::mem::take(&mut self.pending);
        match (self.set.take(), self.part_rows) {
            (Some(mut set), Some(_)) => {
                for p in pending {
                    report.bytes += p.bytes();
                    if let Some(f) = p.into_inner() {
                        set.push(f);
                    }
                }
                let done = set.commit(self.fsync)?;
                report.replaced = done.files.iter().any(|f| f.replaced);
                report.files = done.files.into_iter().map(|f| f.path).collect();
                report.removed = done.removed;
            }
            (set, _) => {
                for p in pending {
                    let path = p.target().to_path_buf();
                    let (_, n) = p.commit()?;
                    report.bytes += n;
                    report.files.push(path);
                }
                // A single file retires the parts of an earlier split export of this name.
                if let Some(set) = set {
                    report.removed = set.commit(self.fsync)?.removed;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use marketdb_output::OutputGate;
    use std::fs;

    use marketdb_model::Feature;
    use marketdb_model::time::parse_ymd;

    use super::*;
    use crate::table::tests::{frame, plan};

    fn text(v: f64) -> String {
        let mut b = Vec::new();
        push_f64(&mut b, v);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn floats_round_trip_and_look_like_floats() {
        assert_eq!(text(100.0), "100.0");
        assert_eq!(text(0.1), "0.1");
        assert_eq!(text(-0.0), "-0.0");
        assert_eq!(text(1e-7), "0.0000001");
        assert_eq!(text(1e22), "10000000000000000000000.0");
        assert_eq!(text(42283.58), "42283.58");
        assert_eq!(text(2.5e-5), "0.000025");
        assert_eq!(text(f64::NAN), "");
        assert_eq!(text(f64::INFINITY), "inf");
        for v in [
            0.1 + 0.2,
            42283.58,
            1.0 / 3.0,
            5e-324,
            f64::MAX,
            1e22,
            123_456_789.123_456_79,
        ] {
            assert_eq!(
                text(v).parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{v}"
            );
        }
    }

    #[test]
    fn gzip_output_and_part_names() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let d = parse_ymd(2024, 1, 1).unwrap();
        let rows: Vec<_> = (0..3)
            .map(|h| ("AAA", d + h * 3_600_000, 1.0, 2.5, 3.0, 4.0, h))
            .collect();
        let p = plan(vec![Feature::Close]);
        let t = Table::from_frame(&p, frame(&rows));
        let target = dir.path().join("k.csv.gz");
        let mut w = CsvWriter::new(
            Dest::File(OutputGate::new(), target.clone()),
            &p,
            None,
            true,
            false,
        )
        .unwrap();
        w.write_table(&t).unwrap();
        w.finish().unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(fs::File::open(&target).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(
            text.starts_with("symbol,timestamp,datetime,cls\n"),
            "{text}"
        );
        let mut w = CsvWriter::new(
            Dest::File(OutputGate::new(), target),
            &p,
            Some(2),
            true,
            false,
        )
        .unwrap();
        w.write_table(&t).unwrap();
        let rep = w.finish().unwrap();
        let names: Vec<String> = rep
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["k_part_1.csv.gz", "k_part_2.csv.gz"]);
        let (prefix, suffix) = part_affixes(&dir.path().join("plain"));
        assert_eq!(format!("{prefix}3{suffix}"), "plain_part_3.csv");
    }

    #[test]
    fn parts_and_atomic_commit() {
        let dir = tempfile::tempdir().unwrap();
        let d = parse_ymd(2024, 1, 1).unwrap();
        let rows: Vec<_> = (0..5)
            .map(|h| ("AAA", d + h * 3_600_000, 1.0, 2.5, 3.0, 4.0, h))
            .collect();
        let p = plan(vec![
            Feature::Close,
            Feature::TradesCount,
            Feature::FundingRate,
        ]);
        let t = Table::from_frame(&p, frame(&rows));
        let target = dir.path().join("out/k.csv");
        let mut w = CsvWriter::new(
            Dest::File(OutputGate::new(), target),
            &p,
            Some(2),
            false,
            false,
        )
        .unwrap();
        w.write_table(&t).unwrap();
        let listing = |d: &std::path::Path| {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert!(
            listing(&dir.path().join("out"))
                .iter()
                .all(|n| n.starts_with('.'))
        );
        let rep = w.finish().unwrap();
        assert_eq!(rep.rows, 5);
        assert_eq!(
            listing(&dir.path().join("out")),
            vec![
                "k.csv.parts.json",
                "k_part_1.csv",
                "k_part_2.csv",
                "k_part_3.csv"
            ]
        );
        let p1 = fs::read_to_string(dir.path().join("out/k_part_1.csv")).unwrap();
        assert_eq!(
            p1,
            "symbol,timestamp,datetime,cls,tnum,fr,fr_ts\n\
             AAA,1704067200000,2024-01-01T00:00:00Z,2.5,0,,0\n\
             AAA,1704070800000,2024-01-01T01:00:00Z,2.5,1,,0\n"
        );
        let p3 = fs::read_to_string(dir.path().join("out/k_part_3.csv")).unwrap();
        assert_eq!(p3.lines().count(), 2);

        // A writer dropped before finishing leaves nothing under a final name.
        let mut w = CsvWriter::new(
            Dest::File(OutputGate::new(), dir.path().join("x/y.csv")),
            &p,
            None,
            false,
            false,
        )
        .unwrap();
        w.write_table(&t).unwrap();
        drop(w);
        assert!(listing(&dir.path().join("x")).is_empty());

        // No rows: a header-only file.
        let w = CsvWriter::new(
            Dest::File(OutputGate::new(), dir.path().join("e.csv")),
            &p,
            None,
            false,
            false,
        )
        .unwrap();
        let rep = w.finish().unwrap();
        assert_eq!(rep.rows, 0);
        assert_eq!(
            fs::read_to_string(dir.path().join("e.csv")).unwrap(),
            "symbol,timestamp,datetime,cls,tnum,fr,fr_ts\n"
        );
    }
}
