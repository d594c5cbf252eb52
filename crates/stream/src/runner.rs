//! The runner: connections in, one writer out. Closed bars from every connection and pages
//! from REST backfills meet in one channel; the writer validates each bar (the rules of
//! every other write), refuses a bar whose close time has not passed by the local clock
//! (give or take [`StreamConfig::clock_tolerance`]), and batches them per freq. A batch is
//! committed when the writer has caught up with its input, or after `flush_interval`, or at
//! `flush_bars` bars, whichever comes first: at the exchange's pace readers see a bar
//! milliseconds after it arrives, and under a flood the transactions grow instead of the
//! queue.
//!
//! Commits run beside the loop (one at a time), so a store that is locked never stops the
//! loop from draining the connections' channel: connections keep reading and answering
//! pings. A failed commit keeps its batch (shared, never copied) and is retried with
//! backoff, not on every received bar; the run gives up when more than `max_pending` bars
//! wait.
//!
//! Holes: the writer knows the last bar of every stream (from the store at start). A closed
//! bar that opens after the next expected one means bars were missed (the process was
//! down, a connection dropped, a planned rotation); with a REST client, the bars between
//! the two are asked for at once, beside the live stream, at most
//! [`StreamConfig::max_backfill`] of them (older history is `download`'s job: the rest is
//! logged with the command that fills it). A hole is counted filled only when every bar of
//! it has been committed; the report tells filled, partly filled and unfilled holes apart,
//! with their ranges. All backfills share one REST client, whose weight budget each request
//! reserves before it is sent.
//!
//! Shutdown: when the caller's future completes, connections stop reading, every bar they
//! handed over is committed, backfills in flight get `shutdown_grace` to finish, and the
//! run returns its report.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use marketdb_fetch::{Market, RestClient};
use marketdb_model::time::format_rfc3339;
use marketdb_model::{Freq, Kline, Validator};
use marketdb_store::{AsyncMarketDB, KlineInput};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval_at};
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
    /// How far the exchange's clock may run ahead of ours: a bar flagged closed is stored
    /// only when its close time has passed by the local clock plus this (5 s by default).
    pub clock_tolerance: Duration,
    /// The longest stretch of a hole asked from REST (the most recent part of it; 24 h by
    /// default). History beyond it is `download`'s job: it is logged with the command.
    pub max_backfill: Duration,
    /// First delay before a failed commit is tried again, doubled per failure up to
    /// `max_commit_backoff`.
    pub commit_backoff: Duration,
    pub max_commit_backoff: Duration,
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
            clock_tolerance: Duration::from_secs(5),
            max_backfill: Duration::from_secs(24 * 3600),
            commit_backoff: Duration::from_millis(200),
            max_commit_backoff: Duration::from_secs(5),
        }
    }
}

/// A stretch of bars of one stream, as the report names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BarRange {
    pub symbol: String,
    pub freq: String,
    /// Open time of the first bar, RFC 3339.
    pub from: String,
    /// Open time of the bar after the last one, RFC 3339.
    pub to: String,
    /// Bars of the stretch not stored.
    pub missing: u64,
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
    /// Bars flagged closed whose close time had not passed by the local clock (beyond the
    /// tolerance): counted, not stored.
    pub future_bars: u64,
    /// Holes seen, and how their backfills ended: every bar committed, some of them (a
    /// hole older than `max_backfill` is at best partly filled), none (a failed request,
    /// an exchange that answered with nothing, backfill off, a shutdown).
    pub holes: u64,
    pub holes_filled: u64,
    pub holes_partly_filled: u64,
    pub holes_unfilled: u64,
    /// What is still missing of the holes that were not filled, and the parts of holes
    /// beyond `max_backfill` (left to `download`).
    pub holes_left: Vec<BarRange>,
    /// Reconnects after a lost connection, and planned ones before the age limit.
    pub reconnects: u64,
    pub rotations: u64,
    pub commits: u64,
    /// Commits that failed (their bars kept and retried).
    pub commit_failures: u64,
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

