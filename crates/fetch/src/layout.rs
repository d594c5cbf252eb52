//! The Binance Vision file layout: where a daily or monthly file of one market, dataset,
//! symbol and interval lives, and where its `.CHECKSUM` sits. Pure string building: it
//! never touches the network.

use std::fmt;

use marketdb_ingest::FileKind;
use marketdb_model::Freq;
use marketdb_model::time::{DAY_MS, civil_from_days, days_from_civil, parse_ymd};

/// The base URL of Binance Vision.
pub const DEFAULT_BASE_URL: &str = "https://data.binance.vision";

/// A Binance market: spot, USD-M futures or COIN-M futures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Market {
    Spot,
    Um,
    Cm,
}

impl Market {
    /// `spot`, `um` or `cm` (the `--market` values and the `source_gaps.market` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::Um => "um",
            Market::Cm => "cm",
        }
    }

    /// `spot`, `um` or `cm`.
    pub fn parse(text: &str) -> Option<Market> {
        match text {
            "spot" => Some(Market::Spot),
            "um" => Some(Market::Um),
            "cm" => Some(Market::Cm),
            _ => None,
        }
    }

    /// The REST API's base URL: `api`, `fapi` or `dapi.binance.com`.
    pub fn rest_base(self) -> &'static str {
        match self {
            Market::Spot => "https://api.binance.com",
            Market::Um => "https://fapi.binance.com",
            Market::Cm => "https://dapi.binance.com",
        }
    }

    /// Klines per REST page: the exchange's largest `limit`.
    pub fn kline_page(self) -> u32 {
        match self {
            Market::Spot => 1000,
            Market::Um | Market::Cm => 1500,
        }
    }

    /// The folder under `data/`: `spot`, `futures/um` or `futures/cm`.
    pub fn vision_dir(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::Um => "futures/um",
            Market::Cm => "futures/cm",
        }
    }
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The period one file covers: a UTC day or a calendar month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// The day starting at this Unix time in ms (a multiple of a day).
    Day(i64),
    /// Year and month (1..=12).
    Month(i64, u32),
}

impl Period {
    /// The day holding `ms`.
    pub fn day_of(ms: i64) -> Period {
        Period::Day(ms.div_euclid(DAY_MS) * DAY_MS)
    }

    /// The month holding `ms`.
    pub fn month_of(ms: i64) -> Period {
        let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
        Period::Month(y, m)
    }

    /// First ms of the period.
    pub fn start_ms(self) -> i64 {
        match self {
            Period::Day(d) => d,
            Period::Month(y, m) => days_from_civil(y, m, 1) * DAY_MS,
        }
    }

    /// First ms after the period.
    pub fn end_ms(self) -> i64 {
        match self {
            Period::Day(d) => d + DAY_MS,
            Period::Month(y, 12) => days_from_civil(y + 1, 1, 1) * DAY_MS,
            Period::Month(y, m) => days_from_civil(y, m + 1, 1) * DAY_MS,
        }
    }

    /// Reads `YYYY-MM-DD` or `YYYY-MM` (the [`fmt::Display`] form); `None` otherwise.
    pub fn parse(text: &str) -> Option<Period> {
        let mut parts = text.split('-');
        let y: i64 = parts.next()?.parse().ok()?;
        let m: u32 = parts.next()?.parse().ok()?;
        let period = match parts.next() {
            None if (1..=12).contains(&m) => Period::Month(y, m),
            None => return None,
            Some(d) => Period::Day(parse_ymd(y, m, d.parse().ok()?)?),
        };
        parts.next().is_none().then_some(period)
    }

    /// `daily` or `monthly`.
    pub fn folder(self) -> &'static str {
        match self {
            Period::Day(_) => "daily",
            Period::Month(..) => "monthly",
        }
    }
}

impl fmt::Display for Period {
    /// `YYYY-MM-DD` or `YYYY-MM`, as in Vision file names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Period::Day(ms) => {
                let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
                write!(f, "{y:04}-{m:02}-{d:02}")
            }
            Period::Month(y, m) => write!(f, "{y:04}-{m:02}"),
        }
    }
}

/// One Vision file: market, dataset, symbol, interval (klines only) and period.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VisionFile {
    pub market: Market,
    pub kind: FileKind,
    pub symbol: String,
    /// `Some` for klines only.
    pub freq: Option<Freq>,
    pub period: Period,
}

/// The interval as Vision spells it in paths: `1mo` for the month, else the usual name.
pub fn vision_interval(freq: Freq) -> &'static str {
    match freq {
        Freq::Mo1 => "1mo",
        f => f.as_str(),
    }
}

impl VisionFile {
    /// A klines file.
    pub fn klines(market: Market, symbol: &str, freq: Freq, period: Period) -> VisionFile {
        VisionFile {
            market,
            kind: FileKind::Klines,
            symbol: symbol.to_owned(),
            freq: Some(freq),
            period,
        }
    }

    /// A monthly funding-rate file (Vision publishes them for futures only).
    pub fn funding(market: Market, symbol: &str, year: i64, month: u32) -> VisionFile {
        VisionFile {
            market,
            kind: FileKind::Funding,
            symbol: symbol.to_owned(),
            freq: None,
            period: Period::Month(year, month),
        }
    }

