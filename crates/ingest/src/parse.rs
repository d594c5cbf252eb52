//! [`parse_file`]: one Binance Vision file (plain CSV or a zip holding one CSV) to typed,
//! validated records ([`ParsedFile`]). It infers the [`FileSpec`], verifies the sibling
//! `.CHECKSUM` when there is one, streams the CSV (a zip entry is decompressed while it is
//! read, never extracted or loaded whole) and applies the [`BadRows`] policy.
//!
//! A file is a zip when its extension is `.zip` or, whatever its name, when it starts with
//! the zip signature `PK\x03\x04`; anything else is read as CSV. It stores nothing: the
//! caller hands the records to the store.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use marketdb_model::{Freq, FundingRate, Kline, LongShortRatio, OpenInterest};
use zip::ZipArchive;

use crate::funding::FundingParser;
use crate::klines::KlineParser;
use crate::metrics::MetricsParser;
use crate::reader::{RowParser, run};
use crate::{Error, FileKind, FileSpec, Overrides, Result, RowError, verify_checksum};

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

/// The records of one file.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// Klines of one symbol at one interval.
    Klines { freq: Freq, rows: Vec<Kline> },
    /// Funding-rate events of one symbol.
    Funding(Vec<FundingRate>),
    /// Open interest (5m) and long/short ratios (5m, up to four types per timestamp).
    Metrics {
        open_interest: Vec<OpenInterest>,
        long_short_ratio: Vec<LongShortRatio>,
    },
}

impl Parsed {
    /// Number of records (for metrics, open-interest plus long/short-ratio records).
    pub fn len(&self) -> usize {
        match self {
            Parsed::Klines { rows, .. } => rows.len(),
            Parsed::Funding(rows) => rows.len(),
            Parsed::Metrics {
                open_interest,
                long_short_ratio,
            } => open_interest.len() + long_short_ratio.len(),
        }
    }

    /// Whether there is no record at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
    /// Refused lines; always empty in [`BadRows::Fail`] mode.
    pub rejected: Vec<RowError>,
    /// Data lines read, header excluded, good and bad.
    pub lines: u64,
}

/// Parses one file. See [`parse_file_with_progress`].
pub fn parse_file(path: &Path, overrides: &Overrides, mode: BadRows) -> Result<ParsedFile> {
    parse_file_with_progress(path, overrides, mode, &mut |_| {})
}

/// Parses one file, calling `on_rows` with the number of data lines read so far (every
/// 16,384 lines and once at the end) so a caller can draw a progress bar.
///
/// Steps: infer the [`FileSpec`] (errors name the file and the missing `--kind`,
/// `--symbol`, `--freq`), verify the sibling `.CHECKSUM` if present, open the CSV (directly
/// or as the single `.csv` entry of the zip), detect a header, then parse and validate each
/// line. An empty file (or a header with no data line) is not an error: it gives zero
/// records, with a warning in the log.
pub fn parse_file_with_progress(
    path: &Path,
    overrides: &Overrides,
    mode: BadRows,
    on_rows: &mut dyn FnMut(u64),
) -> Result<ParsedFile> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let spec = FileSpec::infer(path, overrides)?;
    let checksum_verified = verify_checksum(path)?;
    let relabelled = overrides.symbol.is_some();
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let (data, outcome) = if is_zip(path, &mut file)? {
        let mut archive = ZipArchive::new(BufReader::new(file)).map_err(|source| Error::Zip {
            file: path.to_path_buf(),
            source,
        })?;
        let index = csv_entry(&archive, path)?;
        let entry = archive.by_index(index).map_err(|source| Error::Zip {
            file: path.to_path_buf(),
            source,
        })?;
        read_kind(entry, path, &spec, relabelled, mode, on_rows)?
    } else {
        read_kind(file, path, &spec, relabelled, mode, on_rows)?
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
        records = data.len(),
        rejected = outcome.rejected.len(),
        checksum_verified,
        "parsed file"
    );
    Ok(ParsedFile {
        path: path.to_path_buf(),
        spec,
        checksum_verified,
        data,
        rejected: outcome.rejected,
        lines: outcome.lines,
    })
}

/// Runs the parser of `spec.kind` over `input`.
fn read_kind<R: Read>(
    input: R,
    path: &Path,
    spec: &FileSpec,
    relabelled: bool,
    mode: BadRows,
    on_rows: &mut dyn FnMut(u64),
) -> Result<(Parsed, crate::reader::Outcome)> {
    let symbol = spec.symbol.clone();
    let go = |parser: &mut dyn RowParser| run(input, path, parser, mode, on_rows);
    Ok(match spec.kind {
        FileKind::Klines => {
            // `FileSpec::infer` guarantees a freq for klines; refuse rather than guess.
            let freq = spec.freq.ok_or_else(|| Error::UnknownName {
                file: path.to_path_buf(),
                reason: "it does not give the kline interval".into(),
                hint: "--freq".into(),
            })?;
            let mut p = KlineParser::new(symbol, freq);
            let outcome = go(&mut p)?;
            (Parsed::Klines { freq, rows: p.rows }, outcome)
        }
        FileKind::Funding => {
            let mut p = FundingParser::new(symbol);
            let outcome = go(&mut p)?;
            (Parsed::Funding(p.rows), outcome)
        }
        FileKind::Metrics => {
            let mut p = MetricsParser::new(symbol, !relabelled);
            let outcome = go(&mut p)?;
            let data = Parsed::Metrics {
                open_interest: p.open_interest,
                long_short_ratio: p.long_short_ratio,
            };
            (data, outcome)
        }
    })
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
