//! What a download asks for: the command line's options as one value, checked before
//! anything is opened or asked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use marketdb_fetch::{DEFAULT_BASE_URL, Market};
use marketdb_ingest::FileKind;
use marketdb_model::{Freq, TimeRange};

use crate::{Error, Result};

/// Where bars come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Vision files only.
    Vision,
    /// The REST API only.
    Rest,
    /// Vision files for closed days, the REST API for the last days.
    Auto,
}

impl Source {
    /// `vision`, `rest` or `auto`.
    pub fn parse(s: &str) -> Result<Source> {
        match s {
            "vision" => Ok(Source::Vision),
            "rest" => Ok(Source::Rest),
            "auto" => Ok(Source::Auto),
            other => Err(Error::invalid(
                format!("source {other:?}"),
                "expected vision, rest or auto",
            )),
        }
    }
}

/// A symbol's listed life in the archive (from the catalog): its first file starts at
/// `first`; a delisted symbol's last file ends at `end`; its monthly files span
/// `monthly` (a month outside it is asked day by day, not as a monthly file the archive
/// does not have).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    pub first: i64,
    pub end: Option<i64>,
    pub monthly: Option<(i64, i64)>,
}

/// One download.
#[derive(Clone, Debug)]
pub struct DownloadRequest {
    pub market: Market,
    pub kind: FileKind,
    pub symbols: Vec<String>,
    /// The kline interval (klines only, required for them).
    pub freq: Option<Freq>,
    pub range: TimeRange,
    pub source: Source,
    /// Binance Vision base URL.
    pub base_url: String,
    /// REST API base URL; `None` is the market's.
    pub rest_url: Option<String>,
    /// Files downloaded at once (1..=64).
    pub jobs: u32,
    /// Retries of a failed request.
    pub retries: u32,
    /// Keep downloaded files in this folder (in the Vision layout).
    pub keep: Option<PathBuf>,
    /// Recorded `not_published` and `partial` periods that ended less than this many days
    /// ago are asked again.
    pub recheck_days: i64,
    /// Ask Vision whether stored files were re-published, and replace those that were.
    pub reverify: bool,
    /// First retry delay (doubled each retry, with jitter).
    pub backoff: Duration,
    /// Longest wait for the next bytes of an answer.
    pub read_timeout: Duration,
    /// Longest one request may take, whole.
    pub timeout: Duration,
    /// Listed lives of symbols (filled from the catalog by [`crate::symbols::apply`]): a
    /// symbol is asked only for the part of the range it existed in.
    pub lives: BTreeMap<String, Listed>,
}

impl DownloadRequest {
    /// A request with the command line's defaults.
    pub fn new(market: Market, kind: FileKind, symbols: Vec<String>, range: TimeRange) -> Self {
        DownloadRequest {
            market,
            kind,
            symbols,
            freq: None,
            range,
            source: Source::Auto,
            base_url: DEFAULT_BASE_URL.to_owned(),
            rest_url: None,
            jobs: 4,
            retries: 4,
            keep: None,
            recheck_days: 3,
            reverify: false,
            backoff: Duration::from_millis(500),
            read_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(900),
            lives: BTreeMap::new(),
        }
    }

    /// The kline interval (1m when unset; [`DownloadRequest::check`] refuses klines
    /// without one).
    pub fn kline_freq(&self) -> Freq {
        self.freq.unwrap_or(Freq::M1)
    }

    /// The interval of the kind's files: the kline interval, `None` for the others.
    pub fn file_freq(&self) -> Option<Freq> {
        (self.kind == FileKind::Klines).then(|| self.kline_freq())
    }

