//! The catalog of the archive: which symbols Binance Vision has files for, from when to
//! when, read from its bucket listing ([`refresh`]) and kept in the `archive_catalog`
//! table; and what a symbol's listed life means ([`Life`]): a day before its first file is
//! "not listed", never a gap, and a symbol whose next file is more than two days past due
//! ([`DELISTED_AFTER_MS`], after the publication lag of the source record's rule) is
//! delisted.
//!
//! A refresh lists only what can have changed: the symbol folders (new symbols), and each
//! known series after its last listed file (the listing's `marker`); a series delisted at
//! its last listing is asked again only once that listing is a week old
//! ([`RECHECK_DELISTED_MS`]: a wrong mark or a relisting is seen within a week). `full`
//! lists everything anew.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::StreamExt;
use marketdb_fetch::{FetchConfig, Fetcher, Market, Period, vision_interval};
use marketdb_ingest::FileKind;
use marketdb_model::Freq;
use marketdb_model::time::DAY_MS;
use marketdb_store::{AsyncMarketDB, CatalogEntry, CatalogFilter, CompletenessReport, MissingRun};
use serde::Serialize;

use crate::request::Listed;
use crate::rule;
use crate::{Error, Result};

/// A symbol is delisted when the file after its last was due this long before the
/// listing.
pub const DELISTED_AFTER_MS: i64 = 2 * DAY_MS;

/// A delisted series is listed again when its last listing is this old.
pub const RECHECK_DELISTED_MS: i64 = 7 * DAY_MS;

/// The period after `p`: the next day or month.
fn next_period(p: Period) -> Period {
    match p {
        Period::Day(d) => Period::Day(d.saturating_add(DAY_MS)),
        Period::Month(..) => Period::month_of(p.end_ms()),
    }
}

/// What a refresh lists.
#[derive(Clone, Debug)]
pub struct RefreshRequest {
    pub market: Market,
    pub kinds: Vec<FileKind>,
    /// Kline intervals to list; empty lists every interval the archive has (one request
    /// more per new symbol).
    pub freqs: Vec<Freq>,
    /// The bucket listing endpoint ([`marketdb_fetch::DEFAULT_LISTING_URL`]).
    pub listing_url: String,
    /// List every series anew, not only what can have changed.
    pub full: bool,
    /// Listing requests at once (1..=64).
    pub jobs: u32,
    pub retries: u32,
    pub backoff: Duration,
    pub read_timeout: Duration,
    pub timeout: Duration,
}

impl RefreshRequest {
    /// A request with the command line's defaults.
    pub fn new(market: Market, kinds: Vec<FileKind>) -> RefreshRequest {
        RefreshRequest {
            market,
            kinds,
            freqs: Vec::new(),
            listing_url: marketdb_fetch::DEFAULT_LISTING_URL.to_owned(),
            full: false,
            jobs: 8,
            retries: 4,
            backoff: Duration::from_millis(500),
            read_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(120),
        }
    }

    fn check(&self) -> Result<()> {
        if !(1..=64).contains(&self.jobs) {
            return Err(Error::invalid(
                format!("--jobs {}", self.jobs),
                "expected 1 to 64",
            ));
        }
        for kind in &self.kinds {
            if *kind != FileKind::Klines && self.market == Market::Spot {
                return Err(Error::invalid(
                    format!("--kind {}", kind.as_str()),
                    "binance publishes it for futures only: give --market um or cm",
                ));
            }
        }
        Ok(())
    }
}

/// What a refresh did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    /// Listing requests sent (retries included).
    pub requests: u64,
    /// Symbol folders seen.
    pub symbols: u64,
    /// Series (symbol, interval, folder) listed.
    pub series_listed: u64,
    /// Known series not asked again (delisted at their last listing).
    pub series_skipped: u64,
    /// Files found that the catalog did not count yet.
    pub new_files: u64,
}

/// The folder name of a kind in the archive.
fn kind_dir(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Klines => "klines",
        FileKind::Funding => "fundingRate",
        FileKind::Metrics => "metrics",
    }
}

