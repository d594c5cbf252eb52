//! What a file holds: [`FileKind`] (klines, funding, metrics) and [`FileSpec`] (kind,
//! symbol, interval), read from Binance Vision file names and completed or corrected by the
//! caller's [`Overrides`] (the CLI's `--kind`, `--symbol`, `--freq`).
//!
//! Understood names (`.zip` or `.csv`, extension case-insensitive):
//! - `BTCUSDT-1m-2024-01-01` (daily klines), `BTCUSDT-1m-2024-01` (monthly klines),
//!   `BTCUSDT-1mo-2024-01` (the month interval is spelled `1mo` by Binance; `1M` works too);
//! - `BTCUSDT-fundingRate-2024-01` (monthly funding rates);
//! - `BTCUSDT-metrics-2024-01-01` (daily open interest and long/short ratios).
//!
//! It does not open files: it only reads names.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use marketdb_model::time::{DAY_MS, parse_ymd};
use marketdb_model::{Freq, TimeRange, validate_symbol};

use crate::{Error, Result};

/// The three Binance Vision datasets this crate parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `{SYMBOL}-{interval}-{date}`: 12-column kline rows.
    Klines,
    /// `{SYMBOL}-fundingRate-{YYYY-MM}`: `calc_time,funding_interval_hours,last_funding_rate`.
    Funding,
    /// `{SYMBOL}-metrics-{YYYY-MM-DD}`: open interest and long/short ratios every 5 minutes.
    Metrics,
}

impl FileKind {
    /// `klines`, `funding` or `metrics` (the `--kind` values).
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Klines => "klines",
            FileKind::Funding => "funding",
            FileKind::Metrics => "metrics",
        }
    }

    /// Parses a `--kind` value: `klines`/`kline`, `funding`/`fundingRate`/`funding_rate`,
    /// `metrics`/`metric` (case-insensitive).
    pub fn parse(input: &str) -> Result<FileKind> {
        match input.trim().to_ascii_lowercase().as_str() {
            "klines" | "kline" => Ok(FileKind::Klines),
            "funding" | "fundingrate" | "funding_rate" | "funding-rate" => Ok(FileKind::Funding),
            "metrics" | "metric" => Ok(FileKind::Metrics),
            _ => Err(Error::InvalidKind {
                input: input.to_owned(),
            }),
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FileKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<FileKind> {
        FileKind::parse(s)
    }
}

/// What a file holds. `freq` is `Some` for klines and `None` for the other kinds; `symbol`
/// is canonical (upper-case, checked by `validate_symbol`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    pub kind: FileKind,
    pub symbol: String,
    pub freq: Option<Freq>,
}

/// Values from the caller that replace (or supply) what the file name says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub kind: Option<FileKind>,
    /// Any case; upper-cased and validated.
    pub symbol: Option<String>,
    /// Ignored for funding and metrics files.
    pub freq: Option<Freq>,
}

/// The parts a well-formed Binance file name gives.
#[derive(Debug, PartialEq)]
struct NameParts<'a> {
    kind: FileKind,
    symbol: &'a str,
    freq: Option<Freq>,
}

