//! Kline files: 12 columns `open_time,open,high,low,close,volume,close_time,quote_volume,
//! count,taker_buy_volume,taker_buy_quote_volume,ignore`, with a header (USD-M/COIN-M
//! futures since about 2022) or without (spot, older futures). Columns are positional, so
//! the COIN-M header spelling (`base_volume`...) is accepted too. Timestamps in ms or µs
//! (spot from 2025 on) become ms, as `Kline::from_binance` does (the tests compare them).
//!
//! Each line is parsed straight from the reused byte record (no per-field `String`) and
//! checked with the model's kline rules for the file's interval (which include the close
//! time, so a wrong `--freq` is caught), then with the file's [`Sequence`]: open times
//! increase and lie in the day or month of the file name. The `ignore` column is not read.

use csv::ByteRecord;
use marketdb_model::{Freq, Kline, TimeRange, ValidationError, Validator};

use crate::Parsed;
use crate::field::{Fault, epoch_ms, float, int};
use crate::reader::{RowParser, Sequence, width_fault};

/// Binance's kline column names, by position.
pub(crate) const COLUMNS: [&str; 12] = marketdb_model::BINANCE_KLINE_COLUMNS;

/// Parses kline lines for one symbol and interval.
#[derive(Debug)]
pub(crate) struct KlineParser {
    symbol: String,
    freq: Freq,
    validator: Validator,
    sequence: Sequence,
    pub rows: Vec<Kline>,
}

impl KlineParser {
    pub(crate) fn new(symbol: String, freq: Freq, period: Option<TimeRange>) -> KlineParser {
        KlineParser {
            symbol,
            freq,
            validator: Validator::default(),
            sequence: Sequence::new(period),
            rows: Vec::new(),
        }
    }

    fn parse(&self, r: &ByteRecord) -> Result<Kline, Fault> {
        if r.len() != COLUMNS.len() {
            return Err(width_fault(r, COLUMNS.len()));
        }
        let f = |i: usize| float(COLUMNS[i], &r[i]);
        Ok(Kline {
            symbol: self.symbol.clone(),
            open_time: epoch_ms(COLUMNS[0], &r[0])?,
            open: f(1)?,
            high: f(2)?,
            low: f(3)?,
            close: f(4)?,
            volume: f(5)?,
            close_time: epoch_ms(COLUMNS[6], &r[6])?,
            quote_volume: f(7)?,
            trades_count: int(COLUMNS[8], &r[8])?,
            taker_buy_volume: f(9)?,
            taker_buy_quote_volume: f(10)?,
        })
    }

    fn check(&self, k: &Kline, r: &ByteRecord) -> Result<(), Fault> {
        self.validator
            .kline(k, self.freq)
            .map_err(|e| validation_fault(&e, r))
    }
}

/// Maps a model validation error to the file's column (the model says `high_price`, the
/// file `high`) and shows the cell as written.
fn validation_fault(e: &ValidationError, r: &ByteRecord) -> Fault {
    let column = match e.field {
        "open_price" => "open",
        "high_price" => "high",
        "low_price" => "low",
        "close_price" => "close",
        "trades_count" => "count",
        other => other,
    };
    match COLUMNS.iter().position(|c| *c == column) {
        Some(i) => Fault::new(COLUMNS[i], &r[i], e.reason.clone()),
        None => Fault {
            field: e.field,
            value: e.value.clone(),
            reason: e.reason.clone(),
        },
    }
}

impl RowParser for KlineParser {
    fn header(&mut self, header: Option<&ByteRecord>) -> Result<(), String> {
        match header {
            Some(h) if h.len() != COLUMNS.len() => Err(format!(
                "expected the {} kline columns {}, found {} columns",
                COLUMNS.len(),
                COLUMNS.join(","),
                h.len()
            )),
            _ => Ok(()),
        }
    }

    fn row(&mut self, record: &ByteRecord, line: u64) -> Result<(), Fault> {
        let k = self.parse(record)?;
        self.check(&k, record)?;
        self.sequence
            .check(COLUMNS[0], &record[0], k.open_time, line)?;
        self.rows.push(k);
        Ok(())
    }