/// The archive's folders (`daily`, `monthly`) a kind has files in.
fn folders(kind: FileKind) -> &'static [&'static str] {
    match kind {
        FileKind::Klines => &["daily", "monthly"],
        FileKind::Funding => &["monthly"],
        FileKind::Metrics => &["daily"],
    }
}

/// A kline interval from its archive folder name (`1mo` is the month).
fn interval_of(folder: &str) -> Option<Freq> {
    match folder {
        "1mo" => Some(Freq::Mo1),
        other => Freq::parse(other)
            .ok()
            .filter(|f| vision_interval(*f) == other),
    }
}

/// One series to list.
struct Series {
    symbol: String,
    /// `Freq::as_str` of klines, `""` otherwise.
    interval: String,
    /// The name's middle part: `1m`, `1mo`, `fundingRate`, `metrics`.
    tag: String,
    prefix: String,
}

/// The period of an archive file name `{symbol}-{tag}-{period}.zip`; `None` for its
/// `.CHECKSUM` and for names of another shape.
fn period_of(key: &str, symbol: &str, tag: &str, folder: &str) -> Option<Period> {
    let name = key.rsplit('/').next()?;
    let rest = name
        .strip_prefix(symbol)?
        .strip_prefix('-')?
        .strip_prefix(tag)?;
    let text = rest.strip_prefix('-')?.strip_suffix(".zip")?;
    // `YYYY-MM` or `YYYY-MM-DD`, digits only: a listing's odd name cannot reach a year
    // whose milliseconds overflow.
    let shape = text.len() == 7 || text.len() == 10;
    let digits = text.bytes().enumerate().all(|(i, b)| {
        if i == 4 || i == 7 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    });
    if !shape || !digits {
        return None;
    }
    let period = Period::parse(text)?;
    (period.folder() == folder).then_some(period)
}

