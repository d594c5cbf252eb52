//! The dataset's layout (version [`DATASET_VERSION`], documented in `docs/formats.md`):
//! one table per kind, one file per partition, a state file.
//!
//! - `klines/freq={freq}/date={YYYY-MM-DD}/part-0.parquet` (`freq=1mo` for calendar months:
//!   a partition value must not differ from `freq=1m` by case alone, since case-insensitive
//!   file systems and object-store gateways would make them one folder)
//! - `funding_rate/month={YYYY-MM}/part-0.parquet`
//! - `open_interest/date={YYYY-MM-DD}/part-0.parquet`
//! - `long_short_ratio/date={YYYY-MM-DD}/part-0.parquet`
//! - `_marketdb/state.json`: the scope and, per partition, its digest and covered symbols
//! - `_marketdb/lock`: present while an export publishes
//!
//! A partition is always a whole UTC day (a month for funding). It knows nothing about
//! databases or files; it names things.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use marketdb_model::time::{DAY_MS, civil_from_days, date_string, days_from_civil};
use marketdb_model::{Feature, Freq};
use marketdb_store::MetricTable;
use serde::{Deserialize, Serialize};

/// The version of the layout and state this build writes and reads (2: the month interval
/// is `freq=1mo`, partitions record the symbols they cover).
pub const DATASET_VERSION: u32 = 2;
/// The state file, relative to the dataset root.
pub const STATE_PATH: &str = "_marketdb/state.json";
/// The lock file of a running export, relative to the dataset root.
pub const LOCK_PATH: &str = "_marketdb/lock";
/// The name of every partition's file.
pub const PART_FILE: &str = "part-0.parquet";

/// The kline columns of the dataset (named by their stored, long names).
pub(crate) const KLINE_FEATURES: [Feature; 11] = Feature::KLINE;

/// A table of the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    Klines,
    FundingRate,
    OpenInterest,
    LongShortRatio,
}

impl DatasetKind {
    /// Every kind, in layout order.
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::Klines,
        DatasetKind::FundingRate,
        DatasetKind::OpenInterest,
        DatasetKind::LongShortRatio,
    ];

    /// The table's folder name.
    pub fn dir(self) -> &'static str {
        match self {
            DatasetKind::Klines => "klines",
            DatasetKind::FundingRate => "funding_rate",
            DatasetKind::OpenInterest => "open_interest",
            DatasetKind::LongShortRatio => "long_short_ratio",
        }
    }

    /// The metric table of a metric kind.
    pub(crate) fn metric(self) -> Option<MetricTable> {
        match self {
            DatasetKind::Klines => None,
            DatasetKind::FundingRate => Some(MetricTable::FundingRate),
            DatasetKind::OpenInterest => Some(MetricTable::OpenInterest),
            DatasetKind::LongShortRatio => Some(MetricTable::LongShortRatio),
        }
    }

    /// Whether a partition is a month (funding) rather than a day.
    pub(crate) fn monthly(self) -> bool {
        self == DatasetKind::FundingRate
    }

    /// The Arrow schema of the kind's files (partition columns are in the path only).
    /// `symbol` is a plain `Utf8` column (Parquet still dictionary-encodes its pages):
    /// readers such as pyarrow prune row groups by the statistics of a string column, not
    /// of a dictionary one.
    pub fn schema(self) -> SchemaRef {
        let base = match self.metric() {
            Some(m) => m.schema(),
            None => kline_schema(),
        };
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[0] = Field::new("symbol", DataType::Utf8, false);
        Arc::new(Schema::new(fields))
    }
}

/// `symbol`, `timestamp`, then the kline columns by their stored names.
fn kline_schema() -> SchemaRef {
    let base = marketdb_store::arrow::kline_schema(&KLINE_FEATURES);
    let fields: Vec<Field> = base
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match i {
            0 | 1 => f.as_ref().clone(),
            _ => f.as_ref().clone().with_name(KLINE_FEATURES[i - 2].long()),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The partition value of an interval: its name, except `1mo` for the calendar month.
pub fn freq_value(f: Freq) -> &'static str {
    match f {
        Freq::Mo1 => "1mo",
        other => other.as_str(),
    }
}

/// The interval a partition value names exactly (`1mo`, never `1M`).
fn freq_of_value(text: &str) -> Option<Freq> {
    if text == "1mo" {
        return Some(Freq::Mo1);
    }
    let f = text.parse::<Freq>().ok()?;
    (f != Freq::Mo1 && f.as_str() == text).then_some(f)
}

/// A partition: its table, interval (klines), period and relative folder.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Partition {
    pub kind: DatasetKind,
    pub freq: Option<Freq>,
    /// First instant of the period.
    pub start: i64,
    /// First instant after the period.
    pub end: i64,
    /// `klines/freq=1m/date=2024-01-01`.
    pub key: String,
}

pub(crate) fn month_start(ms: i64) -> i64 {
    let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
    days_from_civil(y, m, 1) * DAY_MS
}

