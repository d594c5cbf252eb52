//! marketdb-synth: a deterministic synthetic market: a positive random walk of klines per
//! symbol that passes validation ([`klines_for`]), 8-hourly funding ([`funding_for`]), and
//! 5-minute open interest and long/short ratios ([`metrics_for`]), for the symbols
//! [`symbol_names`] gives (`SYN000USDT`..., names no exchange lists). Used by `marketdb demo`
//! and by the benchmark harness; the same [`SynthSpec`] always gives the same values.
//!
//! It knows nothing about storage and does no I/O.

use marketdb_model::{
    Freq, FundingRate, Kline, LongShortRatio, OpenInterest, RatioType, Records, TimeRange,
};

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    pub symbols: Vec<String>,
    pub freq: Freq,
    pub range: TimeRange,
    pub seed: u64,
}

/// SplitMix64: tiny, fast, and stable across platforms and releases.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Rounds to `dp` decimals. Dividing the rounded integer by a power of ten (instead of
/// multiplying by a step such as 0.01) gives the double nearest the decimal, so values print
/// as `875.18`, not `875.1800000000001`.
fn round_dp(x: f64, dp: i32) -> f64 {
    let m = 10f64.powi(dp);
    (x * m).round() / m
}

/// Most synthetic symbols one spec can name (`SYN000USDT` to `SYN999USDT`).
pub const MAX_SYMBOLS: usize = 1000;

/// Symbol names `SYN000USDT`, `SYN001USDT`... for `n` synthetic symbols (sorted; at most
/// [`MAX_SYMBOLS`]). No exchange lists them, so synthetic rows can never be mistaken for,
/// or overwrite, real ones.
pub fn symbol_names(n: usize) -> Vec<String> {
    (0..n.min(MAX_SYMBOLS))
        .map(|i| format!("SYN{i:03}USDT"))
        .collect()
}

/// Whether `symbol` is one [`symbol_names`] can produce.
pub fn is_synthetic(symbol: &str) -> bool {
    symbol.len() == 10
        && symbol.starts_with("SYN")
        && symbol.ends_with("USDT")
        && symbol.as_bytes()[3..6].iter().all(u8::is_ascii_digit)
}

