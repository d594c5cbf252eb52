//! The workloads of the quality spec ([`Workload`]: W1 = 50 symbols x 1 day of 1m, W2 = 100
//! symbols x 7 days of 1m, W3 = 200 symbols x 30 days of 1m), their deterministic data (from
//! `marketdb::synth`, generated one symbol at a time so the input never sits whole in
//! memory), the Binance Vision daily CSV files the ingest benchmarks read, and [`Scratch`],
//! a temporary folder removed on drop.
//!
//! Nothing here is timed.

use std::{
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use marketdb::{
    Freq, Kline, TimeRange,
    model::time::{DAY_MS, date_string},
    synth::{SynthSpec, klines_for, symbol_names},
};

/// Seed of every workload (any fixed value: the data only has to be the same every run).
const SEED: u64 = 20_240_101;

/// One benchmark workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    W1,
    W2,
    W3,
}

impl Workload {
    /// Every workload, smallest first (the order they run in).
    pub const ALL: [Workload; 3] = [Workload::W1, Workload::W2, Workload::W3];

    /// Parses a list of `w1`, `w2`, `w3` and `all` separated by `,` or `+` (`all+w3`,
    /// `w2,w3`). `all` is W1 and W2 only: W3 takes minutes and gigabytes, so it runs when
    /// named. The result is in size order without repeats.
    pub fn parse_list(input: &str) -> Result<Vec<Workload>> {
        let mut picked = [false; 3];
        for item in input.split([',', '+']) {
            match item.trim().to_ascii_lowercase().as_str() {
                "w1" => picked[0] = true,
                "w2" => picked[1] = true,
                "w3" => picked[2] = true,
                "all" => (picked[0], picked[1]) = (true, true),
                other => bail!(
                    "unknown workload {other:?} in {input:?} (expected w1, w2, w3 or all, \
                     joined by ',' or '+')"
                ),
            }
        }
        Ok(Workload::ALL
            .into_iter()
            .zip(picked)
            .filter_map(|(w, p)| p.then_some(w))
            .collect())
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
        }
    }

    pub fn symbol_count(self) -> usize {
        match self {
            Workload::W1 => 50,
            Workload::W2 => 100,
            Workload::W3 => 200,
        }
    }

    pub fn days(self) -> i64 {
        match self {
            Workload::W1 => 1,
            Workload::W2 => 7,
            Workload::W3 => 30,
        }
    }

    /// Bars in the workload (every symbol has every minute).
    pub fn rows(self) -> u64 {
        self.symbol_count() as u64 * self.days() as u64 * 1440
    }

    /// Repetitions by default: the median of 5 for the small W1 (runs of a tenth of a
    /// second are noisy on a shared machine), one run of the big W2 and W3.
    pub fn default_reps(self) -> usize {
        match self {
            Workload::W1 => 5,
            Workload::W2 | Workload::W3 => 1,
        }
    }

    /// Whether the run also measures the variants that only explain a figure (CSV export,
    /// reads with the mmap off, NumPy without fsync). W3 leaves them out: each costs a
    /// minute there and the W2 rows already tell what they tell.
    pub fn with_variants(self) -> bool {
        self != Workload::W3
    }

    /// `50 symbols x 1 day of 1m = 72,000 rows`.
    pub fn describe(self) -> String {
        format!(
            "{} symbols x {} day{} of 1m = {} rows",
            self.symbol_count(),
            self.days(),
            if self.days() == 1 { "" } else { "s" },
            thousands(self.rows())
        )
    }

    /// What the synthetic market generates: 1m bars from 2024-01-01 for `days()` days.
    pub fn spec(self) -> Result<SynthSpec> {
        let start = TimeRange::parse("2024-01-01", "2024-01-01")?.start;
        Ok(SynthSpec {
            symbols: symbol_names(self.symbol_count()),
            freq: Freq::M1,
            range: TimeRange::new(start, start + self.days() * DAY_MS)?,
            seed: SEED,
        })
    }
}

/// `1008000` as `1,008,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The bars of one symbol (untimed generation, deterministic).
pub fn bars(spec: &SynthSpec, symbol: &str) -> Vec<Kline> {
    klines_for(spec, symbol)
}

/// Appends `x` the way Binance spot files write prices and volumes: fixed 8 decimals.
fn push_decimal(line: &mut String, x: f64) {
    use std::fmt::Write as _;
    let _ = write!(line, "{x:.8}");
}

/// Writes the workload as Binance Vision daily spot kline files, one per symbol-day
/// (`{SYMBOL}-1m-{YYYY-MM-DD}.csv`, no header, 12 columns), under `dir`. Returns the files
/// in name order. Untimed.
pub fn write_vision_csvs(spec: &SynthSpec, dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = Vec::new();
    let mut line = String::with_capacity(256);
    for symbol in &spec.symbols {
        let bars = bars(spec, symbol);
        for day in bars.chunk_by(|a, b| a.open_time / DAY_MS == b.open_time / DAY_MS) {
            let Some(first) = day.first() else { continue };
            let path = dir.join(format!(
                "{symbol}-{}-{}.csv",
                spec.freq.as_str(),
                date_string(first.open_time)
            ));
            let file = fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = BufWriter::new(file);
            for k in day {
                line.clear();
                line.push_str(&k.open_time.to_string());
                for x in [k.open, k.high, k.low, k.close, k.volume] {
                    line.push(',');
                    push_decimal(&mut line, x);
                }
                line.push(',');
                line.push_str(&k.close_time.to_string());
                line.push(',');
                push_decimal(&mut line, k.quote_volume);
                line.push(',');
                line.push_str(&k.trades_count.to_string());
                for x in [k.taker_buy_volume, k.taker_buy_quote_volume] {
                    line.push(',');
                    push_decimal(&mut line, x);
                }
                line.push_str(",0\n");
                out.write_all(line.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            out.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A fresh folder under `parent`, removed (with everything in it) when dropped.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates `{parent}/{label}-{pid}-{nanos}`.
    pub fn new(parent: &Path, label: &str) -> Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!("{label}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch { path })
    }

    /// `{scratch}/{name}`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_sizes_match_the_spec() {
        assert_eq!(Workload::W1.rows(), 72_000);
        assert_eq!(Workload::W2.rows(), 1_008_000);
        assert_eq!(Workload::W3.rows(), 8_640_000);
        assert_eq!(thousands(1_008_000), "1,008,000");
        assert_eq!(thousands(72), "72");
        let spec = Workload::W1.spec().unwrap();
        assert_eq!(spec.symbols.len(), 50);
        assert_eq!(bars(&spec, &spec.symbols[0]).len(), 1440);
    }

    #[test]
    fn workload_lists() {
        use Workload::*;
        let p = |s| Workload::parse_list(s).unwrap();
        assert_eq!(p("all"), vec![W1, W2]);
        assert_eq!(p("w3"), vec![W3]);
        assert_eq!(p("all+w3"), vec![W1, W2, W3]);
        assert_eq!(p("W3, w2,w2"), vec![W2, W3]);
        assert!(Workload::parse_list("w4").is_err());
        assert!(Workload::parse_list("w1,").is_err());
    }
}