/// Lists the archive as `req` asks and stores what it found; `now` is the listing time.
pub async fn refresh(db: &AsyncMarketDB, req: &RefreshRequest, now: i64) -> Result<RefreshReport> {
    req.check()?;
    let config = FetchConfig {
        retries: req.retries,
        backoff: req.backoff,
        read_timeout: req.read_timeout.max(Duration::from_secs(1)),
        timeout: req.timeout.max(Duration::from_secs(1)),
        ..FetchConfig::default()
    };
    // Creating the scratch folder (and sweeping dead ones) touches the disk.
    let fetcher = tokio::task::spawn_blocking(move || Fetcher::new(config).map_err(Error::from))
        .await
        .map_err(|source| Error::Task {
            task: "fetcher",
            source,
        })??;
    let mut report = RefreshReport::default();
    for &kind in &req.kinds {
        for &folder in folders(kind) {
            refresh_folder(db, req, &fetcher, kind, folder, now, &mut report).await?;
        }
    }
    report.requests = fetcher.stats().requests;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn refresh_folder(
    db: &AsyncMarketDB,
    req: &RefreshRequest,
    fetcher: &Fetcher,
    kind: FileKind,
    folder: &str,
    now: i64,
    report: &mut RefreshReport,
) -> Result<()> {
    let entries = db
        .catalog(CatalogFilter {
            market: Some(req.market.as_str().to_owned()),
            kind: Some(kind.as_str().to_owned()),
            interval: None,
        })
        .await?;
    // Judged over both folders: a live symbol's monthly files lag its daily ones.
    // A delisted series is not asked again until its listing is a week old.
    let settled: HashMap<(String, String), bool> = lives(&entries)
        .into_iter()
        .map(|l| {
            let settled = l.delisted && now.saturating_sub(l.listed_at) < RECHECK_DELISTED_MS;
            ((l.symbol, l.interval), settled)
        })
        .collect();
    let known: HashMap<(String, String), CatalogEntry> = entries
        .into_iter()
        .filter(|e| e.folder == folder)
        .map(|e| ((e.symbol.clone(), e.interval.clone()), e))
        .collect();
    let base = format!(
        "data/{}/{folder}/{}/",
        req.market.vision_dir(),
        kind_dir(kind)
    );
    let url = req.listing_url.as_str();
    let symbols: Vec<String> = fetcher
        .list(url, &base, true, None)
        .await?
        .prefixes
        .iter()
        .filter_map(|p| p.strip_prefix(&base)?.strip_suffix('/'))
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .map(str::to_owned)
        .collect();
    report.symbols += symbols.len() as u64;

    // The series of each symbol: given intervals, known ones, or listed.
    let series_of = |symbol: String| {
        let known = &known;
        let base = &base;
        async move {
            let prefix = format!("{base}{symbol}/");
            if kind != FileKind::Klines {
                return Ok::<_, Error>(vec![Series {
                    symbol,
                    interval: String::new(),
                    tag: kind_dir(kind).to_owned(),
                    prefix,
                }]);
            }
            let freqs: Vec<Freq> = if !req.freqs.is_empty() {
                req.freqs.clone()
            } else {
                let mut mine: Vec<Freq> = known
                    .keys()
                    .filter(|(s, _)| *s == symbol)
                    .filter_map(|(_, i)| Freq::parse(i).ok())
                    .collect();
                if mine.is_empty() || req.full {
                    mine = fetcher
                        .list(url, &prefix, true, None)
                        .await?
                        .prefixes
                        .iter()
                        .filter_map(|p| p.strip_prefix(&prefix)?.strip_suffix('/'))
                        .filter_map(interval_of)
                        .collect();
                }
                mine
            };
            Ok(freqs
                .into_iter()
                .map(|f| Series {
                    symbol: symbol.clone(),
                    interval: f.as_str().to_owned(),
                    tag: vision_interval(f).to_owned(),
                    prefix: format!("{prefix}{}/", vision_interval(f)),
                })
                .collect())
        }
    };
    let jobs = req.jobs as usize;
    let mut all_series = Vec::new();
    let mut listed = futures_util::stream::iter(symbols.into_iter().map(series_of)).buffered(jobs);
    while let Some(series) = listed.next().await {
        all_series.extend(series?);
    }
    drop(listed);

    let list_one = |series: Series| {
        let key = (series.symbol.clone(), series.interval.clone());
        let prev = known.get(&key);
        let settled = settled.get(&key).copied().unwrap_or(false);
        async move {
            if prev.is_some() && settled && !req.full {
                return Ok::<_, Error>((series, None));
            }
            let after = prev.filter(|_| !req.full).map(|p| p.last_key.as_str());
            let listing = fetcher.list(url, &series.prefix, false, after).await?;
            Ok((series, Some(listing.keys)))
        }
    };
    let mut entries = Vec::new();
    let mut results =
        futures_util::stream::iter(all_series.into_iter().map(list_one)).buffer_unordered(jobs);
    while let Some(result) = results.next().await {
        let (series, keys) = result?;
        let key = (series.symbol.clone(), series.interval.clone());
        let prev = known.get(&key).filter(|_| !req.full);
        let Some(keys) = keys else {
            report.series_skipped += 1;
            continue;
        };
        report.series_listed += 1;
        let periods: Vec<Period> = keys
            .iter()
            .filter_map(|k| period_of(k, &series.symbol, &series.tag, folder))
            .collect();
        report.new_files += periods.len() as u64;
        // The marker of the next refresh: the last archive file (a stray key sorting
        // after it, `readme.txt`, would hide the files that come later; a checksum seen
        // before its zip would hide the zip).
        let last_key = keys
            .iter()
            .filter(|k| period_of(k, &series.symbol, &series.tag, folder).is_some())
            .max()
            .cloned();
        let (first, last) = (periods.iter().min(), periods.iter().max());
        let entry = match (prev, first, last) {
            (None, Some(first), Some(last)) => CatalogEntry {
                market: req.market.as_str().to_owned(),
                kind: kind.as_str().to_owned(),
                symbol: series.symbol,
                interval: series.interval,
                folder: folder.to_owned(),
                first_period: first.to_string(),
                last_period: last.to_string(),
                files: periods.len() as u64,
                last_key: last_key.unwrap_or_default(),
                listed_at: now,
            },
            // A folder without files of this series: nothing to record.
            (None, _, _) => continue,
            (Some(p), first, last) => {
                let mut e = p.clone();
                let older = |a: &str, b: &Period| {
                    Period::parse(a).is_none_or(|a| a.start_ms() > b.start_ms())
                };
                if let Some(first) = first
                    && older(&e.first_period, first)
                {
                    e.first_period = first.to_string();
                }
                if let Some(last) = last
                    && Period::parse(&e.last_period).is_none_or(|l| l.start_ms() < last.start_ms())
                {
                    e.last_period = last.to_string();
                }
                e.files += periods.len() as u64;
                if let Some(k) = last_key
                    && k > e.last_key
                {
                    e.last_key = k;
                }
                e.listed_at = now;
                e
            }
        };
        entries.push(entry);
    }
    tracing::info!(
        market = req.market.as_str(),
        kind = kind.as_str(),
        folder,
        series = entries.len(),
        "catalog: folder listed"
    );
    db.store_catalog(entries).await?;
    Ok(())
}

/// A symbol's listed life in one market, kind and interval, over its daily and monthly
/// files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Life {
    pub market: String,
    pub kind: String,
    pub symbol: String,
    /// The kline interval, `""` for the other kinds.
    pub interval: String,
    /// Start of the first period with a file (ms).
    pub first: i64,
    /// End of the last period with a file (ms, exclusive).
    pub end: i64,
    pub files: u64,
    /// Every folder's last file was due more than two days before its listing.
    pub delisted: bool,
    /// When it was last listed (ms).
    pub listed_at: i64,
    /// Start and end (ms) of the monthly files' span, if there are monthly files: a
    /// month outside it is asked day by day.
    #[serde(skip)]
    pub monthly: Option<(i64, i64)>,
}

