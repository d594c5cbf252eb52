//! Funding-rate files: `calc_time,funding_interval_hours,last_funding_rate` with
//! `calc_time` in epoch ms (µs tolerated). Each line becomes a `FundingRate` with
//! `funding_time = calc_time`, `funding_rate = last_funding_rate` and no mark or index
//! price. With a header, columns are found by name (`funding_time`/`funding_rate` are
//! accepted as aliases, other columns ignored); without one, the three-column order above is
//! assumed. `funding_interval_hours` is not used. Every record is checked with
//! `validate_funding_rate`.

use csv::ByteRecord;
use marketdb_model::{FundingRate, TimeRange, Validator};

use crate::Parsed;
use crate::field::{Fault, epoch_ms, float};
use crate::reader::{RowParser, Sequence, find_column as find, width_fault};

const TIME: &str = "calc_time";
const RATE: &str = "last_funding_rate";

/// Parses funding-rate lines for one symbol.
#[derive(Debug)]
pub(crate) struct FundingParser {
    symbol: String,
    time_col: usize,
    rate_col: usize,
    width: usize,
    validator: Validator,
    sequence: Sequence,
    pub rows: Vec<FundingRate>,
}

impl FundingParser {
    pub(crate) fn new(symbol: String, period: Option<TimeRange>) -> FundingParser {
        FundingParser {
            symbol,
            time_col: 0,
            rate_col: 2,
            width: 3,
            validator: Validator::default(),
            sequence: Sequence::new(period),
            rows: Vec::new(),
        }
    }
}

impl RowParser for FundingParser {
    fn header(&mut self, header: Option<&ByteRecord>) -> Result<(), String> {
        let Some(h) = header else {
            return Ok(());
        };
        let expected = "expected calc_time,funding_interval_hours,last_funding_rate";
        self.time_col = find(h, &[TIME, "funding_time", "fundingTime"])
            .ok_or_else(|| format!("no {TIME} column ({expected})"))?;
        self.rate_col = find(h, &[RATE, "funding_rate", "fundingRate"])
            .ok_or_else(|| format!("no {RATE} column ({expected})"))?;
        self.width = h.len();
        Ok(())
    }

    fn take(&mut self, at_least: usize) -> Option<Parsed> {
        (!self.rows.is_empty() && self.rows.len() >= at_least)
            .then(|| Parsed::Funding(std::mem::take(&mut self.rows)))
    }

    fn row(&mut self, r: &ByteRecord, line: u64) -> Result<(), Fault> {
        if r.len() != self.width {
            return Err(width_fault(r, self.width));
        }
        let rate = FundingRate {
            symbol: self.symbol.clone(),
            funding_time: epoch_ms(TIME, &r[self.time_col])?,
            funding_rate: float(RATE, &r[self.rate_col])?,
            mark_price: None,
            index_price: None,
        };
        self.validator.funding_rate(&rate).map_err(|e| {
            let (field, col) = match e.field {
                "funding_rate" => (RATE, self.rate_col),
                _ => (TIME, self.time_col),
            };
            Fault::new(field, &r[col], e.reason)
        })?;
        self.sequence
            .check(TIME, &r[self.time_col], rate.funding_time, line)?;
        self.rows.push(rate);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &str) -> ByteRecord {
        ByteRecord::from(line.split(',').collect::<Vec<_>>())
    }

    #[test]
    fn by_name_and_by_position() {
        let mut p = FundingParser::new("BTCUSDT".into(), None);
        p.header(Some(&record(
            "last_funding_rate,calc_time,funding_interval_hours",
        )))
        .unwrap();
        p.row(&record("-0.00012345,1704067200000,8"), 2).unwrap();
        let mut q = FundingParser::new("BTCUSDT".into(), None);
        q.header(None).unwrap();
        q.row(&record("1704067200000000,8,-0.00012345"), 2).unwrap();
        let expected = FundingRate {
            symbol: "BTCUSDT".into(),
            funding_time: 1_704_067_200_000,
            funding_rate: -0.00012345,
            mark_price: None,
            index_price: None,
        };
        assert_eq!(p.rows, q.rows);
        assert_eq!(q.rows, [expected]);
    }

    #[test]
    fn faults() {
        let mut p = FundingParser::new("BTCUSDT".into(), None);
        assert!(
            p.header(Some(&record("a,b,c")))
                .unwrap_err()
                .contains("no calc_time column")
        );
        p.header(None).unwrap();
        let f = p.row(&record("1704067200000,8,inf"), 2).unwrap_err();
        assert_eq!((f.field, f.value.as_str()), (RATE, "inf"));
        assert_eq!(f.reason, "not a finite number");
        let f = p.row(&record("1704067200000,8,"), 2).unwrap_err();
        assert_eq!((f.field, f.reason.as_str()), (RATE, "empty"));
        let f = p.row(&record("x,8,0.1"), 2).unwrap_err();
        assert_eq!((f.field, f.reason.as_str()), (TIME, "not a number"));
        assert_eq!(p.row(&record("1,2"), 2).unwrap_err().field, "row");
        assert!(p.rows.is_empty());
    }
}