fn symbol_seed(seed: u64, symbol: &str) -> u64 {
    // FNV-1a of the symbol mixed with the seed: stable per (seed, symbol).
    symbol.bytes().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// Klines of one symbol over the grid of `spec.range`, valid by construction.
pub fn klines_for(spec: &SynthSpec, symbol: &str) -> Vec<Kline> {
    KlineWalk::new(spec, symbol).collect()
}

/// The random walk behind [`klines_for`], one bar at a time (memory does not follow the
/// range).
struct KlineWalk {
    rng: Rng,
    symbol: String,
    freq: Freq,
    grid: Box<dyn Iterator<Item = i64> + Send>,
    price: f64,
    vol_scale: f64,
    dp: i32,
    tick: f64,
}

impl KlineWalk {
    fn new(spec: &SynthSpec, symbol: &str) -> KlineWalk {
        let mut rng = Rng(symbol_seed(spec.seed, symbol));
        let price = 10.0 + rng.uniform() * 990.0;
        let (dp, tick) = if price > 100.0 {
            (2, 0.01)
        } else {
            (4, 0.0001)
        };
        KlineWalk {
            rng,
            symbol: symbol.to_owned(),
            freq: spec.freq,
            grid: Box::new(spec.freq.grid(spec.range.start, spec.range.end_exclusive)),
            price,
            vol_scale: (spec.freq.nominal_ms() as f64 / 60_000.0).sqrt() * 0.001,
            dp,
            tick,
        }
    }
}

impl Iterator for KlineWalk {
    type Item = Kline;

    fn next(&mut self) -> Option<Kline> {
        let open_time = self.grid.next()?;
        let (rng, dp, tick, vol_scale) = (&mut self.rng, self.dp, self.tick, self.vol_scale);
        let open = round_dp(self.price, dp).max(tick);
        let close = round_dp(open * (vol_scale * rng.normal()).exp(), dp).max(tick);
        let high =
            round_dp(open.max(close) * (1.0 + vol_scale * rng.uniform()), dp).max(open.max(close));
        let low = round_dp(open.min(close) * (1.0 - vol_scale * rng.uniform()), dp)
            .min(open.min(close))
            .max(0.0);
        let volume = round_dp((3.0 + rng.normal()).exp(), 3);
        let quote_volume = round_dp(volume * (open + close) / 2.0, 4);
        let buy_share = rng.uniform();
        let taker_buy_volume = round_dp(volume * buy_share, 3).min(volume);
        let taker_buy_quote_volume = round_dp(quote_volume * buy_share, 4).min(quote_volume);
        self.price = close;
        Some(Kline {
            symbol: self.symbol.clone(),
            open_time,
            open,
            high,
            low,
            close,
            volume,
            close_time: self.freq.close_time(open_time),
            quote_volume,
            trades_count: (volume * 7.0).round() as i64 + 1,
            taker_buy_volume,
            taker_buy_quote_volume,
        })
    }
}

/// Funding events at 00:00, 08:00 and 16:00 UTC inside the range.
pub fn funding_for(spec: &SynthSpec, symbol: &str) -> Vec<FundingRate> {
    funding_walk(spec, symbol).collect()
}

fn funding_walk(spec: &SynthSpec, symbol: &str) -> impl Iterator<Item = FundingRate> + use<> {
    let mut rng = Rng(symbol_seed(spec.seed ^ 0xF, symbol));
    let symbol = symbol.to_owned();
    Freq::H8
        .grid(spec.range.start, spec.range.end_exclusive)
        .map(move |t| FundingRate {
            symbol: symbol.clone(),
            funding_time: t,
            funding_rate: round_dp(0.0001 + 0.0002 * rng.normal(), 8),
            mark_price: None,
            index_price: None,
        })
}

/// Open interest and the four long/short ratios every 5 minutes inside the range.
pub fn metrics_for(spec: &SynthSpec, symbol: &str) -> (Vec<OpenInterest>, Vec<LongShortRatio>) {
    let (mut oi, mut lsr) = (Vec::new(), Vec::new());
    for (o, ratios) in metric_walk(spec, symbol) {
        oi.push(o);
        lsr.extend(ratios);
    }
    (oi, lsr)
}

/// One 5-minute step of [`metrics_for`] at a time.
fn metric_walk(
    spec: &SynthSpec,
    symbol: &str,
) -> impl Iterator<Item = (OpenInterest, [LongShortRatio; 4])> + use<> {
    let mut rng = Rng(symbol_seed(spec.seed ^ 0x5, symbol));
    let symbol = symbol.to_owned();
    let mut level = 1e5 + rng.uniform() * 1e6;
    Freq::M5
        .grid(spec.range.start, spec.range.end_exclusive)
        .map(move |t| {
            level = (level * (0.002 * rng.normal()).exp()).max(1.0);
            let oi = OpenInterest {
                symbol: symbol.clone(),
                time: t,
                interval: Freq::M5,
                open_interest: round_dp(level, 3),
                open_interest_value: Some(round_dp(level * 50.0, 2)),
            };
            let ratios = RatioType::ALL.map(|ratio_type| {
                let r = round_dp((0.2 * rng.normal()).exp(), 6);
                let accounts = ratio_type != RatioType::TakerVol;
                LongShortRatio {
                    symbol: symbol.clone(),
                    timestamp: t,
                    period: Freq::M5,
                    ratio_type,
                    long_short_ratio: r,
                    long_account: accounts.then(|| r / (r + 1.0)),
                    short_account: accounts.then(|| 1.0 / (r + 1.0)),
                }
            });
            (oi, ratios)
        })
}

/// Everything of one symbol (klines, funding, open interest and long/short ratios) in
/// chunks of at most `chunk_rows` records, the same values as [`klines_for`],
/// [`funding_for`] and [`metrics_for`], generated as they are taken: memory follows
/// `chunk_rows`, not the range.
pub fn symbol_chunks(
    spec: &SynthSpec,
    symbol: &str,
    chunk_rows: usize,
) -> impl Iterator<Item = Records> + Send + use<> {
    let chunk = chunk_rows.max(5);
    let freq = spec.freq;
    let mut klines = KlineWalk::new(spec, symbol);
    let mut funding = funding_walk(spec, symbol);
    let mut metrics = metric_walk(spec, symbol);
    std::iter::from_fn(move || {
        let rows: Vec<Kline> = klines.by_ref().take(chunk).collect();
        if !rows.is_empty() {
            return Some(Records::Klines { freq, rows });
        }
        let rows: Vec<FundingRate> = funding.by_ref().take(chunk).collect();
        if !rows.is_empty() {
            return Some(Records::Funding(rows));
        }
        // One open-interest row and four ratios per step.
        let (mut open_interest, mut long_short_ratio) = (Vec::new(), Vec::new());
        for (o, ratios) in metrics.by_ref().take(chunk / 5) {
            open_interest.push(o);
            long_short_ratio.extend(ratios);
        }
        (!open_interest.is_empty()).then_some(Records::Metrics {
            open_interest,
            long_short_ratio,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketdb_model::validate_kline;

    fn spec(seed: u64) -> SynthSpec {
        SynthSpec {
            symbols: symbol_names(3),
            freq: Freq::M1,
            range: TimeRange::parse("2024-01-01", "2024-01-01").unwrap(),
            seed,
        }
    }

    #[test]
    fn klines_are_valid_complete_and_deterministic() {
        let s = spec(7);
        for sym in &s.symbols {
            let k = klines_for(&s, sym);
            assert_eq!(k.len(), 1440);
            for bar in &k {
                validate_kline(bar, Freq::M1).unwrap();
                for v in [bar.open, bar.high, bar.low, bar.close] {
                    let text = v.to_string();
                    let decimals = text.split('.').nth(1).map_or(0, str::len);
                    assert!(decimals <= 4, "{text} has more decimals than a price tick");
                }
            }
            assert_eq!(k, klines_for(&s, sym));
        }
        assert_ne!(
            klines_for(&s, "SYN000USDT"),
            klines_for(&spec(8), "SYN000USDT")
        );
    }

    #[test]
    fn metrics_cover_the_range() {
        let s = spec(1);
        assert_eq!(funding_for(&s, "SYN000USDT").len(), 3);
        let (oi, lsr) = metrics_for(&s, "SYN000USDT");
        assert_eq!(oi.len(), 288);
        assert_eq!(lsr.len(), 288 * 4);
    }

    #[test]
    fn chunks_hold_the_same_records_as_the_whole_vectors() {
        let mut s = spec(3);
        s.range = TimeRange::parse("2024-01-01", "2024-01-03").unwrap();
        let sym = "SYN001USDT";
        let (mut k, mut f, mut oi, mut lsr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut sizes = Vec::new();
        for chunk in symbol_chunks(&s, sym, 1000) {
            sizes.push(chunk.len());
            match chunk {
                Records::Klines { freq, rows } => {
                    assert_eq!(freq, Freq::M1);
                    k.extend(rows);
                }
                Records::Funding(rows) => f.extend(rows),
                Records::Metrics {
                    open_interest,
                    long_short_ratio,
                } => {
                    oi.extend(open_interest);
                    lsr.extend(long_short_ratio);
                }
            }
        }
        assert!(sizes.iter().all(|&n| n <= 1000), "{sizes:?}");
        assert_eq!(k.len(), 3 * 1440);
        assert_eq!(k, klines_for(&s, sym));
        assert_eq!(f, funding_for(&s, sym));
        let (whole_oi, whole_lsr) = metrics_for(&s, sym);
        assert_eq!(oi, whole_oi);
        assert_eq!(lsr, whole_lsr);
    }

    #[test]
    fn names_are_synthetic_and_recognised() {
        let names = symbol_names(MAX_SYMBOLS + 5);
        assert_eq!(names.len(), MAX_SYMBOLS);
        assert_eq!(names[0], "SYN000USDT");
        assert_eq!(names[999], "SYN999USDT");
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert!(names.iter().all(|n| is_synthetic(n)));
        for real in [
            "BTCUSDT",
            "SYNUSDT",
            "SYN00AUSDT",
            "SYN0000USDT",
            "SYN000BUSD",
            "",
        ] {
            assert!(!is_synthetic(real), "{real}");
        }
    }
}
