//! Metrics files (USD-M futures, one per symbol and day, a line every 5 minutes):
//! `create_time,symbol,sum_open_interest,sum_open_interest_value,
//! count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,
//! sum_taker_long_short_vol_ratio`.
//!
//! `create_time` is a UTC `YYYY-MM-DD HH:MM:SS` (never local time; the Python v1.9 parser
//! got this wrong). Each line gives at most one `OpenInterest` (interval 5m) and four
//! `LongShortRatio` records (period 5m), following the column meanings of the Python HEAD
//! parser: `count_toptrader_long_short_ratio` is the top traders' *account* ratio,
//! `sum_toptrader_long_short_ratio` their *position* ratio, `count_long_short_ratio` the
//! global account ratio and `sum_taker_long_short_vol_ratio` the taker volume ratio. For the
//! three account/position ratios, `long_account = r/(r+1)` and `short_account = 1/(r+1)`
//! (0.5/0.5 when `r <= 0`); the taker ratio has neither.
//!
//! Empty cells are allowed: an empty `sum_open_interest` means no open-interest record for
//! that line (an empty `sum_open_interest_value` only leaves the value unset), and an empty
//! ratio cell means no record of that ratio type. A non-empty cell that is not a valid
//! number is a bad line. The `symbol` column must match the file's symbol unless the caller
//! overrode the symbol (then the override relabels the data).

use csv::ByteRecord;
use marketdb_model::{Freq, LongShortRatio, OpenInterest, RatioType, TimeRange, Validator};

use crate::Parsed;
use crate::field::{Fault, opt_float, trim, utc_datetime};
use crate::reader::{RowParser, Sequence, find_column, width_fault};

const CREATE: &str = "create_time";
const SYMBOL: &str = "symbol";
const OI: &str = "sum_open_interest";
const OIV: &str = "sum_open_interest_value";
/// The ratio columns, in `RatioType::ALL` order.
const LSR: [(&str, RatioType); 4] = [
    (
        "count_toptrader_long_short_ratio",
        RatioType::TopTraderAccount,
    ),
    (
        "sum_toptrader_long_short_ratio",
        RatioType::TopTraderPosition,
    ),
    ("count_long_short_ratio", RatioType::GlobalAccount),
    ("sum_taker_long_short_vol_ratio", RatioType::TakerVol),
];

/// Where each column is (`None`: the file does not have it).
#[derive(Debug)]
struct Columns {
    time: usize,
    symbol: Option<usize>,
    oi: Option<usize>,
    oiv: Option<usize>,
    lsr: [Option<usize>; 4],
    width: usize,
}

/// Parses metrics lines for one symbol.
#[derive(Debug)]
pub(crate) struct MetricsParser {
    symbol: String,
    /// Whether the `symbol` column must equal `symbol` (false when it was overridden).
    check_symbol: bool,
    cols: Columns,
    validator: Validator,
    sequence: Sequence,
    pub open_interest: Vec<OpenInterest>,
    pub long_short_ratio: Vec<LongShortRatio>,
}

impl MetricsParser {
    pub(crate) fn new(
        symbol: String,
        check_symbol: bool,
        period: Option<TimeRange>,
    ) -> MetricsParser {
        MetricsParser {
            symbol,
            check_symbol,
            validator: Validator::default(),
            sequence: Sequence::new(period),
            cols: Columns {
                time: 0,
                symbol: Some(1),
                oi: Some(2),
                oiv: Some(3),
                lsr: [Some(4), Some(5), Some(6), Some(7)],
                width: 8,
            },
            open_interest: Vec::new(),
            long_short_ratio: Vec::new(),
        }
    }