/// The lives of catalog entries, one per market, kind, symbol and interval. Whether a
/// symbol is delisted is judged by its last file (the one ending last; a daily file before
/// a monthly one ending together, as the daily one is due first).
pub fn lives(entries: &[CatalogEntry]) -> Vec<Life> {
    let mut out: BTreeMap<(String, String, String, String), (Life, i64)> = BTreeMap::new();
    for e in entries {
        let (Some(first), Some(last)) = (
            Period::parse(&e.first_period),
            Period::parse(&e.last_period),
        ) else {
            continue;
        };
        let key = (
            e.market.clone(),
            e.kind.clone(),
            e.symbol.clone(),
            e.interval.clone(),
        );
        // Delisted when the next file is overdue (a monthly series' next month is due
        // only in the middle of the month after it).
        let due = rule::due(next_period(last));
        let (life, last_due) = out.entry(key).or_insert_with(|| {
            (
                Life {
                    market: e.market.clone(),
                    kind: e.kind.clone(),
                    symbol: e.symbol.clone(),
                    interval: e.interval.clone(),
                    first: first.start_ms(),
                    end: last.end_ms(),
                    files: 0,
                    delisted: false,
                    listed_at: e.listed_at,
                    monthly: None,
                },
                due,
            )
        });
        life.first = life.first.min(first.start_ms());
        if last.end_ms() > life.end || (last.end_ms() == life.end && due < *last_due) {
            life.end = last.end_ms();
            *last_due = due;
        }
        life.files += e.files;
        life.listed_at = life.listed_at.max(e.listed_at);
        if e.folder == "monthly" {
            let (a, b) = life.monthly.unwrap_or((first.start_ms(), last.end_ms()));
            life.monthly = Some((a.min(first.start_ms()), b.max(last.end_ms())));
        }
    }
    out.into_values()
        .map(|(mut life, due)| {
            life.delisted = due.saturating_add(DELISTED_AFTER_MS) < life.listed_at;
            life
        })
        .collect()
}

/// The catalog's lives of one market, kind and interval (`None` for the kinds without
/// one), by symbol.
pub async fn lives_of(
    db: &AsyncMarketDB,
    market: Market,
    kind: FileKind,
    freq: Option<Freq>,
) -> Result<BTreeMap<String, Life>> {
    let entries = db
        .catalog(CatalogFilter {
            market: Some(market.as_str().to_owned()),
            kind: Some(kind.as_str().to_owned()),
            interval: Some(freq.map_or("", Freq::as_str).to_owned()),
        })
        .await?;
    Ok(lives(&entries)
        .into_iter()
        .map(|l| (l.symbol.clone(), l))
        .collect())
}

