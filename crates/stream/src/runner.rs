//! The runner: connections in, one writer out. Closed bars from every connection and pages
//! from REST backfills meet in one channel; the writer validates each bar (the rules of
//! every other write) and batches them per freq. A batch is committed when the writer has
//! caught up with its input, or after `flush_interval`, or at `flush_bars` bars, whichever
//! comes first: at the exchange's pace readers see a bar milliseconds after it arrives,
//! and under a flood the transactions grow instead of the queue.
//!
//! Holes: the writer knows the last bar of every stream (from the store at start). A closed
//! bar that opens after the next expected one means bars were missed (the process was
//! down, a connection dropped, a planned rotation); with a REST client, the bars between
//! the two are asked for at once, beside the live stream. Without one, the hole is logged.
//!
//! Shutdown: when the caller's future completes, connections stop reading, every bar they
//! handed over is committed, backfills in flight get `shutdown_grace` to finish, and the
//! run returns its report.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use marketdb_fetch::{Market, RestClient};
use marketdb_model::{Freq, Kline, Validator};
use marketdb_store::AsyncMarketDB;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{MissedTickBehavior, interval_at};
use tracing::{error, info, warn};

use crate::connection::{Counters, Event, Timing, keep_open};
use crate::latency::Histogram;
use crate::plan::{Subscription, default_ws_base, shard, stream_limit};
use crate::{Error, Result};

/// How a [`Streamer`] runs.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    pub market: Market,
    /// The WebSocket base URL; [`default_ws_base`] of the market by default.
    pub ws_base: String,
    pub subscriptions: Vec<Subscription>,
    /// Streams per connection; the market's [`stream_limit`] by default.
    pub streams_per_connection: usize,
    /// Commit as soon as the writer has caught up with its input (no bar waiting in the
    /// channel): at the exchange's pace a bar is stored milliseconds after it arrives,
    /// while under a flood the batches grow by themselves up to `flush_bars`.
    pub commit_when_idle: bool,
    /// Longest a received bar waits before its commit.
    pub flush_interval: Duration,
    /// A batch this large is committed at once.
    pub flush_bars: usize,
    /// A connection this old is replaced (Binance closes them at 24 hours).
    pub max_connection_age: Duration,
    /// A connection silent this long is dead. Binance pings every 20 s (spot) or 3 min
    /// (futures), and a quiet symbol's kline stream may send nothing in between.
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// First reconnect delay, doubled per failure (with jitter) up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How often [`Streamer::run`] reports.
    pub report_interval: Duration,
    /// How long backfills in flight may finish after the shutdown.
    pub shutdown_grace: Duration,
    /// Bars held while the store fails before the run gives up.
    pub max_pending: usize,
}

impl StreamConfig {
    /// The defaults for `subscriptions` on `market`'s public endpoint.
    pub fn new(market: Market, subscriptions: Vec<Subscription>) -> StreamConfig {
        StreamConfig {
            market,
            ws_base: default_ws_base(market).to_owned(),
            subscriptions,
            streams_per_connection: stream_limit(market),
            commit_when_idle: true,
            flush_interval: Duration::from_millis(250),
            flush_bars: 2000,
            max_connection_age: Duration::from_secs(23 * 3600 + 30 * 60),
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            report_interval: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            max_pending: 1_000_000,
        }
    }
}

/// Figures of a run: totals, and the latency of the bars committed since the last report
/// (of the whole run in the final one).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StreamReport {
    pub streams: usize,
    pub connections: usize,
    /// Connections open now.
    pub connected: u64,
    /// Closed bars received from the streams.
    pub bars_streamed: u64,
    /// Bars committed (streamed and backfilled; a bar received twice before its commit
    /// counts once).
    pub bars_stored: u64,
    /// Bars received from REST backfills (committed with the streamed ones).
    pub bars_backfilled: u64,
    /// Open-bar updates received and not stored.
    pub updates: u64,
    /// Frames that were not well-formed stream messages.
    pub malformed: u64,
    /// Bars refused by validation or for a stream not asked for.
    pub invalid: u64,
    /// Holes seen; holes filled from REST; backfills that failed or were stopped at
    /// shutdown (their holes remain, and are logged).
    pub holes: u64,
    pub backfills: u64,
    pub backfill_failures: u64,
    /// Reconnects after a lost connection, and planned ones before the age limit.
    pub reconnects: u64,
    pub rotations: u64,
    pub commits: u64,
    /// Event time to commit, ms; `None` when no streamed bar was committed.
    pub lag_p50_ms: Option<i64>,
    pub lag_p99_ms: Option<i64>,
    pub lag_max_ms: Option<i64>,
}

