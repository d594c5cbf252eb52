//! Validation of symbols and rows before they reach SQL or a file path: the one place of the
//! plausibility rules that the store and ingest share. Every rejection is a
//! [`ValidationError`] naming the record, symbol, time, field, value and reason.
//!
//! Rules: symbols `^[A-Z0-9_]{1,40}$`; numbers finite and non-negative; every time inside
//! the [`TimeWindow`] (default 2009-01-03 to now + 1 day, with a hint for epoch seconds);
//! kline prices above 0 (a bar with trades or volume needs prices, an all-zero bar is not
//! data), OHLC consistent, taker volumes within totals, the open time on the interval's
//! grid and the close time that of the interval; open interest and long/short ratios on
//! their period's grid. [`Validator`] holds a window for hot loops; the free functions use
//! the default window.

use crate::{
    Error, Freq, FundingRate, Kline, LongShortRatio, OpenInterest, Result, TimeWindow,
    ValidationError,
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
    /// NaN stands for a value the source did not have (SQL NULL): not refused.
    missing_allowed: bool,
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
        if v.is_finite() || (self.missing_allowed && v.is_nan()) {
            Ok(())
        } else {
            Err(self.fail(field, v, "not a finite number"))
        }
    }

    fn non_negative(&self, field: &'static str, v: f64) -> Result<(), ValidationError> {
        self.finite(field, v)?;
        if v.is_nan() {
            return Ok(());
        }
        if v < 0.0 {
            return Err(self.fail(field, v, "must not be negative"));
        }
        Ok(())
    }

    fn in_window(
        &self,
        window: &TimeWindow,
        field: &'static str,
        t: i64,
    ) -> Result<(), ValidationError> {
        match window.refusal(t) {
            None => Ok(()),
            Some(reason) => Err(self.fail(field, t, &reason)),
        }
    }

    fn on_grid(&self, field: &'static str, t: i64, period: Freq) -> Result<(), ValidationError> {
        if period.is_valid_open(t) {
            return Ok(());
        }
        let reason = format!("time is not on the {period} grid of this series");
        Err(self.fail(field, t, &reason))
    }
}

/// The validation rules with a fixed [`TimeWindow`] (read the clock once, validate many).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Validator {
    /// The instants records may carry.
    pub window: TimeWindow,
    /// Whether a NaN value stands for a value the source did not have (SQL NULL, stored
    /// as NULL) and passes: a replicated file carries the NULLs of the database it came
    /// from. Every other rule still holds.
    pub missing_allowed: bool,
}

impl Validator {
    /// Rules with `window`.
    pub fn new(window: TimeWindow) -> Validator {
        Validator {
            window,
            missing_allowed: false,
        }
    }

    /// The same rules, with NaN (a missing value) allowed.
    pub fn with_missing_allowed(mut self) -> Validator {
        self.missing_allowed = true;
        self
    }

    fn check<'a>(&self, record: &'static str, symbol: &'a str, time: i64) -> Check<'a> {
        Check {
            record,
            symbol,
            time,
            missing_allowed: self.missing_allowed,
        }
    }

    /// See [`validate_kline`].
    pub fn kline(&self, k: &Kline, freq: Freq) -> Result<(), ValidationError> {
        kline_rules(k, freq, &self.window, self.missing_allowed)
    }

    /// See [`validate_funding_rate`].
    pub fn funding_rate(&self, r: &FundingRate) -> Result<(), ValidationError> {
        let c = self.check("funding rate", &r.symbol, r.funding_time);
        c.symbol()?;
        c.in_window(&self.window, "funding_time", r.funding_time)?;
        c.finite("funding_rate", r.funding_rate)?;
        optional(&c, "mark_price", r.mark_price)?;
        optional(&c, "index_price", r.index_price)
    }

    /// See [`validate_open_interest`].
    pub fn open_interest(&self, r: &OpenInterest) -> Result<(), ValidationError> {
        let c = self.check("open interest", &r.symbol, r.time);
        c.symbol()?;
        c.in_window(&self.window, "timestamp", r.time)?;
        c.on_grid("timestamp", r.time, r.interval)?;
        c.non_negative("open_interest", r.open_interest)?;
        optional(&c, "open_interest_value", r.open_interest_value)
    }

    /// See [`validate_long_short_ratio`].
    pub fn long_short_ratio(&self, r: &LongShortRatio) -> Result<(), ValidationError> {
        let c = self.check("long/short ratio", &r.symbol, r.timestamp);
        c.symbol()?;
        c.in_window(&self.window, "timestamp", r.timestamp)?;
        c.on_grid("timestamp", r.timestamp, r.period)?;
        c.non_negative("long_short_ratio", r.long_short_ratio)?;
        optional(&c, "long_account", r.long_account)?;
        optional(&c, "short_account", r.short_account)
    }
}

/// Checks a kline for `freq` with the default [`TimeWindow`]: symbol, open time inside the
/// window and on the interval's grid, close time `freq.close_time(open)`, finite
/// non-negative numbers, prices above 0, OHLC consistency, taker volumes within totals.
pub fn validate_kline(k: &Kline, freq: Freq) -> Result<(), ValidationError> {
    kline_rules(k, freq, &TimeWindow::until_tomorrow(), false)
}

