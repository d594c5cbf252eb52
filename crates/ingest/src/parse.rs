//! [`parse_file`]: one Binance Vision file (plain CSV or a zip holding one CSV) to typed,
//! validated records ([`ParsedFile`]). It infers the [`FileSpec`], verifies the sibling
//! `.CHECKSUM` when there is one, streams the CSV (a zip entry is decompressed while it is
//! read, never extracted or loaded whole) and applies the [`BadRows`] policy.
//!
//! A file is a zip when its extension is `.zip` or, whatever its name, when it starts with
//! the zip signature `PK\x03\x04`; anything else is read as CSV. It stores nothing: the
//! caller hands the records to the store.
//!
//! [`parse_file_streaming`] hands records out in bounded chunks, so memory does not follow
//! the file's size; content larger than the rows the file name allows could take (a zip
//! bomb, a wrong file) is refused before it is read, and while it is read when a zip's
//! sizes lie. [`parse_file`] collects the chunks of one file for callers that want them
//! all at once.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use marketdb_model::Freq;
use zip::ZipArchive;

use crate::funding::FundingParser;
use crate::klines::KlineParser;
use crate::metrics::MetricsParser;
use crate::reader::{Limits, RowParser, run};
use crate::spec::name_period;
use crate::{Error, FileKind, FileSpec, Overrides, Result, RowError, verify_checksum};

/// Bytes a data line may take for the plausibility bound of a whole file (real lines are
/// under 200).
const PLAUSIBLE_ROW_BYTES: u64 = 512;

/// Extra bytes for a header and slack.
const PLAUSIBLE_EXTRA_BYTES: u64 = 4096;

/// What to do with a line that cannot be parsed or fails validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BadRows {
    /// The first bad line is the file's error ([`Error::Row`]); nothing of the file is
    /// returned.
    #[default]
    Fail,
    /// Bad lines go to [`ParsedFile::rejected`]; the good ones are returned.
    Skip,
}

/// The records of one file (or of one chunk of it): the model's [`marketdb_model::Records`].
pub use marketdb_model::Records as Parsed;

/// One parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedFile {
    /// The file as given.
    pub path: PathBuf,
    /// What it holds (from its name and the overrides).
    pub spec: FileSpec,
    /// Whether a sibling `.CHECKSUM` was found and matched (`false`: there was none).
    pub checksum_verified: bool,
    /// The good records.
    pub data: Parsed,
    /// The first [`crate::MAX_KEPT_REJECTED`] refused lines; always empty in
    /// [`BadRows::Fail`] mode.
    pub rejected: Vec<RowError>,
    /// Every refused line.
    pub rejected_count: u64,
    /// Data lines read, header excluded, good and bad.
    pub lines: u64,
}

/// What [`parse_file_streaming`] read from one file (the records went to the consumer).
#[derive(Clone, Debug, PartialEq)]
pub struct FileReport {
    /// The file as given.
    pub path: PathBuf,
    /// What it holds (from its name and the overrides).
    pub spec: FileSpec,
    /// Whether a sibling `.CHECKSUM` was found and matched (`false`: there was none).
    pub checksum_verified: bool,
    /// Records handed to the consumer.
    pub records: u64,
    /// The first [`crate::MAX_KEPT_REJECTED`] refused lines ([`BadRows::Skip`] mode).
    pub rejected: Vec<RowError>,
    /// Every refused line.
    pub rejected_count: u64,
    /// Data lines read, header excluded, good and bad.
    pub lines: u64,
}

/// Parses one file. See [`parse_file_with_progress`].
pub fn parse_file(path: &Path, overrides: &Overrides, mode: BadRows) -> Result<ParsedFile> {
    parse_file_with_progress(path, overrides, mode, &mut |_| {})
}

