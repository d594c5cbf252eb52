//! [`KlineFrame`]: the columnar result of a kline read. Rows are ordered by
//! (symbol, timestamp); each symbol's rows are one contiguous run, so there is no per-row
//! symbol string. One `Vec` per requested feature, in request order.

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
    pub symbols: Vec<(String, Range<usize>)>,
    /// Open time (ms UTC) of every row.
    pub timestamp: Vec<i64>,
    /// The features held, in request order; `columns[i]` holds `features[i]`.
    pub features: Vec<Feature>,
    pub columns: Vec<Column>,
}

impl KlineFrame {
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