/// Streams closed klines into a store.
#[derive(Debug)]
pub struct Streamer {
    db: AsyncMarketDB,
    config: StreamConfig,
    rest: Option<Arc<RestClient>>,
}

/// The writer's state.
struct Writer {
    db: AsyncMarketDB,
    validator: Validator,
    /// Last open time of each stream, `None` before its first bar.
    last: HashMap<(String, Freq), Option<i64>>,
    pending: BTreeMap<Freq, Vec<Kline>>,
    pending_bars: usize,
    /// Event times of the pending streamed bars.
    pending_events: Vec<i64>,
    window: Histogram,
    whole: Histogram,
    report: StreamReport,
}

impl Streamer {
    /// A streamer over `db`; `rest` (the same market's client) fills holes, `None` only
    /// logs them.
    pub fn new(db: AsyncMarketDB, config: StreamConfig, rest: Option<RestClient>) -> Streamer {
        Streamer {
            db,
            config,
            rest: rest.map(Arc::new),
        }
    }

    /// Runs until `shutdown` completes, calling `on_report` every `report_interval`;
    /// returns the final report. Fails on a bad configuration, a store that cannot be read
    /// at start, or a store that keeps failing writes (after `max_pending` held bars or at
    /// the final commit).
    pub async fn run<F>(
        self,
        shutdown: F,
        mut on_report: impl FnMut(&StreamReport),
    ) -> Result<StreamReport>
    where
        F: Future<Output = ()>,
    {
        let c = &self.config;
        if c.flush_bars == 0 || c.flush_interval.is_zero() {
            return Err(Error::Config(
                "the flush interval and batch size must be positive".to_owned(),
            ));
        }
        if c.max_connection_age.is_zero() || c.idle_timeout.is_zero() || c.report_interval.is_zero()
        {
            return Err(Error::Config(
                "the connection age limit, idle timeout and report interval must be positive"
                    .to_owned(),
            ));
        }
        let shards = shard(&c.ws_base, &c.subscriptions, c.streams_per_connection)?;
        let mut writer = Writer::start(&self.db, &c.subscriptions).await?;
        writer.report.streams = c.subscriptions.len();
        writer.report.connections = shards.len();
        info!(
            "streaming {} klines streams over {} connection(s)",
            c.subscriptions.len(),
            shards.len()
        );

        // Live bars and backfill pages have channels of their own: pages (up to 1500
        // bars each) are few at a time, and a flood of live bars cannot starve them.
        let (tx, mut rx) = mpsc::channel::<Event>(c.flush_bars.clamp(1024, 65_536));
        let (page_tx, mut page_rx) = mpsc::channel::<Event>(4);
        let (stop_tx, stop_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let timing = Timing {
            connect_timeout: c.connect_timeout,
            idle_timeout: c.idle_timeout,
            max_age: c.max_connection_age,
            backoff: c.backoff,
            max_backoff: c.max_backoff,
        };
        let mut connections = JoinSet::new();
        for s in shards {
            connections.spawn(keep_open(
                s,
                timing.clone(),
                tx.clone(),
                Arc::clone(&counters),
                stop_rx.clone(),
            ));
        }
        let mut backfills = Backfills::new(self.rest.clone(), page_tx);
        // Both first ticks one period from now (a plain `interval` ticks at once).
        let start = tokio::time::Instant::now();
        let mut flush_tick = interval_at(start + c.flush_interval, c.flush_interval);
        flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut report_tick = interval_at(start + c.report_interval, c.report_interval);
        report_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = std::pin::pin!(shutdown);
        let mut shutdown = shutdown;

        // The timers come before the channels so that a flood cannot hold off reports.
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(done) = backfills.tasks.join_next_with_id(), if !backfills.tasks.is_empty() => {
                    count_backfill(done, &mut backfills.holes, &mut writer.report);
                }
                _ = flush_tick.tick() => writer.flush(c.max_pending).await?,
                _ = report_tick.tick() => {
                    writer.count(&counters);
                    on_report(&writer.report);
                    info!("{}", summary(&writer.report));
                    writer.window.clear();
                }
                Some(page) = page_rx.recv() => {
                    writer.take(page);
                    if writer.pending_bars >= c.flush_bars {
                        writer.flush(c.max_pending).await?;
                    }
                }
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        if let Some(hole) = writer.take(ev) {
                            backfills.start(hole);
                        }
                        if writer.pending_bars >= c.flush_bars
                            || (c.commit_when_idle && rx.is_empty() && page_rx.is_empty())
                        {
                            writer.flush(c.max_pending).await?;
                        }
                    }
                    None => break,
                },
            }
        }

        // Shutdown. Connections stop reading; until they have all ended, the channel is
        // still drained (a connection blocked on a full channel would never end).
        info!("stopping: committing the bars received");
        let _ = stop_tx.send(true);
        loop {
            tokio::select! {
                biased;
                r = connections.join_next() => if r.is_none() { break },
                Some(ev) = rx.recv() => {
                    // Holes are not chased any more: the run is ending.
                    if let Some(hole) = writer.take(ev) {
                        warn!("{}", hole.left());
                    }
                    if writer.pending_bars >= c.flush_bars {
                        writer.flush(c.max_pending).await?;
                    }
                }
            }
        }
        drop(tx);
        while let Some(ev) = rx.recv().await {
            if let Some(hole) = writer.take(ev) {
                warn!("{}", hole.left());
            }
        }
        // Backfills in flight get the grace period, checked first so that a stream of
        // pages cannot stretch it.
        let Backfills {
            mut tasks,
            mut holes,
            sender,
            ..
        } = backfills;
        drop(sender);
        let grace = tokio::time::sleep(c.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                biased;
                _ = &mut grace, if !tasks.is_empty() => {
                    for hole in holes.values() {
                        warn!("{} (its backfill was stopped at shutdown)", hole.left());
                    }
                    writer.report.backfill_failures += tasks.len() as u64;
                    tasks.abort_all();
                    // Aborted tasks may still have sent a page; it is taken below.
                    while tasks.join_next().await.is_some() {}
                    holes.clear();
                }
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    count_backfill(done, &mut holes, &mut writer.report);
                }
                page = page_rx.recv() => match page {
                    Some(page) => {
                        writer.take(page);
                        if writer.pending_bars >= c.flush_bars {
                            writer.flush(c.max_pending).await?;
                        }
                    }
                    None => break,
                },
            }
        }
        while let Some(done) = tasks.join_next_with_id().await {
            count_backfill(done, &mut holes, &mut writer.report);
        }
        writer.flush(0).await?;
        writer.count(&counters);
        writer.report.connected = 0;
        let r = &mut writer.report;
        r.lag_p50_ms = writer.whole.percentile(0.5);
        r.lag_p99_ms = writer.whole.percentile(0.99);
        r.lag_max_ms = writer.whole.max();
        info!("stopped: {}", summary(r));
        Ok(writer.report)
    }
}

