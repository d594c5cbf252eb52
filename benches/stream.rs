//! The stream throughput benchmark (`marketdb-bench stream`): N symbols of 1s klines,
//! S seconds of them, replayed by the loopback replay server of `marketdb-stream` as fast
//! as it can send (one combined-stream connection, every event stamped with its send time)
//! into a fresh database by a [`Streamer`] with its default batching. Measured: closed
//! bars committed per second from the first frame to the last commit, and the event-to-
//! commit latency (p50, p99, max) the streamer reports. The server shares the process and
//! its two cores, so the figures are a floor for what one machine can take.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use marketdb::fetch::Market;
use marketdb::stream::replay::{ReplayServer, Step};
use marketdb::stream::{StreamConfig, Streamer, Subscription};
use marketdb::{AsyncMarketDB, Freq, Kline};

const USAGE: &str = "usage: marketdb-bench stream [--symbols N] [--seconds S] [--paced] [--out DIR]

  --symbols  streams of 1s klines, one per symbol (default 200)
  --seconds  seconds of bars per symbol (default 600: 120,000 bars for 200 symbols)
  --paced    send one second of bars per second, as the exchange does (latency at the
             real rate), instead of as fast as possible (throughput)
  --out      where stream.md and stream.json go (default target/bench)";

/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200_000;

pub fn main(args: &[String]) -> Result<()> {
    let (mut symbols, mut seconds, mut out) = (200usize, 600i64, "target/bench".to_owned());
    let mut paced = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--symbols" => symbols = value("--symbols")?.parse().context("--symbols")?,
            "--seconds" => seconds = value("--seconds")?.parse().context("--seconds")?,
            "--out" => out = value("--out")?,
            "--paced" => paced = true,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if symbols == 0 || symbols > 1024 || seconds <= 0 {
        bail!("--symbols must be 1..=1024 (one connection) and --seconds positive");
    }
    let out = Path::new(&out);
    let tmp = out.join("tmp-stream");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(measure(symbols, seconds, paced, &tmp));
    let _ = fs::remove_dir_all(&tmp);
    let r = result?;
    let bars = symbols as i64 * seconds;
    let rate = r.stored as f64 / r.elapsed.as_secs_f64();
    let ms = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    let mode = if paced {
        "paced, 1 s of bars per s"
    } else {
        "as fast as possible"
    };
    let md = format!(
        "| streams | sent | bars | elapsed s | bars/s | lag p50 ms | lag p99 ms | lag max ms | commits |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|\n\
         | {symbols} x 1s | {mode} | {bars} | {:.2} | {rate:.0} | {} | {} | {} | {} |\n",
        r.elapsed.as_secs_f64(),
        ms(r.p50),
        ms(r.p99),
        ms(r.max),
        r.commits
    );
    println!("\n{md}");
    if r.stored != bars as u64 {
        eprintln!("warning: {} bars stored of {bars} sent", r.stored);
    }
    let json = serde_json::json!({
        "command": format!(
            "cargo xtask bench stream --symbols {symbols} --seconds {seconds}{}",
            if paced { " --paced" } else { "" }
        ),
        "paced": paced,
        "streams": symbols, "bars_sent": bars, "bars_stored": r.stored,
        "elapsed_s": r.elapsed.as_secs_f64(), "bars_per_s": rate,
        "lag_p50_ms": r.p50, "lag_p99_ms": r.p99, "lag_max_ms": r.max, "commits": r.commits,
    });
    fs::write(out.join("stream.md"), md)?;
    fs::write(
        out.join("stream.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    println!(
        "wrote {} and {}",
        out.join("stream.md").display(),
        out.join("stream.json").display()
    );
    Ok(())
}

struct Measured {
    stored: u64,
    elapsed: Duration,
    p50: Option<i64>,
    p99: Option<i64>,
    max: Option<i64>,
    commits: u64,
}

async fn measure(symbols: usize, seconds: i64, paced: bool, dir: &Path) -> Result<Measured> {
    let names: Vec<String> = (0..symbols).map(|i| format!("SYM{i:04}USDT")).collect();
    // Generated before the clock starts; interleaved by time, as the exchange sends them.
    let mut bars = Vec::with_capacity(symbols * seconds as usize);
    for t in 0..seconds {
        for (i, s) in names.iter().enumerate() {
            let p = 100.0 + i as f64 + (t % 97) as f64 * 0.01;
            bars.push((
                Kline {
                    symbol: s.clone(),
                    open_time: T0 + t * 1000,
                    open: p,
                    high: p + 0.05,
                    low: p - 0.05,
                    close: p + 0.01,
                    volume: 1.0 + (t % 13) as f64,
                    close_time: T0 + t * 1000 + 999,
                    quote_volume: p * (1.0 + (t % 13) as f64),
                    trades_count: 5 + t % 7,
                    taker_buy_volume: 0.5,
                    taker_buy_quote_volume: 0.5 * p,
                },
                Freq::S1,
                true,
            ));
        }
    }
    let mut script = Vec::new();
    if paced {
        for second in bars.chunks(symbols) {
            script.push(Step::Klines(second.to_vec()));
            script.push(Step::Sleep(Duration::from_secs(1)));
        }
    } else {
        script.push(Step::Klines(bars));
    }
    script.push(Step::PingForPong);
    let server = ReplayServer::start(vec![script]).await?;
    let db = AsyncMarketDB::open(dir.join("market.db")).await?;
    let subs = names
        .iter()
        .map(|s| Subscription {
            symbol: s.clone(),
            freq: Freq::S1,
        })
        .collect();
    let mut config = StreamConfig::new(Market::Spot, subs);
    config.ws_base = server.url();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let run = tokio::spawn(Streamer::new(db.clone(), config, None).run(
        async {
            let _ = stop_rx.await;
        },
        |_| {},
    ));
    // The pong comes after the streamer has read every bar; the stop then commits the rest.
    if !server.wait_finished(1, Duration::from_secs(3600)).await {
        bail!("the replay did not finish within an hour");
    }
    let _ = stop_tx.send(());
    let report = run.await??;
    let elapsed = started.elapsed();
    db.close().await;
    Ok(Measured {
        stored: report.bars_stored,
        elapsed,
        p50: report.lag_p50_ms,
        p99: report.lag_p99_ms,
        max: report.lag_max_ms,
        commits: report.commits,
    })
}