    /// Refuses what cannot be downloaded, naming the option.
    pub fn check(&self) -> Result<()> {
        match self.kind {
            FileKind::Klines if self.freq.is_none() => {
                return Err(Error::invalid("--kind klines", "needs --freq (such as 1m)"));
            }
            FileKind::Funding | FileKind::Metrics if self.freq.is_some() => {
                return Err(Error::invalid(
                    "--freq",
                    format!(
                        "applies to klines only, not to --kind {}",
                        self.kind.as_str()
                    ),
                ));
            }
            FileKind::Funding | FileKind::Metrics if self.market == Market::Spot => {
                return Err(Error::invalid(
                    format!("--kind {}", self.kind.as_str()),
                    "binance publishes it for futures only: give --market um or cm",
                ));
            }
            FileKind::Metrics if self.source == Source::Rest => {
                return Err(Error::invalid(
                    "--source rest",
                    "the rest api keeps no metrics history: use --source vision or auto",
                ));
            }
            _ => {}
        }
        if self.symbols.is_empty() {
            return Err(Error::invalid("--symbols", "give at least one symbol"));
        }
        if !(1..=64).contains(&self.jobs) {
            return Err(Error::invalid(
                format!("--jobs {}", self.jobs),
                "expected 1 to 64",
            ));
        }
        if self.reverify && self.source == Source::Rest {
            return Err(Error::invalid(
                "--reverify",
                "checks vision files: it needs --source vision or auto",
            ));
        }
        Ok(())
    }

    /// The range `symbol` is asked for: the request's, cut to the symbol's listed life;
    /// `None` when it did not exist in the range (nothing of it is asked, nothing is a gap).
    pub fn symbol_range(&self, symbol: &str) -> Option<TimeRange> {
        let Some(life) = self.lives.get(symbol) else {
            return Some(self.range);
        };
        let start = self.range.start.max(life.first);
        let end = life.end.map_or(self.range.end_exclusive, |e| {
            e.min(self.range.end_exclusive)
        });
        (start < end).then_some(TimeRange {
            start,
            end_exclusive: end,
        })
    }

    /// Days of the range outside the listed lives of the symbols (partial days count
    /// whole), over all symbols.
    pub fn not_listed_days(&self) -> u64 {
        use marketdb_model::time::DAY_MS;
        let days = |ms: i64| (ms.max(0).saturating_add(DAY_MS - 1) / DAY_MS) as u64;
        let (start, end) = (self.range.start, self.range.end_exclusive);
        self.symbols
            .iter()
            .filter(|s| self.lives.contains_key(*s))
            .map(|s| match self.symbol_range(s) {
                // Each cut edge on its own: half a day at both ends is two days.
                Some(r) => days(r.start - start) + days(end - r.end_exclusive),
                None => days(end - start),
            })
            .sum()
    }

    /// This request for `symbol` alone, over its [`DownloadRequest::symbol_range`].
    pub fn for_symbol(&self, symbol: &str) -> Option<DownloadRequest> {
        let range = self.symbol_range(symbol)?;
        Some(DownloadRequest {
            symbols: vec![symbol.to_owned()],
            range,
            lives: self
                .lives
                .get_key_value(symbol)
                .map(|(k, v)| (k.clone(), *v))
                .into_iter()
                .collect(),
            ..self.clone_without_symbols()
        })
    }

    fn clone_without_symbols(&self) -> DownloadRequest {
        DownloadRequest {
            market: self.market,
            kind: self.kind,
            symbols: Vec::new(),
            freq: self.freq,
            range: self.range,
            source: self.source,
            base_url: self.base_url.clone(),
            rest_url: self.rest_url.clone(),
            jobs: self.jobs,
            retries: self.retries,
            keep: self.keep.clone(),
            recheck_days: self.recheck_days,
            reverify: self.reverify,
            backoff: self.backoff,
            read_timeout: self.read_timeout,
            timeout: self.timeout,
            lives: BTreeMap::new(),
        }
    }

    /// Whether the REST API is used at all.
    pub fn uses_rest(&self) -> bool {
        match self.source {
            Source::Vision => false,
            Source::Auto => self.kind != FileKind::Metrics,
            Source::Rest => true,
        }
    }
}