/// Parses one file into one [`ParsedFile`] (all its records in memory), calling `on_rows`
/// with the number of data lines read so far (every 16,384 lines and once at the end).
/// [`parse_file_streaming`] does the work; use it directly to keep memory bounded.
pub fn parse_file_with_progress(
    path: &Path,
    overrides: &Overrides,
    mode: BadRows,
    on_rows: &mut dyn FnMut(u64),
) -> Result<ParsedFile> {
    let mut data: Option<Parsed> = None;
    let report = parse_file_streaming(
        path,
        overrides,
        mode,
        &Limits::default(),
        &mut |chunk| {
            match (&mut data, chunk) {
                (None, chunk) => data = Some(chunk),
                (Some(Parsed::Klines { rows, .. }), Parsed::Klines { rows: more, .. }) => {
                    rows.extend(more)
                }
                (Some(Parsed::Funding(rows)), Parsed::Funding(more)) => rows.extend(more),
                (
                    Some(Parsed::Metrics {
                        open_interest,
                        long_short_ratio,
                    }),
                    Parsed::Metrics {
                        open_interest: oi,
                        long_short_ratio: lsr,
                    },
                ) => {
                    open_interest.extend(oi);
                    long_short_ratio.extend(lsr);
                }
                // One parser per file: chunks never change kind.
                (Some(_), _) => {}
            }
            Ok(())
        },
        on_rows,
    )?;
    let data = data.unwrap_or_else(|| empty(&report.spec));
    Ok(ParsedFile {
        path: report.path,
        spec: report.spec,
        checksum_verified: report.checksum_verified,
        data,
        rejected: report.rejected,
        rejected_count: report.rejected_count,
        lines: report.lines,
    })
}

/// No records of the kind of `spec`.
fn empty(spec: &FileSpec) -> Parsed {
    match spec.kind {
        FileKind::Klines => Parsed::Klines {
            freq: spec.freq.unwrap_or(Freq::M1),
            rows: Vec::new(),
        },
        FileKind::Funding => Parsed::Funding(Vec::new()),
        FileKind::Metrics => Parsed::Metrics {
            open_interest: Vec::new(),
            long_short_ratio: Vec::new(),
        },
    }
}

/// The most bytes the rows the file name allows could take.
fn plausible_bytes(spec: &FileSpec, period: Option<marketdb_model::TimeRange>) -> Option<u64> {
    plausible_file_bytes(spec.kind, spec.freq, period?)
}

/// The most bytes a file of `kind` (and kline interval `freq`) covering `period` could
/// take: one row per bucket of the interval (klines), per 5 minutes (metrics) or per
/// minute (funding), at 512 bytes a row, plus 4 KiB for a header. `None` for klines
/// without an interval. A zip holding such a file is never larger (stored entries add
/// less than the header allowance), so downloads are bounded by the same figure.
pub fn plausible_file_bytes(
    kind: FileKind,
    freq: Option<Freq>,
    period: marketdb_model::TimeRange,
) -> Option<u64> {
    let span = u64::try_from(period.end_exclusive - period.start).ok()?;
    let step = match kind {
        FileKind::Klines => u64::try_from(freq?.nominal_ms()).ok()?,
        FileKind::Metrics => 300_000,
        FileKind::Funding => 60_000,
    };
    Some((span / step + 1) * PLAUSIBLE_ROW_BYTES + PLAUSIBLE_EXTRA_BYTES)
}

