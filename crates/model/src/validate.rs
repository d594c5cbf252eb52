//! Validation of symbols and rows before they reach SQL or a file path. Every rejection is a
//! [`ValidationError`] naming the record, symbol, time, field, value and reason.

use crate::{
    Error, Freq, FundingRate, Kline, LongShortRatio, OpenInterest, Result, ValidationError,
};

/// Upper-cases and checks a symbol against `^[A-Z0-9_]{1,40}$`; returns the canonical form.
pub fn validate_symbol(input: &str) -> Result<String> {
    let s = input.trim().to_ascii_uppercase();
    let reason = if s.is_empty() {
        Some("a symbol cannot be empty")
    } else if s.len() > 40 {
        Some("a symbol has at most 40 characters")
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        Some("a symbol may only contain A-Z, 0-9 and _")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidSymbol {
            input: input.to_owned(),
            reason,
        }),
        None => Ok(s),
    }
}

struct Check<'a> {
    record: &'static str,
    symbol: &'a str,
    time: i64,
}

impl Check<'_> {
    fn fail(&self, field: &'static str, value: impl ToString, reason: &str) -> ValidationError {
        ValidationError {
            record: self.record,
            symbol: self.symbol.to_owned(),
            time: self.time,
            field,
            value: value.to_string(),
            reason: reason.to_owned(),
        }
    }

    fn symbol(&self) -> Result<(), ValidationError> {
        // Fast path without allocation: this runs once per stored row.
        let b = self.symbol.as_bytes();
        if !b.is_empty()
            && b.len() <= 40
            && b.iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
        {
            return Ok(());
        }
        match validate_symbol(self.symbol) {
            Ok(s) if s == self.symbol => Ok(()),
            Ok(_) => Err(self.fail("symbol", self.symbol, "symbols are stored upper-case")),
            Err(Error::InvalidSymbol { reason, .. }) => {
                Err(self.fail("symbol", format!("{:?}", self.symbol), reason))
            }
            Err(other) => Err(self.fail("symbol", self.symbol, &other.to_string())),
        }
    }

    fn finite(&self, field: &'static str, v: f64) -> Result<(), ValidationError> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(self.fail(field, v, "not a finite number"))
        }
    }

    fn non_negative(&self, field: &'static str, v: f64) -> Result<(), ValidationError> {
        self.finite(field, v)?;
        if v < 0.0 {
            return Err(self.fail(field, v, "must not be negative"));
        }
        Ok(())
    }
}

/// Checks a kline for `freq`: symbol, finite non-negative numbers, OHLC consistency, taker
/// volumes within totals, and an open time aligned to the interval's buckets.
pub fn validate_kline(k: &Kline, freq: Freq) -> Result<(), ValidationError> {
    let c = Check {
        record: "kline",
        symbol: &k.symbol,
        time: k.open_time,
    };
    c.symbol()?;
    for (field, v) in [
        ("open_price", k.open),
        ("high_price", k.high),
        ("low_price", k.low),
        ("close_price", k.close),
        ("volume", k.volume),
        ("quote_volume", k.quote_volume),
        ("taker_buy_volume", k.taker_buy_volume),
        ("taker_buy_quote_volume", k.taker_buy_quote_volume),
    ] {
        c.non_negative(field, v)?;
    }
    if k.trades_count < 0 {
        return Err(c.fail("trades_count", k.trades_count, "must not be negative"));
    }
    if k.high < k.open.max(k.close).max(k.low) {
        return Err(c.fail("high_price", k.high, "high is below max(open, close, low)"));
    }
    if k.low > k.open.min(k.close).min(k.high) {
        return Err(c.fail("low_price", k.low, "low is above min(open, close, high)"));
    }
    if k.taker_buy_volume > k.volume {
        return Err(c.fail("taker_buy_volume", k.taker_buy_volume, "exceeds volume"));
    }
    if k.taker_buy_quote_volume > k.quote_volume {
        return Err(c.fail(
            "taker_buy_quote_volume",
            k.taker_buy_quote_volume,
            "exceeds quote_volume",
        ));
    }
    if !freq.is_valid_open(k.open_time) {
        let reason = format!("open time is not aligned to a {freq} bucket");
        return Err(c.fail("open_time", k.open_time, &reason));
    }
    Ok(())
}