/// A batch cut from the pending bars: shared with its commit task, so a failed commit
/// keeps it without a copy.
struct Batch {
    freq: Freq,
    rows: Arc<KlineInput>,
    /// Event times of the streamed bars in it.
    events: Vec<i64>,
    /// Holes whose bars are in it.
    holes: Vec<u64>,
}

/// What a commit task hands back.
type CommitDone = (Batch, std::result::Result<usize, marketdb_store::Error>);

/// The writer's state.
struct Writer {
    db: AsyncMarketDB,
    market: Market,
    validator: Validator,
    tolerance_ms: i64,
    max_backfill_ms: i64,
    /// Last open time of each stream, `None` before its first bar.
    last: HashMap<(String, Freq), Option<i64>>,
    pending: BTreeMap<Freq, Vec<Kline>>,
    pending_events: Vec<i64>,
    /// Holes with bars among the pending ones.
    pending_holes: BTreeSet<u64>,
    /// Batches cut and not committed yet, oldest first; the first may be in flight.
    batches: VecDeque<Batch>,
    inflight: bool,
    /// No commit before this instant (a failed commit's backoff).
    retry_at: Option<Instant>,
    commit_backoff: Duration,
    next_backoff: Duration,
    max_commit_backoff: Duration,
    /// Bars held: pending and in batches.
    held: usize,
    /// Holes being filled, by id, with the open times of their bars taken so far.
    holes: HashMap<u64, HoleState>,
    next_hole: u64,
    window: Histogram,
    whole: Histogram,
    report: StreamReport,
}

/// A hole and what its backfill brought.
struct HoleState {
    hole: Hole,
    /// Open times of the valid bars taken for it.
    taken: BTreeSet<i64>,
    /// Bars of it not committed yet (in pending bars or batches).
    uncommitted: usize,
    /// The backfill task ended (its outcome is counted once its bars are committed).
    ended: bool,
    /// An older part of the hole was beyond `max_backfill` and left to `download`: the
    /// hole is at best partly filled.
    cut_short: bool,
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
        let mut writer = Writer::start(&self.db, c).await?;
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
        let mut commits: JoinSet<CommitDone> = JoinSet::new();
        // Both first ticks one period from now (a plain `interval` ticks at once).
        let start = Instant::now();
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
                Some(done) = commits.join_next(), if !commits.is_empty() => {
                    writer.committed(done, c.max_pending)?;
                    writer.commit(&mut commits);
                }
                Some(done) = backfills.tasks.join_next_with_id(), if !backfills.tasks.is_empty() => {
                    backfill_ended(done, &mut backfills.ids, &mut writer);
                }
                _ = flush_tick.tick() => {
                    writer.cut();
                    writer.commit(&mut commits);
                }
                _ = report_tick.tick() => {
                    writer.count(&counters);
                    on_report(&writer.report);
                    info!("{}", summary(&writer.report));
                    writer.window.clear();
                }
                Some(page) = page_rx.recv() => {
                    writer.take(page);
                    if writer.pending_bars() >= c.flush_bars {
                        writer.cut();
                        writer.commit(&mut commits);
                    }
                }
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        if let Some(id) = writer.take(ev) {
                            let started = writer
                                .holes
                                .get(&id)
                                .is_some_and(|h| backfills.start(id, &h.hole));
                            if !started {
                                writer.end_hole(id);
                            }
                        }
                        if writer.pending_bars() >= c.flush_bars
                            || (c.commit_when_idle && rx.is_empty() && page_rx.is_empty())
                        {
                            writer.cut();
                            writer.commit(&mut commits);
                        }
                        if writer.held > c.max_pending {
                            return Err(writer.unstored());
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
                Some(done) = commits.join_next(), if !commits.is_empty() => {
                    writer.committed(done, usize::MAX)?;
                }
                Some(ev) = rx.recv() => {
                    // Holes are not chased any more: the run is ending.
                    if let Some(id) = writer.take(ev) {
                        writer.end_hole(id);
                    }
                }
            }
        }
        drop(tx);
        while let Some(ev) = rx.recv().await {
            if let Some(id) = writer.take(ev) {
                writer.end_hole(id);
            }
        }
        // Backfills in flight get the grace period, checked first so that a stream of
        // pages cannot stretch it.
        let Backfills {
            mut tasks,
            mut ids,
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
                    tasks.abort_all();
                    // Aborted tasks may still have sent a page; it is taken below.
                    while let Some(done) = tasks.join_next_with_id().await {
                        backfill_ended(done, &mut ids, &mut writer);
                    }
                }
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    backfill_ended(done, &mut ids, &mut writer);
                }
                page = page_rx.recv() => match page {
                    Some(page) => {
                        writer.take(page);
                    }
                    None => break,
                },
            }
        }
        while let Some(done) = tasks.join_next_with_id().await {
            backfill_ended(done, &mut ids, &mut writer);
        }
        // The last commits, one try each: a store still failing now fails the run.
        while let Some(done) = commits.join_next().await {
            writer.committed(done, usize::MAX)?;
        }
        writer.cut();
        writer.retry_at = None;
        while !writer.batches.is_empty() {
            writer.commit(&mut commits);
            if let Some(done) = commits.join_next().await {
                writer.committed(done, 0)?;
            }
        }
        writer.close_holes();
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