impl FileSpec {
    /// Reads kind, symbol and interval from the file name of `path`, then applies
    /// `overrides` (each given override wins). A name that cannot be understood is fine
    /// when the overrides supply everything (kind, symbol, and freq for klines); otherwise
    /// the error names the file and the missing flags.
    pub fn infer(path: &Path, overrides: &Overrides) -> Result<FileSpec> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let parsed = parse_name(&name);
        let (kind, symbol, name_freq) = match &parsed {
            Ok(p) => (Some(p.kind), Some(p.symbol), p.freq),
            Err(_) => (None, None, None),
        };
        let kind = overrides.kind.or(kind);
        let symbol = overrides.symbol.as_deref().or(symbol);
        let freq = match kind {
            Some(FileKind::Klines) => overrides.freq.or(name_freq),
            _ => None,
        };
        let mut missing = Vec::new();
        if kind.is_none() {
            missing.push("--kind");
        }
        if symbol.is_none() {
            missing.push("--symbol");
        }
        if kind.is_none_or(|k| k == FileKind::Klines) && freq.is_none() {
            missing.push("--freq");
        }
        if let (Some(kind), Some(symbol), true) = (kind, symbol, missing.is_empty()) {
            let symbol = validate_symbol(symbol).map_err(|source| Error::InvalidSymbol {
                file: path.to_path_buf(),
                source: Box::new(source),
            })?;
            return Ok(FileSpec { kind, symbol, freq });
        }
        let reason = match parsed {
            Err(reason) => reason,
            // The name was understood but an override changed the kind to klines without
            // giving the interval the name lacks.
            Ok(_) => "it does not give the kline interval".to_owned(),
        };
        Err(Error::UnknownName {
            file: path.to_path_buf(),
            reason,
            hint: join_flags(&missing),
        })
    }

    /// Reads kind, symbol and interval from a Binance file name alone (no overrides).
    pub fn from_name(name: &str) -> Result<FileSpec> {
        FileSpec::infer(Path::new(name), &Overrides::default())
    }
}