/// Checks a funding rate event: symbol and finite numbers (prices non-negative).
pub fn validate_funding_rate(r: &FundingRate) -> Result<(), ValidationError> {
    let c = Check {
        record: "funding rate",
        symbol: &r.symbol,
        time: r.funding_time,
    };
    c.symbol()?;
    c.finite("funding_rate", r.funding_rate)?;
    optional(&c, "mark_price", r.mark_price)?;
    optional(&c, "index_price", r.index_price)
}

/// Checks an open interest sample: symbol, non-negative finite values.
pub fn validate_open_interest(r: &OpenInterest) -> Result<(), ValidationError> {
    let c = Check {
        record: "open interest",
        symbol: &r.symbol,
        time: r.time,
    };
    c.symbol()?;
    c.non_negative("open_interest", r.open_interest)?;
    optional(&c, "open_interest_value", r.open_interest_value)
}

/// Checks a long/short ratio sample: symbol, non-negative finite values.
pub fn validate_long_short_ratio(r: &LongShortRatio) -> Result<(), ValidationError> {
    let c = Check {
        record: "long/short ratio",
        symbol: &r.symbol,
        time: r.timestamp,
    };
    c.symbol()?;
    c.non_negative("long_short_ratio", r.long_short_ratio)?;
    optional(&c, "long_account", r.long_account)?;
    optional(&c, "short_account", r.short_account)
}

