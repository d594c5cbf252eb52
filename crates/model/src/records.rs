//! [`Records`]: a batch of market records of one kind, as a parser produces them and a
//! store writes them (klines of one interval, funding rates, or the open interest and
//! long/short ratios of a metrics file). Plain data.

use crate::{Freq, FundingRate, Kline, LongShortRatio, OpenInterest};

/// Records of one kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Records {
    /// Klines of one interval.
    Klines { freq: Freq, rows: Vec<Kline> },
    /// Funding-rate events.
    Funding(Vec<FundingRate>),
    /// Open interest and long/short ratios (what one Binance Vision metrics file holds).
    Metrics {
        open_interest: Vec<OpenInterest>,
        long_short_ratio: Vec<LongShortRatio>,
    },
}

impl Records {
    /// Number of records (for metrics, open-interest plus long/short-ratio records).
    pub fn len(&self) -> usize {
        match self {
            Records::Klines { rows, .. } => rows.len(),
            Records::Funding(rows) => rows.len(),
            Records::Metrics {
                open_interest,
                long_short_ratio,
            } => open_interest.len() + long_short_ratio.len(),
        }
    }

    /// Whether there is no record at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