    /// A daily metrics file (open interest and long/short ratios).
    pub fn metrics(market: Market, symbol: &str, day_ms: i64) -> VisionFile {
        VisionFile {
            market,
            kind: FileKind::Metrics,
            symbol: symbol.to_owned(),
            freq: None,
            period: Period::day_of(day_ms),
        }
    }

    /// The most bytes the file can plausibly take: what the rows its period allows take
    /// ([`marketdb_ingest::plausible_file_bytes`]); `None` for klines without an interval.
    pub fn max_bytes(&self) -> Option<u64> {
        let period = marketdb_model::TimeRange {
            start: self.period.start_ms(),
            end_exclusive: self.period.end_ms(),
        };
        marketdb_ingest::plausible_file_bytes(self.kind, self.freq, period)
    }

    /// The file name, e.g. `BTCUSDT-1m-2024-01-02.zip`.
    pub fn file_name(&self) -> String {
        let middle = match (self.kind, self.freq) {
            (FileKind::Klines, Some(f)) => vision_interval(f),
            (FileKind::Klines, None) => "",
            (FileKind::Funding, _) => "fundingRate",
            (FileKind::Metrics, _) => "metrics",
        };
        format!("{}-{middle}-{}.zip", self.symbol, self.period)
    }

    /// The path below the base URL, e.g.
    /// `data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-02.zip`.
    pub fn path(&self) -> String {
        let market = self.market.vision_dir();
        let folder = self.period.folder();
        let symbol = &self.symbol;
        let name = self.file_name();
        match (self.kind, self.freq) {
            (FileKind::Klines, freq) => {
                let interval = freq.map_or("", vision_interval);
                format!("data/{market}/{folder}/klines/{symbol}/{interval}/{name}")
            }
            (FileKind::Funding, _) => {
                format!("data/{market}/{folder}/fundingRate/{symbol}/{name}")
            }
            (FileKind::Metrics, _) => format!("data/{market}/{folder}/metrics/{symbol}/{name}"),
        }
    }

    /// The file's URL below `base` (a trailing `/` on `base` is fine).
    pub fn url(&self, base: &str) -> String {
        format!("{}/{}", base.trim_end_matches('/'), self.path())
    }

    /// The URL of the file's `.CHECKSUM`.
    pub fn checksum_url(&self, base: &str) -> String {
        format!("{}.CHECKSUM", self.url(base))
    }

    /// The interval name stored in `source_gaps.interval`: the kline interval, or `""`.
    pub fn interval_label(&self) -> &'static str {
        self.freq.map_or("", Freq::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i64, m: u32, d: u32) -> i64 {
        parse_ymd(y, m, d).unwrap()
    }

    #[test]
    fn kline_urls_per_market_and_period() {
        let base = "https://data.binance.vision/";
        let f = VisionFile::klines(
            Market::Spot,
            "BTCUSDT",
            Freq::M1,
            Period::day_of(day(2024, 1, 2)),
        );
        assert_eq!(
            f.url(base),
            "https://data.binance.vision/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-02.zip"
        );
        assert_eq!(
            f.checksum_url(base),
            "https://data.binance.vision/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-02.zip.CHECKSUM"
        );
        let f = VisionFile::klines(Market::Um, "ETHUSDT", Freq::H1, Period::Month(2023, 11));
        assert_eq!(
            f.url("http://127.0.0.1:9"),
            "http://127.0.0.1:9/data/futures/um/monthly/klines/ETHUSDT/1h/ETHUSDT-1h-2023-11.zip"
        );
        let f = VisionFile::klines(Market::Cm, "BTCUSD_PERP", Freq::Mo1, Period::Month(2022, 3));
        assert_eq!(
            f.path(),
            "data/futures/cm/monthly/klines/BTCUSD_PERP/1mo/BTCUSD_PERP-1mo-2022-03.zip"
        );
        assert_eq!(f.interval_label(), "1M");
    }

    #[test]
    fn funding_and_metrics_urls() {
        let f = VisionFile::funding(Market::Um, "BTCUSDT", 2024, 2);
        assert_eq!(
            f.checksum_url("https://data.binance.vision"),
            "https://data.binance.vision/data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-02.zip.CHECKSUM"
        );
        let f = VisionFile::metrics(Market::Um, "BTCUSDT", day(2024, 12, 31) + 5);
        assert_eq!(
            f.url("https://data.binance.vision"),
            "https://data.binance.vision/data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-12-31.zip"
        );
    }

    #[test]
    fn period_bounds() {
        assert_eq!(Period::Month(2024, 12).end_ms(), day(2025, 1, 1));
        assert_eq!(Period::Month(2024, 2).end_ms(), day(2024, 3, 1));
        assert_eq!(Period::month_of(day(2024, 2, 29)), Period::Month(2024, 2));
        assert_eq!(
            Period::day_of(day(2024, 2, 29) + 1).start_ms(),
            day(2024, 2, 29)
        );
        assert_eq!(Period::Month(2024, 2).to_string(), "2024-02");
        for p in [Period::Month(2024, 2), Period::day_of(day(2023, 12, 31))] {
            assert_eq!(Period::parse(&p.to_string()), Some(p));
        }
        for bad in ["2024", "2024-13", "2024-02-30", "2024-02-01-01", "x-01"] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
    }
}
