//! `marketdb stream`: closed klines from Binance WebSocket streams into the database until
//! `--for` has passed or SIGINT/SIGTERM arrives; either way every bar received is committed
//! and the command exits 0 (a second signal during that commit exits 130 at once: SQLite
//! keeps the transactions whole). A report line (or a JSON object) every `--report-secs`
//! and at the end.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use marketdb_fetch::{Market, RestClient, RestConfig};
use marketdb_model::Freq;
use marketdb_stream::{StreamConfig, StreamReport, Streamer, plan, summary};
use serde_json::json;

use super::download::MarketArg;
use super::{Global, args, usage};

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Binance market
    #[arg(long, value_enum, default_value = "spot")]
    pub market: MarketArg,
    /// Symbols (comma- or space-separated)
    #[arg(long, num_args = 1.., value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// Kline intervals (comma-separated), one stream per symbol and interval
    #[arg(long, num_args = 1.., value_delimiter = ',', default_value = "1m", value_parser = args::freq)]
    pub freq: Vec<Freq>,
    /// WebSocket base URL (default: the market's, e.g. wss://fstream.binance.com for um)
    #[arg(long)]
    pub ws_url: Option<String>,
    /// REST API base URL for backfills (default: the market's)
    #[arg(long)]
    pub rest_url: Option<String>,
    /// Stop after this long (e.g. 90s, 30m, 12h, 7d); default: until SIGINT or SIGTERM
    #[arg(long = "for", value_parser = duration)]
    pub run_for: Option<Duration>,
    /// Do not fill holes from the REST API (they are logged and `check` shows them)
    #[arg(long)]
    pub no_backfill: bool,
    /// Longest span a hole is backfilled over (e.g. 6h, 24h, 7d); an older part is logged
    /// with the `download` command that fills it
    #[arg(long, default_value = "24h", value_parser = duration)]
    pub max_backfill: Duration,
    /// Seconds between report lines
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub report_secs: u64,
    /// Longest a received bar waits for its commit, in ms
    #[arg(long, default_value_t = 250, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub flush_ms: u64,
    /// Commit only on the timer and the batch size, not whenever the input is drained
    #[arg(long, hide = true)]
    pub no_idle_commit: bool,
    /// Age at which a connection is replaced, in seconds
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connection_age_secs: Option<u64>,
    /// Streams per connection (default: the market's limit)
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams_per_connection: Option<u64>,
}

/// `90s`, `30m`, `12h`, `7d` or plain seconds.
fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (n, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 90s, 30m, 12h, 7d)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err(format!("{s:?}: the duration must be positive"));
    }
    Ok(Duration::from_secs(secs))
}

/// Waits for SIGINT or SIGTERM.
async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

pub async fn run(g: &Global, a: &StreamArgs) -> Result<ExitCode> {
    let market: Market = a.market.into();
    let symbols: Vec<String> = a
        .symbols
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect();
    let subs = plan::subscriptions(market, &symbols, &a.freq).map_err(|e| usage(e.to_string()))?;
    let mut config = StreamConfig::new(market, subs);
    if let Some(url) = &a.ws_url {
        config.ws_base = url.clone();
    }
    config.flush_interval = Duration::from_millis(a.flush_ms);
    config.commit_when_idle = !a.no_idle_commit;
    config.report_interval = Duration::from_secs(a.report_secs);
    config.max_backfill = a.max_backfill;
    if let Some(s) = a.max_connection_age_secs {
        config.max_connection_age = Duration::from_secs(s);
    }
    if let Some(n) = a.streams_per_connection {
        config.streams_per_connection = usize::try_from(n).unwrap_or(usize::MAX);
    }
    // The URL is checked before the database is touched.
    plan::shard(
        &config.ws_base,
        &config.subscriptions,
        config.streams_per_connection,
    )
    .map_err(|e| usage(e.to_string()))?;
    let rest = if a.no_backfill {
        None
    } else {
        let mut rc = RestConfig::for_market(market);
        if let Some(url) = &a.rest_url {
            rc.base_url = url.clone();
        }
        Some(RestClient::new(market, rc).context("cannot set up the rest client")?)
    };
    let db = args::open_db(g, args::Access::Create).await?;
    let run_for = a.run_for;
    let stop = async move {
        match run_for {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => return,
                    _ = signalled() => {}
                }
            }
            None => signalled().await,
        }
        // A second signal while the received bars are committed stops at once.
        tokio::spawn(async {
            signalled().await;
            eprintln!(
                "error: interrupted again: stopped without committing the bars still waiting"
            );
            std::process::exit(130);
        });
    };
    let streamer = Streamer::new(db.clone(), config, rest);
    let report = streamer.run(stop, |r| print_report(g, r, false)).await;
    db.close().await;
    let report = report.context("stream stopped")?;
    print_report(g, &report, true);
    Ok(ExitCode::SUCCESS)
}

fn print_report(g: &Global, r: &StreamReport, last: bool) {
    if g.json {
        let mut v = json!(r);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "event".to_owned(),
                json!(if last { "stopped" } else { "report" }),
            );
            o.insert(
                "time".to_owned(),
                json!(marketdb_model::time::format_rfc3339(
                    marketdb_model::time::now_ms()
                )),
            );
        }
        outln!("{v}");
    } else if last {
        outln!("stopped: {}", summary(r));
    } else if !g.quiet {
        outln!(
            "{} {}",
            marketdb_model::time::format_rfc3339(marketdb_model::time::now_ms() / 1000 * 1000),
            summary(r)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "0s", "ten", "5w", "-3m", "1.5h"] {
            assert!(duration(bad).is_err(), "{bad:?} is refused");
        }
    }
}