    fn parse(&mut self, r: &ByteRecord, line: u64) -> Result<(), Fault> {
        let cols = &self.cols;
        if r.len() != cols.width {
            return Err(width_fault(r, cols.width));
        }
        let time = utc_datetime(CREATE, &r[cols.time])?;
        if let (true, Some(c)) = (self.check_symbol, cols.symbol) {
            let cell = trim(&r[c]);
            if !cell.is_empty() && !cell.eq_ignore_ascii_case(self.symbol.as_bytes()) {
                let reason = format!("does not match the file's symbol {}", self.symbol);
                return Err(Fault::new(SYMBOL, &r[c], reason));
            }
        }
        let cell = |c: Option<usize>, name| match c {
            Some(c) => opt_float(name, &r[c]),
            None => Ok(None),
        };
        if let Some(oi) = cell(cols.oi, OI)? {
            let rec = OpenInterest {
                symbol: self.symbol.clone(),
                time,
                interval: Freq::M5,
                open_interest: oi,
                open_interest_value: cell(cols.oiv, OIV)?,
            };
            self.validator.open_interest(&rec).map_err(|e| {
                let (name, c) = match e.field {
                    "open_interest_value" => (OIV, cols.oiv),
                    _ => (OI, cols.oi),
                };
                Fault::new(name, c.map_or(&[][..], |c| &r[c]), e.reason)
            })?;
            self.open_interest.push(rec);
        } else {
            // Still refuse garbage in the value column of a line without open interest.
            cell(cols.oiv, OIV)?;
        }
        for ((name, ratio_type), col) in LSR.into_iter().zip(cols.lsr) {
            let Some(ratio) = cell(col, name)? else {
                continue;
            };
            let (long_account, short_account) = match ratio_type {
                RatioType::TakerVol => (None, None),
                _ if ratio > 0.0 => (Some(ratio / (ratio + 1.0)), Some(1.0 / (ratio + 1.0))),
                _ => (Some(0.5), Some(0.5)),
            };
            let rec = LongShortRatio {
                symbol: self.symbol.clone(),
                timestamp: time,
                period: Freq::M5,
                ratio_type,
                long_short_ratio: ratio,
                long_account,
                short_account,
            };
            self.validator
                .long_short_ratio(&rec)
                .map_err(|e| Fault::new(name, col.map_or(&[][..], |c| &r[c]), e.reason))?;
            self.long_short_ratio.push(rec);
        }
        self.sequence.check(CREATE, &r[cols.time], time, line)
    }
}

impl RowParser for MetricsParser {
    fn header(&mut self, header: Option<&ByteRecord>) -> Result<(), String> {
        let Some(h) = header else {
            return Ok(());
        };
        let time = find_column(h, &[CREATE])
            .ok_or_else(|| format!("no {CREATE} column (is this a metrics file?)"))?;
        let cols = Columns {
            time,
            symbol: find_column(h, &[SYMBOL]),
            oi: find_column(h, &[OI]),
            oiv: find_column(h, &[OIV]),
            lsr: LSR.map(|(name, _)| find_column(h, &[name])),
            width: h.len(),
        };
        if cols.oi.is_none() && cols.lsr.iter().all(Option::is_none) {
            return Err(format!(
                "no {OI} and no long/short ratio column (is this a metrics file?)"
            ));
        }
        self.cols = cols;
        Ok(())
    }

    fn take(&mut self, at_least: usize) -> Option<Parsed> {
        let held = self.open_interest.len() + self.long_short_ratio.len();
        (held > 0 && held >= at_least).then(|| Parsed::Metrics {
            open_interest: std::mem::take(&mut self.open_interest),
            long_short_ratio: std::mem::take(&mut self.long_short_ratio),
        })
    }

