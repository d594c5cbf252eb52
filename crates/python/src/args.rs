//! Arguments from Python into marketdb types: time bounds (the CLI's rules), intervals,
//! symbols, features, and kline columns handed over as NumPy buffers. Every failure names
//! the argument and the value.

use marketdb_model::{Feature, Freq, Kline, RatioType, TimeRange};
use numpy::PyArrayMethods;
use pyo3::prelude::*;

use crate::error::{Result, value_error};

/// A time bound as Python gives it: epoch ms or a string.
#[derive(Debug, FromPyObject)]
pub(crate) enum TimeArg {
    Int(i64),
    Text(String),
}

impl TimeArg {
    fn text(&self) -> String {
        match self {
            TimeArg::Int(v) => v.to_string(),
            TimeArg::Text(s) => s.clone(),
        }
    }

    fn millis(&self, name: &str) -> PyResult<i64> {
        match self {
            TimeArg::Int(v) => Ok(*v),
            TimeArg::Text(s) => s.trim().parse::<i64>().map_err(|_| {
                value_error(format!(
                    "{name} {s:?} is not a timestamp in milliseconds (an integer)"
                ))
            }),
        }
    }
}

/// `[start, end]` with the CLI's rules (a date-only end covers its whole day, an instant end
/// is inclusive), or, `by_timestamp`, two inclusive epoch-ms bounds.
pub(crate) fn range(start: &TimeArg, end: &TimeArg, by_timestamp: bool) -> Result<TimeRange> {
    if by_timestamp {
        let (s, e) = (start.millis("start_ts")?, end.millis("end_ts")?);
        // The inclusive bounds first: start = end + 1 would be a valid empty range.
        TimeRange::new(s, e)?;
        let e = e
            .checked_add(1)
            .ok_or_else(|| value_error(format!("end_ts {e} is out of range")))?;
        return Ok(TimeRange::new(s, e)?);
    }
    Ok(TimeRange::parse(&start.text(), &end.text())?)
}

/// The arguments of a bar read: the range (see [`range`]), the interval and the features.
pub(crate) fn bars(
    start: &TimeArg,
    end: &TimeArg,
    by_timestamp: bool,
    freq_text: &str,
    feature_names: Option<Vec<String>>,
) -> Result<(TimeRange, Freq, Vec<Feature>)> {
    Ok((
        range(start, end, by_timestamp)?,
        freq(freq_text)?,
        features(feature_names)?,
    ))
}

pub(crate) fn freq(text: &str) -> Result<Freq> {
    Ok(Freq::parse(text)?)
}

pub(crate) fn opt_freq(text: Option<&str>) -> Result<Option<Freq>> {
    text.map(freq).transpose()
}

pub(crate) fn features(names: Option<Vec<String>>) -> Result<Vec<Feature>> {
    let mut out = Vec::new();
    for name in names.unwrap_or_default() {
        let f = Feature::parse(&name)?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

pub(crate) fn ratio_type(text: &str) -> Result<RatioType> {
    Ok(RatioType::parse(text)?)
}

fn column<T: numpy::Element + Copy>(
    name: &str,
    obj: &Bound<'_, PyAny>,
    rows: Option<usize>,
) -> PyResult<Vec<T>> {
    // NumPy's own API (not the buffer protocol, which the stable ABI of Python 3.10 lacks).
    let array = obj
        .cast::<numpy::PyArray1<T>>()
        .map_err(|e| {
            value_error(format!(
                "column {name} is not a one-dimensional NumPy array of the expected type: {e}"
            ))
        })?
        .readonly();
    let v = match array.as_slice() {
        Ok(slice) => slice.to_vec(),
        Err(_) => array.as_array().to_vec(),
    };
    if let Some(n) = rows
        && v.len() != n
    {
        return Err(value_error(format!(
            "column {name} has {} rows, expected {n}",
            v.len()
        )));
    }
    Ok(v)
}

/// The kline columns [`klines`] takes, in its order (the Python side reads them from here).
pub(crate) const KLINE_INPUT: [&str; 11] = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades_count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
];

/// Klines from columns: `codes` (int64 index into `names`, one per row) and, in this order,
/// open_time, open, high, low, close, volume, close_time (or None: derived from `freq`),
/// quote_volume, trades_count, taker_buy_volume, taker_buy_quote_volume.
pub(crate) fn klines(
    freq: Freq,
    names: &[String],
    codes: &Bound<'_, PyAny>,
    columns: &[Option<Bound<'_, PyAny>>],
) -> PyResult<Vec<Kline>> {
    const NAMES: [&str; 11] = KLINE_INPUT;
    if columns.len() != NAMES.len() {
        return Err(value_error(format!(
            "expected {} kline columns, got {}",
            NAMES.len(),
            columns.len()
        )));
    }
    let codes: Vec<i64> = column("symbol", codes, None)?;
    let n = Some(codes.len());
    let need = |i: usize| -> PyResult<&Bound<'_, PyAny>> {
        columns[i]
            .as_ref()
            .ok_or_else(|| value_error(format!("column {} is missing", NAMES[i])))
    };
    let f = |i: usize| -> PyResult<Vec<f64>> { column(NAMES[i], need(i)?, n) };
    let i = |i: usize| -> PyResult<Vec<i64>> { column(NAMES[i], need(i)?, n) };
    let open_time = i(0)?;
    let (open, high, low, close, volume) = (f(1)?, f(2)?, f(3)?, f(4)?, f(5)?);
    let close_time = match &columns[6] {
        Some(c) => column(NAMES[6], c, n)?,
        None => open_time.iter().map(|t| freq.close_time(*t)).collect(),
    };
    let (quote_volume, trades, tb, tbq) = (f(7)?, i(8)?, f(9)?, f(10)?);
    let mut out = Vec::with_capacity(codes.len());
    for (row, code) in codes.iter().enumerate() {
        let symbol = usize::try_from(*code)
            .ok()
            .and_then(|c| names.get(c))
            .ok_or_else(|| value_error(format!("row {row} has no symbol (code {code})")))?;
        out.push(Kline {
            symbol: symbol.clone(),
            open_time: open_time[row],
            open: open[row],
            high: high[row],
            low: low[row],
            close: close[row],
            volume: volume[row],
            close_time: close_time[row],
            quote_volume: quote_volume[row],
            trades_count: trades[row],
            taker_buy_volume: tb[row],
            taker_buy_quote_volume: tbq[row],
        });
    }
    Ok(out)
}
