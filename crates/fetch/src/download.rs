//! One Vision file over HTTP: the body streams into a file in a private temporary folder
//! (a zip needs seeking, so it is never held in memory), the `.CHECKSUM` is fetched beside
//! it and verified, and transient failures are retried with exponential backoff and
//! jitter. A 404 is an answer ([`Outcome::NotPublished`]), not an error.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// Requests repeated (transient failures and a checksum mismatch).
    pub retries: u32,
}

/// The answer for one file.
#[derive(Debug)]
pub enum Outcome {
    /// The file is on disk (and verified when Vision had a `.CHECKSUM`).
    Fetched(Downloaded),
    /// Vision answered 404: it does not publish this file (yet).
    NotPublished,
    /// The file failed its checksum twice.
    ChecksumMismatch { expected: String, actual: String },
}

/// A downloaded file. Dropping it deletes it unless it was kept (`keep_dir`).
#[derive(Debug)]
pub struct Downloaded {
    path: PathBuf,
    bytes: u64,
    checksum_verified: bool,
    /// The private folder to remove on drop (`None` when kept).
    scratch: Option<PathBuf>,
}

impl Downloaded {
    /// Where the file is (its name is the Vision file name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the `.CHECKSUM` matched (false when Vision had none).
    pub fn checksum_verified(&self) -> bool {
        self.checksum_verified
    }
}

impl Drop for Downloaded {
    fn drop(&mut self) {
        if let Some(dir) = self.scratch.take()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a downloaded file");
        }
    }
}

/// One request's result, for the retry loop.
enum Attempt<T> {
    Done(T),
    NotFound,
    Retry(Error),
    Fatal(Error),
}