/// At most this many holes are asked from REST at once; the others wait their turn. They
/// share one client, so together they stay inside its weight budget.
const BACKFILLS_AT_ONCE: usize = 4;

/// The REST backfills of a run.
struct Backfills {
    rest: Option<Arc<RestClient>>,
    sender: mpsc::Sender<Event>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<()>,
    /// The hole of each running task.
    ids: HashMap<tokio::task::Id, u64>,
}

/// A backfill task ended. Its hole ends with its last page (`BackfillEnd`, in the page
/// channel); an aborted task sends none, so its hole is ended here.
fn backfill_ended(
    done: std::result::Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    ids: &mut HashMap<tokio::task::Id, u64>,
    writer: &mut Writer,
) {
    let (id, aborted) = match &done {
        Ok((id, ())) => (*id, false),
        Err(e) => (e.id(), true),
    };
    if let Some(hole) = ids.remove(&id)
        && aborted
    {
        writer.end_hole(hole);
    }
}

impl Backfills {
    fn new(rest: Option<Arc<RestClient>>, sender: mpsc::Sender<Event>) -> Backfills {
        Backfills {
            rest,
            sender,
            permits: Arc::new(Semaphore::new(BACKFILLS_AT_ONCE)),
            tasks: JoinSet::new(),
            ids: HashMap::new(),
        }
    }

    /// Asks REST for `hole`'s bars (page by page, each page into the channel), beside the
    /// live stream; false without a client (nothing is asked: the hole stays unfilled).
    fn start(&mut self, id: u64, hole: &Hole) -> bool {
        let Some(rest) = &self.rest else {
            warn!("{} (backfill is off)", hole.left());
            return false;
        };
        let rest = Arc::clone(rest);
        let tx = self.sender.clone();
        let permits = Arc::clone(&self.permits);
        let hole = hole.clone();
        let handle = self.tasks.spawn(async move {
            ask(&rest, &hole, id, &tx, &permits).await;
            // After its last page, in the same channel: the writer then has every page.
            let _ = tx.send(Event::BackfillEnd { hole: id }).await;
        });
        self.ids.insert(handle.id(), id);
        true
    }
}

/// Asks REST for the bars of `hole` page by page, into the channel.
async fn ask(
    rest: &RestClient,
    hole: &Hole,
    id: u64,
    tx: &mpsc::Sender<Event>,
    permits: &Arc<Semaphore>,
) {
    let Ok(_permit) = Arc::clone(permits).acquire_owned().await else {
        return;
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
                warn!("{e}");
                return;
            }
        };
        let Some(last) = page.last().map(|k| k.open_time) else {
            break;
        };
        next = hole.freq.close_time(last).saturating_add(1);
        let page = Event::Backfill {
            bars: page,
            freq: hole.freq,
            hole: id,
        };
        if tx.send(page).await.is_err() {
            return;
        }
    }
}

