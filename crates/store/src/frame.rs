//! [`KlineFrame`]: the columnar result of a kline read. Rows are ordered by
//! (symbol, timestamp); each symbol's rows are one contiguous run, so there is no per-row
//! symbol string. One `Vec` per requested feature, in request order. The fields are private
//! so that these invariants hold: [`KlineFrame::new`] checks them for frames built outside
//! the store, the accessors read, [`KlineFrame::into_parts`] takes the vectors back.

use std::ops::Range;

use marketdb_model::Feature;

/// One column of a frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::F64(v) => v.len(),
            Column::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `row` as f64 (counts are converted).
    pub fn get_f64(&self, row: usize) -> Option<f64> {
        match self {
            Column::F64(v) => v.get(row).copied(),
            Column::I64(v) => v.get(row).map(|x| *x as f64),
        }
    }
}

/// Columnar kline rows ordered by (symbol, timestamp).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KlineFrame {
    /// Each symbol present, in row order (ascending), with the range of its rows.
    pub(crate) symbols: Vec<(String, Range<usize>)>,
    /// Open time (ms UTC) of every row.
    pub(crate) timestamp: Vec<i64>,
    /// The features held, in request order; `columns[i]` holds `features[i]`.
    pub(crate) features: Vec<Feature>,
    pub(crate) columns: Vec<Column>,
}

/// The parts of a [`KlineFrame`]: symbol runs, open times, features, columns.
pub type FrameParts = (
    Vec<(String, Range<usize>)>,
    Vec<i64>,
    Vec<Feature>,
    Vec<Column>,
);

impl KlineFrame {
    /// A frame from its parts, checked: symbol runs ascending, contiguous from row 0 and
    /// covering every row; open times ascending within a run; one column per feature, of
    /// the feature's type (`I64` for counts, `F64` otherwise), each as long as the times.
    pub fn new(
        symbols: Vec<(String, Range<usize>)>,
        timestamp: Vec<i64>,
        features: Vec<Feature>,
        columns: Vec<Column>,
    ) -> crate::Result<KlineFrame> {
        let bad = |reason: String| crate::Error::invalid_argument("frame", "", reason);
        let mut next = 0;
        for (i, (symbol, rows)) in symbols.iter().enumerate() {
            if rows.start != next || rows.end <= rows.start {
                return Err(bad(format!(
                    "the rows of {symbol} ({rows:?}) do not follow the previous run at {next}"
                )));
            }
            if i > 0 && symbols[i - 1].0 >= *symbol {
                return Err(bad(format!("symbol {symbol} is out of ascending order")));
            }
            if timestamp
                .get(rows.clone())
                .is_some_and(|t| t.windows(2).any(|w| w[0] >= w[1]))
            {
                return Err(bad(format!("the open times of {symbol} do not increase")));
            }
            next = rows.end;
        }
        if next != timestamp.len() {
            return Err(bad(format!(
                "the symbol runs cover {next} rows, the frame has {}",
                timestamp.len()
            )));
        }
        if features.len() != columns.len() {
            return Err(bad(format!(
                "{} features but {} columns",
                features.len(),
                columns.len()
            )));
        }
        for (f, c) in features.iter().zip(&columns) {
            let typed = matches!(c, Column::I64(_)) == f.is_integer();
            if !typed || c.len() != timestamp.len() {
                return Err(bad(format!(
                    "column {} has the wrong type or length",
                    f.short()
                )));
            }
        }
        Ok(KlineFrame {
            symbols,
            timestamp,
            features,
            columns,
        })
    }

    /// Each symbol present, in row order, with the range of its rows.
    pub fn symbols(&self) -> &[(String, Range<usize>)] {
        &self.symbols
    }

    /// Open time (ms UTC) of every row.
    pub fn timestamp(&self) -> &[i64] {
        &self.timestamp
    }

    /// The features held, in order; `columns()[i]` holds `features()[i]`.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// The columns, one per feature.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Appends the rows of `other`, whose symbols must all sort after this frame's and whose
    /// features must be the same (an integer column of `other` joins a float one as f64).
    pub fn append(&mut self, other: KlineFrame) -> crate::Result<()> {
        if other.features != self.features {
            return Err(crate::Error::invalid_argument(
                "frame",
                "",
                "appended frames must hold the same features",
            ));
        }
        if let (Some((last, _)), Some((first, _))) = (self.symbols.last(), other.symbols.first())
            && first <= last
        {
            return Err(crate::Error::invalid_argument(
                "frame",
                first,
                format!("appended symbols must sort after {last}"),
            ));
        }
        let offset = self.len();
        self.symbols.extend(
            other
                .symbols
                .into_iter()
                .map(|(s, r)| (s, r.start + offset..r.end + offset)),
        );
        self.timestamp.extend(other.timestamp);
        for (a, b) in self.columns.iter_mut().zip(other.columns) {
            match (a, b) {
                (Column::F64(x), Column::F64(y)) => x.extend(y),
                (Column::I64(x), Column::I64(y)) => x.extend(y),
                (Column::F64(x), Column::I64(y)) => x.extend(y.into_iter().map(|v| v as f64)),
                (Column::I64(x), Column::F64(y)) => x.extend(y.into_iter().map(|v| v as i64)),
            }
        }
        Ok(())
    }

