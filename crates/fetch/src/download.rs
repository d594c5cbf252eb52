//! One Vision file over HTTP: the body streams into a file in a private temporary folder
//! (a zip needs seeking, so it is never held in memory), hashed as it arrives, and checked
//! against the `.CHECKSUM` fetched beside it. Transient failures are retried with
//! exponential backoff and jitter. A 404 is an answer ([`Outcome::NotFound`]), not an
//! error: whether it means "never" or "not yet" is the caller's judgement (it knows when
//! the period ended).
//!
//! Bodies are bounded: a file can be no larger than the rows its name allows
//! ([`marketdb_ingest::plausible_file_bytes`]). A `Content-Length` above that is refused
//! before a byte is read, and a body that grows past it is cut off, so the temporary file
//! never holds more than the bound. A `200` whose body is not a zip (a maintenance page) is
//! retried like a `5xx`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::backoff::Jitter;
use crate::{Error, Result, VisionFile, layout::DEFAULT_BASE_URL};

/// The name prefix of the fetchers' scratch folders in the system temporary folder.
const SCRATCH_PREFIX: &str = "marketdb-fetch-";

/// Largest `.CHECKSUM` body read (a real one is about 100 bytes).
const MAX_CHECKSUM_BODY: usize = 4096;

/// How a [`Fetcher`] talks to the server.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// Base URL, e.g. [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// Retries after the first attempt of one request.
    pub retries: u32,
    /// Delay before the first retry; doubled each retry (with jitter), up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer.
    pub read_timeout: Duration,
    /// Longest one request may take, whole (a server that trickles bytes never trips
    /// `read_timeout`).
    pub timeout: Duration,
    /// Where downloaded files are kept (in the Vision layout); `None` deletes them after use.
    pub keep_dir: Option<PathBuf>,
    /// The gate kept files are written through (it protects the database being filled).
    pub output: marketdb_output::OutputGate,
}

impl Default for FetchConfig {
    fn default() -> FetchConfig {
        FetchConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            retries: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(900),
            keep_dir: None,
            output: marketdb_output::OutputGate::new(),
        }
    }
}

/// What fetching one file gave.
#[derive(Debug)]
pub struct Fetch {
    pub outcome: Outcome,
    /// Requests repeated for this file (transient failures and a checksum mismatch).
    pub retries: u32,
}

/// The answer for one file.
#[derive(Debug)]
pub enum Outcome {
    /// The file is on disk (and verified when Vision had a `.CHECKSUM`).
    Fetched(Downloaded),
    /// Vision answered 404.
    NotFound,
    /// The file failed its checksum twice.
    ChecksumMismatch { expected: String, actual: String },
}

/// Totals of one fetcher's requests, as the server saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchStats {
    /// Requests sent (files and `.CHECKSUM`s, every attempt).
    pub requests: u64,
    /// Requests that repeated an earlier one (a retry after a failure or a mismatch).
    pub retries: u64,
    /// Body bytes received, refused bodies included.
    pub bytes_received: u64,
}

/// What the server says identifies the current version of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The digest of its `.CHECKSUM` (lowercase hex), when Vision publishes one.
    pub sha256: Option<String>,
    /// `ETag` and `Last-Modified` of the file itself (asked only without a checksum).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A downloaded file. Dropping it deletes it unless it was kept (`keep_dir`).
#[derive(Debug)]
pub struct Downloaded {
    path: PathBuf,
    url: String,
    bytes: u64,
    sha256: String,
    checksum_verified: bool,
    etag: Option<String>,
    last_modified: Option<String>,
    /// The private folder to remove on drop (`None` when kept).
    scratch: Option<PathBuf>,
}

impl Downloaded {
    /// Where the file is (its name is the Vision file name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The URL it came from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Size of the file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Its SHA-256, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Whether the `.CHECKSUM` matched (false when Vision had none).
    pub fn checksum_verified(&self) -> bool {
        self.checksum_verified
    }

    /// The `ETag` and `Last-Modified` headers it came with.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    pub fn last_modified(&self) -> Option<&str> {
        self.last_modified.as_deref()
    }
}