/// At most this many holes are asked from REST at once; the others wait their turn.
const BACKFILLS_AT_ONCE: usize = 4;

/// The REST backfills of a run.
struct Backfills {
    rest: Option<Arc<RestClient>>,
    sender: mpsc::Sender<Event>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<bool>,
    /// The hole of each running task, to name the ones a shutdown stops.
    holes: HashMap<tokio::task::Id, Hole>,
}

/// Counts a finished backfill: `backfills` when it filled its hole, `backfill_failures`
/// otherwise (its hole was logged by the task).
fn count_backfill(
    done: std::result::Result<(tokio::task::Id, bool), tokio::task::JoinError>,
    holes: &mut HashMap<tokio::task::Id, Hole>,
    report: &mut StreamReport,
) {
    match done {
        Ok((id, filled)) => {
            holes.remove(&id);
            if filled {
                report.backfills += 1;
            } else {
                report.backfill_failures += 1;
            }
        }
        Err(e) => {
            holes.remove(&e.id());
            report.backfill_failures += 1;
        }
    }
}

impl Backfills {
    fn new(rest: Option<Arc<RestClient>>, sender: mpsc::Sender<Event>) -> Backfills {
        Backfills {
            rest,
            sender,
            permits: Arc::new(Semaphore::new(BACKFILLS_AT_ONCE)),
            tasks: JoinSet::new(),
            holes: HashMap::new(),
        }
    }