fn join_flags(flags: &[&str]) -> String {
    match flags {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Strips `.zip` or `.csv` (any case) from a file name.
fn stem(name: &str) -> Option<&str> {
    let (stem, ext) = name.rsplit_once('.')?;
    (ext.eq_ignore_ascii_case("zip") || ext.eq_ignore_ascii_case("csv")).then_some(stem)
}

/// Parses `{SYMBOL}-{dataset}-{YYYY}-{MM}[-{DD}]`; the error says what does not fit.
fn parse_name(name: &str) -> std::result::Result<NameParts<'_>, String> {
    let expected = "expected a Binance Vision name such as BTCUSDT-1m-2024-01-01.zip, \
                    BTCUSDT-fundingRate-2024-01.zip or BTCUSDT-metrics-2024-01-01.zip";
    let Some(stem) = stem(name) else {
        return Err(format!("it does not end in .zip or .csv ({expected})"));
    };
    let parts: Vec<&str> = stem.split('-').collect();
    let date_len = match parts.as_slice() {
        [.., y, m, d] if is_date(y, m, Some(d)) => 3,
        [.., y, m] if is_date(y, m, None) => 2,
        _ => return Err(format!("it does not end in a date ({expected})")),
    };
    let (symbol, dataset) = match &parts[..parts.len() - date_len] {
        [symbol, dataset] => (*symbol, *dataset),
        _ => {
            return Err(format!(
                "it does not have the form SYMBOL-DATASET-DATE ({expected})"
            ));
        }
    };
    let (kind, freq) = if dataset.eq_ignore_ascii_case("fundingRate") {
        (FileKind::Funding, None)
    } else if dataset.eq_ignore_ascii_case("metrics") {
        (FileKind::Metrics, None)
    } else if let Ok(freq) = Freq::parse(dataset) {
        (FileKind::Klines, Some(freq))
    } else {
        return Err(format!(
            "{dataset:?} is neither a kline interval nor fundingRate nor metrics"
        ));
    };
    Ok(NameParts { kind, symbol, freq })
}

/// The UTC day or month the date at the end of a Binance file name covers
/// (`...-2024-01-01.zip`: that day; `...-2024-01.zip`: that month), `None` when the name
/// ends in no date. Rows of the file must fall inside it.
pub fn name_period(path: &Path) -> Option<TimeRange> {
    let name = path.file_name()?.to_string_lossy();
    let stem = stem(&name)?;
    let parts: Vec<&str> = stem.split('-').collect();
    let num = |s: &str| s.parse::<u32>().ok();
    let (start, end) = match parts.as_slice() {
        [.., y, m, d] if is_date(y, m, Some(d)) => {
            let start = parse_ymd(i64::from(num(y)?), num(m)?, num(d)?)?;
            (start, start + DAY_MS)
        }
        [.., y, m] if is_date(y, m, None) => {
            let start = parse_ymd(i64::from(num(y)?), num(m)?, 1)?;
            (start, Freq::Mo1.next(start))
        }
        _ => return None,
    };
    TimeRange::new(start, end).ok()
}

fn is_date(y: &str, m: &str, d: Option<&str>) -> bool {
    let num = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok())
    };
    let (Some(Some(y)), Some(Some(m))) = (num(y, 4), num(m, 2)) else {
        return false;
    };
    let d = match d {
        None => 1,
        Some(d) => match num(d, 2) {
            Some(Some(d)) => d,
            _ => return false,
        },
    };
    parse_ymd(i64::from(y), m, d).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> FileSpec {
        FileSpec::from_name(name).unwrap()
    }

    fn klines(symbol: &str, freq: Freq) -> FileSpec {
        FileSpec {
            kind: FileKind::Klines,
            symbol: symbol.into(),
            freq: Some(freq),
        }
    }

    #[test]
    fn periods_from_names() {
        let day = parse_ymd(2024, 2, 29).unwrap();
        let p = name_period(Path::new("x/BTCUSDT-1m-2024-02-29.zip")).unwrap();
        assert_eq!((p.start, p.end_exclusive), (day, day + DAY_MS));
        let p = name_period(Path::new("BTCUSDT-fundingRate-2024-02.zip")).unwrap();
        let feb = parse_ymd(2024, 2, 1).unwrap();
        assert_eq!(
            (p.start, p.end_exclusive),
            (feb, parse_ymd(2024, 3, 1).unwrap())
        );
        assert_eq!(name_period(Path::new("klines.csv")), None);
        assert_eq!(name_period(Path::new("BTCUSDT-1m-2024-02-30.zip")), None);
    }

    #[test]
    fn binance_names() {
        assert_eq!(
            spec("BTCUSDT-1m-2024-01-01.zip"),
            klines("BTCUSDT", Freq::M1)
        );
        assert_eq!(
            spec("BTCUSDT-1m-2024-01-01.csv"),
            klines("BTCUSDT", Freq::M1)
        );
        assert_eq!(spec("BTCUSDT-1m-2024-01.zip"), klines("BTCUSDT", Freq::M1));
        assert_eq!(
            spec("BTCUSDT-1mo-2024-01.zip"),
            klines("BTCUSDT", Freq::Mo1)
        );
        assert_eq!(spec("BTCUSDT-1M-2024-01.ZIP"), klines("BTCUSDT", Freq::Mo1));
        assert_eq!(spec("ETHUSDT-1h-2023-12.csv"), klines("ETHUSDT", Freq::H1));
        assert_eq!(
            spec("BTCUSD_PERP-1d-2024-02-29.zip"),
            klines("BTCUSD_PERP", Freq::D1)
        );
        assert_eq!(
            spec("1000PEPEUSDT-1s-2024-01-01.zip"),
            klines("1000PEPEUSDT", Freq::S1)
        );
        assert_eq!(
            spec("BTCUSDT-fundingRate-2024-01.zip"),
            FileSpec {
                kind: FileKind::Funding,
                symbol: "BTCUSDT".into(),
                freq: None
            }
        );
        assert_eq!(
            spec("ACEUSDT-metrics-2025-01-21.zip"),
            FileSpec {
                kind: FileKind::Metrics,
                symbol: "ACEUSDT".into(),
                freq: None
            }
        );
        // A lower-case symbol is canonicalised.
        assert_eq!(spec("btcusdt-5m-2024-01-01.csv").symbol, "BTCUSDT");
    }

    #[test]
    fn names_that_are_not_understood() {
        for (name, why) in [
            ("BTCUSDT-1m-2024-01-01.txt", "does not end in .zip or .csv"),
            ("data.csv", "does not end in a date"),
            ("BTCUSDT-1m-2024-13-01.zip", "does not end in a date"),
            ("BTCUSDT-1m-2023-02-29.zip", "does not end in a date"),
            (
                "BTCUSDT-aggTrades-2024-01-01.zip",
                "\"aggTrades\" is neither",
            ),
            ("BTCUSDT-7m-2024-01-01.zip", "\"7m\" is neither"),
            ("BTC-USDT-1m-2024-01-01.zip", "SYMBOL-DATASET-DATE"),
            ("2024-01-01.zip", "SYMBOL-DATASET-DATE"),
        ] {
            let err = FileSpec::from_name(name).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
            assert!(err.contains(why), "{name}: {err}");
            assert!(err.starts_with("cannot understand the file name"), "{err}");
            assert!(err.contains("--kind"), "{err}");
        }
    }

    #[test]
    fn overrides_win_and_fill_gaps() {
        let path = Path::new("dir/BTCUSDT-1m-2024-01-01.zip");
        let all = Overrides {
            kind: None,
            symbol: Some("ethusdt".into()),
            freq: Some(Freq::H1),
        };
        assert_eq!(
            FileSpec::infer(path, &all).unwrap(),
            klines("ETHUSDT", Freq::H1)
        );
        // Funding and metrics carry no interval.
        let funding = Overrides {
            kind: Some(FileKind::Funding),
            ..Overrides::default()
        };
        assert_eq!(FileSpec::infer(path, &funding).unwrap().freq, None);
        // An unknown name works when the overrides say everything.
        let anon = Path::new("export.csv");
        let full = Overrides {
            kind: Some(FileKind::Klines),
            symbol: Some("BTCUSDT".into()),
            freq: Some(Freq::M5),
        };
        assert_eq!(
            FileSpec::infer(anon, &full).unwrap(),
            klines("BTCUSDT", Freq::M5)
        );
        let metrics = Overrides {
            kind: Some(FileKind::Metrics),
            symbol: Some("BTCUSDT".into()),
            freq: None,
        };
        assert_eq!(
            FileSpec::infer(anon, &metrics).unwrap().kind,
            FileKind::Metrics
        );
        // ...and names exactly the flags that are missing when they do not.
        let partial = Overrides {
            kind: Some(FileKind::Klines),
            ..Overrides::default()
        };
        let err = FileSpec::infer(anon, &partial).unwrap_err().to_string();
        assert!(
            err.contains("export.csv") && err.ends_with("pass --symbol and --freq"),
            "{err}"
        );
        let err = FileSpec::infer(anon, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("pass --kind, --symbol and --freq"), "{err}");
        // A funding name forced to klines needs an interval.
        let err = FileSpec::infer(Path::new("BTCUSDT-fundingRate-2024-01.zip"), &partial)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kline interval") && err.ends_with("pass --freq"),
            "{err}"
        );
    }

    #[test]
    fn bad_symbols_are_refused() {
        let o = Overrides {
            symbol: Some("BTC/USDT".into()),
            ..Overrides::default()
        };
        let err = FileSpec::infer(Path::new("BTCUSDT-1m-2024-01-01.zip"), &o).unwrap_err();
        assert!(matches!(err, Error::InvalidSymbol { .. }), "{err}");
        assert!(
            err.to_string().contains("BTCUSDT-1m-2024-01-01.zip"),
            "{err}"
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(FileKind::parse("klines").unwrap(), FileKind::Klines);
        assert_eq!(FileKind::parse("fundingRate").unwrap(), FileKind::Funding);
        assert_eq!(FileKind::parse(" METRICS ").unwrap(), FileKind::Metrics);
        assert_eq!(
            "funding".parse::<FileKind>().unwrap().to_string(),
            "funding"
        );
        let err = FileKind::parse("trades").unwrap_err().to_string();
        assert!(err.contains("\"trades\""), "{err}");
    }
}
