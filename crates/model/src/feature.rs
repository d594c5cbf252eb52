//! The feature catalogue: one table of every exportable feature with its short name (the
//! export directory and CSV column), its long name (the `market_data` column where there is
//! one), how it is obtained, and its dtype. Every other crate looks features up here instead
//! of keeping its own column lists, so a feature name never reaches SQL unless it is in
//! this table.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{Error, RatioType, Result};

/// How a feature is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeatureKind {
    /// A stored `market_data` column.
    Column,
    /// Computed from kline columns (vwap, ret).
    Derived,
    /// A metric aligned onto the bars without look-ahead (funding, open interest, ratios).
    Metric(MetricFamily),
}

/// The metric table a metric feature comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetricFamily {
    FundingRate,
    OpenInterest,
    LongShortRatio(RatioType),
}

impl MetricFamily {
    /// How far back (ms) a metric value may be and still be used for a bar: funding 48 h,
    /// open interest and long/short ratios 6 h.
    pub fn tolerance_ms(self) -> i64 {
        match self {
            MetricFamily::FundingRate => 48 * 3_600_000,
            MetricFamily::OpenInterest | MetricFamily::LongShortRatio(_) => 6 * 3_600_000,
        }
    }
}

/// One exportable feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Feature {
    Open,
    High,
    Low,
    Close,
    Volume,
    QuoteVolume,
    TradesCount,
    TakerBuyVolume,
    TakerBuyQuoteVolume,
    TakerSellVolume,
    TakerSellQuoteVolume,
    Vwap,
    Ret,
    FundingRate,
    OpenInterest,
    OpenInterestValue,
    LsrTopTraderAccount,
    LsrTopTraderPosition,
    LsrGlobalAccount,
    LsrTakerVol,
}

struct Entry {
    feature: Feature,
    short: &'static str,
    long: &'static str,
    kind: FeatureKind,
    integer: bool,
}

const fn col(feature: Feature, short: &'static str, long: &'static str, integer: bool) -> Entry {
    Entry {
        feature,
        short,
        long,
        kind: FeatureKind::Column,
        integer,
    }
}

const fn metric(
    feature: Feature,
    short: &'static str,
    long: &'static str,
    m: MetricFamily,
) -> Entry {
    Entry {
        feature,
        short,
        long,
        kind: FeatureKind::Metric(m),
        integer: false,
    }
}

/// The catalogue, in the canonical export order.
const CATALOGUE: [Entry; 20] = [
    col(Feature::Open, "opn", "open_price", false),
    col(Feature::High, "hgh", "high_price", false),
    col(Feature::Low, "low", "low_price", false),
    col(Feature::Close, "cls", "close_price", false),
    col(Feature::Volume, "vol", "volume", false),
    col(Feature::QuoteVolume, "amt", "quote_volume", false),
    col(Feature::TradesCount, "tnum", "trades_count", true),
    col(Feature::TakerBuyVolume, "tbvol", "taker_buy_volume", false),
    col(
        Feature::TakerBuyQuoteVolume,
        "tbamt",
        "taker_buy_quote_volume",
        false,
    ),
    col(
        Feature::TakerSellVolume,
        "tsvol",
        "taker_sell_volume",
        false,
    ),
    col(
        Feature::TakerSellQuoteVolume,
        "tsamt",
        "taker_sell_quote_volume",
        false,
    ),
    Entry {
        feature: Feature::Vwap,
        short: "vwap",
        long: "vwap",
        kind: FeatureKind::Derived,
        integer: false,
    },
    Entry {
        feature: Feature::Ret,
        short: "ret",
        long: "ret",
        kind: FeatureKind::Derived,
        integer: false,
    },
    metric(
        Feature::FundingRate,
        "fr",
        "funding_rate",
        MetricFamily::FundingRate,
    ),
    metric(
        Feature::OpenInterest,
        "oi",
        "open_interest",
        MetricFamily::OpenInterest,
    ),
    metric(
        Feature::OpenInterestValue,
        "oiv",
        "open_interest_value",
        MetricFamily::OpenInterest,
    ),
    metric(
        Feature::LsrTopTraderAccount,
        "lsr_ta",
        "toptrader_account",
        MetricFamily::LongShortRatio(RatioType::TopTraderAccount),
    ),
    metric(
        Feature::LsrTopTraderPosition,
        "lsr_tp",
        "toptrader_position",
        MetricFamily::LongShortRatio(RatioType::TopTraderPosition),
    ),
    metric(
        Feature::LsrGlobalAccount,
        "lsr_ga",
        "global_account",
        MetricFamily::LongShortRatio(RatioType::GlobalAccount),
    ),
    metric(
        Feature::LsrTakerVol,
        "lsr_tv",
        "taker_vol",
        MetricFamily::LongShortRatio(RatioType::TakerVol),
    ),
];

impl Feature {
    /// Every feature in canonical order.
    pub const ALL: [Feature; 20] = [
        Feature::Open,
        Feature::High,
        Feature::Low,
        Feature::Close,
        Feature::Volume,
        Feature::QuoteVolume,
        Feature::TradesCount,
        Feature::TakerBuyVolume,
        Feature::TakerBuyQuoteVolume,
        Feature::TakerSellVolume,
        Feature::TakerSellQuoteVolume,
        Feature::Vwap,
        Feature::Ret,
        Feature::FundingRate,
        Feature::OpenInterest,
        Feature::OpenInterestValue,
        Feature::LsrTopTraderAccount,
        Feature::LsrTopTraderPosition,
        Feature::LsrGlobalAccount,
        Feature::LsrTakerVol,
    ];

