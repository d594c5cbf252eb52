//! The input of the torture harness: Binance Vision style daily 1m kline files, one per
//! symbol (`T00USDT-1m-2024-01-01.csv` ...), without header, 12 columns, every row valid
//! and the content fixed by a seeded [`Rng`] per symbol. It writes files only; it knows
//! nothing of marketdb's parser beyond the published column order.

use std::{fs, path::Path};

use anyhow::{Context, Result};

use super::{BARS, JAN1, Rng, SYMBOLS, symbol};

/// Formats `v` units of `10^-d` as a plain decimal.
fn fixed(v: u64, d: u32) -> String {
    let p = 10u64.pow(d);
    format!("{}.{:0w$}", v / p, v % p, w = d as usize)
}

/// Writes one Binance Vision 1m kline file per symbol for 2024-01-01 (no header, 12
/// columns), every row valid: high >= max(open, close), 0 < low <= min(open, close),
/// volumes > 0, taker buy volumes within the totals.
pub fn write(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    for i in 0..SYMBOLS {
        let mut rng = Rng::new(1000 + i as u64);
        // Prices in cents, volumes in 1/1000, quote volumes in 1/100000.
        let mut price = 100_000 + 13_700 * i as u64;
        let mut csv = String::with_capacity(160 * BARS as usize);
        for m in 0..BARS as i64 {
            let open = price;
            let close = (open + rng.range(0, 100)).saturating_sub(50).max(100);
            let high = open.max(close) + rng.range(0, 30);
            let low = (open.min(close) - rng.range(0, 30)).max(1);
            let vol = rng.range(1_000, 50_000);
            let quote = vol * (open + close) / 2;
            let frac = rng.range(10, 90);
            let t = JAN1 + m * 60_000;
            csv.push_str(&format!(
                "{t},{},{},{},{},{},{},{},{},{},{},0\n",
                fixed(open, 2),
                fixed(high, 2),
                fixed(low, 2),
                fixed(close, 2),
                fixed(vol, 3),
                t + 59_999,
                fixed(quote, 5),
                rng.range(1, 500),
                fixed(vol * frac / 100, 3),
                fixed(quote * frac / 100, 5),
            ));
            price = close;
        }
        let path = dir.join(format!("{}-1m-2024-01-01.csv", symbol(i)));
        fs::write(&path, csv).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rows_are_valid_klines() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join("T07USDT-1m-2024-01-01.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), BARS as usize);
        for (m, l) in lines.iter().enumerate() {
            let c: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            assert_eq!(c.len(), 12);
            assert_eq!(c[0] as i64, JAN1 + m as i64 * 60_000);
            assert_eq!(c[6] as i64, c[0] as i64 + 59_999);
            assert!(
                c[2] >= c[1].max(c[4]) && c[3] <= c[1].min(c[4]) && c[3] > 0.0,
                "{l}"
            );
            assert!(
                c[5] > 0.0 && c[7] > 0.0 && c[9] <= c[5] && c[10] <= c[7],
                "{l}"
            );
        }
    }
}
