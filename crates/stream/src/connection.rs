//! One combined-stream connection, kept open: connect, read frames, hand closed bars to the
//! runner, answer pings, and reconnect (exponential backoff with jitter after a failure, at
//! once for the planned rotation before the exchange's 24-hour limit). A connection that
//! says nothing for `idle_timeout` is dead, whatever TCP thinks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use marketdb_fetch::Jitter;
use marketdb_model::{Freq, Kline};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::connect_async_with_config;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{debug, info, warn};

use crate::event::{Frame, parse_frame};
use crate::plan::Shard;

/// Largest message accepted: a kline event is under 1 KB; a server sending megabytes is
/// broken or hostile, and its connection is dropped rather than buffered.
pub(crate) const MAX_MESSAGE: usize = 64 << 10;

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// What a connection needs to know.
#[derive(Clone, Debug)]
pub(crate) struct Timing {
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_age: Duration,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// Counters shared by the connections and read by the runner's reports.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Open-bar updates (`x = false`), not stored.
    pub updates: AtomicU64,
    pub malformed: AtomicU64,
    pub reconnects: AtomicU64,
    pub rotations: AtomicU64,
    pub connected: AtomicU64,
}

/// What the connections and backfills send the runner.
#[derive(Debug)]
pub(crate) enum Event {
    /// A closed bar from a stream, with the exchange's event time.
    Bar {
        kline: Kline,
        freq: Freq,
        event_time: i64,
    },
    /// A page of bars from the REST backfill of hole `hole`.
    Backfill {
        bars: Vec<Kline>,
        freq: Freq,
        hole: u64,
    },
    /// The backfill of hole `hole` has sent its last page (or given up).
    BackfillEnd { hole: u64 },
}

/// How one connection ended.
enum End {
    Stopped,
    Rotate,
    Dropped(String),
}

/// Keeps `shard`'s connection open until `stop` turns true (or the runner is gone).
pub(crate) async fn keep_open(
    shard: Shard,
    timing: Timing,
    tx: mpsc::Sender<Event>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let jitter = Jitter::default();
    let mut failures = 0u32;
    // A reconnect is a connection after a lost one (not the first, not a rotation's).
    let mut lost = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let attempt = tokio::select! {
            r = timeout(timing.connect_timeout, connect_async_with_config(&shard.url, Some(ws_config()), true)) => r,
            _ = stop.changed() => return,
        };
        let reason = match attempt {
            Ok(Ok((ws, _))) => {
                if lost {
                    counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    lost = false;
                }
                counters.connected.fetch_add(1, Ordering::Relaxed);
                info!(
                    "connected to {} ({} streams)",
                    host(&shard.url),
                    shard.subscriptions.len()
                );
                let (end, received) = read(ws, &timing, &tx, &counters, &mut stop).await;
                counters.connected.fetch_sub(1, Ordering::Relaxed);
                if received {
                    failures = 0;
                }
                match end {
                    End::Stopped => return,
                    End::Rotate => {
                        counters.rotations.fetch_add(1, Ordering::Relaxed);
                        info!(
                            "reconnecting to {} before the connection's age limit",
                            host(&shard.url)
                        );
                        continue;
                    }
                    End::Dropped(reason) => {
                        lost = true;
                        reason
                    }
                }
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no handshake within {:?}", timing.connect_timeout),
        };
        failures = failures.saturating_add(1);
        let wait = jitter.delay(timing.backoff, timing.max_backoff, failures);
        warn!(
            "stream connection to {} lost ({reason}); reconnecting in {wait:?}",
            host(&shard.url)
        );
        tokio::select! {
            _ = sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Reads one connection until it ends; also says whether a kline event arrived (a server
/// that accepts and closes at once does not reset the reconnect backoff).
async fn read<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    timing: &Timing,
    tx: &mpsc::Sender<Event>,
    counters: &Counters,
    stop: &mut watch::Receiver<bool>,
) -> (End, bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let deadline = Instant::now() + timing.max_age;
    let mut received = false;
    let end = loop {
        let frame = tokio::select! {
            biased;
            _ = stop.changed() => break End::Stopped,
            _ = sleep_until(deadline) => break End::Rotate,
            f = timeout(timing.idle_timeout, ws.next()) => f,
        };
        let msg = match frame {
            Err(_) => {
                break End::Dropped(format!("nothing received for {:?}", timing.idle_timeout));
            }
            Ok(None) => break End::Dropped("closed by the server".to_owned()),
            Ok(Some(Err(e))) => break End::Dropped(e.to_string()),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(text) => match parse_frame(text.as_str()) {
                Ok(Frame::Kline(ev)) if ev.closed => {
                    received = true;
                    let bar = Event::Bar {
                        kline: ev.kline,
                        freq: ev.freq,
                        event_time: ev.event_time,
                    };
                    if tx.send(bar).await.is_err() {
                        break End::Stopped;
                    }
                }
                Ok(Frame::Kline(_)) => {
                    received = true;
                    counters.updates.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Frame::Other) => debug!("ignored a message that is not a kline event"),
                Err(e) => {
                    counters.malformed.fetch_add(1, Ordering::Relaxed);
                    warn!("{e}");
                }
            },
            Message::Binary(b) => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                warn!(
                    "malformed stream frame: a binary frame of {} bytes",
                    b.len()
                );
            }
            // The pong is queued by the protocol layer; flushing sends it now rather than
            // with the next read.
            Message::Ping(_) => match timeout(timing.idle_timeout, ws.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break End::Dropped(e.to_string()),
                Err(_) => break End::Dropped("the server does not read our pong".to_owned()),
            },
            Message::Close(frame) => {
                break End::Dropped(match frame {
                    Some(f) => format!("closed by the server ({} {})", f.code, f.reason),
                    None => "closed by the server".to_owned(),
                });
            }
            Message::Pong(_) | Message::Frame(_) => {}
        }
    };
    if !matches!(end, End::Dropped(_)) {
        // A polite close; the server may already be gone, which changes nothing.
        let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
    }
    (end, received)
}

/// The URL without its (long) stream list, for logs.
fn host(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