    /// Asks REST for `hole`'s bars (page by page, each page into the channel), beside the
    /// live stream; without a client, logs the hole.
    fn start(&mut self, hole: Hole) {
        let Some(rest) = &self.rest else {
            warn!("{} (backfill is off)", hole.left());
            return;
        };
        let rest = Arc::clone(rest);
        let tx = self.sender.clone();
        let permits = Arc::clone(&self.permits);
        let task_hole = hole.clone();
        let handle = self.tasks.spawn(async move {
            let hole = task_hole;
            let Ok(_permit) = permits.acquire_owned().await else {
                return false;
            };
            let now = marketdb_model::time::now_ms();
            let mut next = hole.from;
            while next < hole.to {
                let page = match rest
                    .klines_page(&hole.symbol, hole.freq, next, hole.to, now)
                    .await
                {
                    Ok(p) => p,
                    Err(source) => {
                        let e = Error::Backfill {
                            symbol: hole.symbol.clone(),
                            freq: hole.freq.to_string(),
                            source: Box::new(source),
                        };
                        warn!("{e}; {}", hole.left());
                        return false;
                    }
                };
                let Some(last) = page.last().map(|k| k.open_time) else {
                    break;
                };
                next = hole.freq.close_time(last).saturating_add(1);
                if tx
                    .send(Event::Backfill {
                        bars: page,
                        freq: hole.freq,
                    })
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            info!("backfilled {}", hole.range());
            true
        });
        self.holes.insert(handle.id(), hole);
    }
}

/// Bars of one stream not received: open times in `[from, to)`.
#[derive(Clone, Debug)]
struct Hole {
    symbol: String,
    freq: Freq,
    from: i64,
    to: i64,
}

impl Hole {
    /// "`symbol` `freq` from `from` to `to`".
    fn range(&self) -> String {
        format!(
            "{} {} from {} to {}",
            self.symbol,
            self.freq,
            marketdb_model::time::format_rfc3339(self.from),
            marketdb_model::time::format_rfc3339(self.to)
        )
    }

    fn left(&self) -> String {
        format!("hole in {} left unfilled", self.range())
    }
}

impl Writer {
    async fn start(db: &AsyncMarketDB, subs: &[Subscription]) -> Result<Writer> {
        let mut last = HashMap::with_capacity(subs.len());
        for s in subs {
            let range = db.get_time_range(&s.symbol, s.freq).await?;
            last.insert((s.symbol.clone(), s.freq), range.map(|(_, end)| end));
        }
        Ok(Writer {
            db: db.clone(),
            validator: db.validator(),
            last,
            pending: BTreeMap::new(),
            pending_bars: 0,
            pending_events: Vec::new(),
            window: Histogram::default(),
            whole: Histogram::default(),
            report: StreamReport::default(),
        })
    }