impl Downloaded {
    /// Deletes the file now, on a blocking thread (dropping it deletes it too, but on
    /// the calling thread).
    pub async fn discard(mut self) {
        if let Some(dir) = self.scratch.take() {
            let _ = tokio::task::spawn_blocking(move || remove_scratch(&dir)).await;
        }
    }
}

impl Drop for Downloaded {
    fn drop(&mut self) {
        if let Some(dir) = self.scratch.take() {
            remove_scratch(&dir);
        }
    }
}

fn remove_scratch(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a downloaded file");
    }
}

/// One request's result, for the retry loop.
pub(crate) enum Attempt<T> {
    Done(T),
    NotFound,
    Retry(Error),
    Fatal(Error),
}

/// A body streamed to disk.
struct Body {
    bytes: u64,
    sha256: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Downloads Vision files; cheap to share behind an `Arc` (requests run concurrently).
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    config: FetchConfig,
    work: Arc<marketdb_output::ScratchDir>,
    seq: AtomicU64,
    jitter: Jitter,
    requests: AtomicU64,
    retries: AtomicU64,
    bytes_received: AtomicU64,
}

impl Fetcher {
    /// A fetcher with its own private temporary folder (removed when it is dropped; one
    /// left by a killed run is removed by the next fetcher).
    pub fn new(config: FetchConfig) -> Result<Fetcher> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("marketdb/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| Error::Client { source })?;
        let work = marketdb_output::ScratchDir::create_in(&std::env::temp_dir(), SCRATCH_PREFIX)?;
        Ok(Fetcher {
            client,
            config,
            work: Arc::new(work),
            seq: AtomicU64::new(0),
            jitter: Jitter::default(),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// The HTTP client (shared with the bucket listing).
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Counts received bytes in [`FetchStats::bytes_received`].
    pub(crate) fn count_bytes(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    /// Requests, retries and bytes so far.
    pub fn stats(&self) -> FetchStats {
        FetchStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
        }
    }

    /// Creates (or truncates) `path`, a file inside the fetcher's scratch folder, on a
    /// blocking thread.
    async fn scratch_file(&self, path: &Path) -> Result<tokio::fs::File> {
        let rel = path
            .strip_prefix(self.work.path())
            .map_err(|_| Error::io(path, std::io::Error::other("outside the scratch folder")))?
            .to_path_buf();
        let work = Arc::clone(&self.work);
        let (_, file) = tokio::task::spawn_blocking(move || work.create_file(&rel))
            .await
            .map_err(|e| Error::io(path, std::io::Error::other(e)))??;
        Ok(tokio::fs::File::from_std(file))
    }

    /// Fetches `file` and its `.CHECKSUM`, verifies it, and retries a mismatch once.
    pub async fn fetch(&self, file: &VisionFile) -> Result<Fetch> {
        let url = file.url(&self.config.base_url);
        let checksum_url = file.checksum_url(&self.config.base_url);
        let limit = file.max_bytes();
        let scratch = self
            .work
            .path()
            .join(self.seq.fetch_add(1, Ordering::Relaxed).to_string());
        tokio::fs::create_dir_all(&scratch)
            .await
            .map_err(|e| Error::io(&scratch, e))?;
        let path = scratch.join(file.file_name());
        let mut retries = 0;
        let result = self
            .fetch_into(&url, &checksum_url, &path, limit, &mut retries)
            .await;
        let outcome = match result {
            Ok(Verified::Ok(body, checksum_verified)) => {
                let mut done = Downloaded {
                    path,
                    url,
                    bytes: body.bytes,
                    sha256: body.sha256,
                    checksum_verified,
                    etag: body.etag,
                    last_modified: body.last_modified,
                    scratch: Some(scratch),
                };
                if let Some(keep) = &self.config.keep_dir {
                    done = keep_file(&self.config.output, done, &keep.join(file.path())).await?;
                }
                Outcome::Fetched(done)
            }
            Ok(Verified::NotFound) => {
                let _ = tokio::fs::remove_dir_all(&scratch).await;
                Outcome::NotFound
            }
            Ok(Verified::Mismatch { expected, actual }) => {
                let _ = tokio::fs::remove_dir_all(&scratch).await;
                Outcome::ChecksumMismatch { expected, actual }
            }
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&scratch).await;
                return Err(e);
            }
        };
        Ok(Fetch { outcome, retries })
    }

    /// What identifies the file's current version on the server: its `.CHECKSUM` digest,
    /// or without one its `ETag` and `Last-Modified` (a `HEAD`). `None` when the file is
    /// not there (404).
    pub async fn identity(&self, file: &VisionFile) -> Result<Option<Identity>> {
        let checksum_url = file.checksum_url(&self.config.base_url);
        let mut retries = 0;
        let text = self
            .with_retries(&checksum_url, &mut retries, |n| {
                self.get_small(&checksum_url, n)
            })
            .await?;
        if let Some(text) = text
            && let Some(sha256) = marketdb_ingest::parse_checksum(&String::from_utf8_lossy(&text))
        {
            return Ok(Some(Identity {
                sha256: Some(sha256),
                ..Identity::default()
            }));
        }
        let url = file.url(&self.config.base_url);
        let head = self
            .with_retries(&url, &mut retries, |n| self.head(&url, n))
            .await?;
        Ok(head.map(|(etag, last_modified)| Identity {
            sha256: None,
            etag,
            last_modified,
        }))
    }

    /// The download-and-verify rounds.
    async fn fetch_into(
        &self,
        url: &str,
        checksum_url: &str,
        path: &Path,
        limit: Option<u64>,
        retries: &mut u32,
    ) -> Result<Verified> {
        let mut mismatch = None;
        for round in 0..2 {
            if round > 0 {
                self.count_retry(retries);
            }
            let Some(body) = self
                .with_retries(url, retries, |n| self.get_to_file(url, path, limit, n))
                .await?
            else {
                tracing::info!(url, "not found");
                return Ok(Verified::NotFound);
            };
            let sidecar = marketdb_ingest::checksum_path(path);
            if round > 0 {
                // The checksum is asked again too: a repeated request for the server.
                self.count_retry(retries);
            }
            let text = self
                .with_retries(checksum_url, retries, |n| self.get_small(checksum_url, n))
                .await?;
            let Some(text) = text else {
                tracing::warn!(url, "no checksum published: the file is not verified");
                return Ok(Verified::Ok(body, false));
            };
            // Kept beside the file, so a kept download comes with its checksum.
            let mut out = self.scratch_file(&sidecar).await?;
            out.write_all(&text)
                .await
                .map_err(|e| Error::io(&sidecar, e))?;
            out.flush().await.map_err(|e| Error::io(&sidecar, e))?;
            let Some(expected) = marketdb_ingest::parse_checksum(&String::from_utf8_lossy(&text))
            else {
                return Err(Error::Checksum {
                    url: url.to_owned(),
                    source: marketdb_ingest::Error::BadChecksumFile {
                        file: sidecar,
                        reason: "expected a 64-digit sha256 hex digest followed by the file name"
                            .into(),
                    },
                });
            };
            if expected == body.sha256 {
                return Ok(Verified::Ok(body, true));
            }
            tracing::warn!(
                url,
                expected,
                actual = body.sha256,
                round,
                "checksum mismatch"
            );
            mismatch = Some((expected, body.sha256));
        }
        let (expected, actual) = mismatch.unwrap_or_default();
        Ok(Verified::Mismatch { expected, actual })
    }

    fn count_retry(&self, retries: &mut u32) {
        *retries += 1;
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `attempt` until it succeeds, answers 404, fails for good or runs out of
    /// retries; `Ok(None)` is a 404.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        url: &str,
        retries: &mut u32,
        mut attempt: F,
    ) -> Result<Option<T>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let mut n = 1;
        loop {
            match attempt(n).await {
                Attempt::Done(t) => return Ok(Some(t)),
                Attempt::NotFound => return Ok(None),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(e) if n > self.config.retries => return Err(e),
                Attempt::Retry(e) => {
                    let delay = self.backoff(n);
                    tracing::info!(url, attempt = n, error = %e, ?delay, "retrying");
                    self.count_retry(retries);
                    n += 1;
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn backoff(&self, n: u32) -> Duration {
        self.jitter
            .delay(self.config.backoff, self.config.max_backoff, n)
    }

    /// Sends a request and sorts the status.
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
        n: u32,
    ) -> Attempt<reqwest::Response> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(source) => {
                return Attempt::Retry(Error::Transfer {
                    url: url.to_owned(),
                    attempts: n,
                    source,
                });
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Attempt::Done(resp);
        }
        let err = Error::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            attempts: n,
        };
        if status == reqwest::StatusCode::NOT_FOUND {
            Attempt::NotFound
        } else if status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Attempt::Retry(err)
        } else {
            Attempt::Fatal(err)
        }
    }

