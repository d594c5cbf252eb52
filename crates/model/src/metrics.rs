//! The metric records stored beside klines: [`FundingRate`], [`OpenInterest`] and
//! [`LongShortRatio`] with its [`RatioType`]. Optional values are `Option<f64>`: an exact 0
//! stays 0 (the Python original stored it as NULL).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{Error, Freq, Result};

/// A funding rate event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FundingRate {
    pub symbol: String,
    /// ms UTC; also the table's `timestamp` key.
    pub funding_time: i64,
    pub funding_rate: f64,
    pub mark_price: Option<f64>,
    pub index_price: Option<f64>,
}

/// An open interest sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenInterest {
    pub symbol: String,
    /// ms UTC.
    pub time: i64,
    /// Sampling interval, `5m` by default.
    #[serde(default = "five_minutes")]
    pub interval: Freq,
    pub open_interest: f64,
    pub open_interest_value: Option<f64>,
}

/// A long/short ratio sample of one type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LongShortRatio {
    pub symbol: String,
    /// ms UTC.
    pub timestamp: i64,
    /// Sampling period, `5m` by default.
    #[serde(default = "five_minutes")]
    pub period: Freq,
    pub ratio_type: RatioType,
    pub long_short_ratio: f64,
    pub long_account: Option<f64>,
    pub short_account: Option<f64>,
}

fn five_minutes() -> Freq {
    Freq::M5
}

/// The four long/short ratio series Binance publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RatioType {
    /// Top traders' account ratio (Vision `count_toptrader_long_short_ratio`).
    TopTraderAccount,
    /// Top traders' position ratio (Vision `sum_toptrader_long_short_ratio`).
    TopTraderPosition,
    /// Global account ratio (Vision `count_long_short_ratio`).
    GlobalAccount,
    /// Taker buy/sell volume ratio (Vision `sum_taker_long_short_vol_ratio`).
    TakerVol,
}

const RATIO_ACCEPTED: &str = "toptrader_account toptrader_position global_account taker_vol \
                              (or account position global taker)";

impl RatioType {
    pub const ALL: [RatioType; 4] = [
        RatioType::TopTraderAccount,
        RatioType::TopTraderPosition,
        RatioType::GlobalAccount,
        RatioType::TakerVol,
    ];

    /// The canonical name stored in `long_short_ratio.ratio_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            RatioType::TopTraderAccount => "toptrader_account",
            RatioType::TopTraderPosition => "toptrader_position",
            RatioType::GlobalAccount => "global_account",
            RatioType::TakerVol => "taker_vol",
        }
    }

    /// The spelling the Python REST downloader wrote (read as an alias).
    pub fn legacy(self) -> &'static str {
        match self {
            RatioType::TopTraderAccount => "account",
            RatioType::TopTraderPosition => "position",
            RatioType::GlobalAccount => "global",
            RatioType::TakerVol => "taker",
        }
    }

    /// Parses a canonical name or its Python alias.
    pub fn parse(input: &str) -> Result<RatioType> {
        let s = input.trim();
        RatioType::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s) || r.legacy().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidRatioType {
                input: input.to_owned(),
                accepted: RATIO_ACCEPTED,
            })
    }
}

impl fmt::Display for RatioType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RatioType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RatioType::parse(s)
    }
}

impl TryFrom<String> for RatioType {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        RatioType::parse(&s)
    }
}

impl From<RatioType> for String {
    fn from(r: RatioType) -> String {
        r.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_type_names_and_aliases() {
        for r in RatioType::ALL {
            assert_eq!(RatioType::parse(r.as_str()), Ok(r));
            assert_eq!(RatioType::parse(r.legacy()), Ok(r));
        }
        assert_eq!(RatioType::parse("account"), Ok(RatioType::TopTraderAccount));
        assert_eq!(RatioType::parse("taker"), Ok(RatioType::TakerVol));
        assert!(
            RatioType::parse("longs")
                .unwrap_err()
                .to_string()
                .contains("\"longs\"")
        );
    }

    #[test]
    fn metrics_serde_defaults_and_zero() {
        let oi: OpenInterest = serde_json::from_str(
            r#"{"symbol":"BTCUSDT","time":1,"open_interest":2.5,"open_interest_value":0.0}"#,
        )
        .unwrap();
        assert_eq!(oi.interval, Freq::M5);
        assert_eq!(oi.open_interest_value, Some(0.0));
        let lsr: LongShortRatio = serde_json::from_str(
            r#"{"symbol":"BTCUSDT","timestamp":1,"ratio_type":"global","long_short_ratio":1.5,
                "long_account":0.6,"short_account":0.4}"#,
        )
        .unwrap();
        assert_eq!(lsr.ratio_type, RatioType::GlobalAccount);
        assert_eq!(lsr.period, Freq::M5);
    }
}