    /// Takes one event into the batch; returns the hole a streamed bar reveals.
    fn take(&mut self, ev: Event) -> Option<Hole> {
        match ev {
            Event::Bar {
                kline,
                freq,
                event_time,
            } => {
                self.report.bars_streamed += 1;
                let Some(last) = self.last.get_mut(&(kline.symbol.clone(), freq)) else {
                    self.report.invalid += 1;
                    warn!(
                        "a {} {freq} bar arrived on a stream that was not asked for; skipped",
                        kline.symbol
                    );
                    return None;
                };
                if let Err(e) = self.validator.kline(&kline, freq) {
                    self.report.invalid += 1;
                    warn!("streamed bar refused: {e}");
                    return None;
                }
                let hole = last
                    .and_then(|prev| missing_between(freq, prev, kline.open_time))
                    .map(|(from, to)| Hole {
                        symbol: kline.symbol.clone(),
                        freq,
                        from,
                        to,
                    });
                if last.is_none_or(|prev| kline.open_time > prev) {
                    *last = Some(kline.open_time);
                }
                if hole.is_some() {
                    self.report.holes += 1;
                }
                self.pending_events.push(event_time);
                self.push(kline, freq);
                hole
            }
            Event::Backfill { bars, freq } => {
                for k in bars {
                    match self.validator.kline(&k, freq) {
                        Ok(()) => {
                            self.report.bars_backfilled += 1;
                            self.push(k, freq);
                        }
                        Err(e) => {
                            self.report.invalid += 1;
                            warn!("backfilled bar refused: {e}");
                        }
                    }
                }
                None
            }
        }
    }

    fn push(&mut self, k: Kline, freq: Freq) {
        self.pending.entry(freq).or_default().push(k);
        self.pending_bars += 1;
    }

    /// Commits the pending bars, one transaction per freq. A failed commit keeps them for
    /// the next try, until more than `max_pending` wait (0: this is the last try).
    async fn flush(&mut self, max_pending: usize) -> Result<()> {
        // The validator's clock moves with the run, commits or not.
        self.validator = self.db.validator();
        if self.pending_bars == 0 {
            return Ok(());
        }
        let freqs: Vec<Freq> = self.pending.keys().copied().collect();
        for freq in freqs {
            let Some(mut bars) = self.pending.remove(&freq) else {
                continue;
            };
            // A bar received twice (a replayed message, a backfill overlapping the stream)
            // is one upsert: the store refuses a batch holding a bar twice.
            let before = bars.len();
            keep_last_of_each(&mut bars);
            self.pending_bars -= before - bars.len();
            let n = bars.len();
            // The rows go to the writer thread; a copy stays for a retry.
            match self.db.store_data(bars.clone(), freq).await {
                Ok(_) => {
                    self.pending_bars -= n;
                    self.report.bars_stored += n as u64;
                    self.report.commits += 1;
                }
                Err(e) => {
                    self.pending.insert(freq, bars);
                    if self.pending_bars > max_pending {
                        error!("{} bars could not be committed: {e}", self.pending_bars);
                        return Err(Error::Unstored {
                            bars: self.pending_bars,
                            source: Box::new(e),
                        });
                    }
                    warn!("commit of {n} streamed {freq} bars failed, kept for the next try: {e}");
                    return Ok(());
                }
            }
        }
        let now = marketdb_model::time::now_ms();
        for t in self.pending_events.drain(..) {
            self.window.record(now.saturating_sub(t));
            self.whole.record(now.saturating_sub(t));
        }
        Ok(())
    }