    /// Streams the body of `url` into `path`, hashing it; a body shorter than its
    /// `Content-Length`, or not a zip, is retried; one larger than `limit` is refused.
    async fn get_to_file(
        &self,
        url: &str,
        path: &Path,
        limit: Option<u64>,
        n: u32,
    ) -> Attempt<Body> {
        let mut resp = match self.send(self.client.get(url), url, n).await {
            Attempt::Done(r) => r,
            Attempt::NotFound => return Attempt::NotFound,
            Attempt::Retry(e) => return Attempt::Retry(e),
            Attempt::Fatal(e) => return Attempt::Fatal(e),
        };
        let expected = resp.content_length();
        if let (Some(announced), Some(limit)) = (expected, limit)
            && announced > limit
        {
            return Attempt::Fatal(Error::TooLarge {
                url: url.to_owned(),
                bytes: announced,
                limit,
                announced: true,
            });
        }
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let mut out = match self.scratch_file(path).await {
            Ok(f) => f,
            Err(e) => return Attempt::Fatal(e),
        };
        let mut hasher = Sha256::new();
        let mut start = Vec::new();
        let mut got = 0u64;
        let truncated = |got: u64| {
            expected
                .filter(|&e| got < e)
                .map(|expected| Error::Truncated {
                    url: url.to_owned(),
                    got,
                    expected,
                    attempts: n,
                })
        };
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    self.bytes_received
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    if let Some(limit) = limit
                        && got + bytes.len() as u64 > limit
                    {
                        return Attempt::Fatal(Error::TooLarge {
                            url: url.to_owned(),
                            bytes: got + bytes.len() as u64,
                            limit,
                            announced: false,
                        });
                    }
                    if start.len() < 4 {
                        start.extend(bytes.iter().take(64));
                        if start.len() >= 4 && !is_zip_start(&start) {
                            return Attempt::Retry(not_a_zip(url, &start, n));
                        }
                    }
                    hasher.update(&bytes);
                    if let Err(e) = out.write_all(&bytes).await {
                        return Attempt::Fatal(Error::io(path, e));
                    }
                    got += bytes.len() as u64;
                }
                Ok(None) => break,
                Err(source) => {
                    return Attempt::Retry(truncated(got).unwrap_or(Error::Transfer {
                        url: url.to_owned(),
                        attempts: n,
                        source,
                    }));
                }
            }
        }
        if let Err(e) = out.flush().await {
            return Attempt::Fatal(Error::io(path, e));
        }
        if let Some(e) = truncated(got) {
            return Attempt::Retry(e);
        }
        if !is_zip_start(&start) {
            return Attempt::Retry(not_a_zip(url, &start, n));
        }
        Attempt::Done(Body {
            bytes: got,
            sha256: marketdb_ingest::hex_digest(&hasher.finalize()),
            etag,
            last_modified,
        })
    }

    /// A small body (a `.CHECKSUM`) in memory, at most [`MAX_CHECKSUM_BODY`] bytes kept.
    async fn get_small(&self, url: &str, n: u32) -> Attempt<Vec<u8>> {
        let mut resp = match self.send(self.client.get(url), url, n).await {
            Attempt::Done(r) => r,
            Attempt::NotFound => return Attempt::NotFound,
            Attempt::Retry(e) => return Attempt::Retry(e),
            Attempt::Fatal(e) => return Attempt::Fatal(e),
        };
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    self.bytes_received
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    let room = MAX_CHECKSUM_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    if room == 0 {
                        // Larger than any checksum: what was kept is enough to judge it.
                        return Attempt::Done(body);
                    }
                }
                Ok(None) => return Attempt::Done(body),
                Err(source) => {
                    return Attempt::Retry(Error::Transfer {
                        url: url.to_owned(),
                        attempts: n,
                        source,
                    });
                }
            }
        }
    }

    /// A `HEAD`: the `ETag` and `Last-Modified` headers.
    async fn head(&self, url: &str, n: u32) -> Attempt<(Option<String>, Option<String>)> {
        match self.send(self.client.head(url), url, n).await {
            Attempt::Done(r) => {
                let header = |name: reqwest::header::HeaderName| {
                    r.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                Attempt::Done((
                    header(reqwest::header::ETAG),
                    header(reqwest::header::LAST_MODIFIED),
                ))
            }
            Attempt::NotFound => Attempt::NotFound,
            Attempt::Retry(e) => Attempt::Retry(e),
            Attempt::Fatal(e) => Attempt::Fatal(e),
        }
    }
}