fn next_month(start: i64) -> i64 {
    let (y, m, _) = civil_from_days(start.div_euclid(DAY_MS));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * DAY_MS
}

impl Partition {
    pub(crate) fn new(kind: DatasetKind, freq: Option<Freq>, start: i64) -> Partition {
        let (end, key) = if kind.monthly() {
            let (y, m, _) = civil_from_days(start.div_euclid(DAY_MS));
            (
                next_month(start),
                format!("{}/month={y:04}-{m:02}", kind.dir()),
            )
        } else {
            let date = date_string(start);
            match freq {
                Some(f) => (
                    start + DAY_MS,
                    format!("{}/freq={}/date={date}", kind.dir(), freq_value(f)),
                ),
                None => (start + DAY_MS, format!("{}/date={date}", kind.dir())),
            }
        };
        Partition {
            kind,
            freq,
            start,
            end,
            key,
        }
    }

    /// Reads a key back (`None` for anything that is not one of this version's keys).
    pub fn parse(key: &str) -> Option<Partition> {
        let mut parts = key.split('/');
        let dir = parts.next()?;
        let kind = DatasetKind::ALL.into_iter().find(|k| k.dir() == dir)?;
        let (freq, period) = if kind == DatasetKind::Klines {
            let freq = freq_of_value(parts.next()?.strip_prefix("freq=")?)?;
            (Some(freq), parts.next()?)
        } else {
            (None, parts.next()?)
        };
        if parts.next().is_some() {
            return None;
        }
        let start = if kind.monthly() {
            let text = period.strip_prefix("month=")?;
            let (y, m) = text.split_once('-')?;
            let (y, m): (i64, u32) = (y.parse().ok()?, m.parse().ok()?);
            marketdb_model::time::parse_ymd(y, m, 1)?
        } else {
            let text = period.strip_prefix("date=")?;
            let mut it = text.split('-');
            let (y, m, d) = (it.next()?, it.next()?, it.next()?);
            marketdb_model::time::parse_ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?
        };
        let p = Partition::new(kind, freq, start);
        (p.key == key).then_some(p)
    }

    /// The partition's file, relative to the root.
    pub fn file(&self) -> String {
        format!("{}/{PART_FILE}", self.key)
    }
}

/// The partitions of `kind` (and `freq`) that cover `[lo, hi]` (inclusive times).
pub(crate) fn covering(kind: DatasetKind, freq: Option<Freq>, lo: i64, hi: i64) -> Vec<Partition> {
    let mut out = Vec::new();
    let mut start = if kind.monthly() {
        month_start(lo)
    } else {
        lo.div_euclid(DAY_MS) * DAY_MS
    };
    while start <= hi {
        let p = Partition::new(kind, freq, start);
        start = p.end;
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_round_trip_and_refuse_strangers() {
        let jan2 = 1_704_153_600_000;
        let p = Partition::new(DatasetKind::Klines, Some(Freq::M1), jan2);
        assert_eq!(p.key, "klines/freq=1m/date=2024-01-02");
        assert_eq!(p.end - p.start, DAY_MS);
        assert_eq!(Partition::parse(&p.key), Some(p.clone()));
        let f = Partition::new(DatasetKind::FundingRate, None, month_start(jan2));
        assert_eq!(f.key, "funding_rate/month=2024-01");
        assert_eq!(f.end - f.start, 31 * DAY_MS);
        assert_eq!(Partition::parse(&f.key), Some(f));
        for bad in [
            "klines/date=2024-01-02",
            "klines/freq=7m/date=2024-01-02",
            "klines/freq=1M/date=2024-01-02",
            "klines/freq=1H/date=2024-01-02",
            "open_interest/date=2024-02-30",
            "funding_rate/month=2024-13",
            "funding_rate/month=2024-1",
            "../etc/date=2024-01-01",
            "open_interest/date=2024-01-01/x",
        ] {
            assert_eq!(Partition::parse(bad), None, "{bad}");
        }
        let days = covering(DatasetKind::OpenInterest, None, jan2 + 5, jan2 + DAY_MS);
        assert_eq!(days.len(), 2);
        let months = covering(DatasetKind::FundingRate, None, jan2, jan2 + 40 * DAY_MS);
        assert_eq!(
            months.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            ["funding_rate/month=2024-01", "funding_rate/month=2024-02"]
        );
    }

    #[test]
    fn the_month_and_the_minute_never_differ_by_case_alone() {
        let jan1 = 1_704_067_200_000;
        let month = Partition::new(DatasetKind::Klines, Some(Freq::Mo1), jan1);
        let minute = Partition::new(DatasetKind::Klines, Some(Freq::M1), jan1);
        assert_eq!(month.key, "klines/freq=1mo/date=2024-01-01");
        assert_ne!(month.key.to_lowercase(), minute.key.to_lowercase());
        assert_eq!(Partition::parse(&month.key), Some(month));
        // Every interval's value is unique once folded to lower case.
        let mut seen = std::collections::HashSet::new();
        for f in Freq::ALL {
            assert!(seen.insert(freq_value(f).to_lowercase()), "{f}");
        }
    }
}
