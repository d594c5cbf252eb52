//! Opens a database with a chosen pool backend using `marketdb-store` alone (the model and
//! pool types come through its re-exports), stores two bars and reads them back.
//!
//! `cargo run -p marketdb-store --example open_with_backend -- /tmp/example.db builtin`

#![allow(clippy::print_stdout)]

use marketdb_store::model::{Freq, Kline, TimeRange};
use marketdb_store::{AsyncMarketDB, Backend, StoreConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "example.db".to_owned());
    let backend: Backend = args.next().as_deref().unwrap_or("auto").parse()?;

    let mut config = StoreConfig::new(&path);
    config.pool.backend = backend;
    config.pool.readers = 2;
    let db = AsyncMarketDB::open_with(config).await?;

    let t0 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
    let bars: Vec<Kline> = (0..2)
        .map(|i| {
            let open_time = t0 + i * 60_000;
            Kline {
                symbol: "BTCUSDT".to_owned(),
                open_time,
                open: 100.0,
                high: 101.0,
                low: 99.5,
                close: 100.5,
                volume: 3.0,
                close_time: Freq::M1.close_time(open_time),
                quote_volume: 301.0,
                trades_count: 12,
                taker_buy_volume: 1.0,
                taker_buy_quote_volume: 100.0,
            }
        })
        .collect();
    db.store_data(bars, Freq::M1).await?;
    let range = TimeRange::new(t0, t0 + 120_000)?;
    let frame = db.read_data(range, Freq::M1, &[], &[], true).await?;
    println!(
        "{} bar(s) of {:?} through the {} pool",
        frame.len(),
        frame.symbols().iter().map(|(s, _)| s).collect::<Vec<_>>(),
        db.pool_kind()
    );
    db.close().await;
    Ok(())
}
