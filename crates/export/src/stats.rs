//! Summary statistics per symbol and feature, labelled (the Python original lost the
//! labels): count, mean, std (sample, ddof = 1, like pandas), min, 25%, 50%, 75% (linear
//! interpolation, like pandas/numpy) and max, over the exported bars, NaN values skipped.
//! Written as a long CSV `symbol,statistic,<features>` with eight rows per symbol in that
//! order. Keeps one symbol's values in memory at a time (8 bytes x bars x features).

use std::path::PathBuf;

use marketdb_model::Feature;
use serde::Serialize;

use crate::{
    Column, Result,
    atomic::Dest,
    csv::{push_f64, push_i64},
    plan::Plan,
    table::Table,
};

/// The statistic labels in output order.
pub const STATISTICS: [&str; 8] = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"];

/// pandas-style `describe()` of one feature.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Describe {
    pub count: u64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub q25: f64,
    pub q50: f64,
    pub q75: f64,
    pub max: f64,
}

impl Describe {
    /// Describes `values` (NaN skipped); the slice is sorted in place.
    pub fn of(values: &mut Vec<f64>) -> Describe {
        values.retain(|v| !v.is_nan());
        values.sort_unstable_by(f64::total_cmp);
        let n = values.len();
        if n == 0 {
            return Describe {
                count: 0,
                mean: f64::NAN,
                std: f64::NAN,
                min: f64::NAN,
                q25: f64::NAN,
                q50: f64::NAN,
                q75: f64::NAN,
                max: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n < 2 {
            f64::NAN
        } else {
            (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Describe {
            count: n as u64,
            mean,
            std,
            min: values[0],
            q25: quantile(values, 0.25),
            q50: quantile(values, 0.5),
            q75: quantile(values, 0.75),
            max: values[n - 1],
        }
    }

    fn get(&self, i: usize) -> f64 {
        [
            self.count as f64,
            self.mean,
            self.std,
            self.min,
            self.q25,
            self.q50,
            self.q75,
            self.max,
        ][i]
    }
}

/// Linear-interpolation quantile of sorted, non-empty `v` (numpy's default method).
pub(crate) fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let t = pos - lo as f64;
    let (a, b) = (v[lo], v[hi]);
    // numpy's _lerp: exact at both ends.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// Statistics of one symbol.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SymbolStats {
    pub symbol: String,
    /// Bars seen.
    pub bars: u64,
    /// One entry per exported feature, in feature order.
    pub features: Vec<(Feature, Describe)>,
}

/// What a statistics export wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatsReport {
    /// Whether an existing regular file was replaced.
    pub replaced: bool,
    /// The CSV written.
    pub path: PathBuf,
    /// The statistics, per symbol in order.
    pub symbols: Vec<SymbolStats>,
}

/// Collects one symbol at a time and writes the long CSV.
#[derive(Debug)]
pub(crate) struct StatsWriter {
    path: PathBuf,
    dest: Option<Dest>,
    fsync: bool,
    /// False for statistics kept in memory only: no file, no CSV.
    write: bool,
    features: Vec<Feature>,
    current: Option<(String, u64, Vec<Vec<f64>>)>,
    done: Vec<SymbolStats>,
}

impl StatsWriter {
    pub(crate) fn new(dest: Dest, plan: &Plan, fsync: bool) -> Result<StatsWriter> {
        Ok(StatsWriter {
            path: dest.label(),
            dest: Some(dest),
            fsync,
            write: true,
            features: plan.features.clone(),
            current: None,
            done: Vec::new(),
        })
    }

    /// A writer that only computes: [`Self::finish`] returns the statistics, writes nothing.
    pub(crate) fn in_memory(plan: &Plan) -> StatsWriter {
        StatsWriter {
            path: PathBuf::new(),
            dest: None,
            fsync: false,
            write: false,
            features: plan.features.clone(),
            current: None,
            done: Vec::new(),
        }
    }

    fn close_symbol(&mut self) {
        if let Some((symbol, bars, mut values)) = self.current.take() {
            let features = self
                .features
                .iter()
                .zip(values.iter_mut())
                .map(|(f, v)| (*f, Describe::of(v)))
                .collect();
            self.done.push(SymbolStats {
                symbol,
                bars,
                features,
            });
        }
    }

    /// Adds a table's rows (symbols arrive one after the other).
    pub(crate) fn write_table(&mut self, t: &Table) {
        for (sym, rows) in &t.symbols {
            if self.current.as_ref().is_none_or(|(s, _, _)| s != sym) {
                self.close_symbol();
                self.current = Some((sym.clone(), 0, vec![Vec::new(); self.features.len()]));
            }
            let Some((_, bars, values)) = self.current.as_mut() else {
                continue;
            };
            *bars += rows.len() as u64;
            for (col, vals) in t.columns.iter().zip(values.iter_mut()) {
                match col {
                    Column::F64(v) => vals.extend_from_slice(&v[rows.clone()]),
                    Column::I64(v) => vals.extend(v[rows.clone()].iter().map(|x| *x as f64)),
                }
            }
        }
    }

    pub(crate) fn finish(mut self) -> Result<StatsReport> {
        self.close_symbol();
        if !self.write {
            return Ok(StatsReport {
                replaced: false,
                path: self.path,
                symbols: self.done,
            });
        }
        let mut out = b"symbol,statistic".to_vec();
        for f in &self.features {
            out.push(b',');
            out.extend_from_slice(f.short().as_bytes());
        }
        out.push(b'\n');
        for s in &self.done {
            for (i, label) in STATISTICS.iter().enumerate() {
                out.extend_from_slice(s.symbol.as_bytes());
                out.push(b',');
                out.extend_from_slice(label.as_bytes());
                for (_, d) in &s.features {
                    out.push(b',');
                    if i == 0 {
                        push_i64(&mut out, d.count as i64);
                    } else {
                        push_f64(&mut out, d.get(i));
                    }
                }
                out.push(b'\n');
            }
        }
        let Some(dest) = self.dest.take() else {
            return Err(crate::Error::WriterStopped { path: self.path });
        };
        let mut f = dest.open()?;
        f.write_all(&out)?;
        f.commit(self.fsync)?;
        Ok(StatsReport {
            replaced: false,
            path: self.path,
            symbols: self.done,
        })
    }
}

#[cfg(test)]
mod tests {
    use marketdb_model::time::parse_ymd;
    use marketdb_output::OutputGate;

    use super::*;
    use crate::table::tests::{frame, plan};

    #[test]
    fn describe_matches_pandas() {
        // pandas.Series([1, 2, 3, 4, 10, nan]).describe()
        let d = Describe::of(&mut vec![4.0, 1.0, f64::NAN, 3.0, 10.0, 2.0]);
        assert_eq!(d.count, 5);
        assert_eq!(d.mean, 4.0);
        assert!((d.std - 3.535_533_905_932_737_8).abs() < 1e-15);
        assert_eq!(
            (d.min, d.q25, d.q50, d.q75, d.max),
            (1.0, 2.0, 3.0, 4.0, 10.0)
        );
        let d = Describe::of(&mut vec![1.0, 2.0]);
        assert_eq!((d.q25, d.q50, d.q75), (1.25, 1.5, 1.75));
        let d = Describe::of(&mut vec![7.0]);
        assert_eq!(d.count, 1);
        assert!(d.std.is_nan());
        assert_eq!(d.q75, 7.0);
        assert!(Describe::of(&mut vec![]).mean.is_nan());
    }

    #[test]
    fn labelled_long_csv() {
        let dir = tempfile::tempdir().unwrap();
        let d = parse_ymd(2024, 1, 1).unwrap();
        let p = plan(vec![Feature::Close, Feature::TradesCount]);
        let mut w = StatsWriter::new(
            Dest::File(OutputGate::new(), dir.path().join("s.csv")),
            &p,
            false,
        )
        .unwrap();
        let t1 = Table::from_frame(
            &p,
            frame(&[
                ("AAA", d, 1.0, 2.0, 1.0, 1.0, 3),
                ("BBB", d, 1.0, 5.0, 1.0, 1.0, 1),
            ]),
        );
        let t2 = Table::from_frame(&p, frame(&[("BBB", d + 3_600_000, 1.0, 7.0, 1.0, 1.0, 2)]));
        w.write_table(&t1);
        w.write_table(&t2);
        let rep = w.finish().unwrap();
        assert_eq!(rep.symbols.len(), 2);
        assert_eq!(rep.symbols[1].bars, 2);
        let text = std::fs::read_to_string(dir.path().join("s.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "symbol,statistic,cls,tnum");
        assert_eq!(lines[1], "AAA,count,1,1");
        assert_eq!(lines[3], "AAA,std,,");
        assert_eq!(lines[9], "BBB,count,2,2");
        assert_eq!(lines[10], "BBB,mean,6.0,1.5");
        assert_eq!(lines[16], "BBB,max,7.0,2.0");
        assert_eq!(lines.len(), 17);
    }
}