    /// Copies the connections' counters and the window's latency into the report.
    fn count(&mut self, c: &Counters) {
        let r = &mut self.report;
        r.updates = c.updates.load(Ordering::Relaxed);
        r.malformed = c.malformed.load(Ordering::Relaxed);
        r.reconnects = c.reconnects.load(Ordering::Relaxed);
        r.rotations = c.rotations.load(Ordering::Relaxed);
        r.connected = c.connected.load(Ordering::Relaxed);
        r.lag_p50_ms = self.window.percentile(0.5);
        r.lag_p99_ms = self.window.percentile(0.99);
        r.lag_max_ms = self.window.max();
    }
}

/// The open times missing between a bar opening at `prev` and one opening at `open`, as
/// `[from, to)`. The open after `prev` is its close + 1 ms: calendar months and weeks
/// follow the calendar, and `3d` bars off the epoch phase are not rounded (as `next`
/// would).
fn missing_between(freq: Freq, prev: i64, open: i64) -> Option<(i64, i64)> {
    let from = freq.close_time(prev).saturating_add(1);
    (from < open).then_some((from, open))
}

/// Keeps the last received copy of each (symbol, open time), in time order.
fn keep_last_of_each(bars: &mut Vec<Kline>) {
    // Stable: copies of one bar stay in arrival order, so the last one wins.
    bars.sort_by(|a, b| (&a.symbol, a.open_time).cmp(&(&b.symbol, b.open_time)));
    let mut out: Vec<Kline> = Vec::with_capacity(bars.len());
    for k in bars.drain(..) {
        match out.last_mut() {
            Some(prev) if prev.symbol == k.symbol && prev.open_time == k.open_time => *prev = k,
            _ => out.push(k),
        }
    }
    *bars = out;
}

/// One log line of a report.
pub fn summary(r: &StreamReport) -> String {
    let lag = match (r.lag_p50_ms, r.lag_p99_ms) {
        (Some(p50), Some(p99)) => format!("lag p50 {p50} ms, p99 {p99} ms"),
        _ => "no bar committed in the interval".to_owned(),
    };
    format!(
        "{} streams, {}/{} connected, {} bars stored ({} from backfills), {lag}, {} reconnects, {} rotations, {} holes ({} filled, {} failed), {} malformed, {} refused",
        r.streams,
        r.connected,
        r.connections,
        r.bars_stored,
        r.bars_backfilled,
        r.reconnects,
        r.rotations,
        r.holes,
        r.backfills,
        r.backfill_failures,
        r.malformed,
        r.invalid
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    /// 2024-01-01T00:00:00Z, a Monday.
    const JAN1: i64 = 1_704_067_200_000;

    #[test]
    fn holes_follow_the_calendar_and_the_bar_phase() {
        assert_eq!(missing_between(Freq::M1, JAN1, JAN1 + 60_000), None);
        assert_eq!(
            missing_between(Freq::M1, JAN1, JAN1 + 180_000),
            Some((JAN1 + 60_000, JAN1 + 180_000))
        );
        // January, then March: February is missing (29 days in 2024).
        let feb1 = JAN1 + 31 * DAY;
        let mar1 = feb1 + 29 * DAY;
        assert_eq!(missing_between(Freq::Mo1, JAN1, feb1), None);
        assert_eq!(missing_between(Freq::Mo1, JAN1, mar1), Some((feb1, mar1)));
        assert_eq!(missing_between(Freq::W1, JAN1, JAN1 + 7 * DAY), None);
        // A 3d bar off the epoch's 3-day phase: the next one 3 days later is no hole.
        let off = JAN1 + DAY;
        assert_ne!(Freq::D3.floor(off), off, "the test needs an off-phase open");
        assert_eq!(missing_between(Freq::D3, off, off + 3 * DAY), None);
        assert_eq!(
            missing_between(Freq::D3, off, off + 6 * DAY),
            Some((off + 3 * DAY, off + 6 * DAY))
        );
        // An older or repeated bar is no hole.
        assert_eq!(missing_between(Freq::M1, JAN1, JAN1), None);
        assert_eq!(missing_between(Freq::M1, JAN1, JAN1 - 60_000), None);
    }

    #[test]
    fn a_bar_received_twice_is_kept_once_with_its_last_values() {
        let bar = |s: &str, t: i64, close: f64| Kline {
            symbol: s.to_owned(),
            open_time: t,
            open: 1.0,
            high: 3.0,
            low: 0.5,
            close,
            volume: 1.0,
            close_time: t + 59_999,
            quote_volume: 1.0,
            trades_count: 1,
            taker_buy_volume: 0.5,
            taker_buy_quote_volume: 0.5,
        };
        let mut v = vec![
            bar("B", 60_000, 1.0),
            bar("A", 0, 1.0),
            bar("B", 60_000, 2.0),
            bar("A", 60_000, 1.0),
            bar("B", 60_000, 2.5),
        ];
        keep_last_of_each(&mut v);
        let got: Vec<(&str, i64, f64)> = v
            .iter()
            .map(|k| (k.symbol.as_str(), k.open_time, k.close))
            .collect();
        assert_eq!(got, [("A", 0, 1.0), ("A", 60_000, 1.0), ("B", 60_000, 2.5)]);
    }
}