/// The listed life of each kline symbol of `freq` in any market of the catalog (the kline
/// tables do not say which market a symbol is from): from its earliest first file, and
/// ending only when it is delisted in every market it is listed in.
pub async fn kline_lives(db: &AsyncMarketDB, freq: Freq) -> Result<BTreeMap<String, Listed>> {
    let entries = db
        .catalog(CatalogFilter {
            market: None,
            kind: Some(FileKind::Klines.as_str().to_owned()),
            interval: Some(freq.as_str().to_owned()),
        })
        .await?;
    let mut out: BTreeMap<String, Listed> = BTreeMap::new();
    for life in lives(&entries) {
        let end = life.delisted.then_some(life.end);
        out.entry(life.symbol)
            .and_modify(|l| {
                l.first = l.first.min(life.first);
                l.monthly = None;
                l.end = match (l.end, end) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            })
            .or_insert(Listed {
                first: life.first,
                end,
                monthly: life.monthly,
            });
    }
    Ok(out)
}

/// Takes out of `report` the missing bars outside each symbol's listed life (before its
/// first file, after a delisted symbol's last): they are not missing, the symbol did not
/// exist. `expected` loses them and coverage follows. Returns the bars taken out per
/// symbol (symbols without a life are left as they are).
pub fn cut_to_lives(
    report: &mut CompletenessReport,
    lives: &BTreeMap<String, Listed>,
) -> BTreeMap<String, u64> {
    let freq = report.freq;
    let mut out = BTreeMap::new();
    for s in &mut report.symbols {
        let Some(life) = lives.get(&s.symbol) else {
            continue;
        };
        let (lo, hi) = (life.first, life.end.unwrap_or(i64::MAX));
        let mut dropped = 0u64;
        let mut kept = Vec::with_capacity(s.missing.len());
        for run in s.missing.drain(..) {
            // A bar that opened before the first file but holds it is the symbol's.
            let first = if run.start < lo {
                run.start.max(freq.floor(lo))
            } else {
                run.start
            };
            let last_excl = run.end.saturating_add(1).min(hi);
            let inside = if first < last_excl {
                freq.grid(first, last_excl).count() as u64
            } else {
                0
            };
            dropped += run.count.saturating_sub(inside);
            if inside > 0 {
                let mut grid = freq.grid(first, last_excl);
                let start = grid.next().unwrap_or(first);
                let end = grid.last().unwrap_or(start);
                kept.push(MissingRun {
                    start,
                    end,
                    count: inside,
                });
            }
        }
        s.missing = kept;
        if dropped > 0 {
            s.expected = s.expected.saturating_sub(dropped);
            s.coverage = if s.expected == 0 {
                1.0
            } else {
                s.present as f64 / s.expected as f64
            };
        }
        out.insert(s.symbol.clone(), dropped);
    }
    out
}

/// One line of the printed catalog: a symbol's life in one market, kind and interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CatalogRow {
    pub market: String,
    pub kind: String,
    pub symbol: String,
    /// The kline interval, `""` for the other kinds.
    pub interval: String,
    /// The first day with a file (`YYYY-MM-DD`; a monthly file's first day).
    pub first_day: String,
    /// The last day with a file (a monthly file's last day).
    pub last_day: String,
    pub files: u64,
    pub delisted: bool,
    /// The new name a user linked this one to (`catalog alias`), if any.
    pub renamed_to: Option<String>,
    /// When it was last listed (RFC 3339).
    pub listed_at: String,
}

/// Which rows [`list`] gives; `None` fields match everything.
#[derive(Clone, Debug, Default)]
pub struct CatalogQuery {
    pub market: Option<Market>,
    pub kind: Option<FileKind>,
    pub freq: Option<Freq>,
    /// Names and patterns (see [`crate::symbols::Matcher`]); empty matches all.
    pub symbols: Vec<String>,
    /// Only delisted symbols.
    pub delisted_only: bool,
}