/// Downloads Vision files; cheap to share behind an `Arc` (requests run concurrently).
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    config: FetchConfig,
    work: marketdb_output::ScratchDir,
    seq: AtomicU64,
    jitter: Jitter,
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
            work,
            seq: AtomicU64::new(0),
            jitter: Jitter::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Creates (or truncates) `path`, a file inside the fetcher's scratch folder.
    fn scratch_file(&self, path: &Path) -> Result<tokio::fs::File> {
        let rel = path
            .strip_prefix(self.work.path())
            .map_err(|_| Error::io(path, std::io::Error::other("outside the scratch folder")))?;
        let (_, file) = self.work.create_file(rel)?;
        Ok(tokio::fs::File::from_std(file))
    }

    /// Fetches `file` and its `.CHECKSUM`, verifies it, and retries a mismatch once.
    pub async fn fetch(&self, file: &VisionFile) -> Result<Fetch> {
        let url = file.url(&self.config.base_url);
        let checksum_url = file.checksum_url(&self.config.base_url);
        let scratch = self
            .work
            .path()
            .join(self.seq.fetch_add(1, Ordering::Relaxed).to_string());
        tokio::fs::create_dir_all(&scratch)
            .await
            .map_err(|e| Error::io(&scratch, e))?;
        let path = scratch.join(file.file_name());
        let result = self.fetch_into(&url, &checksum_url, &path).await;
        let (outcome, retries) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&scratch).await;
                return Err(e);
            }
        };
        let outcome = match outcome {
            Some((bytes, checksum_verified)) => {
                let mut done = Downloaded {
                    path,
                    bytes,
                    checksum_verified,
                    scratch: Some(scratch),
                };
                if let Some(keep) = &self.config.keep_dir {
                    done = keep_file(&self.config.output, done, &keep.join(file.path())).await?;
                }
                Outcome::Fetched(done)
            }
            None => {
                let _ = tokio::fs::remove_dir_all(&scratch).await;
                match retries.1 {
                    Some((expected, actual)) => Outcome::ChecksumMismatch { expected, actual },
                    None => Outcome::NotPublished,
                }
            }
        };
        Ok(Fetch {
            outcome,
            retries: retries.0,
        })
    }

    /// The download-and-verify rounds: `Some((bytes, verified))` or `None` (with the last
    /// mismatch, if that was the reason) and the retry count.
    #[allow(clippy::type_complexity)]
    async fn fetch_into(
        &self,
        url: &str,
        checksum_url: &str,
        path: &Path,
    ) -> Result<(Option<(u64, bool)>, (u32, Option<(String, String)>))> {
        let mut retries = 0;
        let mut mismatch = None;
        for round in 0..2 {
            if round > 0 {
                retries += 1;
            }
            let Some(bytes) = self
                .with_retries(url, &mut retries, |n| self.get_to_file(url, path, n))
                .await?
            else {
                tracing::info!(url, "not published");
                return Ok((None, (retries, None)));
            };
            let sidecar = marketdb_ingest::checksum_path(path);
            let _ = tokio::fs::remove_file(&sidecar).await;
            match self
                .with_retries(checksum_url, &mut retries, |n| {
                    self.get_small(checksum_url, n)
                })
                .await?
            {
                Some(text) => {
                    let mut out = self.scratch_file(&sidecar)?;
                    out.write_all(&text)
                        .await
                        .map_err(|e| Error::io(&sidecar, e))?;
                    out.flush().await.map_err(|e| Error::io(&sidecar, e))?;
                }
                None => {
                    tracing::warn!(url, "no checksum published: the file is not verified");
                    return Ok((Some((bytes, false)), (retries, None)));
                }
            }
            let p = path.to_path_buf();
            let verified =
                tokio::task::spawn_blocking(move || marketdb_ingest::verify_checksum(&p))
                    .await
                    .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
            match verified {
                Ok(v) => return Ok((Some((bytes, v)), (retries, None))),
                Err(marketdb_ingest::Error::ChecksumMismatch {
                    expected, actual, ..
                }) => {
                    tracing::warn!(url, expected, actual, round, "checksum mismatch");
                    mismatch = Some((expected, actual));
                }
                Err(source) => {
                    return Err(Error::Checksum {
                        url: url.to_owned(),
                        source,
                    });
                }
            }
        }
        Ok((None, (retries, mismatch)))
    }

    /// Runs `attempt` until it succeeds, answers 404, fails for good or runs out of
    /// retries; `Ok(None)` is a 404.
    async fn with_retries<T, F, Fut>(
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
                    *retries += 1;
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

    /// Sends a GET and sorts the status.
    async fn send(&self, url: &str, n: u32) -> Attempt<reqwest::Response> {
        let resp = match self.client.get(url).send().await {
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

    /// Streams the body of `url` into `path`; a body shorter than its `Content-Length`
    /// is retried.
    async fn get_to_file(&self, url: &str, path: &Path, n: u32) -> Attempt<u64> {
        let mut resp = match self.send(url, n).await {
            Attempt::Done(r) => r,
            Attempt::NotFound => return Attempt::NotFound,
            Attempt::Retry(e) => return Attempt::Retry(e),
            Attempt::Fatal(e) => return Attempt::Fatal(e),
        };
        let expected = resp.content_length();
        let mut out = match self.scratch_file(path) {
            Ok(f) => f,
            Err(e) => return Attempt::Fatal(e),
        };
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
        match truncated(got) {
            Some(e) => Attempt::Retry(e),
            None => Attempt::Done(got),
        }
    }

    /// A small body (a `.CHECKSUM`) in memory, at most [`MAX_CHECKSUM_BODY`] bytes kept.
    async fn get_small(&self, url: &str, n: u32) -> Attempt<Vec<u8>> {
        let mut resp = match self.send(url, n).await {
            Attempt::Done(r) => r,
            Attempt::NotFound => return Attempt::NotFound,
            Attempt::Retry(e) => return Attempt::Retry(e),
            Attempt::Fatal(e) => return Attempt::Fatal(e),
        };
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    let room = MAX_CHECKSUM_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&bytes[..bytes.len().min(room)]);
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
        let body = b"not really a zip, but bytes to hash".to_vec();
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
        assert_eq!(std::fs::read(done.path()).unwrap(), body);
        assert_eq!(done.bytes(), body.len() as u64);
        let kept = done.path().to_path_buf();
        drop(done);
        assert!(!kept.exists(), "the download is deleted with its handle");

        let missing = fetcher.fetch(&file(1)).await.unwrap();
        assert!(matches!(missing.outcome, Outcome::NotPublished));

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
}