/// The result of the download-and-verify rounds.
enum Verified {
    Ok(Body, bool),
    NotFound,
    Mismatch { expected: String, actual: String },
}

/// Whether a body starts as a zip does (a local file header, or an empty archive).
fn is_zip_start(start: &[u8]) -> bool {
    start.starts_with(b"PK\x03\x04") || start.starts_with(b"PK\x05\x06")
}

fn not_a_zip(url: &str, start: &[u8], n: u32) -> Error {
    let shown: String = String::from_utf8_lossy(&start[..start.len().min(24)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Error::NotAZip {
        url: url.to_owned(),
        start: shown.trim().to_owned(),
        attempts: n,
    }
}

/// Copies a verified download (and its `.CHECKSUM`) to `dest` through the output gate
/// (temporary name, fsync, rename: a killed run never leaves a partial file under the
/// final name), off the async workers; the copy is kept.
async fn keep_file(
    gate: &marketdb_output::OutputGate,
    mut done: Downloaded,
    dest: &Path,
) -> Result<Downloaded> {
    let (gate, src, to) = (gate.clone(), done.path.clone(), dest.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<()> {
        let copy = |from: &Path, to: &Path| -> Result<()> {
            let mut input = marketdb_output::open_regular(from)?;
            let mut out = gate.create(to)?;
            std::io::copy(&mut input, &mut out).map_err(|e| Error::io(to, e))?;
            out.commit(true)?;
            Ok(())
        };
        copy(&src, &to)?;
        let sidecar = marketdb_ingest::checksum_path(&src);
        if sidecar.exists() {
            copy(&sidecar, &marketdb_ingest::checksum_path(&to))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::io(dest, std::io::Error::other(e)))??;
    done.path = dest.to_path_buf();
    // Dropping `done` later removes only the scratch folder, never the kept copy.
    Ok(done)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::test_server::{Answer, serve};
    use crate::{Market, Period};

    fn config(base: &str) -> FetchConfig {
        FetchConfig {
            base_url: base.to_owned(),
            retries: 2,
            backoff: Duration::from_millis(1),
            read_timeout: Duration::from_millis(300),
            ..FetchConfig::default()
        }
    }

    fn file(day: i64) -> VisionFile {
        VisionFile::klines(
            Market::Um,
            "BTCUSDT",
            marketdb_model::Freq::M1,
            Period::Day(day * 86_400_000),
        )
    }

    #[tokio::test]
    async fn retries_verifies_deletes_and_reports_404_and_failures() {
        let body = b"PK\x03\x04 not really a zip, but bytes to hash".to_vec();
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("x");
        std::fs::write(&tmp, &body).unwrap();
        let digest = marketdb_ingest::sha256_file(&tmp).unwrap();
        let ok = file(19_725);
        let slow = file(19_726);
        let refused = file(19_727);
        let path = |f: &VisionFile| format!("/{}", f.path());
        let script = HashMap::from([
            (
                path(&ok),
                vec![Answer::status(503), Answer::ok(body.clone())],
            ),
            (
                format!("{}.CHECKSUM", path(&ok)),
                vec![Answer::ok(format!("{digest}  x.zip\n").into_bytes())],
            ),
            (path(&slow), vec![Answer::Hang]),
            (path(&refused), vec![Answer::status(403)]),
        ]);
        let (base, counts) = serve(script).await;
        let fetcher = Fetcher::new(config(&base)).unwrap();

        let got = fetcher.fetch(&ok).await.unwrap();
        assert_eq!(got.retries, 1);
        let Outcome::Fetched(done) = got.outcome else {
            panic!("expected a file: {:?}", got.outcome)
        };
        assert!(done.checksum_verified());
        assert_eq!(done.sha256(), digest);
        assert_eq!(std::fs::read(done.path()).unwrap(), body);
        assert_eq!(done.bytes(), body.len() as u64);
        let kept = done.path().to_path_buf();
        drop(done);
        assert!(!kept.exists(), "the download is deleted with its handle");

        let missing = fetcher.fetch(&file(1)).await.unwrap();
        assert!(matches!(missing.outcome, Outcome::NotFound));

        let err = fetcher.fetch(&slow).await.unwrap_err();
        assert!(
            matches!(err, Error::Transfer { attempts: 3, .. }),
            "{err:?}"
        );
        assert_eq!(counts.lock().unwrap()[&path(&slow)], 3);

        let err = fetcher.fetch(&refused).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Status {
                    status: 403,
                    attempts: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            std::fs::read_dir(fetcher.work.path()).unwrap().count(),
            1,
            "no scratch folder is left (only the lock file)"
        );
    }

    #[tokio::test]
    async fn bodies_beyond_the_plausible_size_are_refused_and_pages_are_not_zips() {
        let announced = file(19_725);
        let endless = file(19_726);
        let page = file(19_727);
        let limit = announced.max_bytes().unwrap();
        let path = |f: &VisionFile| format!("/{}", f.path());
        let script = HashMap::from([
            (
                path(&announced),
                vec![Answer::Announce {
                    length: 10_000_000_000_000,
                    body: b"PK\x03\x04".to_vec(),
                }],
            ),
            (path(&endless), vec![Answer::Endless]),
            (
                path(&page),
                vec![Answer::ok(
                    b"<!DOCTYPE html><html>down for maintenance</html>".to_vec(),
                )],
            ),
        ]);
        let (base, counts) = serve(script).await;
        let fetcher = Fetcher::new(config(&base)).unwrap();

        let err = fetcher.fetch(&announced).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    bytes: 10_000_000_000_000,
                    announced: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(fetcher.stats().bytes_received, 0, "not a byte read");
        assert_eq!(counts.lock().unwrap()[&path(&announced)], 1, "not retried");

        let err = fetcher.fetch(&endless).await.unwrap_err();
        let Error::TooLarge {
            bytes,
            limit: l,
            announced: false,
            ..
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!(l, limit);
        assert!(bytes > limit, "{bytes}");
        assert!(fetcher.stats().bytes_received <= limit + 2 * 64 * 1024);

        let err = fetcher.fetch(&page).await.unwrap_err();
        assert!(matches!(err, Error::NotAZip { attempts: 3, .. }), "{err:?}");
        assert!(err.answer().starts_with("not a zip"), "{}", err.answer());
        assert_eq!(
            counts.lock().unwrap()[&path(&page)],
            3,
            "retried like a 5xx"
        );
        let stats = fetcher.stats();
        assert_eq!(stats.requests, 5);
        assert_eq!(stats.retries, 2);
        assert_eq!(
            std::fs::read_dir(fetcher.work.path()).unwrap().count(),
            1,
            "no scratch folder is left (only the lock file)"
        );
    }
}
