//! A loopback HTTP server for the tests: a handler picks each answer from the request
//! path (query included); the server logs requests and body bytes sent by path, so a
//! test can compare a run's counts with what the server saw.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One answer.
#[derive(Clone, Debug)]
pub enum Answer {
    Reply {
        status: u16,
        ctype: &'static str,
        body: Vec<u8>,
    },
    /// A `200` announcing the whole body, sending its first `send` bytes, then closing.
    Cut { body: Vec<u8>, send: usize },
    /// A `200` announcing `length` bytes, sending `body`, then nothing for a minute.
    Announce { length: u64, body: Vec<u8> },
    /// A `200` without a length, sending zip-looking bytes until the client hangs up.
    Endless,
}

impl Answer {
    pub fn ok(body: impl Into<Vec<u8>>) -> Answer {
        Answer::Reply {
            status: 200,
            ctype: "application/zip",
            body: body.into(),
        }
    }

    pub fn json(body: String) -> Answer {
        Answer::Reply {
            status: 200,
            ctype: "application/json",
            body: body.into_bytes(),
        }
    }

    pub fn status(status: u16) -> Answer {
        Answer::Reply {
            status,
            ctype: "text/plain",
            body: Vec::new(),
        }
    }

    pub fn html() -> Answer {
        Answer::Reply {
            status: 200,
            ctype: "text/html",
            body: b"<!DOCTYPE html><html><body>down for maintenance</body></html>".to_vec(),
        }
    }
}

/// Requests and body bytes sent, by path.
#[derive(Clone, Debug, Default)]
pub struct Log {
    pub requests: HashMap<String, usize>,
    pub bytes: u64,
}

impl Log {
    pub fn count(&self, path: &str) -> usize {
        self.requests.get(path).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.requests.values().sum()
    }

    /// Requests that repeated an earlier one for the same path.
    pub fn repeated(&self) -> usize {
        self.requests.values().map(|n| n - 1).sum()
    }
}

pub type Shared = Arc<Mutex<Log>>;

/// Handler: the path (with its query) and how many times it was asked, this one included.
pub type Handler = Arc<dyn Fn(&str, usize) -> Answer + Send + Sync>;

/// Starts the server; returns its base URL and its log.
pub async fn serve(handler: Handler) -> (String, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Shared::default();
    let seen = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (handler, seen) = (Arc::clone(&handler), Arc::clone(&seen));
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let method = text.split(' ').next().unwrap_or("").to_owned();
                let path = text.split(' ').nth(1).unwrap_or("").to_owned();
                let n = {
                    let mut log = seen.lock().unwrap();
                    let n = log.requests.entry(path.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let answer = handler(&path, n);
                let sent = |k: usize| seen.lock().unwrap().bytes += k as u64;
                match answer {
                    Answer::Reply {
                        status,
                        ctype,
                        body,
                    } => {
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes()).await;
                        if method != "HEAD" && s.write_all(&body).await.is_ok() {
                            sent(body.len());
                        }
                    }
                    Answer::Cut { body, send } => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes()).await;
                        if s.write_all(&body[..send]).await.is_ok() {
                            sent(send);
                        }
                        let _ = s.flush().await;
                    }
                    Answer::Announce { length, body } => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
                        let _ = s.write_all(head.as_bytes()).await;
                        if s.write_all(&body).await.is_ok() {
                            sent(body.len());
                        }
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Answer::Endless => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nPK\x03\x04")
                            .await;
                        let block = vec![0u8; 64 * 1024];
                        while s.write_all(&block).await.is_ok() {
                            sent(block.len());
                        }
                    }
                }
            });
        }
    });
    (base, log)
}
