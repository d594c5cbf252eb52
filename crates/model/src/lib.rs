//! marketdb-model is the vocabulary every other marketdb crate speaks: Binance intervals
//! ([`Freq`]) with their bucket arithmetic, klines ([`Kline`]) and the metric records
//! ([`FundingRate`], [`OpenInterest`], [`LongShortRatio`]), the feature catalogue
//! ([`Feature`]), UTC time parsing ([`TimeRange`]), the calendar helpers ([`time`]: UTC days,
//! months, RFC 3339), the time limits ([`TimeWindow`], the supported span), row
//! validation ([`Validator`]) and the no-look-ahead metric alignment rule ([`align_as_of`]).
//!
//! It does no I/O: it knows nothing about SQLite, files or async runtimes, so any crate can
//! depend on it cheaply. Every instant is an `i64` of milliseconds since the Unix epoch, UTC.

mod align;
mod error;
mod feature;
mod freq;
mod kline;
mod metrics;
mod plausible;
mod range;
mod records;
mod validate;

pub mod time;
// The crate's own code names these at its root.
pub use align::{align_as_of, as_of_window};
pub use error::{Error, Result, ValidationError};
pub use feature::{Feature, FeatureKind, MetricFamily, ret, vwap};
pub use freq::Freq;
pub use kline::{BINANCE_KLINE_COLUMNS, Field, Kline, MICROS_THRESHOLD, normalize_epoch};
pub use metrics::{FundingRate, LongShortRatio, OpenInterest, RatioType};
pub use plausible::{EARLIEST_MARKET_MS, TIME_MAX_MS, TIME_MIN_MS, TimeWindow};
pub use range::{Bound, TimeRange, parse_bound};
pub use records::Records;
use time::{DAY_MS, day_floor, format_rfc3339};
pub use validate::{
    Validator, validate_funding_rate, validate_kline, validate_long_short_ratio,
    validate_open_interest, validate_symbol,
};