    fn take(&mut self, at_least: usize) -> Option<Parsed> {
        (!self.rows.is_empty() && self.rows.len() >= at_least).then(|| Parsed::Klines {
            freq: self.freq,
            rows: std::mem::take(&mut self.rows),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &str) -> ByteRecord {
        ByteRecord::from(line.split(',').collect::<Vec<_>>())
    }

    const GOOD: &str = "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68108,\
                        1704067259999,53957248.9735,47134,682.57581,28957416.8199,0";

    fn parse(line: &str, freq: Freq) -> Result<Kline, Fault> {
        let mut p = KlineParser::new("BTCUSDT".into(), freq, None);
        p.row(&record(line), 2)?;
        Ok(p.rows.remove(0))
    }

    #[test]
    fn matches_the_model_row_parser() {
        for line in [
            GOOD,
            "1735689600000000,1,2,0.5,1.5,10,1735689659999999,15,3,4,6,0",
            "1704067200000, 1 ,2,0.5,1.5,10,1704067259999,15,3.0,4,6,",
        ] {
            let fields: Vec<marketdb_model::Field> = line
                .split(',')
                .map(|f| marketdb_model::Field::Text(f.to_owned()))
                .collect();
            let model = Kline::from_binance("BTCUSDT", &fields).unwrap();
            assert_eq!(parse(line, Freq::M1).unwrap(), model, "{line}");
        }
    }

    #[test]
    fn faults_name_the_column() {
        let bad = GOOD.replace("42554.57", "abc");
        let f = parse(&bad, Freq::M1).unwrap_err();
        assert_eq!(
            (f.field, f.value.as_str(), f.reason.as_str()),
            ("high", "abc", "not a number")
        );
        let inverted = GOOD.replace("42554.57", "42000");
        let f = parse(&inverted, Freq::M1).unwrap_err();
        assert_eq!((f.field, f.value.as_str()), ("high", "42000"));
        assert!(f.reason.contains("high is below"), "{f:?}");
        let f = parse(&GOOD.replace("1271.68108", "-1"), Freq::M1).unwrap_err();
        assert_eq!(
            (f.field, f.reason.as_str()),
            ("volume", "must not be negative")
        );
        let f = parse(&GOOD.replace("42283.58", "NaN"), Freq::M1).unwrap_err();
        assert_eq!(
            (f.field, f.reason.as_str()),
            ("open", "not a finite number")
        );
        let f = parse(&GOOD.replace(",47134,", ",4.5,"), Freq::M1).unwrap_err();
        assert_eq!((f.field, f.reason.as_str()), ("count", "not an integer"));
        let f = parse("1,2,3", Freq::M1).unwrap_err();
        assert_eq!((f.field, f.value.as_str()), ("row", "1,2,3"));
        assert_eq!(f.reason, "expected 12 fields, got 3");
    }

    #[test]
    fn interval_checks() {
        // Open time not on a 1h boundary.
        let f = parse(GOOD, Freq::H1).unwrap_err();
        assert_eq!(
            f.field, "close_time",
            "aligned open, wrong close for 1h: {f:?}"
        );
        let shifted = GOOD.replace("1704067200000,", "1704067230000,");
        let f = parse(&shifted, Freq::M1).unwrap_err();
        assert_eq!((f.field, f.value.as_str()), ("open_time", "1704067230000"));
        assert!(f.reason.contains("not aligned to a 1m bucket"), "{f:?}");
        // A 1h file labelled 1m: aligned, but the close time gives it away.
        let hourly = GOOD.replace("1704067259999", "1704070799999");
        let f = parse(&hourly, Freq::M1).unwrap_err();
        assert_eq!((f.field, f.value.as_str()), ("close_time", "1704070799999"));
        assert!(parse(&hourly, Freq::H1).is_ok());
        // Calendar month: January 2024 closes on Jan 31 23:59:59.999.
        let month = GOOD.replace("1704067259999", "1706745599999");
        assert!(parse(&month, Freq::Mo1).is_ok());
    }

    #[test]
    fn header_width() {
        let mut p = KlineParser::new("BTCUSDT".into(), Freq::M1, None);
        assert!(p.header(Some(&record(&COLUMNS.join(",")))).is_ok());
        assert!(p.header(None).is_ok());
        let err = p
            .header(Some(&record(
                "calc_time,funding_interval_hours,last_funding_rate",
            )))
            .unwrap_err();
        assert!(err.contains("found 3 columns"), "{err}");
    }
}