/// Bars of one stream not received: open times in `[from, to)`.
#[derive(Clone, Debug)]
pub(crate) struct Hole {
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
            format_rfc3339(self.from),
            format_rfc3339(self.to)
        )
    }

    fn left(&self) -> String {
        format!("hole in {} left unfilled", self.range())
    }

    /// The open times of the hole's bars.
    fn opens(&self) -> impl Iterator<Item = i64> + '_ {
        let freq = self.freq;
        std::iter::successors(Some(self.from), move |&t| {
            Some(freq.close_time(t).saturating_add(1))
        })
        .take_while(|&t| t < self.to)
    }

    fn bar_range(&self, missing: u64) -> BarRange {
        BarRange {
            symbol: self.symbol.clone(),
            freq: self.freq.to_string(),
            from: format_rfc3339(self.from),
            to: format_rfc3339(self.to),
            missing,
        }
    }
}

impl Writer {
    async fn start(db: &AsyncMarketDB, c: &StreamConfig) -> Result<Writer> {
        let mut last = HashMap::with_capacity(c.subscriptions.len());
        for s in &c.subscriptions {
            let range = db.get_time_range(&s.symbol, s.freq).await?;
            last.insert((s.symbol.clone(), s.freq), range.map(|(_, end)| end));
        }
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Ok(Writer {
            db: db.clone(),
            market: c.market,
            validator: db.validator(),
            tolerance_ms: ms(c.clock_tolerance),
            max_backfill_ms: ms(c.max_backfill).max(1),
            last,
            pending: BTreeMap::new(),
            pending_events: Vec::new(),
            pending_holes: BTreeSet::new(),
            batches: VecDeque::new(),
            inflight: false,
            retry_at: None,
            commit_backoff: c.commit_backoff,
            next_backoff: c.commit_backoff,
            max_commit_backoff: c.max_commit_backoff,
            held: 0,
            holes: HashMap::new(),
            next_hole: 0,
            window: Histogram::default(),
            whole: Histogram::default(),
            report: StreamReport::default(),
        })
    }