    /// The rows for which `keep(row)` holds, in order (so the frame's invariants hold).
    pub fn filter_rows(&self, keep: impl Fn(usize) -> bool) -> KlineFrame {
        let mut out = KlineFrame::empty(&self.features);
        for (symbol, rows) in &self.symbols {
            let first = out.len();
            for i in rows.clone().filter(|i| keep(*i)) {
                out.timestamp.push(self.timestamp[i]);
                for (o, c) in out.columns.iter_mut().zip(&self.columns) {
                    match (o, c) {
                        (Column::F64(o), Column::F64(c)) => o.push(c[i]),
                        (Column::I64(o), Column::I64(c)) => o.push(c[i]),
                        (Column::F64(o), Column::I64(c)) => o.push(c[i] as f64),
                        (Column::I64(o), Column::F64(c)) => o.push(c[i] as i64),
                    }
                }
            }
            if out.len() > first {
                out.symbols.push((symbol.clone(), first..out.len()));
            }
        }
        out
    }

    /// The vectors, for a consumer that wants to own them.
    pub fn into_parts(self) -> FrameParts {
        (self.symbols, self.timestamp, self.features, self.columns)
    }

    /// An empty frame with the given feature columns.
    pub fn empty(features: &[Feature]) -> KlineFrame {
        KlineFrame {
            symbols: Vec::new(),
            timestamp: Vec::new(),
            features: features.to_vec(),
            columns: features
                .iter()
                .map(|f| {
                    if f.is_integer() {
                        Column::I64(Vec::new())
                    } else {
                        Column::F64(Vec::new())
                    }
                })
                .collect(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.timestamp.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamp.is_empty()
    }

    /// The column holding `feature`, if the frame has it.
    pub fn column(&self, feature: Feature) -> Option<&Column> {
        self.features
            .iter()
            .position(|f| *f == feature)
            .map(|i| &self.columns[i])
    }

    /// The symbol of row `row` (a binary search over the symbol runs).
    pub fn symbol_of(&self, row: usize) -> Option<&str> {
        let i = self.symbols.partition_point(|(_, r)| r.end <= row);
        self.symbols
            .get(i)
            .filter(|(_, r)| r.contains(&row))
            .map(|(s, _)| s.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_the_invariants() {
        let f = |symbols: Vec<(&str, Range<usize>)>, ts: Vec<i64>, cols: Vec<Column>| {
            KlineFrame::new(
                symbols
                    .into_iter()
                    .map(|(s, r)| (s.to_owned(), r))
                    .collect(),
                ts,
                vec![Feature::Close, Feature::TradesCount],
                cols,
            )
        };
        let good = f(
            vec![("AAA", 0..2), ("BBB", 2..3)],
            vec![1, 2, 1],
            vec![Column::F64(vec![1.0, 2.0, 3.0]), Column::I64(vec![4, 5, 6])],
        )
        .unwrap();
        assert_eq!(good.symbol_of(2), Some("BBB"));
        let cols = || vec![Column::F64(vec![1.0, 2.0, 3.0]), Column::I64(vec![4, 5, 6])];
        for (symbols, ts, cols, why) in [
            (vec![("AAA", 0..2)], vec![1, 2, 1], cols(), "cover 2 rows"),
            (
                vec![("BBB", 0..2), ("AAA", 2..3)],
                vec![1, 2, 1],
                cols(),
                "ascending order",
            ),
            (
                vec![("AAA", 0..2), ("BBB", 3..3)],
                vec![1, 2, 1],
                cols(),
                "do not follow",
            ),
            (
                vec![("AAA", 0..3)],
                vec![1, 1, 2],
                cols(),
                "do not increase",
            ),
            (
                vec![("AAA", 0..3)],
                vec![1, 2, 3],
                vec![Column::I64(vec![1, 2, 3]), Column::I64(vec![4, 5, 6])],
                "wrong type",
            ),
            (
                vec![("AAA", 0..3)],
                vec![1, 2, 3],
                vec![cols()[0].clone()],
                "1 columns",
            ),
        ] {
            let err = f(symbols, ts, cols).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
        let odd = good.filter_rows(|i| i != 1);
        assert_eq!(odd.timestamp(), &[1, 1]);
        assert_eq!(odd.symbols()[1], ("BBB".to_owned(), 1..2));
        let mut a = good.filter_rows(|i| i < 2);
        a.append(good.filter_rows(|i| i == 2)).unwrap();
        assert_eq!(a, good);
        assert!(
            a.clone().append(good.clone()).is_err(),
            "symbols must sort after"
        );
        let (s, t, feats, c) = good.into_parts();
        assert_eq!((s.len(), t.len(), feats.len(), c.len()), (2, 3, 2, 2));
    }

    #[test]
    fn symbol_runs_and_columns() {
        let mut f = KlineFrame::empty(&[Feature::Close, Feature::TradesCount]);
        f.symbols = vec![("AAA".into(), 0..2), ("BBB".into(), 2..3)];
        f.timestamp = vec![1, 2, 1];
        f.columns = vec![Column::F64(vec![1.0, 2.0, 3.0]), Column::I64(vec![4, 5, 6])];
        assert_eq!(f.len(), 3);
        assert_eq!(f.symbol_of(0), Some("AAA"));
        assert_eq!(f.symbol_of(1), Some("AAA"));
        assert_eq!(f.symbol_of(2), Some("BBB"));
        assert_eq!(f.symbol_of(3), None);
        assert_eq!(
            f.column(Feature::TradesCount).unwrap().get_f64(2),
            Some(6.0)
        );
        assert!(f.column(Feature::Open).is_none());
    }
}
