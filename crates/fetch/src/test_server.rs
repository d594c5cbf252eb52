//! A scripted loopback HTTP server for this crate's tests: each path answers from its list
//! (the last answer repeats), unknown paths get 404, and requests are counted by path
//! (the query string included).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted answer.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Say nothing for half a minute.
    Hang,
    /// A `200` announcing `length` bytes, sending `body`, then nothing for half a minute.
    Announce { length: u64, body: Vec<u8> },
    /// A `200` without a length, sending zip-looking bytes until the client hangs up.
    Endless,
}

impl Answer {
    pub(crate) fn ok(body: impl Into<Vec<u8>>) -> Answer {
        Answer::Reply {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub(crate) fn status(status: u16) -> Answer {
        Answer::Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: &str, value: &str) -> Answer {
        if let Answer::Reply { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// Request counts by path.
pub(crate) type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// Starts the server; returns its base URL and the request counts.
pub(crate) async fn serve(script: HashMap<String, Vec<Answer>>) -> (String, Counts) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counts = Counts::default();
    let seen = Arc::clone(&counts);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (script, seen) = (script.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let path = text.split(' ').nth(1).unwrap_or("").to_owned();
                let n = {
                    let mut c = seen.lock().unwrap();
                    let n = c.entry(path.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let answer = match script.get(&path) {
                    Some(list) => list[(n - 1).min(list.len() - 1)].clone(),
                    None => Answer::status(404),
                };
                let (status, headers, body) = match answer {
                    Answer::Reply {
                        status,
                        headers,
                        body,
                    } => (status, headers, body),
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    Answer::Announce { length, body } => {
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
                        let _ = s.write_all(head.as_bytes()).await;
                        let _ = s.write_all(&body).await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    Answer::Endless => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nPK\x03\x04")
                            .await;
                        let block = vec![0u8; 64 * 1024];
                        while s.write_all(&block).await.is_ok() {}
                        return;
                    }
                };
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    (base, counts)
}