/// Parses one file, handing its records to `on_chunk` in chunks of `limits.chunk_rows`
/// (an error from `on_chunk` stops the read and is returned), and calling `on_rows` with
/// the data lines read so far.
///
/// Steps: infer the [`FileSpec`] (errors name the file and the missing `--kind`,
/// `--symbol`, `--freq`), verify the sibling `.CHECKSUM` if present, refuse content larger
/// than the named period's rows could take, open the CSV (directly or as the single `.csv`
/// entry of the zip), detect a header, then parse and validate each line: the model's
/// rules, times in order, each time once, inside the day or month of the file name. In
/// [`BadRows::Fail`] mode a bad line fails the file after earlier chunks were handed out:
/// the consumer must discard them (one transaction per file does). An empty file (or a
/// header with no data line) is not an error: zero records, with a warning in the log.
pub fn parse_file_streaming(
    path: &Path,
    overrides: &Overrides,
    mode: BadRows,
    limits: &Limits,
    on_chunk: &mut dyn FnMut(Parsed) -> Result<()>,
    on_rows: &mut dyn FnMut(u64),
) -> Result<FileReport> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let spec = FileSpec::infer(path, overrides)?;
    let period = name_period(path);
    let mut limits = *limits;
    if let Some(max) = plausible_bytes(&spec, period) {
        limits.max_bytes = Some(limits.max_bytes.map_or(max, |m| m.min(max)));
    }
    let checksum_verified = verify_checksum(path)?;
    let relabelled = overrides.symbol.is_some();
    let mut records = 0u64;
    let mut counting = |chunk: Parsed| {
        records += chunk.len() as u64;
        on_chunk(chunk)
    };
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let outcome = if is_zip(path, &mut file)? {
        let mut archive = ZipArchive::new(BufReader::new(file)).map_err(|source| Error::Zip {
            file: path.to_path_buf(),
            source,
        })?;
        let index = csv_entry(&archive, path)?;
        let entry = archive.by_index(index).map_err(|source| Error::Zip {
            file: path.to_path_buf(),
            source,
        })?;
        if let Some(max) = limits.max_bytes
            && entry.size() > max
        {
            return Err(Error::TooLarge {
                file: path.to_path_buf(),
                limit: max,
            });
        }
        read_kind(
            entry,
            path,
            &spec,
            period,
            relabelled,
            mode,
            &limits,
            &mut counting,
            on_rows,
        )?
    } else {
        if let Some(max) = limits.max_bytes
            && meta.len() > max
        {
            return Err(Error::TooLarge {
                file: path.to_path_buf(),
                limit: max,
            });
        }
        read_kind(
            file,
            path,
            &spec,
            period,
            relabelled,
            mode,
            &limits,
            &mut counting,
            on_rows,
        )?
    };
    if outcome.lines == 0 {
        tracing::warn!(file = %path.display(), "file has no data lines");
    }
    tracing::debug!(
        file = %path.display(),
        kind = %spec.kind,
        symbol = %spec.symbol,
        lines = outcome.lines,
        header = outcome.had_header,
        records,
        rejected = outcome.rejected_count,
        checksum_verified,
        "parsed file"
    );
    Ok(FileReport {
        path: path.to_path_buf(),
        spec,
        checksum_verified,
        records,
        rejected: outcome.rejected,
        rejected_count: outcome.rejected_count,
        lines: outcome.lines,
    })
}

/// Runs the parser of `spec.kind` over `input`.
#[allow(clippy::too_many_arguments)]
fn read_kind<R: Read>(
    input: R,
    path: &Path,
    spec: &FileSpec,
    period: Option<marketdb_model::TimeRange>,
    relabelled: bool,
    mode: BadRows,
    limits: &Limits,
    on_chunk: &mut dyn FnMut(Parsed) -> Result<()>,
    on_rows: &mut dyn FnMut(u64),
) -> Result<crate::reader::Outcome> {
    let symbol = spec.symbol.clone();
    let mut parser: Box<dyn RowParser> = match spec.kind {
        FileKind::Klines => {
            // `FileSpec::infer` guarantees a freq for klines; refuse rather than guess.
            let freq = spec.freq.ok_or_else(|| Error::UnknownName {
                file: path.to_path_buf(),
                reason: "it does not give the kline interval".into(),
                hint: "--freq".into(),
            })?;
            Box::new(KlineParser::new(symbol, freq, period))
        }
        FileKind::Funding => Box::new(FundingParser::new(symbol, period)),
        FileKind::Metrics => Box::new(MetricsParser::new(symbol, !relabelled, period)),
    };
    run(
        input,
        path,
        parser.as_mut(),
        mode,
        limits,
        on_chunk,
        on_rows,
    )
}

/// Whether `file` is a zip archive: by extension, else by its first four bytes. Leaves the
/// file positioned at its start.
fn is_zip(path: &Path, file: &mut File) -> Result<bool> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        return Ok(true);
    }
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    Ok(got == 4 && magic == *b"PK\x03\x04")
}

/// Index of the single `.csv` entry of the archive (ignoring folders and macOS
/// `__MACOSX/` and `._` companions).
fn csv_entry<R: Read + Seek>(archive: &ZipArchive<R>, path: &Path) -> Result<usize> {
    let mut found = Vec::new();
    for (index, name) in archive.file_names().enumerate() {
        let name = name.map_err(|source| Error::Zip {
            file: path.to_path_buf(),
            source,
        })?;
        let base = name.rsplit('/').next().unwrap_or_default();
        let is_csv = base.len() > 4
            && base
                .get(base.len() - 4..)
                .is_some_and(|ext| ext.eq_ignore_ascii_case(".csv"));
        if is_csv && !name.starts_with("__MACOSX/") && !base.starts_with("._") {
            found.push(index);
        }
    }
    match found.as_slice() {
        [index] => Ok(*index),
        [] => Err(Error::NoCsvInZip {
            file: path.to_path_buf(),
        }),
        many => Err(Error::ManyCsvInZip {
            file: path.to_path_buf(),
            count: many.len(),
        }),
    }
}
