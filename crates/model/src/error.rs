//! The model's error type: every variant names the input at fault and why it was refused.

use std::fmt;

/// Errors from parsing and validating market data values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid interval {input:?}: expected one of {accepted}")]
    InvalidFreq {
        input: String,
        accepted: &'static str,
    },
    #[error("invalid time {input:?}: {reason}")]
    InvalidTime { input: String, reason: String },
    #[error("invalid time range: start {start} is after end {end}")]
    StartAfterEnd { start: String, end: String },
    #[error("invalid symbol {input:?}: {reason}")]
    InvalidSymbol { input: String, reason: &'static str },
    #[error("unknown feature {input:?}: expected one of {accepted}")]
    InvalidFeature { input: String, accepted: String },
    #[error("invalid ratio type {input:?}: expected one of {accepted}")]
    InvalidRatioType {
        input: String,
        accepted: &'static str,
    },
    #[error("invalid kline row for {symbol}: {reason}")]
    InvalidRow { symbol: String, reason: String },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A row refused by validation: which record (symbol and time), which field, its value and
/// the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationError {
    /// What kind of record: "kline", "funding rate", "open interest", "long/short ratio".
    pub record: &'static str,
    pub symbol: String,
    /// Open time (klines) or event time (metrics), ms UTC.
    pub time: i64,
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {} at {} ({}): {} = {}: {}",
            self.record,
            self.symbol,
            crate::format_rfc3339(self.time),
            self.time,
            self.field,
            self.value,
            self.reason
        )
    }
}