/// The catalog as rows, ordered by market, kind, symbol and interval.
pub async fn list(db: &AsyncMarketDB, q: &CatalogQuery) -> Result<Vec<CatalogRow>> {
    let matcher = crate::symbols::Matcher::new(&q.symbols)?;
    let entries = db
        .catalog(CatalogFilter {
            market: q.market.map(|m| m.as_str().to_owned()),
            kind: q.kind.map(|k| k.as_str().to_owned()),
            interval: q.freq.map(|f| f.as_str().to_owned()),
        })
        .await?;
    let aliases: HashMap<(String, String), String> = db
        .symbol_aliases()
        .await?
        .into_iter()
        .map(|a| ((a.market, a.old_symbol), a.new_symbol))
        .collect();
    let day = |ms: i64| Period::day_of(ms).to_string();
    Ok(lives(&entries)
        .into_iter()
        .filter(|l| matcher.matches(&l.symbol) && (!q.delisted_only || l.delisted))
        .map(|l| CatalogRow {
            renamed_to: aliases.get(&(l.market.clone(), l.symbol.clone())).cloned(),
            first_day: day(l.first),
            last_day: day(l.end - 1),
            listed_at: marketdb_model::time::format_rfc3339(l.listed_at),
            market: l.market,
            kind: l.kind,
            symbol: l.symbol,
            interval: l.interval,
            files: l.files,
            delisted: l.delisted,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_their_period_and_nothing_else_does() {
        let d = |s: &str| Period::parse(s).unwrap();
        let k = "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-02.zip";
        assert_eq!(
            period_of(k, "BTCUSDT", "1m", "daily"),
            Some(d("2024-01-02"))
        );
        assert_eq!(
            period_of(&format!("{k}.CHECKSUM"), "BTCUSDT", "1m", "daily"),
            None
        );
        assert_eq!(period_of(k, "BTCUSDT", "1m", "monthly"), None);
        assert_eq!(period_of(k, "BTCUSD", "1m", "daily"), None);
        let m = "data/futures/um/monthly/fundingRate/X/X-fundingRate-2024-02.zip";
        assert_eq!(
            period_of(m, "X", "fundingRate", "monthly"),
            Some(d("2024-02"))
        );
        assert_eq!(period_of("a/X-1m-2024-13-01.zip", "X", "1m", "daily"), None);
        // Odd names of the listing: a huge or signed year, a short field.
        for odd in [
            "X-1m-99999999999999-01-01.zip",
            "X-1m-+202-01-01.zip",
            "X-1m-2024-1-01.zip",
        ] {
            assert_eq!(period_of(odd, "X", "1m", "daily"), None, "{odd}");
        }
        assert_eq!(interval_of("1mo"), Some(Freq::Mo1));
        assert_eq!(interval_of("1m"), Some(Freq::M1));
        assert_eq!(interval_of("7x"), None);
    }

    fn entry(folder: &str, first: &str, last: &str, listed_at: i64) -> CatalogEntry {
        CatalogEntry {
            market: "um".into(),
            kind: "klines".into(),
            symbol: "X".into(),
            interval: "1h".into(),
            folder: folder.into(),
            first_period: first.into(),
            last_period: last.into(),
            files: 3,
            last_key: String::new(),
            listed_at,
        }
    }

    #[test]
    fn a_life_spans_both_folders_and_is_delisted_only_when_both_are_old() {
        let day = |s: &str| Period::parse(s).unwrap().start_ms();
        // Listed on 12 Feb: after a last daily file of 6 Feb, the file of 7 Feb was due 9
        // Feb 12:00 (36 hours after its day), plus two days is 11 Feb 12:00, before the
        // listing: delisted (the monthly file of January ends earlier and does not
        // count). After 8 Feb, 9 Feb's was due 11 Feb 12:00, plus two days is 13 Feb
        // 12:00: still listed.
        let listed = day("2024-02-12");
        let old = lives(&[
            entry("monthly", "2023-11", "2024-01", listed),
            entry("daily", "2024-02-01", "2024-02-06", listed),
        ]);
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].first, day("2023-11-01"));
        assert_eq!(old[0].end, day("2024-02-07"));
        assert_eq!(old[0].files, 6);
        assert!(old[0].delisted);
        let live = lives(&[
            entry("monthly", "2023-11", "2024-01", listed),
            entry("daily", "2024-02-01", "2024-02-08", listed),
        ]);
        assert!(!live[0].delisted);
        // Monthly files only (funding): after March, April's file is due 16 May; listed
        // on 20 April the symbol is live, on 19 May delisted.
        let monthly = |listed: &str| {
            let mut e = entry("monthly", "2023-01", "2024-03", day(listed));
            e.kind = "funding".into();
            e.interval = String::new();
            lives(&[e])[0].delisted
        };
        assert!(!monthly("2024-04-20"));
        assert!(!monthly("2024-05-17"));
        assert!(monthly("2024-05-19"));
    }

    #[test]
    fn missing_bars_before_the_first_file_or_after_a_delisting_are_not_missing() {
        use marketdb_model::TimeRange;
        use marketdb_store::SymbolCompleteness;
        const H: i64 = 3_600_000;
        let day = |n: i64| n * DAY_MS;
        let symbol = |name: &str| SymbolCompleteness {
            symbol: name.into(),
            expected: 72,
            present: 12,
            coverage: 12.0 / 72.0,
            // Day 0 and day 1 wholly missing, then 12 bars of day 2.
            missing: vec![
                MissingRun {
                    start: 0,
                    end: day(2) - H,
                    count: 48,
                },
                MissingRun {
                    start: day(2) + 12 * H,
                    end: day(3) - H,
                    count: 12,
                },
            ],
            suspicious: Vec::new(),
        };
        let mut report = CompletenessReport {
            freq: Freq::H1,
            range: TimeRange::new(0, day(3)).unwrap(),
            symbols: vec![symbol("LATE"), symbol("GONE"), symbol("OTHER")],
        };
        let lives = BTreeMap::from([
            // Listed from the middle of day 1.
            (
                "LATE".to_owned(),
                Listed {
                    first: day(1) + 6 * H,
                    end: None,
                    monthly: None,
                },
            ),
            // Delisted after day 2's first 18 hours.
            (
                "GONE".to_owned(),
                Listed {
                    first: 0,
                    end: Some(day(2) + 18 * H),
                    monthly: None,
                },
            ),
        ]);
        let dropped = cut_to_lives(&mut report, &lives);
        assert_eq!(dropped["LATE"], 30);
        assert_eq!(dropped["GONE"], 6);
        assert!(!dropped.contains_key("OTHER"));
        let late = &report.symbols[0];
        assert_eq!(late.expected, 42);
        assert_eq!(late.missing[0].start, day(1) + 6 * H);
        assert_eq!(late.missing[0].count, 18);
        assert_eq!(late.missing[1].count, 12);
        let gone = &report.symbols[1];
        assert_eq!(gone.missing[1].end, day(2) + 17 * H);
        assert_eq!(gone.missing[1].count, 6);
        assert_eq!(gone.expected, 66);
        assert!((gone.coverage - 12.0 / 66.0).abs() < 1e-12);
        assert_eq!(report.symbols[2], symbol("OTHER"));
    }

    #[test]
    fn a_weekly_bar_that_holds_the_first_file_is_still_counted() {
        use marketdb_model::TimeRange;
        use marketdb_store::SymbolCompleteness;
        // Weekly bars open on Mondays (1970-01-05 was one); the symbol's first file is on
        // the Wednesday of the third week: that week's bar is the symbol's, the two before
        // are not listed.
        let monday = 4 * DAY_MS;
        let week = 7 * DAY_MS;
        let mut report = CompletenessReport {
            freq: Freq::W1,
            range: TimeRange::new(monday, monday + 4 * week).unwrap(),
            symbols: vec![SymbolCompleteness {
                symbol: "X".into(),
                expected: 4,
                present: 0,
                coverage: 0.0,
                missing: vec![MissingRun {
                    start: monday,
                    end: monday + 3 * week,
                    count: 4,
                }],
                suspicious: Vec::new(),
            }],
        };
        let first = monday + 2 * week + 2 * DAY_MS;
        let lives = BTreeMap::from([(
            "X".to_owned(),
            Listed {
                first,
                end: None,
                monthly: None,
            },
        )]);
        let dropped = cut_to_lives(&mut report, &lives);
        assert_eq!(dropped["X"], 2);
        let s = &report.symbols[0];
        assert_eq!(
            s.missing,
            vec![MissingRun {
                start: monday + 2 * week,
                end: monday + 3 * week,
                count: 2
            }]
        );
        assert_eq!(s.expected, 2);
    }
}
