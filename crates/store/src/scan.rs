//! Streaming scans: [`FrameStream`] yields a range of klines as a sequence of bounded
//! frames ([`ScanChunk`]). A producer on a blocking thread reads one chunk at a time, each
//! with its own short read (a reader is taken from the pool per chunk and returned before
//! the frame is sent), and sends frames through a bounded channel of capacity 2, so
//! memory stays bounded by a few chunks however large the range is.
//!
//! It does not buffer ahead beyond the channel and never holds one snapshot across chunks.

use marketdb_model::time::{DAY_MS, day_floor};
use marketdb_model::{Freq, TimeRange};
use marketdb_pool::PoolManager;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::read::{FrameBuilder, ReadPlan, resolve_symbols};
use crate::{Error, KlineFrame, Result, Tables};

/// How a scan splits its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScanChunk {
    /// One frame per UTC day with data (all symbols of that day).
    Day,
    /// One frame per symbol with data (its whole range).
    Symbol,
    /// Frames of at most `n` rows; a frame may hold the end of one symbol and the start of
    /// the next.
    Rows(usize),
}

/// Frames in (symbol, timestamp) order within each frame; across frames in the chunk's
/// order (by day, or by symbol). Empty frames are never sent. An error ends the stream.
#[derive(Debug)]
pub struct FrameStream {
    rx: mpsc::Receiver<Result<KlineFrame>>,
}

/// Frames in flight between producer and consumer.
const CHANNEL_CAPACITY: usize = 2;

impl FrameStream {
    /// A stream that yields `err` once.
    pub(crate) fn failed(err: Error) -> FrameStream {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Err(err));
        FrameStream { rx }
    }

    /// The next frame, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<KlineFrame>> {
        self.rx.recv().await
    }

    /// The next frame, blocking the thread; for synchronous callers only (it panics if
    /// called on an async runtime thread, like every tokio blocking receive).
    pub fn blocking_next(&mut self) -> Option<Result<KlineFrame>> {
        self.rx.blocking_recv()
    }
}

/// Everything the producer needs, owned.
pub(crate) struct ScanJob {
    pub(crate) pool: PoolManager,
    pub(crate) tables: Tables,
    pub(crate) plan: ReadPlan,
    pub(crate) freq: Freq,
    pub(crate) symbols: Vec<String>,
    pub(crate) range: TimeRange,
    pub(crate) chunk: ScanChunk,
    /// At most this many rows in all (`ScanChunk::Rows` only; each read asks SQLite for no
    /// more than what is left).
    pub(crate) limit: Option<u64>,
}

/// Starts the producer; must be called within a tokio runtime.
pub(crate) fn start(job: ScanJob) -> FrameStream {
    let handle = match Handle::try_current() {
        Ok(h) => h,
        Err(_) => {
            return FrameStream::failed(Error::invalid_argument(
                "scan context",
                "no tokio runtime",
                "scan must be started inside a tokio runtime",
            ));
        }
    };
    if let ScanChunk::Rows(0) = job.chunk {
        return FrameStream::failed(Error::invalid_argument(
            "scan chunk size",
            0,
            "must be at least 1 row",
        ));
    }
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let h = handle.clone();
    // Detached: it ends when the range is done or the stream is dropped.
    drop(handle.spawn_blocking(move || {
        if let Err(err) = produce(&h, &job, &tx) {
            let _ = tx.blocking_send(Err(err));
        }
    }));
    FrameStream { rx }
}

/// Runs `f` on a freshly acquired reader with the store's small read cache
/// ([`crate::db::with_read_cache`]), returning the reader before the result leaves.
fn with_reader<T>(
    handle: &Handle,
    pool: &PoolManager,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    let guard = handle.block_on(pool.read_guard())?;
    let out = crate::db::with_read_cache(&guard, pool.config().pragmas.cache_size, f);
    drop(guard);
    out
}

/// Sends a non-empty frame; `false` when the consumer has gone.
fn send(tx: &mpsc::Sender<Result<KlineFrame>>, frame: KlineFrame) -> bool {
    frame.is_empty() || tx.blocking_send(Ok(frame)).is_ok()
}

fn produce(handle: &Handle, job: &ScanJob, tx: &mpsc::Sender<Result<KlineFrame>>) -> Result<()> {
    let ScanJob {
        pool,
        tables,
        plan,
        freq,
        symbols,
        range,
        chunk,
        limit,
    } = job;
    let (freq, range) = (*freq, *range);
    let symbols = with_reader(handle, pool, |c| resolve_symbols(c, tables, freq, symbols))?;
    let sql = plan.range_sql();
    match *chunk {
        ScanChunk::Symbol => {
            for s in &symbols {
                let frame = with_reader(handle, pool, |c| {
                    let mut b = FrameBuilder::new(plan);
                    b.read_range(c, &sql, s, freq, range, None)?;
                    Ok(b.finish())
                })?;
                if !send(tx, frame) {
                    return Ok(());
                }
            }
        }
        ScanChunk::Day => {
            // Seek the next stored bar instead of walking every calendar day, so gaps (and
            // coarse intervals) cost one seek per symbol, not one query per empty day.
            let next_sql = format!(
                "SELECT timestamp FROM {} WHERE symbol = ?1 AND freq = ?2 AND timestamp >= ?3 \
                 AND timestamp < ?4 ORDER BY timestamp LIMIT 1",
                tables.kline
            );
            let mut cursor = range.start;
            while cursor < range.end_exclusive {
                let frame = with_reader(handle, pool, |c| {
                    let snap = c.unchecked_transaction()?;
                    let mut next: Option<i64> = None;
                    {
                        let mut stmt = snap.prepare_cached(&next_sql)?;
                        for s in &symbols {
                            let mut rows = stmt.query(rusqlite::params![
                                s,
                                freq.as_str(),
                                cursor,
                                range.end_exclusive
                            ])?;
                            if let Some(row) = rows.next()? {
                                let t: i64 = row.get(0)?;
                                next = Some(next.map_or(t, |n| n.min(t)));
                            }
                        }
                    }
                    let Some(first) = next else {
                        return Ok(None);
                    };
                    let day = day_floor(first);
                    let part = TimeRange {
                        start: day.max(range.start),
                        end_exclusive: day.saturating_add(DAY_MS).min(range.end_exclusive),
                    };
                    let mut b = FrameBuilder::new(plan);
                    for s in &symbols {
                        b.read_range(&snap, &sql, s, freq, part, None)?;
                    }
                    Ok(Some((part.end_exclusive, b.finish())))
                })?;
                let Some((end, frame)) = frame else { break };
                if !send(tx, frame) {
                    return Ok(());
                }
                cursor = end;
            }
        }
        ScanChunk::Rows(n) => {
            let mut idx = 0;
            let mut from = range.start;
            let mut left = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
            while idx < symbols.len() && left > 0 {
                let n = n.min(left);
                let frame = with_reader(handle, pool, |c| {
                    let snap = c.unchecked_transaction()?;
                    let mut b = FrameBuilder::new(plan);
                    b.reserve(n.min(1 << 20));
                    while idx < symbols.len() && b.len() < n {
                        let want = n - b.len();
                        let part = TimeRange {
                            start: from,
                            end_exclusive: range.end_exclusive,
                        };
                        let got =
                            b.read_range(&snap, &sql, &symbols[idx], freq, part, Some(want))?;
                        match b.last_timestamp() {
                            Some(last) if got == want => from = last + 1,
                            _ => {
                                idx += 1;
                                from = range.start;
                            }
                        }
                    }
                    Ok(b.finish())
                })?;
                left -= frame.len();
                if !send(tx, frame) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