fn kline_rules(
    k: &Kline,
    freq: Freq,
    window: &TimeWindow,
    missing_allowed: bool,
) -> Result<(), ValidationError> {
    let c = Check {
        record: "kline",
        symbol: &k.symbol,
        time: k.open_time,
        missing_allowed,
    };
    c.symbol()?;
    c.in_window(window, "open_time", k.open_time)?;
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
    let prices = [
        ("open_price", k.open),
        ("high_price", k.high),
        ("low_price", k.low),
        ("close_price", k.close),
    ];
    if let Some((field, v)) = prices.iter().find(|(_, v)| *v == 0.0) {
        let reason = if prices.iter().all(|(_, v)| *v == 0.0) && k.volume == 0.0 {
            "an all-zero bar (no prices, no volume) is not market data"
        } else {
            "a price must be above 0"
        };
        return Err(c.fail(field, v, reason));
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
    let close = freq.close_time(k.open_time);
    if k.close_time != close {
        let reason = format!(
            "close time does not end a {freq} bar opening at {} (expected {close})",
            k.open_time
        );
        return Err(c.fail("close_time", k.close_time, &reason));
    }
    Ok(())
}

/// Checks a funding rate event with the default window: symbol, time, finite numbers
/// (prices non-negative).
pub fn validate_funding_rate(r: &FundingRate) -> Result<(), ValidationError> {
    Validator::default().funding_rate(r)
}

/// Checks an open interest sample with the default window: symbol, time on the interval's
/// grid, non-negative finite values.
pub fn validate_open_interest(r: &OpenInterest) -> Result<(), ValidationError> {
    Validator::default().open_interest(r)
}

/// Checks a long/short ratio sample with the default window: symbol, time on the period's
/// grid, non-negative finite values.
pub fn validate_long_short_ratio(r: &LongShortRatio) -> Result<(), ValidationError> {
    Validator::default().long_short_ratio(r)
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
        let d3 = Kline {
            close_time: Freq::D3.close_time(T),
            ..good()
        };
        assert_eq!(validate_kline(&d3, Freq::D3), Ok(()));
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
    fn plausibility_rules() {
        // All-zero bars, and zero prices on a bar with volume.
        let zero = Kline {
            open: 0.0,
            high: 0.0,
            low: 0.0,
            close: 0.0,
            volume: 0.0,
            quote_volume: 0.0,
            trades_count: 0,
            taker_buy_volume: 0.0,
            taker_buy_quote_volume: 0.0,
            ..good()
        };
        rejects(zero, "open_price", "0", "all-zero bar");
        rejects(
            Kline { low: 0.0, ..good() },
            "low_price",
            "0",
            "a price must be above 0",
        );
        // A bar without trades keeps its prices: fine.
        let quiet = Kline {
            volume: 0.0,
            quote_volume: 0.0,
            trades_count: 0,
            taker_buy_volume: 0.0,
            taker_buy_quote_volume: 0.0,
            ..good()
        };
        assert_eq!(validate_kline(&quiet, Freq::M1), Ok(()));
        // Times outside the window: years 0, 1969, 3000, 5000; seconds get a hint.
        for (t, part) in [
            (-62_167_219_200_000_i64, "before 2009-01-03"),
            (-60_000, "before 2009-01-03"),
            (32_503_680_000_000, "after"),
            (95_617_584_000_000, "after"),
            (1_704_067_200, "looks like epoch seconds"),
        ] {
            let k = Kline {
                open_time: t,
                close_time: t + 59_999,
                ..good()
            };
            let err = validate_kline(&k, Freq::M1).unwrap_err();
            assert_eq!(err.field, "open_time");
            assert!(err.to_string().contains(part), "{t}: {err}");
        }
        // A configurable window.
        let narrow = Validator::new(TimeWindow {
            earliest_ms: T + 60_000,
            latest_ms: T + 120_000,
        });
        assert_eq!(
            narrow.kline(&good(), Freq::M1).unwrap_err().field,
            "open_time"
        );
        // The close time must be that of the interval.
        let err = validate_kline(
            &Kline {
                close_time: T + 59_998,
                ..good()
            },
            Freq::M1,
        )
        .unwrap_err();
        assert_eq!(err.field, "close_time");
        // Metrics on their period's grid.
        let oi = OpenInterest {
            symbol: "BTCUSDT".into(),
            time: T + 60_000,
            interval: Freq::M5,
            open_interest: 1.0,
            open_interest_value: None,
        };
        let err = validate_open_interest(&oi).unwrap_err();
        assert!(err.to_string().contains("not on the 5m grid"), "{err}");
        assert_eq!(
            validate_open_interest(&OpenInterest { time: T, ..oi }),
            Ok(())
        );
        let fr = FundingRate {
            symbol: "BTCUSDT".into(),
            funding_time: 1_704_067_200,
            funding_rate: 0.0001,
            mark_price: None,
            index_price: None,
        };
        let err = validate_funding_rate(&fr).unwrap_err();
        assert!(err.to_string().contains("epoch seconds"), "{err}");
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

    #[test]
    fn missing_values_pass_only_when_allowed_and_every_other_rule_holds() {
        let strict = Validator::new(TimeWindow::until_tomorrow());
        let replica = strict.with_missing_allowed();
        let mut k = good();
        k.close = f64::NAN;
        k.taker_buy_quote_volume = f64::NAN;
        assert_eq!(strict.kline(&k, Freq::M1).unwrap_err().field, "close_price");
        replica.kline(&k, Freq::M1).unwrap();
        k.volume = -1.0;
        assert_eq!(replica.kline(&k, Freq::M1).unwrap_err().field, "volume");
        let mut k = good();
        k.high = f64::INFINITY;
        assert_eq!(replica.kline(&k, Freq::M1).unwrap_err().field, "high_price");
        let fr = FundingRate {
            symbol: "BTCUSDT".into(),
            funding_time: T,
            funding_rate: f64::NAN,
            mark_price: None,
            index_price: None,
        };
        assert!(strict.funding_rate(&fr).is_err());
        replica.funding_rate(&fr).unwrap();
    }
}