    fn row(&mut self, record: &ByteRecord, line: u64) -> Result<(), Fault> {
        let (oi_len, lsr_len) = (self.open_interest.len(), self.long_short_ratio.len());
        let res = self.parse(record, line);
        if res.is_err() {
            // Keep nothing of a bad line.
            self.open_interest.truncate(oi_len);
            self.long_short_ratio.truncate(lsr_len);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &str) -> ByteRecord {
        ByteRecord::from(line.split(',').collect::<Vec<_>>())
    }

    const T: i64 = 1_737_417_900_000; // 2025-01-21 00:05:00 UTC

    #[test]
    fn a_full_line() {
        let mut p = MetricsParser::new("ACEUSDT".into(), true, None);
        p.header(None).unwrap();
        p.row(
            &record(
                "2025-01-21 00:05:00,ACEUSDT,2310973.79,3669133.086383,4.24734982,2.26803,0,0.69236",
            ),
            2,
        )
        .unwrap();
        assert_eq!(
            p.open_interest,
            [OpenInterest {
                symbol: "ACEUSDT".into(),
                time: T,
                interval: Freq::M5,
                open_interest: 2310973.79,
                open_interest_value: Some(3669133.086383),
            }]
        );
        let r = 4.24734982;
        let got: Vec<_> = p
            .long_short_ratio
            .iter()
            .map(|l| {
                (
                    l.ratio_type,
                    l.long_short_ratio,
                    l.long_account,
                    l.short_account,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    RatioType::TopTraderAccount,
                    r,
                    Some(r / (r + 1.0)),
                    Some(1.0 / (r + 1.0))
                ),
                (
                    RatioType::TopTraderPosition,
                    2.26803,
                    Some(2.26803 / 3.26803),
                    Some(1.0 / 3.26803)
                ),
                (RatioType::GlobalAccount, 0.0, Some(0.5), Some(0.5)),
                (RatioType::TakerVol, 0.69236, None, None),
            ]
        );
        assert!(
            p.long_short_ratio
                .iter()
                .all(|l| l.timestamp == T && l.period == Freq::M5)
        );
    }

    #[test]
    fn empty_cells_skip_records() {
        let mut p = MetricsParser::new("ACEUSDT".into(), true, None);
        p.header(None).unwrap();
        p.row(&record("2025-01-21 00:05:00,ACEUSDT,,,1.5,,,"), 2)
            .unwrap();
        assert!(p.open_interest.is_empty());
        assert_eq!(p.long_short_ratio.len(), 1);
        p.row(&record("2025-01-21 00:10:00,,100,,,,,"), 3).unwrap();
        assert_eq!(p.open_interest[0].open_interest_value, None);
    }

    #[test]
    fn bad_lines_keep_nothing() {
        let mut p = MetricsParser::new("ACEUSDT".into(), true, None);
        p.header(None).unwrap();
        let f = p
            .row(&record("2025-01-21 00:05:00,ACEUSDT,1,2,3,4,5,x"), 2)
            .unwrap_err();
        assert_eq!(
            (f.field, f.value.as_str()),
            ("sum_taker_long_short_vol_ratio", "x")
        );
        let f = p
            .row(&record("2025-01-21 00:05:00,ACEUSDT,1,2,-3,4,5,6"), 2)
            .unwrap_err();
        assert_eq!(
            (f.field, f.reason.as_str()),
            (LSR[0].0, "must not be negative")
        );
        let f = p
            .row(&record("2025-01-21 00:05:00,ACEUSDT,-1,2,3,4,5,6"), 2)
            .unwrap_err();
        assert_eq!((f.field, f.reason.as_str()), (OI, "must not be negative"));
        let f = p
            .row(&record("2025-01-21 00:05:00,ETHUSDT,1,2,3,4,5,6"), 2)
            .unwrap_err();
        assert_eq!((f.field, f.value.as_str()), (SYMBOL, "ETHUSDT"));
        let f = p
            .row(&record("2025-01-21 00:05,ACEUSDT,1,2,3,4,5,6"), 2)
            .unwrap_err();
        assert_eq!(f.field, CREATE);
        assert!(p.open_interest.is_empty() && p.long_short_ratio.is_empty());
        // An overridden symbol relabels instead.
        let mut q = MetricsParser::new("OTHER".into(), false, None);
        q.row(&record("2025-01-21 00:05:00,ACEUSDT,1,2,3,4,5,6"), 2)
            .unwrap();
        assert_eq!(q.open_interest[0].symbol, "OTHER");
    }

    #[test]
    fn header_by_name() {
        let mut p = MetricsParser::new("ACEUSDT".into(), true, None);
        p.header(Some(&record(
            "symbol,create_time,sum_taker_long_short_vol_ratio",
        )))
        .unwrap();
        p.row(&record("ACEUSDT,2025-01-21 00:05:00,0.7"), 2)
            .unwrap();
        assert!(p.open_interest.is_empty());
        assert_eq!(p.long_short_ratio[0].ratio_type, RatioType::TakerVol);
        let mut q = MetricsParser::new("ACEUSDT".into(), true, None);
        let err = q.header(Some(&record("open_time,open"))).unwrap_err();
        assert!(err.contains("no create_time column"), "{err}");
        let err = q.header(Some(&record("create_time,symbol"))).unwrap_err();
        assert!(err.contains("no sum_open_interest"), "{err}");
    }
}