    fn pending_bars(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// Whether a bar's close time has passed by the local clock (with the tolerance);
    /// one that has not is counted and logged.
    fn closed_by_now(&mut self, k: &Kline, freq: Freq, from: &str) -> bool {
        let now = marketdb_model::time::now_ms();
        let close = freq.close_time(k.open_time);
        if close <= now.saturating_add(self.tolerance_ms) {
            return true;
        }
        self.report.future_bars += 1;
        warn!(
            "{from} bar of {} {freq} opening at {} is flagged closed but closes at {}, after \
             the local clock ({}) plus {} ms of tolerance: not stored",
            k.symbol,
            format_rfc3339(k.open_time),
            format_rfc3339(close),
            format_rfc3339(now),
            self.tolerance_ms
        );
        false
    }

    /// Takes one event into the pending bars; returns the id of the hole a streamed bar
    /// reveals (to backfill).
    fn take(&mut self, ev: Event) -> Option<u64> {
        match ev {
            Event::Bar {
                kline,
                freq,
                event_time,
            } => {
                self.report.bars_streamed += 1;
                if !self.last.contains_key(&(kline.symbol.clone(), freq)) {
                    self.report.invalid += 1;
                    warn!(
                        "a {} {freq} bar arrived on a stream that was not asked for; skipped",
                        kline.symbol
                    );
                    return None;
                }
                if let Err(e) = self.validator.kline(&kline, freq) {
                    self.report.invalid += 1;
                    warn!("streamed bar refused: {e}");
                    return None;
                }
                if !self.closed_by_now(&kline, freq, "a streamed") {
                    return None;
                }
                let last = self.last.get_mut(&(kline.symbol.clone(), freq))?;
                let gap = last.and_then(|prev| missing_between(freq, prev, kline.open_time));
                if last.is_none_or(|prev| kline.open_time > prev) {
                    *last = Some(kline.open_time);
                }
                let hole = gap.map(|(from, to)| self.new_hole(&kline.symbol, freq, from, to));
                self.pending_events.push(event_time);
                self.push(kline, freq);
                hole
            }
            Event::Backfill { bars, freq, hole } => {
                for k in bars {
                    if let Err(e) = self.validator.kline(&k, freq) {
                        self.report.invalid += 1;
                        warn!("backfilled bar refused: {e}");
                        continue;
                    }
                    if !self.closed_by_now(&k, freq, "a backfilled") {
                        continue;
                    }
                    self.report.bars_backfilled += 1;
                    if let Some(h) = self.holes.get_mut(&hole)
                        && k.open_time >= h.hole.from
                        && k.open_time < h.hole.to
                        && h.taken.insert(k.open_time)
                    {
                        h.uncommitted += 1;
                        self.pending_holes.insert(hole);
                    }
                    self.push(k, freq);
                }
                None
            }
            Event::BackfillEnd { hole } => {
                self.end_hole(hole);
                None
            }
        }
    }

    /// Records a hole; the part beyond `max_backfill` is left to `download`, logged with
    /// its command. Returns its id.
    fn new_hole(&mut self, symbol: &str, freq: Freq, from: i64, to: i64) -> u64 {
        self.report.holes += 1;
        let bound = to.saturating_sub(self.max_backfill_ms);
        let cut_short = from < bound;
        let from = if cut_short {
            // The recent part is backfilled, from a bar open on the grid.
            let start = freq.floor(bound).max(from);
            let beyond = Hole {
                symbol: symbol.to_owned(),
                freq,
                from,
                to: start,
            };
            let missing = beyond.opens().count() as u64;
            warn!(
                "hole in {} is beyond the backfill bound ({} h): left to download, \
                 `marketdb download --market {} --symbols {symbol} --freq {freq} --start {} \
                 --end {}`",
                beyond.range(),
                self.max_backfill_ms / 3_600_000,
                self.market.as_str(),
                format_rfc3339(from),
                format_rfc3339(start.saturating_sub(1))
            );
            self.report.holes_left.push(beyond.bar_range(missing));
            start
        } else {
            from
        };
        let id = self.next_hole;
        self.next_hole += 1;
        self.holes.insert(
            id,
            HoleState {
                hole: Hole {
                    symbol: symbol.to_owned(),
                    freq,
                    from,
                    to,
                },
                taken: BTreeSet::new(),
                uncommitted: 0,
                ended: false,
                cut_short,
            },
        );
        id
    }

    /// The backfill of hole `id` ended: counted as soon as its bars are committed.
    fn end_hole(&mut self, id: u64) {
        if let Some(h) = self.holes.get_mut(&id) {
            h.ended = true;
        }
        self.count_holes();
    }

    /// Counts every ended hole whose bars are all committed: filled when every bar of it
    /// was stored, partly filled, or unfilled.
    fn count_holes(&mut self) {
        let done: Vec<u64> = self
            .holes
            .iter()
            .filter(|(_, h)| h.ended && h.uncommitted == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            let Some(h) = self.holes.remove(&id) else {
                continue;
            };
            let expected = h.hole.opens().count() as u64;
            let stored = h.taken.len() as u64;
            if stored >= expected && h.cut_short {
                // Its recent part is complete; the older part is in `holes_left` already.
                self.report.holes_partly_filled += 1;
                info!(
                    "backfilled {} (the older part is left to download)",
                    h.hole.range()
                );
            } else if stored >= expected {
                self.report.holes_filled += 1;
                info!("backfilled {}", h.hole.range());
            } else {
                if stored == 0 {
                    self.report.holes_unfilled += 1;
                } else {
                    self.report.holes_partly_filled += 1;
                }
                warn!(
                    "{}: {} of its {expected} bar(s) missing",
                    h.hole.left(),
                    expected - stored
                );
                self.report
                    .holes_left
                    .push(h.hole.bar_range(expected - stored));
            }
        }
    }

    /// At the end of a run: holes still open (their backfill stopped) count as they are.
    fn close_holes(&mut self) {
        for h in self.holes.values_mut() {
            h.ended = true;
            h.uncommitted = 0;
        }
        self.count_holes();
    }

    fn push(&mut self, k: Kline, freq: Freq) {
        self.pending.entry(freq).or_default().push(k);
        self.held += 1;
    }

    /// Cuts the pending bars into batches (one per freq), in arrival order.
    fn cut(&mut self) {
        // The validator's clock moves with the run, commits or not.
        self.validator = self.db.validator();
        let freqs: Vec<Freq> = self.pending.keys().copied().collect();
        let mut events = std::mem::take(&mut self.pending_events);
        let holes: Vec<u64> = std::mem::take(&mut self.pending_holes)
            .into_iter()
            .collect();
        for freq in freqs {
            let Some(mut bars) = self.pending.remove(&freq) else {
                continue;
            };
            // A bar received twice (a replayed message, a backfill overlapping the stream)
            // is one upsert: the store refuses a batch holding a bar twice.
            let before = bars.len();
            keep_last_of_each(&mut bars);
            self.held -= before - bars.len();
            self.batches.push_back(Batch {
                freq,
                rows: Arc::new(KlineInput::Flat(bars)),
                events: std::mem::take(&mut events),
                holes: holes.clone(),
            });
        }
    }

    /// Starts the next commit, unless one is in flight or a failed one is backing off.
    fn commit(&mut self, commits: &mut JoinSet<CommitDone>) {
        if self.inflight || self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let Some(batch) = self.batches.pop_front() else {
            return;
        };
        self.inflight = true;
        let db = self.db.clone();
        commits.spawn(async move {
            let r = db.store_shared(Arc::clone(&batch.rows), batch.freq).await;
            (batch, r)
        });
    }

    /// A commit ended: counted, or kept for a retry with backoff (an error once more than
    /// `max_pending` bars wait).
    fn committed(
        &mut self,
        done: std::result::Result<CommitDone, tokio::task::JoinError>,
        max_pending: usize,
    ) -> Result<()> {
        self.inflight = false;
        let (batch, r) = match done {
            Ok(d) => d,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return Ok(()),
        };
        match r {
            Ok(_) => {
                let n = batch.rows.len();
                self.held -= n;
                self.report.bars_stored += n as u64;
                self.report.commits += 1;
                self.retry_at = None;
                self.next_backoff = self.commit_backoff;
                let now = marketdb_model::time::now_ms();
                for t in &batch.events {
                    self.window.record(now.saturating_sub(*t));
                    self.whole.record(now.saturating_sub(*t));
                }
                self.committed_holes(&batch);
                self.count_holes();
                Ok(())
            }
            Err(e) => {
                self.report.commit_failures += 1;
                let n = batch.rows.len();
                let freq = batch.freq;
                self.batches.push_front(batch);
                if self.held > max_pending {
                    error!("{} bars could not be committed: {e}", self.held);
                    return Err(Error::Unstored {
                        bars: self.held,
                        source: Box::new(e),
                    });
                }
                let wait = self.next_backoff;
                self.next_backoff = (self.next_backoff * 2).min(self.max_commit_backoff);
                self.retry_at = Some(Instant::now() + wait);
                warn!(
                    "commit of {n} streamed {freq} bars failed, kept and tried again in \
                     {wait:?}: {e}"
                );
                Ok(())
            }
        }
    }

    /// The bars of `batch` that belong to holes are committed.
    fn committed_holes(&mut self, batch: &Batch) {
        let KlineInput::Flat(rows) = batch.rows.as_ref() else {
            return;
        };
        for id in &batch.holes {
            let Some(h) = self.holes.get_mut(id) else {
                continue;
            };
            let n = rows
                .iter()
                .filter(|k| {
                    k.symbol == h.hole.symbol
                        && batch.freq == h.hole.freq
                        && h.taken.contains(&k.open_time)
                })
                .count();
            h.uncommitted = h.uncommitted.saturating_sub(n);
        }
    }

    /// The error of a run whose store keeps failing while bars keep arriving.
    fn unstored(&self) -> Error {
        error!("{} bars wait for a store that keeps failing", self.held);
        Error::Backlog { bars: self.held }
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
        "{} streams, {}/{} connected, {} bars stored ({} from backfills), {lag}, {} reconnects, {} rotations, {} holes ({} filled, {} partly filled, {} unfilled), {} malformed, {} refused, {} not closed yet",
        r.streams,
        r.connected,
        r.connections,
        r.bars_stored,
        r.bars_backfilled,
        r.reconnects,
        r.rotations,
        r.holes,
        r.holes_filled,
        r.holes_partly_filled,
        r.holes_unfilled,
        r.malformed,
        r.invalid,
        r.future_bars
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