    /// The eleven stored kline columns, in `market_data` order.
    pub const KLINE: [Feature; 11] = [
        Feature::Open,
        Feature::High,
        Feature::Low,
        Feature::Close,
        Feature::Volume,
        Feature::QuoteVolume,
        Feature::TradesCount,
        Feature::TakerBuyVolume,
        Feature::TakerBuyQuoteVolume,
        Feature::TakerSellVolume,
        Feature::TakerSellQuoteVolume,
    ];

    /// The kline features plus the two derived ones: the default export set.
    pub const DEFAULT_EXPORT: [Feature; 13] = [
        Feature::Open,
        Feature::High,
        Feature::Low,
        Feature::Close,
        Feature::Volume,
        Feature::QuoteVolume,
        Feature::TradesCount,
        Feature::TakerBuyVolume,
        Feature::TakerBuyQuoteVolume,
        Feature::TakerSellVolume,
        Feature::TakerSellQuoteVolume,
        Feature::Vwap,
        Feature::Ret,
    ];

    fn entry(self) -> &'static Entry {
        // The catalogue is in the enum's declaration order.
        &CATALOGUE[self as usize]
    }

    /// Short name: export directory, CSV and Parquet column (`opn`, `tnum`, `lsr_ta`...).
    pub fn short(self) -> &'static str {
        self.entry().short
    }

    /// Long name: the `market_data` column for stored features (`open_price`...).
    pub fn long(self) -> &'static str {
        self.entry().long
    }

    pub fn kind(self) -> FeatureKind {
        self.entry().kind
    }

    /// The `market_data` column holding this feature, if it is stored.
    pub fn column(self) -> Option<&'static str> {
        (self.kind() == FeatureKind::Column).then(|| self.long())
    }

    /// Whether the values are integer counts (exported as Int64 in Parquet).
    pub fn is_integer(self) -> bool {
        self.entry().integer
    }

    /// Parses a short or long name, case-insensitively.
    pub fn parse(input: &str) -> Result<Feature> {
        let s = input.trim();
        CATALOGUE
            .iter()
            .find(|e| e.short.eq_ignore_ascii_case(s) || e.long.eq_ignore_ascii_case(s))
            .map(|e| e.feature)
            .ok_or_else(|| Error::InvalidFeature {
                input: input.to_owned(),
                accepted: CATALOGUE
                    .iter()
                    .map(|e| e.short)
                    .collect::<Vec<_>>()
                    .join(" "),
            })
    }

    /// Parses a comma- or space-separated list, keeping order and dropping repeats.
    pub fn parse_list(input: &str) -> Result<Vec<Feature>> {
        let mut out = Vec::new();
        for part in input.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
            let f = Feature::parse(part)?;
            if !out.contains(&f) {
                out.push(f);
            }
        }
        Ok(out)
    }
}

/// `vwap` = quote volume / volume; NaN when the volume is 0 (no trade, no price).
pub fn vwap(quote_volume: f64, volume: f64) -> f64 {
    if volume == 0.0 {
        f64::NAN
    } else {
        quote_volume / volume
    }
}

/// `ret` = (close - open) / open; NaN when the open is 0.
pub fn ret(open: f64, close: f64) -> f64 {
    if open == 0.0 {
        f64::NAN
    } else {
        (close - open) / open
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

impl FromStr for Feature {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Feature::parse(s)
    }
}

impl TryFrom<String> for Feature {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Feature::parse(&s)
    }
}

impl From<Feature> for String {
    fn from(f: Feature) -> String {
        f.short().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_in_enum_order_and_names_are_unique() {
        for (i, f) in Feature::ALL.iter().enumerate() {
            assert_eq!(CATALOGUE[i].feature, *f);
            assert_eq!(Feature::parse(f.short()), Ok(*f));
            assert_eq!(Feature::parse(f.long()), Ok(*f));
        }
        let mut names: Vec<&str> = CATALOGUE.iter().flat_map(|e| [e.short, e.long]).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        // vwap and ret share short and long names; nothing else repeats.
        assert_eq!(before - names.len(), 2);
    }

    #[test]
    fn kline_columns_are_whitelisted_names() {
        let cols: Vec<_> = Feature::KLINE.iter().filter_map(|f| f.column()).collect();
        assert_eq!(cols.len(), 11);
        assert_eq!(cols[0], "open_price");
        assert_eq!(Feature::Vwap.column(), None);
        assert_eq!(Feature::FundingRate.column(), None);
        assert!(Feature::TradesCount.is_integer());
    }

    #[test]
    fn derived_formulas() {
        assert_eq!(vwap(1000.0, 10.0), 100.0);
        assert!(vwap(0.0, 0.0).is_nan());
        assert!(vwap(5.0, 0.0).is_nan(), "never inf");
        assert_eq!(ret(100.0, 110.0), 0.1);
        assert!(ret(0.0, 1.0).is_nan(), "never inf");
    }

    #[test]
    fn unknown_and_injection_names_are_rejected() {
        for bad in [
            "close_price; DROP TABLE market_data",
            "foo",
            "",
            "open_price--",
        ] {
            let err = Feature::parse(bad).unwrap_err().to_string();
            assert!(err.contains("unknown feature"), "{err}");
        }
        assert_eq!(
            Feature::parse_list("cls, open_price vol,cls").unwrap(),
            vec![Feature::Close, Feature::Open, Feature::Volume]
        );
    }
}
