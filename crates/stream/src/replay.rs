//! A loopback WebSocket server that plays Binance combined-stream scripts, for tests and
//! the throughput benchmark (never for production data): the n-th connection plays the
//! n-th script, later ones stay open and silent. It records each connection's request
//! path and the pongs it receives, so a test knows what a client asked for and that it has
//! read every frame sent before a ping.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use marketdb_model::{Freq, Kline};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use crate::event::kline_message;
use crate::{Error, Result};

/// One step of a connection's script.
#[derive(Clone, Debug)]
pub enum Step {
    /// A text frame as given (a malformed one, a subscription answer...).
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// Kline events `(bar, freq, closed)`, event time stamped at sending.
    Klines(Vec<(Kline, Freq, bool)>),
    /// A ping; the script goes on when its pong arrives (every frame sent before it has
    /// been read by then).
    PingForPong,
    Sleep(Duration),
    /// Cuts the TCP connection without a close frame.
    Drop,
    /// A close frame, then the end of the connection.
    Close,
}

/// What the server saw.
#[derive(Clone, Debug, Default)]
pub struct ReplayLog {
    /// Request path and query of each connection, in order.
    pub paths: Vec<String>,
    /// Pongs received.
    pub pongs: usize,
    /// Scripts played to their end.
    pub finished: usize,
}

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct ReplayServer {
    addr: SocketAddr,
    log: Arc<Mutex<ReplayLog>>,
    progress: Arc<Notify>,
    task: JoinHandle<()>,
}

impl ReplayServer {
    /// Listens on a free loopback port and plays `scripts`, one per connection.
    pub async fn start(scripts: Vec<Vec<Step>>) -> Result<ReplayServer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| Error::Io { source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Io { source })?;
        let log = Arc::new(Mutex::new(ReplayLog::default()));
        let progress = Arc::new(Notify::new());
        let (l, p) = (Arc::clone(&log), Arc::clone(&progress));
        let task = tokio::spawn(async move {
            let mut scripts = scripts.into_iter();
            while let Ok((tcp, _)) = listener.accept().await {
                let script = scripts.next().unwrap_or_default();
                tokio::spawn(play(tcp, script, Arc::clone(&l), Arc::clone(&p)));
            }
        });
        Ok(ReplayServer {
            addr,
            log,
            progress,
            task,
        })
    }

    /// `ws://127.0.0.1:PORT`, the base URL to give a client.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn log(&self) -> ReplayLog {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until `n` scripts have been played to their end, or `limit` passed; returns
    /// whether they were.
    pub async fn wait_finished(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.progress.notified();
            if self.log().finished >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.log().finished >= n;
            }
        }
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// The handshake callback's error type is tungstenite's (an HTTP response).
#[allow(clippy::result_large_err)]
async fn play(
    tcp: TcpStream,
    script: Vec<Step>,
    log: Arc<Mutex<ReplayLog>>,
    progress: Arc<Notify>,
) {
    let seen = Arc::clone(&log);
    let callback = move |req: &Request, resp: Response| {
        if let Ok(mut l) = seen.lock() {
            l.paths.push(req.uri().to_string());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    progress.notify_waiters();
    for step in script {
        let ok = match step {
            Step::Text(t) => ws.send(Message::text(t)).await.is_ok(),
            Step::Binary(b) => ws.send(Message::binary(b)).await.is_ok(),
            Step::Klines(bars) => send_klines(&mut ws, &bars).await,
            Step::PingForPong => {
                let sent = ws
                    .send(Message::Ping(b"replay".to_vec().into()))
                    .await
                    .is_ok();
                sent && wait_pong(&mut ws, &log).await
            }
            Step::Sleep(d) => {
                tokio::time::sleep(d).await;
                true
            }
            Step::Drop => {
                finish(&log, &progress);
                return;
            }
            Step::Close => {
                let _ = ws.close(None).await;
                finish(&log, &progress);
                return;
            }
        };
        if !ok {
            return;
        }
    }
    finish(&log, &progress);
    // Stays open, answering pings, until the client leaves.
    while let Some(Ok(m)) = ws.next().await {
        if matches!(m, Message::Pong(_)) {
            count_pong(&log);
        }
    }
}

async fn send_klines(ws: &mut WebSocketStream<TcpStream>, bars: &[(Kline, Freq, bool)]) -> bool {
    for (i, (k, freq, closed)) in bars.iter().enumerate() {
        let text = kline_message(k, *freq, *closed, marketdb_model::time::now_ms());
        if ws.feed(Message::text(text)).await.is_err() {
            return false;
        }
        if i % 64 == 63 && ws.flush().await.is_err() {
            return false;
        }
    }
    ws.flush().await.is_ok()
}

async fn wait_pong(ws: &mut WebSocketStream<TcpStream>, log: &Mutex<ReplayLog>) -> bool {
    while let Some(Ok(m)) = ws.next().await {
        if matches!(m, Message::Pong(_)) {
            count_pong(log);
            return true;
        }
    }
    false
}

fn count_pong(log: &Mutex<ReplayLog>) {
    if let Ok(mut l) = log.lock() {
        l.pongs += 1;
    }
}

fn finish(log: &Mutex<ReplayLog>, progress: &Notify) {
    if let Ok(mut l) = log.lock() {
        l.finished += 1;
    }
    progress.notify_waiters();
}
