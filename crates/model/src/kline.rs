//! [`Kline`]: one bar, built from the 12-field Binance kline row (open_time, open, high,
//! low, close, volume, close_time, quote_volume, trades, taker_buy_volume,
//! taker_buy_quote_volume, ignore) whose fields come as numbers or decimal strings.
//! The taker-sell fields are derived, never stored on the struct.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One kline (bar), labelled by its open time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kline {
    pub symbol: String,
    /// Open time, ms UTC.
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    /// Close time, ms UTC: the next open minus 1 ms.
    pub close_time: i64,
    pub quote_volume: f64,
    pub trades_count: i64,
    pub taker_buy_volume: f64,
    pub taker_buy_quote_volume: f64,
}

/// One field of a Binance row as JSON gives it: an integer, a float or a decimal string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Field {
    Int(i64),
    Num(f64),
    Text(String),
}

/// Binance's kline column names, by position (the futures CSV header).
pub const BINANCE_KLINE_COLUMNS: [&str; 12] = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
];

/// Epoch values above this are microseconds (Binance spot files from 2025 on).
pub const MICROS_THRESHOLD: i64 = 100_000_000_000_000; // 1e14 ms is year 5138

/// Converts an epoch timestamp in ms or µs (by magnitude) to ms.
pub fn normalize_epoch(t: i64) -> i64 {
    // unsigned_abs: `i64::MIN.abs()` would overflow.
    if t.unsigned_abs() >= MICROS_THRESHOLD.unsigned_abs() {
        t.div_euclid(1000)
    } else {
        t
    }
}

impl Kline {
    /// `volume - taker_buy_volume`.
    pub fn taker_sell_volume(&self) -> f64 {
        self.volume - self.taker_buy_volume
    }

    /// `quote_volume - taker_buy_quote_volume`.
    pub fn taker_sell_quote_volume(&self) -> f64 {
        self.quote_volume - self.taker_buy_quote_volume
    }

    /// Builds a kline from a Binance row of JSON values (numbers or strings: what the REST
    /// API and the Python original's `store_data` take). At least the first 11 fields are
    /// needed; microsecond timestamps are converted to ms. CSV rows of Binance Vision files
    /// are parsed by `marketdb-ingest` straight from their bytes, to the same result (its
    /// tests compare the two); both use [`BINANCE_KLINE_COLUMNS`].
    pub fn from_binance(symbol: &str, row: &[Field]) -> Result<Kline> {
        Self::build(symbol, row.len(), |i| match &row[i] {
            Field::Int(v) => Ok(Num::Int(*v)),
            Field::Num(v) => Ok(Num::Float(*v)),
            Field::Text(s) => Num::parse(s),
        })
    }

    fn build(
        symbol: &str,
        len: usize,
        get: impl Fn(usize) -> std::result::Result<Num, String>,
    ) -> Result<Kline> {
        if len < 11 {
            return Err(Error::InvalidRow {
                symbol: symbol.to_owned(),
                reason: format!("expected 12 fields, got {len}"),
            });
        }
        let field = |i: usize| {
            get(i).map_err(|value| Error::InvalidRow {
                symbol: symbol.to_owned(),
                reason: format!(
                    "field {} = {value:?} is not a number",
                    BINANCE_KLINE_COLUMNS[i]
                ),
            })
        };
        let int = |i: usize| -> Result<i64> {
            field(i)?.as_int().ok_or_else(|| Error::InvalidRow {
                symbol: symbol.to_owned(),
                reason: format!("field {} is not an integer", BINANCE_KLINE_COLUMNS[i]),
            })
        };
        let float = |i: usize| field(i).map(Num::as_f64);
        Ok(Kline {
            symbol: symbol.to_owned(),
            open_time: normalize_epoch(int(0)?),
            open: float(1)?,
            high: float(2)?,
            low: float(3)?,
            close: float(4)?,
            volume: float(5)?,
            close_time: normalize_epoch(int(6)?),
            quote_volume: float(7)?,
            trades_count: int(8)?,
            taker_buy_volume: float(9)?,
            taker_buy_quote_volume: float(10)?,
        })
    }
}

#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn parse(s: &str) -> std::result::Result<Num, String> {
        let t = s.trim();
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Num::Int(i));
        }
        t.parse::<f64>().map(Num::Float).map_err(|_| s.to_owned())
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn as_int(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i),
            // Some JSON encoders write integral counts as 12.0.
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            Num::Float(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_row() -> Vec<Field> {
        serde_json::from_str(
            r#"[1704067200000,"42283.58","42554.57","42261.02","42475.23","1271.68108",
               1704070799999,"53957248.9735",47134,"682.57581","28957416.8199","0"]"#,
        )
        .unwrap()
    }

    #[test]
    fn from_binance_row_strings_and_numbers() {
        let k = Kline::from_binance("BTCUSDT", &sample_row()).unwrap();
        assert_eq!(k.open_time, 1_704_067_200_000);
        assert_eq!(k.close_time, 1_704_070_799_999);
        assert_eq!(k.high, 42554.57);
        assert_eq!(k.trades_count, 47134);
        assert_eq!(k.taker_sell_volume(), 1271.68108 - 682.57581);
        assert_eq!(k.taker_sell_quote_volume(), 53957248.9735 - 28957416.8199);
        let text: Vec<String> = [
            "1704067200000000",
            "1",
            "2",
            "0.5",
            "1.5",
            "10",
            "1704070799999999",
            "15",
            "3",
            "4",
            "6",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let row: Vec<Field> = text.into_iter().map(Field::Text).collect();
        let k = Kline::from_binance("ETHUSDT", &row).unwrap();
        assert_eq!(k.open_time, 1_704_067_200_000, "microseconds are converted");
        assert_eq!(k.close_time, 1_704_070_799_999);
    }

    #[test]
    fn bad_rows_name_the_field() {
        let mut row = sample_row();
        row[2] = Field::Text("abc".into());
        let e = Kline::from_binance("BTCUSDT", &row)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("high") && e.contains("abc") && e.contains("BTCUSDT"),
            "{e}"
        );
        let e = Kline::from_binance("BTCUSDT", &row[..5])
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected 12 fields, got 5"), "{e}");
        let mut row = sample_row();
        row[8] = Field::Text("3.5".into());
        assert!(Kline::from_binance("BTCUSDT", &row).is_err());
    }

    proptest! {
        #[test]
        fn serde_round_trip(
            t in 0i64..4_000_000_000_000,
            p in 0.0001f64..1e6,
            v in 0.0f64..1e9,
            n in 0i64..1_000_000,
        ) {
            let row = vec![
                Field::Int(t), Field::Text(p.to_string()), Field::Num(p * 2.0),
                Field::Text((p / 2.0).to_string()), Field::Num(p), Field::Text(v.to_string()),
                Field::Int(t + 59_999), Field::Num(v * p), Field::Int(n),
                Field::Num(v / 3.0), Field::Text((v * p / 3.0).to_string()), Field::Text("0".into()),
            ];
            let k = Kline::from_binance("BTCUSDT", &row).unwrap();
            prop_assert_eq!(k.open, p);
            prop_assert_eq!(k.volume, v);
            let json = serde_json::to_string(&k).unwrap();
            prop_assert_eq!(serde_json::from_str::<Kline>(&json).unwrap(), k.clone());
            let row_json = serde_json::to_string(&row).unwrap();
            let back: Vec<Field> = serde_json::from_str(&row_json).unwrap();
            prop_assert_eq!(Kline::from_binance("BTCUSDT", &back).unwrap(), k);
        }
    }
}