fn optional(c: &Check<'_>, field: &'static str, v: Option<f64>) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |v| c.non_negative(field, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RatioType;

    const T: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

    fn good() -> Kline {
        Kline {
            symbol: "BTCUSDT".into(),
            open_time: T,
            open: 100.0,
            high: 110.0,
            low: 90.0,
            close: 105.0,
            volume: 10.0,
            close_time: T + 59_999,
            quote_volume: 1000.0,
            trades_count: 7,
            taker_buy_volume: 4.0,
            taker_buy_quote_volume: 400.0,
        }
    }

    /// Asserts the kline is rejected for `field` with a message naming symbol, time, field,
    /// value and reason.
    fn rejects(k: Kline, field: &str, value: &str, reason: &str) {
        let err = validate_kline(&k, Freq::M1).unwrap_err();
        assert_eq!(err.field, field);
        let msg = err.to_string();
        for part in [k.symbol.as_str(), "2024-01-01T00:00", field, value, reason] {
            assert!(msg.contains(part), "{msg:?} should contain {part:?}");
        }
    }

    #[test]
    fn accepts_a_good_kline() {
        assert_eq!(validate_kline(&good(), Freq::M1), Ok(()));
        assert_eq!(validate_kline(&good(), Freq::D3), Ok(()));
    }

    #[test]
    fn rejects_nan() {
        rejects(
            Kline {
                open: f64::NAN,
                ..good()
            },
            "open_price",
            "NaN",
            "not a finite number",
        );
    }

    #[test]
    fn rejects_infinite() {
        rejects(
            Kline {
                volume: f64::INFINITY,
                ..good()
            },
            "volume",
            "inf",
            "not a finite",
        );
    }

    #[test]
    fn rejects_negative_price() {
        rejects(
            Kline {
                low: -1.0,
                ..good()
            },
            "low_price",
            "-1",
            "must not be negative",
        );
    }

    #[test]
    fn rejects_negative_volume() {
        rejects(
            Kline {
                volume: -5.0,
                ..good()
            },
            "volume",
            "-5",
            "must not be negative",
        );
    }

    #[test]
    fn rejects_high_below_max() {
        rejects(
            Kline {
                high: 104.0,
                ..good()
            },
            "high_price",
            "104",
            "high is below",
        );
    }

    #[test]
    fn rejects_low_above_min() {
        rejects(
            Kline {
                low: 101.0,
                ..good()
            },
            "low_price",
            "101",
            "low is above",
        );
    }

    #[test]
    fn rejects_taker_buy_above_volume() {
        rejects(
            Kline {
                taker_buy_volume: 11.0,
                ..good()
            },
            "taker_buy_volume",
            "11",
            "exceeds volume",
        );
    }

    #[test]
    fn rejects_taker_buy_quote_above_quote_volume() {
        rejects(
            Kline {
                taker_buy_quote_volume: 1000.5,
                ..good()
            },
            "taker_buy_quote_volume",
            "1000.5",
            "exceeds quote_volume",
        );
    }

    #[test]
    fn rejects_misaligned_open_time() {
        let k = Kline {
            open_time: T + 30_000,
            ..good()
        };
        let err = validate_kline(&k, Freq::M1).unwrap_err();
        assert_eq!(err.field, "open_time");
        let msg = err.to_string();
        assert!(
            msg.contains("BTCUSDT") && msg.contains("1704067230000"),
            "{msg}"
        );
        assert!(msg.contains("not aligned to a 1m bucket"), "{msg}");
        // 1h bars must open on the hour, 1w on a Monday, 3d at a midnight.
        assert!(
            validate_kline(
                &Kline {
                    open_time: T + 60_000,
                    ..good()
                },
                Freq::H1
            )
            .is_err()
        );
        assert!(
            validate_kline(
                &Kline {
                    open_time: T + 86_400_000,
                    ..good()
                },
                Freq::W1
            )
            .is_err()
        );
        assert!(
            validate_kline(
                &Kline {
                    open_time: T + 3_600_000,
                    ..good()
                },
                Freq::D3
            )
            .is_err()
        );
    }

    #[test]
    fn rejects_bad_symbol() {
        for bad in ["BTC/USDT", "BTC'--", "", "btc usdt", &"A".repeat(41)] {
            rejects(
                Kline {
                    symbol: bad.to_owned(),
                    ..good()
                },
                "symbol",
                "",
                "a symbol",
            );
        }
        rejects(
            Kline {
                symbol: "btcusdt".into(),
                ..good()
            },
            "symbol",
            "btcusdt",
            "upper-case",
        );
    }

    #[test]
    fn symbol_rules() {
        assert_eq!(validate_symbol(" btcusdt ").unwrap(), "BTCUSDT");
        assert_eq!(validate_symbol("1000PEPE_USDT").unwrap(), "1000PEPE_USDT");
        for bad in ["BTC;DROP", "../etc", "", "X\"Y"] {
            let e = validate_symbol(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid symbol"), "{e}");
        }
    }

    #[test]
    fn metrics_validation() {
        let fr = FundingRate {
            symbol: "BTCUSDT".into(),
            funding_time: T,
            funding_rate: -0.0001,
            mark_price: Some(0.0),
            index_price: None,
        };
        assert_eq!(validate_funding_rate(&fr), Ok(()));
        let bad = FundingRate {
            funding_rate: f64::NAN,
            ..fr
        };
        assert_eq!(
            validate_funding_rate(&bad).unwrap_err().field,
            "funding_rate"
        );
        let oi = OpenInterest {
            symbol: "BTCUSDT".into(),
            time: T,
            interval: Freq::M5,
            open_interest: -1.0,
            open_interest_value: None,
        };
        assert_eq!(
            validate_open_interest(&oi).unwrap_err().field,
            "open_interest"
        );
        let lsr = LongShortRatio {
            symbol: "BTCUSDT".into(),
            timestamp: T,
            period: Freq::M5,
            ratio_type: RatioType::TakerVol,
            long_short_ratio: 1.2,
            long_account: Some(f64::INFINITY),
            short_account: None,
        };
        assert_eq!(
            validate_long_short_ratio(&lsr).unwrap_err().field,
            "long_account"
        );
    }
}
